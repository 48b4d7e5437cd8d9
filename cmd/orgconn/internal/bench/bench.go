// Package bench measures how well orgconn spends a tenant's rate budget:
// it starts Redis (embedded unless given), the tenant simulator and N
// worker processes, runs a fixed job of enables against a fixed budget, and
// reports utilization (successful writes ÷ (burst + rate × elapsed)), the
// share of requests throttled, and API calls per applied change. The same
// job also runs through a baseline client that does what the official SDKs
// do: send at its concurrency and, on a 429, wait for X-RateLimit-Reset and
// retry a few times.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/redis/go-redis/v9"
)

// Scenario is one tenant budget the job runs against.
type Scenario struct {
	Name, Title string
	// Global and Write are the simulator's buckets; HeaderPolicy says
	// which one the X-RateLimit-* headers describe.
	Global, Write mgmttest.Bucket
	HeaderPolicy  mgmttest.HeaderPolicy
	// Halve, if set, halves every bucket's rate once half the job is
	// applied.
	Halve bool
}

// Scenarios are the three: one bucket; a global bucket plus a
// slower write bucket with each answer describing only one of them; the
// rate halved mid-run.
var Scenarios = []Scenario{
	{Name: "a", Title: "one bucket: burst 10, 20/s", Global: mgmttest.Bucket{Burst: 10, Rate: 20}},
	{Name: "b", Title: "global 10/20/s + write 5/10/s, headers alternate", Global: mgmttest.Bucket{Burst: 10, Rate: 20}, Write: mgmttest.Bucket{Burst: 5, Rate: 10}, HeaderPolicy: mgmttest.Alternate},
	{Name: "c", Title: "burst 10, 20/s halved to 10/s mid-run", Global: mgmttest.Bucket{Burst: 10, Rate: 20}, Halve: true},
}

// binding is the bucket that limits writes.
func (s Scenario) binding() mgmttest.Bucket {
	if s.Write.Rate > 0 && s.Write.Rate < s.Global.Rate {
		return s.Write
	}
	return s.Global
}

// Workers starts the worker processes of one run; it returns a function
// that stops them (gracefully) and waits for them.
type Workers func(ctx context.Context, run Run) (stop func() error, err error)

// Run is what a worker process needs to join a run.
type Run struct {
	RedisURL      string
	Redis         redis.UniversalClient
	Queue, Prefix string
	BaseURL       string
	Processes     int
	Concurrency   int
	// Rate and Burst are what the workers start from (--rate, --burst):
	// the tenant's global numbers, as its owner would configure them.
	Rate  float64
	Burst int
}

// Options configure Measure.
type Options struct {
	Scenarios   []Scenario
	Processes   []int
	Changes     int           // zero means 400
	Concurrency int           // per process; zero means 10
	Latency     time.Duration // the simulator's answer latency; zero means 20 ms
	// RedisURL is a Redis to use (each run under its own prefix and queue);
	// empty means an embedded one, served on loopback for the workers.
	RedisURL string
	Workers  Workers
	Baseline bool
	// Timeout bounds one run; zero means 5 minutes.
	Timeout time.Duration
	// Progress receives a line per run; nil discards.
	Progress io.Writer
}

// Result is one run's figures.
type Result struct {
	Scenario    string        `json:"scenario"`
	Client      string        `json:"client"` // "orgconn" or "baseline"
	Processes   int           `json:"processes"`
	Concurrency int           `json:"concurrency"`
	Changes     int           `json:"changes"`
	Applied     int           `json:"applied"`
	GaveUp      int           `json:"gave_up"`
	Requests    int           `json:"requests"`
	Throttled   int           `json:"throttled"`
	Tokens      int           `json:"tokens_issued"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Budget      float64       `json:"budget"`
	// Utilization is Applied ÷ Budget, the calls the tenant allowed from
	// the first write to the last: burst + rate × elapsed (the rate before
	// and after a halving, each for its share).
	Utilization float64 `json:"utilization"`
	// ThrottleRatio is Throttled ÷ Requests.
	ThrottleRatio float64 `json:"throttle_ratio"`
	// CallsPerChange is Requests ÷ Applied.
	CallsPerChange float64 `json:"calls_per_change"`
}

// Measure runs every scenario for every process count, and the baseline
// beside each when asked.
func Measure(ctx context.Context, o Options) ([]Result, error) {
	if o.Changes <= 0 {
		o.Changes = 400
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Latency <= 0 {
		o.Latency = 20 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Workers == nil {
		return nil, errors.New("bench: Options.Workers is required")
	}
	redisURL := o.RedisURL
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return nil, fmt.Errorf("start embedded Redis: %w", err)
		}
		defer mr.Close()
		redisURL = "redis://" + mr.Addr() + "/0"
	}
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("Redis does not answer: %w", err)
	}
	var out []Result
	for _, sc := range o.Scenarios {
		for _, p := range o.Processes {
			clients := []string{"orgconn"}
			if o.Baseline {
				clients = append(clients, "baseline")
			}
			for _, client := range clients {
				rctx, cancel := context.WithTimeout(ctx, o.Timeout)
				r, err := o.run(rctx, rdb, redisURL, sc, p, client)
				cancel()
				if err != nil {
					return out, fmt.Errorf("scenario %s, %d processes, %s: %w", sc.Name, p, client, err)
				}
				fmt.Fprintf(o.Progress, "%s\n", r)
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (r Result) String() string {
	return fmt.Sprintf("%s  %d×%-3d %-8s  %d/%d applied in %6.2fs  utilization %.3f  429s %d/%d (%.1f%%)  %.3f calls/change  gave up %d  tokens %d",
		r.Scenario, r.Processes, r.Concurrency, r.Client, r.Applied, r.Changes, r.Elapsed.Seconds(), r.Utilization,
		r.Throttled, r.Requests, 100*r.ThrottleRatio, r.CallsPerChange, r.GaveUp, r.Tokens)
}

// run is one scenario × process count × client.
func (o Options) run(ctx context.Context, rdb redis.UniversalClient, redisURL string, sc Scenario, processes int, client string) (Result, error) {
	res := Result{Scenario: sc.Name, Client: client, Processes: processes, Concurrency: o.Concurrency, Changes: o.Changes}
	sim := mgmttest.New(mgmttest.Config{
		Orgs: (o.Changes + 7) / 8, Connections: 8, Seed: 7,
		Global: sc.Global, Write: sc.Write, HeaderPolicy: sc.HeaderPolicy,
		Faults: mgmttest.Faults{Latency: o.Latency},
	})
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		return res, err
	}
	defer srv.Close(context.Background())

	// The job: one enable per pair, none repeated, none failing.
	var changes []jobs.Change
	for _, org := range sim.Orgs() {
		for _, c := range sim.Connections() {
			if len(changes) < o.Changes {
				changes = append(changes, jobs.Change{Action: jobs.Enable, OrgID: org, ConnectionID: c.ID})
			}
		}
	}

	halvedAt := make(chan time.Time, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if sc.Halve {
		go func() {
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-watchCtx.Done():
					return
				case <-t.C:
				}
				if sim.Stats().Writes >= o.Changes/2 {
					at := time.Now()
					sim.SetBucket(mgmttest.GlobalBucket, mgmttest.Bucket{Burst: sc.Global.Burst, Rate: sc.Global.Rate / 2})
					if sc.Write.Rate > 0 {
						sim.SetBucket(mgmttest.WriteBucket, mgmttest.Bucket{Burst: sc.Write.Burst, Rate: sc.Write.Rate / 2})
					}
					halvedAt <- at
					return
				}
			}
		}()
	}

	switch client {
	case "orgconn":
		if err := o.runOrgconn(ctx, rdb, redisURL, srv.URL(), sc, processes, changes, sim); err != nil {
			return res, err
		}
	default:
		res.GaveUp = runBaseline(ctx, srv.URL(), processes*o.Concurrency, changes)
	}
	stopWatch()

	st := sim.Stats()
	res.Applied, res.Throttled, res.Requests, res.Tokens = st.Writes, st.Throttled, st.Total, st.TokensIssued
	res.Elapsed = st.LastWrite.Sub(st.FirstWrite)
	b := sc.binding()
	res.Budget = float64(b.Burst) + b.Rate*res.Elapsed.Seconds()
	select {
	case at := <-halvedAt:
		before := at.Sub(st.FirstWrite).Seconds()
		res.Budget = float64(b.Burst) + b.Rate*before + b.Rate/2*(res.Elapsed.Seconds()-before)
	default:
	}
	if res.Budget > 0 {
		res.Utilization = float64(res.Applied) / res.Budget
	}
	if res.Requests > 0 {
		res.ThrottleRatio = float64(res.Throttled) / float64(res.Requests)
	}
	if res.Applied > 0 {
		res.CallsPerChange = float64(res.Requests) / float64(res.Applied)
	}
	return res, nil
}

// runOrgconn imports the job and runs the worker processes until it is
// done.
func (o Options) runOrgconn(ctx context.Context, rdb redis.UniversalClient, redisURL, baseURL string, sc Scenario, processes int, changes []jobs.Change, sim *mgmttest.Server) error {
	id := fmt.Sprintf("bench-%s-%d-%d", sc.Name, processes, time.Now().UnixNano())
	run := Run{RedisURL: redisURL, Redis: rdb, Queue: id, Prefix: id, BaseURL: baseURL, Processes: processes,
		Concurrency: o.Concurrency, Rate: sc.Global.Rate, Burst: sc.Global.Burst}
	defer cleanup(rdb, id)

	l, err := ledger.New(rdb, id, time.Hour)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "orgconn-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rows := make([]jobstest.Row, len(changes))
	for i, c := range changes {
		rows[i] = jobstest.Row{Line: i + 2, Change: c}
	}
	var buf bytes.Buffer
	if err := jobstest.WriteCSV(&buf, rows); err != nil {
		return err
	}
	path := filepath.Join(dir, "job.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return err
	}
	q := asynq.NewClientFromRedisClient(rdb)
	im, err := producer.NewImporter(producer.Config{Ledger: l, Queue: q, QueueName: id})
	if err != nil {
		return err
	}
	if _, err := im.ImportFile(ctx, path, producer.Options{Batch: id}); err != nil {
		return fmt.Errorf("import: %w", err)
	}

	stop, err := o.Workers(ctx, run)
	if err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	if bc, err := l.Wait(ctx, id, 20*time.Millisecond, nil); err != nil {
		stop()
		return fmt.Errorf("job not done (%+v, simulator %v): %w", bc, sim.Stats(), err)
	}
	return stop()
}

// cleanup removes a run's keys: its queue's and its prefix's.
func cleanup(rdb redis.UniversalClient, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Forced, DeleteQueue removes the queue with whatever tasks it holds.
	_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(id, true)
	for _, pattern := range []string{"{" + id + "}*", "asynq:{" + id + "}*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	}
}

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// InProcess runs each "process" of a run as its own set of machinery in
// this process — its own Redis connections, limiter, token source and API
// client and asynq server — sharing only Redis (and so the fleet's token)
// and the tenant, as separate processes do. Tests use it; orgconn bench starts real processes.
func InProcess(ctx context.Context, run Run) (func() error, error) {
	var stops []func()
	stopAll := func() error {
		for _, s := range stops {
			s()
		}
		return nil
	}
	for i := range run.Processes {
		stop, err := startInProcess(ctx, run, fmt.Sprintf("bench-%d", i))
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, stop)
	}
	return stopAll, nil
}

// startInProcess starts one in-process "worker process".
func startInProcess(ctx context.Context, run Run, name string) (stop func(), err error) {
	ropt, err := redis.ParseURL(run.RedisURL)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(ropt)
	defer func() {
		if err != nil {
			rdb.Close()
		}
	}()
	l, err := ledger.New(rdb, run.Prefix, time.Hour)
	if err != nil {
		return nil, err
	}
	w, err := assembly.New(ctx, assembly.Config{
		Redis: rdb, Ledger: l, BaseURL: run.BaseURL,
		Tokens: mgmt.NewClientCredentials(run.BaseURL, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
		Start:  ratelimit.Buckets{Global: ratelimit.Bucket{Burst: run.Burst, Rate: run.Rate}}, Override: true,
		APITimeout: 10 * time.Second,
		Worker:     worker.Config{Queue: run.Queue, Concurrency: run.Concurrency, Instance: name},
		Logger:     discard,
	})
	if err != nil {
		return nil, err
	}
	if err = w.Start(); err != nil {
		w.Close()
		return nil, err
	}
	return func() { w.Shutdown(); w.Close(); rdb.Close() }, nil
}
