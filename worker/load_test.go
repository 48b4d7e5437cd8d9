package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// envInt reads a positive integer from the environment, or def.
func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// maxRSS is a finished process's peak resident set size in MiB.
func maxRSS(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return 0
}

// TestLoadReport measures, in one run against one redis-server started for
// it, and prints as a table:
//
//   - import: `orgconn import` of a file of valid rows (a subprocess:
//     validation, ledger and enqueue) against raw asynq Client.Enqueue of
//     the same tasks with the same concurrency (8), in rows per second;
//     goal ≥ 80%;
//   - worker: `orgconn worker` (a subprocess, concurrency 10) applying
//     changes to a simulated tenant without rate limit against a raw asynq
//     server with a no-op handler, both of concurrency 10
//     (ORGCONN_LOAD_CONCURRENCY), in tasks per second;
//     goal ≥ 60%;
//   - the peak RSS of both subprocesses.
//
// With ORGCONN_LOAD=1 it runs at full size: 1,000,000 rows and 20,000
// tasks (ORGCONN_LOAD_ROWS and ORGCONN_LOAD_TASKS change them); run it
// without -race, whose instrumentation would slow the in-process raw asynq
// side only. Otherwise it runs small (20,000 rows, 1,000 tasks) so that it
// keeps working. It asserts nothing about speed: the figures go into
// BENCHMARKS.md.
func TestLoadReport(t *testing.T) {
	if testing.Short() {
		t.Skip("load report")
	}
	rows, tasks := 20_000, 1_000
	if os.Getenv("ORGCONN_LOAD") == "1" {
		rows, tasks = 1_000_000, 20_000
	}
	rows, tasks = envInt("ORGCONN_LOAD_ROWS", rows), envInt("ORGCONN_LOAD_TASKS", tasks)
	conc := envInt("ORGCONN_LOAD_CONCURRENCY", 10) // of both workers
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	bin := buildOrgconn(t)
	ctx := context.Background()
	type line struct {
		what     string
		orgconn  float64 // per second
		raw      float64
		rss      float64
		goal     float64
		elapsed  time.Duration
		rawTaken time.Duration
	}
	var report []line

	// --- import ---
	env := srv.NewEnv(t, 0)
	path := filepath.Join(t.TempDir(), "load.csv")
	writeValidCSV(t, path, rows)
	const importConcurrency = 8 // producer.Config.Concurrency's default
	rawStart := time.Now()
	rawEnqueue(t, env, "raw", rows, importConcurrency)
	rawTook := time.Since(rawStart)
	if err := env.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "import", "--json", "--batch", "load", path)
	cmd.Env = append(os.Environ(), "REDIS_URL="+env.URL, "ORGCONN_QUEUE="+env.Queue, "ORGCONN_KEY_PREFIX="+env.Prefix)
	imStart := time.Now()
	out, err := cmd.Output()
	imTook := time.Since(imStart)
	if err != nil {
		t.Fatalf("orgconn import: %v\n%s", err, out)
	}
	var res struct {
		Enqueued  int   `json:"enqueued"`
		ElapsedMS int64 `json:"elapsed_ms"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Enqueued != rows {
		t.Fatalf("orgconn import: %v; enqueued %d of %d\n%s", err, res.Enqueued, rows, out)
	}
	report = append(report, line{what: fmt.Sprintf("import %d rows", rows), orgconn: float64(rows) / imTook.Seconds(), raw: float64(rows) / rawTook.Seconds(),
		rss: maxRSS(cmd.ProcessState), goal: 0.8, elapsed: imTook, rawTaken: rawTook})
	t.Logf("import: process %v, of which the import itself %v", imTook.Round(time.Millisecond), time.Duration(res.ElapsedMS)*time.Millisecond)
	if err := env.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	// --- worker ---
	env2 := srv.NewEnv(t, 1)
	env2.Client.ConfigResetStat(ctx)
	orgs := max(tasks/10+1, 10)
	e := newE2EOn(t, env2, mgmttest.Config{Orgs: orgs, Connections: 10, Seed: 5}) // no rate limit
	var wrows []jobstest.Row
	for i := range tasks {
		wrows = append(wrows, jobstest.Row{Line: i + 2, Change: jobs.Change{Action: jobs.Enable, OrgID: e.tenant.Orgs[i%orgs], ConnectionID: e.tenant.Connections[i/orgs].ID}})
	}
	e.importRows(wrows)
	wStart := time.Now()
	p := e.startWorkerProcess(bin, "load", "--plan", "free", "--rate", "1000000", "--burst", "1000000", "--concurrency", strconv.Itoa(conc)) // free: one bucket, which --rate replaces
	e.waitDone(10 * time.Minute)
	wTook := time.Since(wStart)
	p.stop(t)
	e.verify()
	if os.Getenv("ORGCONN_LOAD_STATS") == "1" {
		t.Logf("Redis commands during the worker run:\n%s", env2.Client.Info(ctx, "commandstats").Val())
	}

	rawQueue := env2.Queue + "raw"
	rawEnqueue(t, &redistest.Env{Client: env2.Client, Queue: rawQueue}, "noop", tasks, 8)
	var done atomic.Int64
	finished := make(chan struct{})
	noop := asynq.NewServerFromRedisClient(env2.Client, asynq.Config{Concurrency: conc, Queues: map[string]int{rawQueue: 1}, LogLevel: asynq.WarnLevel})
	rStart := time.Now()
	if err := noop.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(tasks) {
			close(finished)
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	<-finished
	rTook := time.Since(rStart)
	noop.Shutdown()
	report = append(report, line{what: fmt.Sprintf("worker %d tasks, concurrency %d", tasks, conc), orgconn: float64(tasks) / wTook.Seconds(), raw: float64(tasks) / rTook.Seconds(),
		rss: maxRSS(p.cmd.ProcessState), goal: 0.6, elapsed: wTook, rawTaken: rTook})

	// The same against raw asynq whose handler makes the API call and
	// nothing else (no ledger, no limiter), on a fresh tenant: what orgconn
	// adds to the call it cannot avoid.
	sim2 := mgmttest.New(mgmttest.Config{Orgs: orgs, Connections: 10, Seed: 5})
	run2, err := mgmttest.Listen("127.0.0.1:0", sim2)
	if err != nil {
		t.Fatal(err)
	}
	defer run2.Close(ctx)
	api, err := mgmt.New(mgmt.Config{BaseURL: run2.URL(), Tokens: mgmt.NewClientCredentials(run2.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	apiQueue := env2.Queue + "api"
	cl := asynq.NewClientFromRedisClient(env2.Client)
	for _, r := range wrows {
		task, opts, err := jobs.NewTask(r.Change, jobs.Origin{Batch: "api", Line: r.Line}, apiQueue)
		if err == nil {
			_, err = cl.Enqueue(task, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var apiDone, apiFailed atomic.Int64
	apiFinished := make(chan struct{})
	withAPI := asynq.NewServerFromRedisClient(env2.Client, asynq.Config{Concurrency: conc, Queues: map[string]int{apiQueue: 1}, LogLevel: asynq.WarnLevel})
	aStart := time.Now()
	if err := withAPI.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		p, err := jobs.DecodePayload(task.Payload())
		if err == nil {
			_, err = api.Enable(ctx, p.Change.OrgID, p.Change.ConnectionID, mgmt.Settings{AssignMembershipOnLogin: &[]bool{true}[0]})
		}
		if err != nil {
			apiFailed.Add(1)
		}
		if apiDone.Add(1) == int64(tasks) {
			close(apiFinished)
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	<-apiFinished
	aTook := time.Since(aStart)
	withAPI.Shutdown()
	if n := apiFailed.Load(); n > 0 {
		t.Errorf("%d API calls of the raw asynq handler failed", n)
	}
	report = append(report, line{what: fmt.Sprintf("worker vs asynq + API call only, concurrency %d", conc), orgconn: float64(tasks) / wTook.Seconds(), raw: float64(tasks) / aTook.Seconds(),
		rss: maxRSS(p.cmd.ProcessState), goal: 0.6, elapsed: wTook, rawTaken: aTook})

	var b bytesBuffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\torgconn /s\traw asynq /s\tratio\tgoal\torgconn time\traw time\tpeak RSS MiB\t")
	for _, l := range report {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f%%\t≥ %.0f%%\t%v\t%v\t%.1f\t\n", l.what, l.orgconn, l.raw, 100*l.orgconn/l.raw, 100*l.goal,
			l.elapsed.Round(time.Millisecond), l.rawTaken.Round(time.Millisecond), l.rss)
	}
	tw.Flush()
	t.Logf("load report (GOMAXPROCS %s):\n%s", os.Getenv("GOMAXPROCS"), b.String())
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesBuffer) String() string              { return string(w.b) }

// writeValidCSV writes n valid enable rows, each on its own pair.
func writeValidCSV(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled")
	for i := range n {
		fmt.Fprintf(w, "enable,org_%016d,con_%016d,true,,\n", i/10, i%10)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// rawEnqueue enqueues n change tasks straight through asynq's client with
// the given concurrency — the tasks, ids and options an import makes.
func rawEnqueue(t *testing.T, env *redistest.Env, batch string, n, concurrency int) {
	t.Helper()
	cl := asynq.NewClientFromRedisClient(env.Client)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				c := jobs.Change{Action: jobs.Enable, OrgID: fmt.Sprintf("org_%016d", i/10), ConnectionID: fmt.Sprintf("con_%016d", i%10), AssignMembershipOnLogin: jobs.True}
				task, opts, err := jobs.NewTask(c, jobs.Origin{Batch: batch, Line: i + 1}, env.Queue)
				if err == nil {
					_, err = cl.Enqueue(task, opts...)
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("raw enqueue: %v", err)
	}
}
