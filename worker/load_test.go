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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/changetask"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// envInt reads a positive integer from the environment, or def.
func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// cpuSeconds is a finished process's user and system CPU time.
func cpuSeconds(ps *os.ProcessState) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// redisCPU is the redis-server's user and system CPU time so far.
func redisCPU(t *testing.T, c redis.UniversalClient) float64 {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
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
//     the same tasks with the same concurrency (24, the importer's
//     default), in rows per second;
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
	// A run is one side of a comparison; a line compares two runs.
	type run struct {
		name    string
		perSec  float64
		took    time.Duration
		cpuUS   float64 // CPU per item of every process taking part (Redis, workers, simulator), µs
		rss     float64 // peak RSS of the orgconn subprocess, MiB; 0: none
		rssNote string
	}
	type line struct {
		of, against run
		goal        float64 // 0: none
	}
	var report []line
	perItem := func(sec float64, n int) float64 { return sec * 1e6 / float64(n) }
	// span runs f and measures its wall time and the CPU this process and
	// the redis-server behind c spent meanwhile.
	span := func(c redis.UniversalClient, f func()) (took time.Duration, self, rds float64) {
		self0, rds0 := selfCPU(), redisCPU(t, c)
		start := time.Now()
		f()
		took = time.Since(start)
		return took, selfCPU() - self0, redisCPU(t, c) - rds0
	}

	// --- import ---
	env := srv.NewEnv(t, 0)
	path := filepath.Join(t.TempDir(), "load.csv")
	writeValidCSV(t, path, rows)
	const importConcurrency = 24 // producer.Config.Concurrency's default
	rawTook, self, rds := span(env.Client, func() { rawEnqueue(t, env, "raw", rows, importConcurrency) })
	t.Logf("CPU per row, raw enqueue: redis-server %.0f µs, test process %.0f µs", perItem(rds, rows), perItem(self, rows))
	rawImport := run{name: "raw asynq Enqueue", perSec: float64(rows) / rawTook.Seconds(), took: rawTook, cpuUS: perItem(self+rds, rows)}
	if err := env.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "import", "--json", "--batch", "load", path)
	cmd.Env = append(os.Environ(), "REDIS_URL="+env.URL, "ORGCONN_QUEUE="+env.Queue, "ORGCONN_KEY_PREFIX="+env.Prefix)
	var out []byte
	var err error
	imTook, _, rds := span(env.Client, func() { out, err = cmd.Output() })
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
	t.Logf("CPU per row, orgconn import: redis-server %.0f µs, orgconn process %.0f µs", perItem(rds, rows), perItem(cpuSeconds(cmd.ProcessState), rows))
	report = append(report, line{goal: 0.8, against: rawImport,
		of: run{name: fmt.Sprintf("orgconn import, %d rows", rows), perSec: float64(rows) / imTook.Seconds(), took: imTook,
			cpuUS: perItem(cpuSeconds(cmd.ProcessState)+rds, rows), rss: maxRSS(cmd.ProcessState)}})
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
	var p *proc
	wTook, self, rds := span(env2.Client, func() {
		p = e.startWorkerProcess(bin, "load", "--plan", "free", "--rate", "1000000", "--burst", "1000000", "--concurrency", strconv.Itoa(conc), "--cpu-profile", os.Getenv("ORGCONN_LOAD_PROFILE")) // free: one bucket, which --rate replaces
		e.waitDone(10 * time.Minute)
	})
	p.stop(t)
	t.Logf("CPU per task, orgconn worker: worker process %.0f µs (with its start and shutdown), redis-server %.0f µs, simulator and test %.0f µs",
		perItem(cpuSeconds(p.cmd.ProcessState), tasks), perItem(rds, tasks), perItem(self, tasks))
	worker := run{name: fmt.Sprintf("orgconn worker, %d tasks", tasks), perSec: float64(tasks) / wTook.Seconds(), took: wTook,
		cpuUS: perItem(cpuSeconds(p.cmd.ProcessState)+rds+self, tasks), rss: maxRSS(p.cmd.ProcessState)}
	e.verify()
	if os.Getenv("ORGCONN_LOAD_STATS") == "1" {
		t.Logf("Redis commands during the worker run:\n%s", env2.Client.Info(ctx, "commandstats").Val())
	}

	// rawServer runs a raw asynq server of concurrency conc with handle
	// (which reports failures) on queue until it has seen every task.
	rawServer := func(name, what, queue string, handle func(context.Context, *asynq.Task) error) run {
		var done, failed atomic.Int64
		finished := make(chan struct{})
		srv := asynq.NewServerFromRedisClient(env2.Client, asynq.Config{Concurrency: conc, Queues: map[string]int{queue: 1}, LogLevel: asynq.WarnLevel})
		took, self, rds := span(env2.Client, func() {
			if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
				if err := handle(ctx, task); err != nil {
					failed.Add(1)
				}
				if done.Add(1) == int64(tasks) {
					close(finished)
				}
				return nil
			})); err != nil {
				t.Fatal(err)
			}
			<-finished
		})
		srv.Shutdown()
		if n := failed.Load(); n > 0 {
			t.Errorf("%s: %d tasks failed", name, n)
		}
		t.Logf("CPU per task, %s: redis-server %.0f µs, %s %.0f µs", name, perItem(rds, tasks), what, perItem(self, tasks))
		return run{name: name, perSec: float64(tasks) / took.Seconds(), took: took, cpuUS: perItem(rds+self, tasks)}
	}

	rawQueue := env2.Queue + "raw"
	rawEnqueue(t, &redistest.Env{Client: env2.Client, Queue: rawQueue}, "noop", tasks, 8)
	noopRun := rawServer("raw asynq, no-op handler", "asynq server and test", rawQueue, func(context.Context, *asynq.Task) error { return nil })
	report = append(report, line{of: worker, against: noopRun, goal: 0.6})

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
		task, opts, err := changetask.New(r.Change, jobs.Origin{Batch: "api", Line: r.Line}, apiQueue)
		if err == nil {
			_, err = cl.Enqueue(task, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	apiRun := rawServer("raw asynq, handler making only the API call", "asynq server, client, simulator and test", apiQueue, func(ctx context.Context, task *asynq.Task) error {
		p, err := jobs.DecodePayload(task.Payload())
		if err == nil {
			_, err = api.Enable(ctx, p.Change.OrgID, p.Change.ConnectionID, mgmt.Settings{AssignMembershipOnLogin: &[]bool{true}[0]})
		}
		return err
	})
	// The ceiling for any handler that makes the call: what the call alone
	// costs beside asynq's own work.
	report = append(report, line{of: apiRun, against: noopRun}, line{of: worker, against: apiRun})

	var b bytesBuffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "concurrency %d (workers), %d (import)\n", conc, importConcurrency)
	fmt.Fprintln(tw, "run\t/s\ttime\tCPU µs per item\tagainst\t/s\ttime\tCPU µs per item\tratio\tgoal\tpeak RSS MiB")
	for _, l := range report {
		goal, rss := "—", "—"
		if l.goal > 0 {
			goal = fmt.Sprintf("≥ %.0f%%", 100*l.goal)
		}
		if l.of.rss > 0 {
			rss = fmt.Sprintf("%.1f", l.of.rss)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%.0f\t%s\t%.0f\t%v\t%.0f\t%.0f%%\t%s\t%s\n", l.of.name, l.of.perSec, l.of.took.Round(time.Millisecond), l.of.cpuUS,
			l.against.name, l.against.perSec, l.against.took.Round(time.Millisecond), l.against.cpuUS, 100*l.of.perSec/l.against.perSec, goal, rss)
	}
	tw.Flush()
	t.Logf("load report:\n%s", b.String())
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
				task, opts, err := changetask.New(c, jobs.Origin{Batch: batch, Line: i + 1}, env.Queue)
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
