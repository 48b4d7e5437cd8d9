// Package bench measures how well orgconn spends a tenant's rate budget:
// it starts Redis (embedded unless given), the tenant simulator and N
// worker processes, runs a fixed mixed job (NewJob: enables, updates and
// removes, some pairs changed more than once) against a fixed budget, and
// reports utilization (successful writes ÷ (burst + rate × elapsed)), the
// share of requests throttled, API calls per applied change, and whether
// the tenant ends exactly as the job applied in file order says. The same
// job also runs through baseline clients at the fleet's concurrency: the
// official Go SDK (go-auth0) with its default retries, and a hand-written
// client that retries a 429 as the SDKs do.
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
	"slices"
	"strconv"
	"strings"
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

// Scenario is one tenant the job runs against.
type Scenario struct {
	Name, Title string
	// Config is the simulated tenant: its buckets, which of them the
	// X-RateLimit-* headers describe, what Reset means, its answers to
	// duplicates and its faults. The bench sets Orgs, Connections and Seed
	// for its job, and Faults.Latency when Options.Latency is not zero.
	Config mgmttest.Config
	// Binding is the bucket that limits writes, the budget utilization is
	// measured against.
	Binding mgmttest.Bucket
	// Halve, if set, halves every bucket's rate once half the job's
	// changes are written.
	Halve bool
}

// Scenarios are the three: one bucket; a global bucket plus a
// slower write bucket with each answer describing only one of them; the
// rate halved mid-run.
var Scenarios = []Scenario{
	{Name: "a", Title: "one bucket: burst 10, 20/s",
		Config:  mgmttest.Config{Global: mgmttest.Bucket{Burst: 10, Rate: 20}},
		Binding: mgmttest.Bucket{Burst: 10, Rate: 20}},
	{Name: "b", Title: "global 10/20/s + write 5/10/s, headers alternate",
		Config:  mgmttest.Config{Global: mgmttest.Bucket{Burst: 10, Rate: 20}, Write: mgmttest.Bucket{Burst: 5, Rate: 10}, HeaderPolicy: mgmttest.Alternate},
		Binding: mgmttest.Bucket{Burst: 5, Rate: 10}},
	{Name: "c", Title: "burst 10, 20/s halved to 10/s mid-run",
		Config:  mgmttest.Config{Global: mgmttest.Bucket{Burst: 10, Rate: 20}},
		Binding: mgmttest.Bucket{Burst: 10, Rate: 20}, Halve: true},
}

// ShapeTimeScale is the time scale the bench runs a simulator shape at: the
// plan shapes' per-minute budgets run faster, so that a job takes about as
// long as on the synthetic shapes (1 for the others).
var ShapeTimeScale = map[string]float64{"essentials": 20, "enterprise": 4}

// LookupScenario returns the scenario named name: one of the simulator's
// shapes (mgmttest.Shapes, at ShapeTimeScale), or one of the older
// Scenarios a, b and c.
func LookupScenario(name string) (Scenario, error) {
	if sh, err := mgmttest.LookupShape(name); err == nil {
		scale := ShapeTimeScale[sh.Name]
		title := sh.Doc
		if scale > 1 {
			title = fmt.Sprintf("%s, ×%g", sh.Doc, scale)
		}
		return Scenario{Name: sh.Name, Title: title, Config: sh.Config(scale), Binding: sh.Binding(scale)}, nil
	}
	names := mgmttest.ShapeNames()
	for _, sc := range Scenarios {
		if sc.Name == name {
			return sc, nil
		}
		names = append(names, sc.Name)
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q: use one of %s", name, strings.Join(names, ", "))
}

// Start is what the orgconn workers are told of the tenant's budget.
type Start string

// The starts.
const (
	// StartDefaults gives no --plan, --rate or --burst: the workers start
	// from the default plan's documented numbers (DefaultPlan) and learn
	// the tenant from its answers.
	StartDefaults Start = "defaults"
	// StartEnterprise gives --plan enterprise.
	StartEnterprise Start = "enterprise"
	// StartTenant gives --rate and --burst: the scenario's global bucket,
	// as a tenant owner who knows the numbers would configure them.
	StartTenant Start = "tenant"
)

// DefaultPlan is orgconn worker's --plan when none is given.
const DefaultPlan = "essentials"

// ParseStart parses a --start value.
func ParseStart(s string) (Start, error) {
	switch st := Start(s); st {
	case StartDefaults, StartEnterprise, StartTenant:
		return st, nil
	}
	return "", fmt.Errorf("unknown start %q: use defaults, enterprise or tenant", s)
}

// The clients a run can measure.
const (
	ClientOrgconn = "orgconn"
	// ClientGoAuth0 is the official Go SDK, github.com/auth0/go-auth0, with
	// its default retries (runGoAuth0).
	ClientGoAuth0 = "go-auth0"
	// ClientSDKStyle is a hand-written client that retries a 429 as the
	// SDKs do (runSDKStyle).
	ClientSDKStyle = "sdk-style"
)

// Baselines are the baseline clients, in the order they run.
var Baselines = []string{ClientGoAuth0, ClientSDKStyle}

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
	// Start says what the workers are told of the budget; Rate and Burst
	// are the tenant's global numbers, given (as --rate, --burst) only
	// with StartTenant.
	Start Start
	Rate  float64
	Burst int
}

// BudgetFlags are the worker flags that say what Start says.
func (r Run) BudgetFlags() []string {
	switch r.Start {
	case StartEnterprise:
		return []string{"--plan", "enterprise"}
	case StartTenant:
		return []string{"--rate", strconv.FormatFloat(r.Rate, 'f', -1, 64), "--burst", strconv.Itoa(r.Burst)}
	}
	return nil
}

// Options configure Measure.
type Options struct {
	Scenarios   []Scenario
	Processes   []int
	Changes     int // zero means 400
	Concurrency int // per process; zero means 10
	// Latency is the simulator's answer latency; zero means the scenario's
	// (Config.Faults.Latency), or 20 ms when that is zero too.
	Latency time.Duration
	// RedisURL is a Redis to use (each run under its own prefix and queue);
	// empty means an embedded one, served on loopback for the workers.
	RedisURL string
	Workers  Workers
	// Start is what the workers are told of the budget; empty means
	// StartDefaults.
	Start Start
	// Baselines are the baseline clients to run beside orgconn, each at
	// the fleet's total concurrency (ClientGoAuth0, ClientSDKStyle).
	Baselines []string
	// NoOrgconn runs the baselines only (their figures do not depend on
	// orgconn's code, so a long bench can run them once, apart).
	NoOrgconn bool
	// Seed seeds the job; zero means JobSeed.
	Seed uint64
	// Timeout bounds one run; zero means 5 minutes.
	Timeout time.Duration
	// Progress receives a line per run; nil discards.
	Progress io.Writer
}

// Result is one run's figures.
type Result struct {
	Scenario    string `json:"scenario"`
	Client      string `json:"client"` // "orgconn", "go-auth0" or "sdk-style"
	Start       Start  `json:"start,omitempty"`
	Processes   int    `json:"processes"`
	Concurrency int    `json:"concurrency"`
	Changes     int    `json:"changes"`
	// Applied is the number of changes that took effect: for orgconn the
	// lines the ledger counts applied or superseded (a later change of the
	// pair made the call unnecessary), for a baseline the changes its
	// calls succeeded for (a 409 on enable followed by a successful
	// update, or a 404 on remove, included).
	Applied    int `json:"applied"`
	Superseded int `json:"superseded"`
	// GaveUp is the number of changes that did not: dead letters for
	// orgconn, changes the client returned an error for after its retries
	// for a baseline.
	GaveUp int `json:"gave_up"`
	// Exact says whether the simulator's final state equals the expected
	// one (the job applied in file order by jobstest's model); WrongPairs
	// counts the pairs that differ, WrongExamples shows a few.
	Exact         bool     `json:"exact"`
	WrongPairs    int      `json:"wrong_pairs"`
	WrongExamples []string `json:"wrong_examples,omitempty"`
	// Requests, Throttled, Writes and Tokens are the simulator's counts:
	// /api/v2 requests, 429 answers, successful writes and tokens issued.
	Requests  int           `json:"requests"`
	Throttled int           `json:"throttled"`
	Writes    int           `json:"writes"`
	Tokens    int           `json:"tokens_issued"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Budget    float64       `json:"budget"`
	// Accepted counts the requests that took a token of the binding
	// bucket: every answer but a 429 (a 409 or 404 spends a token too), of
	// reads as well when the binding bucket is the API-wide one.
	Accepted int `json:"accepted"`
	// Utilization is Accepted ÷ Budget, the calls the binding bucket
	// allowed from the first successful write to the last: burst + rate ×
	// elapsed (the rate before and after a halving, each for its share).
	Utilization float64 `json:"utilization"`
	// ThrottleRatio is Throttled ÷ Requests.
	ThrottleRatio float64 `json:"throttle_ratio"`
	// CallsPerChange is Requests ÷ Applied.
	CallsPerChange float64 `json:"calls_per_change"`
}

// Measure runs every scenario for every process count, orgconn and then
// each of the baselines.
func Measure(ctx context.Context, o Options) ([]Result, error) {
	if o.Changes <= 0 {
		o.Changes = 400
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Start == "" {
		o.Start = StartDefaults
	}
	if _, err := ParseStart(string(o.Start)); err != nil {
		return nil, err
	}
	for _, b := range o.Baselines {
		if !slices.Contains(Baselines, b) {
			return nil, fmt.Errorf("unknown baseline %q: use %s", b, strings.Join(Baselines, " or "))
		}
	}
	if o.Seed == 0 {
		o.Seed = JobSeed
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
			clients := append([]string{ClientOrgconn}, o.Baselines...)
			if o.NoOrgconn {
				clients = clients[1:]
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
	exact := "exact"
	if !r.Exact {
		exact = fmt.Sprintf("NOT exact (%d pairs wrong, e.g. %s)", r.WrongPairs, strings.Join(r.WrongExamples, "; "))
	}
	return fmt.Sprintf("%s  %d×%-3d %-9s  %d/%d applied in %6.2fs  utilization %.3f  429s %d/%d (%.1f%%)  %.3f calls/change  gave up %d  tokens %d  %s",
		r.Scenario, r.Processes, r.Concurrency, r.Client, r.Applied, r.Changes, r.Elapsed.Seconds(), r.Utilization,
		r.Throttled, r.Requests, 100*r.ThrottleRatio, r.CallsPerChange, r.GaveUp, r.Tokens, exact)
}

// simConfig is the scenario's tenant sized for a job of changes rows.
func (o Options) simConfig(sc Scenario, changes int) mgmttest.Config {
	cfg := sc.Config
	cfg.Orgs = (changes*jobPairsPerRow+7)/8 + 1
	cfg.Connections = 8
	cfg.Seed = 7
	if o.Latency > 0 {
		cfg.Faults.Latency = o.Latency
	} else if cfg.Faults.Latency == 0 {
		cfg.Faults.Latency = 20 * time.Millisecond
	}
	return cfg
}

// run is one scenario × process count × client.
func (o Options) run(ctx context.Context, rdb redis.UniversalClient, redisURL string, sc Scenario, processes int, client string) (Result, error) {
	res := Result{Scenario: sc.Name, Client: client, Processes: processes, Concurrency: o.Concurrency, Changes: o.Changes}
	if client == ClientOrgconn {
		res.Start = o.Start
	}
	cfg := o.simConfig(sc, o.Changes)
	sim := mgmttest.New(cfg)
	job, err := NewJob(tenantOf(sim), o.Changes, o.Seed)
	if err != nil {
		return res, err
	}
	job.seed(sim)
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		return res, err
	}
	defer srv.Close(context.Background())

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
					for name, b := range map[mgmttest.BucketName]mgmttest.Bucket{mgmttest.GlobalBucket: cfg.Global, mgmttest.WriteBucket: cfg.Write, mgmttest.ReadBucket: cfg.Read} {
						if b.Rate > 0 {
							sim.SetBucket(name, mgmttest.Bucket{Burst: b.Burst, Rate: b.Rate / 2})
						}
					}
					halvedAt <- at
					return
				}
			}
		}()
	}

	lanes := processes * o.Concurrency
	switch client {
	case ClientOrgconn:
		bc, err := o.runOrgconn(ctx, rdb, redisURL, srv.URL(), sc, processes, job.Changes, sim)
		if err != nil {
			return res, err
		}
		res.Applied, res.Superseded, res.GaveUp = int(bc.Applied+bc.Superseded+bc.Unchanged), int(bc.Superseded), int(bc.Dead)
	case ClientGoAuth0:
		if res.GaveUp, err = runGoAuth0(ctx, srv.URL(), lanes, job.Changes); err != nil {
			return res, err
		}
		res.Applied = o.Changes - res.GaveUp
	case ClientSDKStyle:
		if res.GaveUp, err = runSDKStyle(ctx, srv.URL(), lanes, job.Changes); err != nil {
			return res, err
		}
		res.Applied = o.Changes - res.GaveUp
	default:
		return res, fmt.Errorf("unknown client %q", client)
	}
	stopWatch()

	res.Exact, res.WrongPairs, res.WrongExamples = Compare(job.Want, sim.State())
	if len(res.WrongExamples) > 3 {
		res.WrongExamples = res.WrongExamples[:3]
	}
	st := sim.Stats()
	res.Writes, res.Throttled, res.Requests, res.Tokens = st.Writes, st.Throttled, st.Total, st.TokensIssued
	res.Elapsed = st.LastWrite.Sub(st.FirstWrite)
	b := sc.Binding
	res.Budget = float64(b.Burst) + b.Rate*res.Elapsed.Seconds()
	if b.Window > 0 {
		// Fixed windows: burst + rate × elapsed would count a full
		// window at the first write, wherever in its window that falls.
		res.Budget = windowBudget(sc.Config, st.FirstWrite, st.LastWrite)
	}
	select {
	case at := <-halvedAt:
		before := at.Sub(st.FirstWrite).Seconds()
		res.Budget = float64(b.Burst) + b.Rate*before + b.Rate/2*(res.Elapsed.Seconds()-before)
	default:
	}
	for key, n := range st.ByRoute {
		f := strings.Fields(key)
		if len(f) == 3 && f[2] != "429" && (f[0] != "GET" || sc.Config.Write.Rate == 0 || b != sc.Config.Write) {
			res.Accepted += n
		}
	}
	if res.Budget > 0 {
		res.Utilization = float64(res.Accepted) / res.Budget
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
// done; it returns the batch's final counts.
func (o Options) runOrgconn(ctx context.Context, rdb redis.UniversalClient, redisURL, baseURL string, sc Scenario, processes int, changes []jobs.Change, sim *mgmttest.Server) (ledger.BatchCounts, error) {
	id := fmt.Sprintf("bench-%s-%d-%d", sc.Name, processes, time.Now().UnixNano())
	run := Run{RedisURL: redisURL, Redis: rdb, Queue: id, Prefix: id, BaseURL: baseURL, Processes: processes,
		Concurrency: o.Concurrency, Start: o.Start, Rate: sc.Config.Global.Rate, Burst: sc.Config.Global.Burst}
	defer cleanup(rdb, id)

	l, err := ledger.New(rdb, id, time.Hour)
	if err != nil {
		return ledger.BatchCounts{}, err
	}
	dir, err := os.MkdirTemp("", "orgconn-bench-*")
	if err != nil {
		return ledger.BatchCounts{}, err
	}
	defer os.RemoveAll(dir)
	var buf bytes.Buffer
	if err := jobstest.WriteCSV(&buf, rows(changes)); err != nil {
		return ledger.BatchCounts{}, err
	}
	path := filepath.Join(dir, "job.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return ledger.BatchCounts{}, err
	}
	q := asynq.NewClientFromRedisClient(rdb)
	im, err := producer.NewImporter(producer.Config{Ledger: l, Queue: q, QueueName: id})
	if err != nil {
		return ledger.BatchCounts{}, err
	}
	if _, err := im.ImportFile(ctx, path, producer.Options{Batch: id}); err != nil {
		return ledger.BatchCounts{}, fmt.Errorf("import: %w", err)
	}

	stop, err := o.Workers(ctx, run)
	if err != nil {
		return ledger.BatchCounts{}, fmt.Errorf("start workers: %w", err)
	}
	bc, err := l.Wait(ctx, id, 20*time.Millisecond, nil)
	if err != nil {
		stop()
		return bc, fmt.Errorf("job not done (%+v, simulator %v): %w", bc, sim.Stats(), err)
	}
	return bc, stop()
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
	start, override := ratelimit.Buckets{Global: ratelimit.Bucket{Burst: run.Burst, Rate: run.Rate}}, true
	if run.Start != StartTenant {
		plan := DefaultPlan
		if run.Start == StartEnterprise {
			plan = "enterprise"
		}
		if start, err = ratelimit.PlanBuckets(plan); err != nil {
			return nil, err
		}
		override = false
	}
	l, err := ledger.New(rdb, run.Prefix, time.Hour)
	if err != nil {
		return nil, err
	}
	w, err := assembly.New(ctx, assembly.Config{
		Redis: rdb, Ledger: l, BaseURL: run.BaseURL,
		Tokens: mgmt.NewClientCredentials(run.BaseURL, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
		Start:  start, Override: override,
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

// windowBudget is what a client sending each write the moment the tenant
// would take it has accepted between first and last, on a tenant whose
// limits are cfg's: for fixed windows (aligned to the epoch, as the
// simulator's are), every window begun in the span, each capped by the
// other buckets writes draw from.
func windowBudget(cfg mgmttest.Config, first, last time.Time) float64 {
	l := mgmttest.NewLimits(cfg, first)
	n := 0
	for t := first; !t.After(last); t = t.Add(time.Millisecond) {
		for l.Take("POST", t).Allowed {
			n++
		}
	}
	return float64(n)
}
