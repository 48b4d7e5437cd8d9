package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/bench"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

const benchSynopsis = `Usage: orgconn bench [flags]

Measures how well a fleet of orgconn workers spends a tenant's rate budget,
beside the official Go SDK and a hand-written SDK-style client. For each
scenario and each number of worker processes it starts the tenant simulator
on loopback, seeds it (about a quarter of the pairs enabled), imports the
job into Redis, starts that many "orgconn worker" processes (this binary),
waits until the job is done, then runs the same job from the same seeded
state through each baseline at the same total concurrency.

The job (deterministic): about 60% enables, 25% updates and 15% removes,
about a quarter of the rows on a pair an earlier row touched, none failing
when applied in file order (an enable may meet a pair already enabled).

Columns (counts come from the simulator, not from the clients):

  applied       changes that took effect ÷ changes (orgconn: applied or
                superseded by a later change of the pair)
  gave up       changes dead-lettered (orgconn) or that the client returned
                an error for after its retries (baselines)
  exact         the simulator's final state equals the job applied in file
                order by the reference model; wrong = pairs that differ
  elapsed       first successful write to the last
  utilization   accepted requests ÷ (burst + rate × elapsed), over the
                bucket that binds writes: every answer but a 429 that
                took one of its tokens (reads too when it is the API-wide
                bucket); for fixed windows, ÷ what a client sending each
                write the moment the tenant would take it gets over the
                same span (every window begun, not a full one at the
                first write)
  429 ratio     throttled requests ÷ requests
  calls/change  API requests ÷ applied changes
  tokens        tokens issued by /oauth/token

Scenarios: the simulator's shapes (orgconn simulate --help lists them:
shared, split, burst-headers, alternate, window, reset-now, essentials ×20,
enterprise ×4), and the older a = one bucket (burst 10, 20/s); b = a global
bucket (10, 20/s) and a slower write bucket (5, 10/s), each answer's headers
describing one of them in turn; c = burst 10, 20/s, halved to 10/s once half
the job is written.

--start says what the workers are told of the budget: defaults = nothing
(the default plan, essentials, learned upward from the tenant's answers);
enterprise = --plan enterprise; tenant = --rate and --burst of the
scenario's global bucket.

Baselines (--baselines, comma-separated, "" for none), each routing a pair's
changes to one of processes × concurrency lanes so they stay in file order;
an enable answered 409 becomes an update with the same flags, a remove
answered 404 is done:
  go-auth0   github.com/auth0/go-auth0/management v1.45.0 with its default
             retries (a 429 twice, after X-RateLimit-Reset + 25%, 1-10 s)
  sdk-style  orgconn's API client without pacing, retrying a 429 after
             X-RateLimit-Reset (at least 250 ms, at most 10 s, plus up to
             25% jitter) at most 3 times

Redis is embedded (served on loopback) unless --redis is given; each run
uses its own queue and key prefix and removes them afterwards.

Example:
  orgconn bench --scenarios shared,burst-headers --processes 1,2,4
  orgconn bench --start enterprise --scenarios split,window --processes 2`

func runBench(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "bench", benchSynopsis)
	scenarios := f.String("scenarios", strings.Join(mgmttest.ShapeNames(), ","), "scenarios to run, comma-separated: the simulator's shapes, or a, b, c")
	processes := f.String("processes", "1,2,4", "worker process counts, comma-separated")
	changes := f.Int("changes", 400, "changes in the job")
	concurrency := f.Int("concurrency", 10, "concurrency of each worker process")
	latency := f.Duration("latency", 20*time.Millisecond, "the simulated tenant's answer latency")
	redisURL := f.String("redis", "", "Redis to use (empty: an embedded one)")
	baselines := f.String("baselines", strings.Join(bench.Baselines, ","), "baseline clients to run beside orgconn, comma-separated (go-auth0, sdk-style; empty: none)")
	noOrgconn := f.Bool("baselines-only", false, "run the baselines only, not orgconn (their figures do not depend on orgconn's limiter)")
	start := f.String("start", string(bench.StartDefaults), "what the workers are told of the budget: defaults, enterprise or tenant")
	seed := f.Uint64("seed", bench.JobSeed, "seed of the job")
	inProcess := f.Bool("in-process", false, "run the workers inside this process instead of as separate processes")
	asJSON := f.Bool("json", false, "print the results as JSON")
	timeout := f.Duration("timeout", 5*time.Minute, "longest time one run may take")
	workerLog := f.String("worker-log-level", "warn", "log level of the worker processes (their logs go to stderr)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() != 0 {
		return errorf(e, exitUsage, "bench: unexpected argument %q", f.Arg(0))
	}
	var o bench.Options
	for _, name := range splitList(*scenarios) {
		sc, err := bench.LookupScenario(name)
		if err != nil {
			return errorf(e, exitUsage, "bench: --scenarios: %v", err)
		}
		o.Scenarios = append(o.Scenarios, sc)
	}
	for _, p := range splitList(*processes) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 64 {
			return errorf(e, exitUsage, "bench: --processes: %q is not a number from 1 to 64", p)
		}
		o.Processes = append(o.Processes, n)
	}
	if len(o.Scenarios) == 0 || len(o.Processes) == 0 {
		return errorf(e, exitUsage, "bench: --scenarios and --processes must name at least one")
	}
	for _, b := range splitList(*baselines) {
		if !slices.Contains(bench.Baselines, b) {
			return errorf(e, exitUsage, "bench: --baselines: unknown baseline %q (want %s)", b, strings.Join(bench.Baselines, " or "))
		}
		o.Baselines = append(o.Baselines, b)
	}
	st, err := bench.ParseStart(*start)
	if err != nil {
		return errorf(e, exitUsage, "bench: --start: %v", err)
	}
	if *changes < 1 || *changes > 100000 || *concurrency < 1 || *concurrency > 1000 {
		return errorf(e, exitUsage, "bench: --changes must be 1 to 100000 and --concurrency 1 to 1000")
	}
	if *latency <= 0 {
		return errorf(e, exitUsage, "bench: --latency must be positive")
	}
	if *seed == 0 {
		return errorf(e, exitUsage, "bench: --seed must not be 0")
	}
	if *noOrgconn && len(o.Baselines) == 0 {
		return errorf(e, exitUsage, "bench: --baselines-only needs at least one baseline")
	}
	o.Changes, o.Concurrency, o.Latency, o.RedisURL, o.Start, o.Seed, o.Timeout, o.NoOrgconn = *changes, *concurrency, *latency, *redisURL, st, *seed, *timeout, *noOrgconn
	o.Progress = e.stderr
	o.Workers = bench.InProcess
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return errorf(e, exitUnavailable, "bench: find this binary to start workers: %v", err)
		}
		o.Workers = subprocessWorkers(exe, *workerLog, e.stderr)
	}
	fmt.Fprintf(e.stderr, "bench: %d changes (seed %d), %v processes × %d concurrency, workers start from %s, simulator latency %v\n",
		o.Changes, o.Seed, o.Processes, o.Concurrency, o.Start, o.Latency)
	results, err := bench.Measure(ctx, o)
	if err != nil {
		return errorf(e, exitUnavailable, "bench: %v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
		return exitOK
	}
	printBench(e.stdout, o, results)
	return exitOK
}

// printBench prints the results as a Markdown table.
func printBench(w io.Writer, o bench.Options, results []bench.Result) {
	fmt.Fprintln(w, "| scenario | processes | client | applied | gave up | exact | elapsed | utilization | 429 ratio | calls/change | tokens |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		exact := "yes"
		if !r.Exact {
			exact = fmt.Sprintf("no (%d wrong)", r.WrongPairs)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d/%d | %d | %s | %.2fs | %.3f | %.1f%% (%d/%d) | %.3f | %d |\n",
			r.Scenario, r.Processes, r.Client, r.Applied, r.Changes, r.GaveUp, exact, r.Elapsed.Seconds(), r.Utilization,
			100*r.ThrottleRatio, r.Throttled, r.Requests, r.CallsPerChange, r.Tokens)
	}
	fmt.Fprintln(w)
	for _, sc := range o.Scenarios {
		fmt.Fprintf(w, "- %s: %s\n", sc.Name, sc.Title)
	}
	fmt.Fprintf(w, "- orgconn workers started from: %s\n", o.Start)
}

// subprocessWorkers starts "orgconn worker" processes of this binary.
func subprocessWorkers(exe, logLevel string, stderr io.Writer) bench.Workers {
	return func(ctx context.Context, run bench.Run) (func() error, error) {
		var cmds []*exec.Cmd
		stop := func() error {
			var first error
			for _, c := range cmds {
				c.Process.Signal(syscall.SIGTERM)
			}
			for _, c := range cmds {
				done := make(chan error, 1)
				go func() { done <- c.Wait() }()
				select {
				case err := <-done:
					if err != nil && first == nil {
						first = fmt.Errorf("worker %d: %v", c.Process.Pid, err)
					}
				case <-time.After(30 * time.Second):
					c.Process.Kill()
					<-done
					if first == nil {
						first = fmt.Errorf("worker %d did not stop within 30s of SIGTERM", c.Process.Pid)
					}
				}
			}
			return first
		}
		for range run.Processes {
			args := append([]string{"worker", "--concurrency", strconv.Itoa(run.Concurrency)}, run.BudgetFlags()...)
			args = append(args, "--queue", run.Queue, "--prefix", run.Prefix, "--log-level", logLevel, "--metrics-addr", "")
			c := exec.Command(exe, args...)
			c.Env = append(benchEnv(),
				"REDIS_URL="+run.RedisURL, "AUTH0_DOMAIN="+run.BaseURL,
				"AUTH0_CLIENT_ID="+mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET="+mgmttest.DefaultClientSecret)
			c.Stdout, c.Stderr = stderr, stderr
			if err := c.Start(); err != nil {
				stop()
				return nil, err
			}
			cmds = append(cmds, c)
		}
		return stop, nil
	}
}

// benchEnv is this process's environment without the settings a bench
// worker gets from the run (a real tenant's credentials must not leak in).
func benchEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AUTH0_") || strings.HasPrefix(kv, "REDIS_URL=") || strings.HasPrefix(kv, "ORGCONN_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
