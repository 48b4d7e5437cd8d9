// Package demo runs orgconn end to end on one machine: Redis (embedded
// unless given), a tenant (the built-in simulator unless given), a generated
// CSV of changes with a few bad rows and a few changes that must fail, an
// import, a worker, live progress and a summary that checks the tenant's
// final state against applying the rows in file order.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/redis/go-redis/v9"
)

// describeStart says what the limiter starts from.
func describeStart(b ratelimit.Buckets) string {
	var parts []string
	for _, p := range []struct {
		name string
		b    ratelimit.Bucket
	}{{"global", b.Global}, {"write", b.Write}, {"read", b.Read}} {
		if p.b.Rate > 0 {
			parts = append(parts, fmt.Sprintf("%s burst %d, %.4g/s", p.name, p.b.Burst, p.b.Rate))
		}
	}
	return strings.Join(parts, "; ")
}

// Options configure a demo run. The zero value runs everything in process.
type Options struct {
	// Redis, if not nil, is used instead of an embedded Redis.
	Redis redis.UniversalClient
	// BaseURL, if not empty, is the tenant to use instead of an in-process
	// simulator: an "orgconn simulate" server (its /sim endpoints tell the
	// demo its organizations) or a real tenant (then OrgIDs and
	// ConnectionIDs are required).
	BaseURL string
	// Tokens are the credentials for BaseURL; nil means the simulator's.
	Tokens mgmt.TokenSource
	// OrgIDs and ConnectionIDs name a real tenant's organizations and
	// connections to change.
	OrgIDs, ConnectionIDs []string
	// Start is what the rate limiter starts from before it has learned the
	// tenant's budget; zero means the in-process simulator's budget, or the
	// essentials plan's documented numbers for any other tenant.
	Start ratelimit.Buckets
	// Changes is the number of valid changes to generate; zero means 300.
	Changes int
	// Seed varies the generated file.
	Seed uint64
	// Out receives progress and the summary.
	Out io.Writer
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Queue and Prefix isolate the run's Redis keys; empty means
	// "orgconn-demo".
	Queue, Prefix string
}

// Summary is the outcome of a demo run.
type Summary struct {
	Changes, Invalid          int
	Applied, Superseded, Dead int
	Unchanged                 int // found in effect already by a worker that read: no write
	DeadByReason              map[string]int
	MustFail                  int
	Elapsed, Ideal            time.Duration
	Rate                      float64
	Throttled, Requests       int
	Learned                   []ratelimit.BucketState // the budget the limiter learned
	StateMatches              bool
	Differences               []string
	CSVPath                   string
}

// simulated budget and faults of the in-process tenant.
var simBudget = mgmttest.Bucket{Burst: 10, Rate: 20}

// Run runs the demo.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Changes <= 0 {
		o.Changes = 300
	}
	if o.Queue == "" {
		o.Queue = "orgconn-demo"
	}
	if o.Prefix == "" {
		o.Prefix = "orgconn-demo"
	}
	var sum Summary

	// Redis.
	rdb := o.Redis
	if rdb == nil {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return sum, fmt.Errorf("start embedded Redis: %w", err)
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer rdb.Close()
		fmt.Fprintf(o.Out, "redis:   embedded at %s\n", mr.Addr())
	}

	// Tenant.
	t, err := openTenant(ctx, &o)
	if err != nil {
		return sum, err
	}
	defer t.close()
	fmt.Fprintf(o.Out, "tenant:  %s (%d organizations, %d connections)\n", t.describe, len(t.tenant.Orgs), len(t.tenant.Connections))
	if o.Start == (ratelimit.Buckets{}) {
		// The simulator's budget is known, as a tenant owner's would be
		// (--rate 20 --burst 10); elsewhere the essentials plan's numbers.
		o.Start = ratelimit.Plans["essentials"]
		if t.sim != nil {
			o.Start = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: simBudget.Burst, Rate: simBudget.Rate}}
		}
	}
	fmt.Fprintf(o.Out, "budget:  the limiter starts from %s and learns the rest from the answers\n", describeStart(o.Start))
	l, err := ledger.New(rdb, o.Prefix, 24*time.Hour)
	if err != nil {
		return sum, err
	}
	// The worker "orgconn worker" runs: the fleet's shared budget and token,
	// the paced client, the metrics.
	w, err := assembly.New(ctx, assembly.Config{
		Redis: rdb, Ledger: l, BaseURL: t.baseURL, Tokens: t.tokens, Start: o.Start,
		APITimeout: 10 * time.Second, UserAgent: "orgconn-demo",
		Worker: worker.Config{
			Queue: o.Queue, Concurrency: 10,
			BackoffBase: 200 * time.Millisecond, BackoffMax: 5 * time.Second, WaitDelay: 300 * time.Millisecond,
			PollInterval: 100 * time.Millisecond, Instance: "demo",
		},
		Logger: o.Logger,
	})
	if err != nil {
		return sum, err
	}
	defer w.Close()
	lim, api := w.Limiter, w.API
	if t.sim == nil {
		// What is enabled now decides what the changes must do.
		if t.tenant.Initial, err = t.state(ctx, api); err != nil {
			return sum, fmt.Errorf("read the initial state: %w", err)
		}
	}

	// The file.
	rows := jobstest.Generate(t.tenant, jobstest.Options{
		Changes: o.Changes - 15, UnknownOrgs: 8, SignupFails: t.signupFails(7), Invalid: 5,
		RepeatShare: 0.25, Seed: o.Seed,
	})
	dir, err := os.MkdirTemp("", "orgconn-demo-*")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(dir)
	var buf bytes.Buffer
	if err := jobstest.WriteCSV(&buf, rows); err != nil {
		return sum, err
	}
	sum.CSVPath = filepath.Join(dir, "changes.csv")
	if err := os.WriteFile(sum.CSVPath, buf.Bytes(), 0o600); err != nil {
		return sum, err
	}
	want := jobstest.Replay(t.tenant, rows)
	sum.Changes, sum.MustFail = want.Valid, len(want.Fails)
	fmt.Fprintf(o.Out, "file:    %d rows over %d organizations: %d changes, %d deliberately invalid rows, %d changes that must fail\n",
		len(rows), len(t.tenant.Orgs), want.Valid, len(rows)-want.Valid, len(want.Fails))

	// Import.
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	im, err := producer.NewImporter(producer.Config{Ledger: l, Queue: client, QueueName: o.Queue})
	if err != nil {
		return sum, err
	}
	batch := fmt.Sprintf("demo-%d", time.Now().Unix())
	fmt.Fprintf(o.Out, "\n$ orgconn import --skip-invalid --batch %s changes.csv\n", batch)
	res, err := im.ImportFile(ctx, sum.CSVPath, producer.Options{Batch: batch, SkipInvalid: true})
	if err != nil {
		return sum, fmt.Errorf("import: %w", err)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(o.Out, "  %s\n", e)
	}
	sum.Invalid = res.Invalid
	fmt.Fprintf(o.Out, "  enqueued %d changes, skipped %d invalid rows, in %v\n", res.Enqueued, res.Invalid, res.Elapsed.Round(time.Millisecond))

	// Worker.
	sum.Rate = t.rate
	fmt.Fprintf(o.Out, "\n$ orgconn worker --concurrency 10\n")
	start := time.Now()
	if err := w.Start(); err != nil {
		return sum, err
	}
	bc, err := watch(ctx, o.Out, l, batch, lim, start)
	w.Shutdown()
	sum.Elapsed = time.Since(start)
	if err != nil {
		return sum, err
	}
	sum.Applied, sum.Superseded, sum.Dead, sum.Unchanged = int(bc.Applied), int(bc.Superseded), int(bc.Dead), int(bc.Unchanged)
	if sum.Rate > 0 {
		sum.Ideal = time.Duration(float64(sum.Changes) / sum.Rate * float64(time.Second))
	}
	sum.Throttled = int(lim.Stats().Throttled)
	if st, err := lim.State(ctx); err == nil {
		sum.Learned = st.Buckets
	}

	// Dead letters.
	dead, err := l.DeadLetters(ctx, batch)
	if err != nil {
		return sum, err
	}
	sum.DeadByReason = map[string]int{}
	for _, d := range dead {
		sum.DeadByReason[fmt.Sprintf("%s (HTTP %d): %s", d.Reason, d.Status, d.Message)]++
	}

	// The tenant's state.
	got, err := t.state(ctx, api)
	if err != nil {
		return sum, fmt.Errorf("read the final state: %w", err)
	}
	sum.Differences = jobstest.Diff(want.Final, got)
	sum.StateMatches = len(sum.Differences) == 0
	sum.Requests = t.requests()
	printSummary(o.Out, sum)
	return sum, nil
}

// watch prints progress every second until the batch is done.
func watch(ctx context.Context, out io.Writer, l *ledger.Ledger, batch string, lim *ratelimit.Limiter, start time.Time) (ledger.BatchCounts, error) {
	return l.Wait(ctx, batch, time.Second, func(bc ledger.BatchCounts) {
		done := bc.Applied + bc.Superseded + bc.Unchanged + bc.Dead
		fmt.Fprintf(out, "  %5.1fs  %3d/%d done: %d applied, %d superseded, %d dead-lettered; 429s so far: %d\n",
			time.Since(start).Seconds(), done, bc.Total, bc.Applied, bc.Superseded, bc.Dead, lim.Stats().Throttled)
	})
}

func printSummary(w io.Writer, s Summary) {
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  changes        %d (plus %d invalid rows rejected at import)\n", s.Changes, s.Invalid)
	fmt.Fprintf(w, "  applied        %d\n", s.Applied)
	fmt.Fprintf(w, "  superseded     %d (made obsolete by a later change to the same pair; no API call)\n", s.Superseded)
	if s.Unchanged > 0 {
		fmt.Fprintf(w, "  unchanged      %d (in effect already when a worker read the tenant; no write)\n", s.Unchanged)
	}
	fmt.Fprintf(w, "  dead-lettered  %d (%d changes must fail)\n", s.Dead, s.MustFail)
	reasons := make([]string, 0, len(s.DeadByReason))
	for r := range s.DeadByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "    %3d × %s\n", s.DeadByReason[r], r)
	}
	if s.Ideal > 0 {
		fmt.Fprintf(w, "  elapsed        %v; ideal %v (%d changes ÷ %.4g per second): %.2f× the ideal\n",
			s.Elapsed.Round(10*time.Millisecond), s.Ideal.Round(10*time.Millisecond), s.Changes, s.Rate, s.Elapsed.Seconds()/s.Ideal.Seconds())
	} else {
		fmt.Fprintf(w, "  elapsed        %v\n", s.Elapsed.Round(10*time.Millisecond))
	}
	if s.Requests > 0 && s.Rate > 0 {
		// The pace the budget allowed: every request, failed and repeated
		// ones too, drew from the tenant's bucket.
		paced := time.Duration(float64(s.Requests) / s.Rate * float64(time.Second))
		fmt.Fprintf(w, "  API requests   %d, of which 429: %d; at %.4g per second they need %v: %.2f× that\n",
			s.Requests, s.Throttled, s.Rate, paced.Round(10*time.Millisecond), s.Elapsed.Seconds()/paced.Seconds())
	} else if s.Requests > 0 {
		fmt.Fprintf(w, "  API requests   %d, of which 429: %d\n", s.Requests, s.Throttled)
	} else {
		fmt.Fprintf(w, "  429 answers    %d\n", s.Throttled)
	}
	for _, b := range s.Learned {
		fmt.Fprintf(w, "  budget         %s\n", b)
	}
	if s.StateMatches {
		fmt.Fprintf(w, "  final state    equals applying the rows in file order\n")
	} else {
		fmt.Fprintf(w, "  final state    DIFFERS from applying the rows in file order (%d differences):\n", len(s.Differences))
		for i, d := range s.Differences {
			if i == 10 {
				fmt.Fprintf(w, "    …\n")
				break
			}
			fmt.Fprintf(w, "    %s\n", d)
		}
	}
}

// tenant is the demo's tenant: where it is, what it holds and how to read
// its state.
type tenant struct {
	baseURL  string
	describe string
	tokens   mgmt.TokenSource
	tenant   jobstest.Tenant
	sim      *mgmttest.Server // in-process simulator, or nil
	external bool             // an orgconn simulator in another process
	rate     float64          // the write budget per second, when known
	close    func()
}

// name names the tenant's budget in Redis: its host.
func openTenant(ctx context.Context, o *Options) (*tenant, error) {
	if o.BaseURL == "" {
		sim := mgmttest.New(mgmttest.Config{
			Orgs: 50, Connections: 8, Seed: int64(o.Seed) + 1, Global: simBudget,
			Faults: mgmttest.Faults{Error5xx: 0.01, Drop: 0.005, LostResponse: 0.005},
		})
		run, err := mgmttest.Listen("127.0.0.1:0", sim)
		if err != nil {
			return nil, err
		}
		t := &tenant{
			baseURL:  run.URL(),
			describe: fmt.Sprintf("simulated at %s, burst %d and %g writes per second, 1%% 5xx, 0.5%% dropped connections, 0.5%% lost responses", run.URL(), simBudget.Burst, simBudget.Rate),
			tokens:   mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil),
			sim:      sim,
			rate:     simBudget.Rate,
			close:    func() { run.Close(context.Background()) },
		}
		t.tenant = tenantOf(sim.Orgs(), sim.Connections())
		return t, nil
	}
	t := &tenant{baseURL: o.BaseURL, tokens: o.Tokens, close: func() {}}
	if t.tokens == nil {
		t.tokens = mgmt.NewClientCredentials(o.BaseURL, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil)
	}
	if len(o.OrgIDs) > 0 {
		t.describe = o.BaseURL
		t.tenant.Orgs = o.OrgIDs
		for _, c := range o.ConnectionIDs {
			// The strategy is unknown: the generator then never turns
			// sign-up on.
			t.tenant.Connections = append(t.tenant.Connections, jobstest.Connection{ID: c})
		}
		if len(t.tenant.Connections) == 0 {
			return nil, errors.New("a real tenant needs --connection-ids as well as --org-ids")
		}
		return t, nil
	}
	var desc struct {
		Organizations []string              `json:"organizations"`
		Connections   []mgmttest.Connection `json:"connections"`
	}
	if err := getJSON(ctx, o.BaseURL+mgmttest.AdminTenant, &desc); err != nil {
		return nil, fmt.Errorf("%s is not an orgconn simulator (%v): for a real tenant give --org-ids and --connection-ids", o.BaseURL, err)
	}
	t.describe = o.BaseURL + " (orgconn simulate)"
	t.external = true
	t.tenant = tenantOf(desc.Organizations, desc.Connections)
	return t, nil
}

// signupFails is how many must-fail sign-up rows the tenant supports: none
// when the connections' strategies are unknown.
func (t *tenant) signupFails(n int) int {
	for _, c := range t.tenant.Connections {
		if c.Database {
			return n
		}
	}
	return 0
}

func tenantOf(orgs []string, conns []mgmttest.Connection) jobstest.Tenant {
	t := jobstest.Tenant{Orgs: orgs}
	for _, c := range conns {
		t.Connections = append(t.Connections, jobstest.Connection{ID: c.ID, Database: c.Strategy == "auth0"})
	}
	return t
}

// state reads the tenant's enabled connections: from the in-process
// simulator directly, else through the Management API.
func (t *tenant) state(ctx context.Context, api *mgmt.Client) (map[string]map[string]jobstest.State, error) {
	out := map[string]map[string]jobstest.State{}
	put := func(org, conn string, s jobstest.State) {
		if out[org] == nil {
			out[org] = map[string]jobstest.State{}
		}
		out[org][conn] = s
	}
	if t.sim != nil {
		for org, cs := range t.sim.State() {
			for c, s := range cs {
				put(org, c, jobstest.State{AssignMembershipOnLogin: s.AssignMembershipOnLogin, ShowAsButton: s.ShowAsButton, IsSignupEnabled: s.IsSignupEnabled})
			}
		}
		return out, nil
	}
	for _, org := range t.tenant.Orgs {
		cs, err := api.ListAll(ctx, org)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			put(org, c.ConnectionID, jobstest.State{AssignMembershipOnLogin: c.AssignMembershipOnLogin, ShowAsButton: c.ShowAsButton, IsSignupEnabled: c.IsSignupEnabled})
		}
	}
	return out, nil
}

// requests returns how many API requests the tenant served, when known.
func (t *tenant) requests() int {
	if t.sim != nil {
		return t.sim.Stats().Total
	}
	if t.external {
		var st mgmttest.Stats
		if getJSON(context.Background(), t.baseURL+mgmttest.AdminStats, &st) == nil {
			return st.Total
		}
	}
	return 0
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v)
}
