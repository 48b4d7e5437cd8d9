package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/metrics"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url and parses the exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include
// want, summed over the matching series; found is false when none matches.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, found bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, w := range want {
			if labels[k] != w {
				match = false
			}
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v, found
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := value(fams, name, want)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, want)
	}
	return v
}

// TestScrapeAfterARealRun runs a small batch through one worker against the
// simulated tenant — with a starting budget larger than the tenant's, so
// that some calls are refused with 429, and some changes for unknown
// organizations, so that some are dead-lettered — and checks every series
// of /metrics against what the ledger, the simulator and the queue say.
func TestScrapeAfterARealRun(t *testing.T) {
	ctx := context.Background()
	env := redistest.New(t)
	sim := mgmttest.New(mgmttest.Config{Orgs: 12, Connections: 4, Seed: 3, Global: mgmttest.Bucket{Burst: 5, Rate: 25}})
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	l, err := ledger.New(env.Client, env.Prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var tenant jobstest.Tenant
	tenant.Orgs = append(tenant.Orgs, sim.Orgs()...)
	for _, c := range sim.Connections() {
		tenant.Connections = append(tenant.Connections, jobstest.Connection{ID: c.ID, Database: c.Strategy == "auth0"})
	}
	rows := jobstest.Generate(tenant, jobstest.Options{Changes: 50, RepeatShare: 0.3, UnknownOrgs: 4, Seed: 5})
	var csv bytes.Buffer
	if err := jobstest.WriteCSV(&csv, rows); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "changes.csv")
	if err := os.WriteFile(path, csv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := producer.NewImporter(producer.Config{Ledger: l, Queue: asynq.NewClientFromRedisClient(env.Client), QueueName: env.Queue})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.ImportFile(ctx, path, producer.Options{Batch: "m", SkipInvalid: true}); err != nil {
		t.Fatal(err)
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Start twice as fast as the tenant allows: the first calls meet 429s.
	lim, err := ratelimit.New(ctx, ratelimit.Config{
		Redis: env.Client, Prefix: env.Prefix, Tenant: "metrics", Override: true,
		Start: ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 50}}, PauseFloor: 100 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lim.Close)
	reg.MustRegister(metrics.NewLimiterCollector(lim, quiet), metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(env.Client), quiet, env.Queue))
	api, err := mgmt.New(mgmt.Config{
		BaseURL: run.URL(), Pacer: m.Pacer(lim), Timeout: 5 * time.Second,
		Tokens: mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	const concurrency = 6
	w, err := worker.New(worker.Config{
		Redis: env.Client, Ledger: l, API: api, Limiter: lim, Queue: env.Queue, Concurrency: concurrency,
		BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second, WaitDelay: 100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Logger: quiet,
		Observe: m.Task,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.SetWorker(env.Queue, concurrency)
	var started atomic.Bool
	srv := httptest.NewServer(metrics.Handler(reg, func(context.Context) error {
		if !started.Load() {
			return errors.New("not started")
		}
		return nil
	}))
	t.Cleanup(srv.Close)
	if code := get(t, srv.URL+metrics.PathReadyz); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before start: %d, want 503", code)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	started.Store(true)

	var bc ledger.BatchCounts
	for deadline := time.Now().Add(time.Minute); ; {
		if bc, err = l.Batch(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		if bc.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not done after a minute: %+v", bc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if bc.Dead == 0 || bc.Applied == 0 {
		t.Fatalf("the run needs applied and dead changes: %+v", bc)
	}

	for path, want := range map[string]int{metrics.PathHealthz: 200, metrics.PathReadyz: 200} {
		if code := get(t, srv.URL+path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	fams := scrape(t, srv.URL+metrics.PathMetrics)

	// Every family is a known name, and every worker-side name is there.
	for name := range fams {
		if !slices.Contains(metrics.Names, name) {
			t.Errorf("%s is registered but not listed in metrics.Names", name)
		}
	}
	for _, name := range metrics.Names {
		if _, ok := fams[name]; !ok && !strings.HasPrefix(name, "orgconn_webhook_") && name != "orgconn_events_total" {
			t.Errorf("%s is missing from the worker's scrape", name)
		}
	}

	// Tasks: the ledger's outcomes, by outcome label.
	if got := mustValue(t, fams, metrics.NameTasks, map[string]string{"outcome": "applied"}); got != float64(bc.Applied) {
		t.Errorf("tasks applied = %v, ledger says %d", got, bc.Applied)
	}
	if got, _ := value(fams, metrics.NameTasks, map[string]string{"outcome": "superseded"}); got != float64(bc.Superseded) {
		t.Errorf("tasks superseded = %v, ledger says %d", got, bc.Superseded)
	}
	var deadTasks float64
	for _, r := range worker.DeadReasons {
		deadTasks += mustValueOr0(fams, metrics.NameTasks, map[string]string{"outcome": string(r)})
	}
	if deadTasks != float64(bc.Dead) {
		t.Errorf("tasks with a dead-letter outcome = %v, ledger says %d dead", deadTasks, bc.Dead)
	}
	// Dead letters: one per dead line, with its reason; other reasons at 0.
	if got := mustValue(t, fams, metrics.NameDeadLetters, nil); got != float64(bc.Dead) {
		t.Errorf("dead letters = %v, ledger says %d", got, bc.Dead)
	}
	dead, err := l.DeadLetters(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	byReason := map[string]int{}
	for _, d := range dead {
		byReason[d.Reason]++
	}
	for _, r := range worker.DeadReasons {
		if got := mustValue(t, fams, metrics.NameDeadLetters, map[string]string{"reason": string(r)}); got != float64(byReason[string(r)]) {
			t.Errorf("dead letters{reason=%s} = %v, ledger says %d", r, got, byReason[string(r)])
		}
	}

	// API calls: exactly what the simulator received, 429s included.
	st := sim.Stats()
	if got := mustValue(t, fams, metrics.NameAPIRequests, nil); got != float64(st.Total) {
		t.Errorf("api requests = %v, the simulator received %d", got, st.Total)
	}
	if st.Throttled == 0 {
		t.Fatal("the simulator refused nothing: the test needs 429s")
	}
	if got := mustValue(t, fams, metrics.NameAPIThrottled, nil); got != float64(st.Throttled) {
		t.Errorf("throttled = %v, the simulator sent %d 429s", got, st.Throttled)
	}
	if got := mustValue(t, fams, metrics.NameAPIRequests, map[string]string{"status": "429"}); got != float64(st.Throttled) {
		t.Errorf("api requests{status=429} = %v, want %d", got, st.Throttled)
	}
	for key, n := range st.ByRoute { // "METHOD ROUTE STATUS"
		f := strings.Fields(key)
		method, status := f[0], f[len(f)-1]
		if status == "0" {
			continue
		}
		if got, _ := value(fams, metrics.NameAPIRequests, map[string]string{"method": method, "status": status}); got < float64(n) {
			t.Errorf("api requests{method=%s,status=%s} = %v, the simulator answered %d", method, status, got, n)
		}
	}
	// Limiter waits: one per call sent; waiting happened (the tenant is slower
	// than the batch).
	if got := mustValue(t, fams, metrics.NameLimiterWait, nil); got != float64(st.Total) {
		t.Errorf("limiter waits = %v, want one per request (%d)", got, st.Total)
	}
	var waited float64
	for _, mm := range fams[metrics.NameLimiterWait].GetMetric() {
		waited += mm.GetHistogram().GetSampleSum()
	}
	if waited <= 0 {
		t.Errorf("limiter wait sum = %v, want > 0", waited)
	}
	// Learned buckets: the tenant's answers describe a bucket of 5.
	state, err := lim.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sawFive := false
	for _, b := range state.Buckets {
		if got := mustValue(t, fams, metrics.NameLimiterBurst, map[string]string{"bucket": b.ID}); got != float64(b.Burst) {
			t.Errorf("bucket %s burst = %v, state says %d", b.ID, got, b.Burst)
		}
		if got := mustValue(t, fams, metrics.NameLimiterRate, map[string]string{"bucket": b.ID}); got <= 0 || got > 100 {
			t.Errorf("bucket %s rate = %v, want a rate in (0, 100]", b.ID, got)
		}
		sawFive = sawFive || b.Burst == 5
	}
	if !sawFive {
		t.Errorf("no bucket of burst 5 learned from the tenant's answers: %v", state.Buckets)
	}
	if got := mustValue(t, fams, metrics.NameLimiterPaused, nil); got != 0 && got != 1 {
		t.Errorf("paused = %v", got)
	}
	// Queue: drained, dead letters archived, one worker serving it.
	for _, s := range []string{"pending", "active", "scheduled", "retry"} {
		if got := mustValue(t, fams, metrics.NameQueueTasks, map[string]string{"queue": env.Queue, "state": s}); got != 0 {
			t.Errorf("queue %s = %v after the batch is done", s, got)
		}
	}
	if got := mustValue(t, fams, metrics.NameQueueTasks, map[string]string{"queue": env.Queue, "state": "archived"}); got != float64(bc.Dead) {
		t.Errorf("queue archived = %v, want %d (the dead letters)", got, bc.Dead)
	}
	if got := mustValue(t, fams, metrics.NameQueueLatency, map[string]string{"queue": env.Queue}); got != 0 {
		t.Errorf("queue latency = %v with nothing pending", got)
	}
	if got := mustValue(t, fams, metrics.NameQueueWorkers, map[string]string{"queue": env.Queue}); got != 1 {
		t.Errorf("queue workers = %v, want 1", got)
	}
	if got := mustValue(t, fams, metrics.NameWorkerSlots, map[string]string{"queue": env.Queue}); got != concurrency {
		t.Errorf("worker concurrency = %v, want %d", got, concurrency)
	}
	for _, c := range []string{"limiter", "queue"} {
		if got := mustValue(t, fams, metrics.NameCollectErrors, map[string]string{"collector": c}); got != 0 {
			t.Errorf("collect errors{collector=%s} = %v", c, got)
		}
	}
	t.Logf("ledger %+v; simulator %d requests, %d throttled; waited %.2fs in all", bc, st.Total, st.Throttled, waited)
}

func mustValueOr0(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	v, _ := value(fams, name, want)
	return v
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
