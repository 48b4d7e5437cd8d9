package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// TestBenchMeasuresOrgconnAndTheBaselines runs scenario a small, in process:
// orgconn, the official SDK and the hand-written SDK-style client each run
// the same mixed job; the figures are computed from the simulator's counts
// as documented, and exactness from the simulator's final state.
func TestBenchMeasuresOrgconnAndTheBaselines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a small job at the tenant's pace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 60
	res, err := Measure(ctx, Options{Scenarios: Scenarios[:1], Processes: []int{2}, Changes: n, Concurrency: 5,
		Workers: InProcess, Start: StartTenant, Baselines: Baselines})
	if err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, r := range res {
		clients = append(clients, r.Client)
		t.Log(r)
	}
	if want := []string{ClientOrgconn, ClientGoAuth0, ClientSDKStyle}; !slices.Equal(clients, want) {
		t.Fatalf("clients %v, want %v", clients, want)
	}
	o := res[0]
	if o.Applied != n || o.GaveUp != 0 || !o.Exact || o.WrongPairs != 0 {
		t.Errorf("orgconn applied %d of %d (gave up %d), exact %v with %d wrong pairs %v", o.Applied, n, o.GaveUp, o.Exact, o.WrongPairs, o.WrongExamples)
	}
	if o.Start != StartTenant {
		t.Errorf("orgconn's start %q, want %q", o.Start, StartTenant)
	}
	if o.Tokens != 1 {
		t.Errorf("two workers fetched %d tokens, want 1 for the fleet", o.Tokens)
	}
	for _, r := range res {
		// orgconn may skip the call of a superseded change; every other
		// applied change made at least one request.
		if r.Requests < r.Applied-r.Superseded || r.Requests < r.Writes {
			t.Errorf("%s: %d requests for %d applied (%d superseded) and %d writes", r.Client, r.Requests, r.Applied, r.Superseded, r.Writes)
		}
		if r.Client != ClientOrgconn && (r.Superseded != 0 || r.Requests < r.Applied) {
			t.Errorf("%s: %d requests, %d applied, %d superseded", r.Client, r.Requests, r.Applied, r.Superseded)
		}
		if r.Applied+r.GaveUp != n {
			t.Errorf("%s: applied %d and gave up %d of %d", r.Client, r.Applied, r.GaveUp, n)
		}
		if r.Applied > 0 && r.CallsPerChange != float64(r.Requests)/float64(r.Applied) {
			t.Errorf("%s: calls per change %v, not %d requests ÷ %d applied", r.Client, r.CallsPerChange, r.Requests, r.Applied)
		}
		if r.Requests > 0 && r.ThrottleRatio != float64(r.Throttled)/float64(r.Requests) {
			t.Errorf("%s: 429 ratio %v, not %d ÷ %d", r.Client, r.ThrottleRatio, r.Throttled, r.Requests)
		}
		if r.Elapsed <= 0 || r.Budget != 10+20*r.Elapsed.Seconds() || r.Utilization != float64(r.Accepted)/r.Budget || r.Accepted < r.Writes {
			t.Errorf("%s: budget %v over %v, utilization %v of %d accepted (%d writes): not accepted ÷ (burst + rate × elapsed)", r.Client, r.Budget, r.Elapsed, r.Utilization, r.Accepted, r.Writes)
		}
		if r.Exact != (r.WrongPairs == 0) {
			t.Errorf("%s: exact %v with %d wrong pairs", r.Client, r.Exact, r.WrongPairs)
		}
		// A client that gave up on nothing applied every change in order.
		if r.Client != ClientOrgconn && r.GaveUp == 0 && !r.Exact {
			t.Errorf("%s: gave up on nothing, yet %d pairs are wrong: %v", r.Client, r.WrongPairs, r.WrongExamples)
		}
	}
}

// TestBenchCompareCountsWrongPairs applies a job with the official SDK, then
// corrupts one pair in the simulator: Compare must report exact, then not
// exact with exactly that pair wrong.
func TestBenchCompareCountsWrongPairs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim := mgmttest.New(mgmttest.Config{Orgs: 16, Connections: 8, Seed: 7})
	job, err := NewJob(tenantOf(sim), 60, JobSeed)
	if err != nil {
		t.Fatal(err)
	}
	job.seed(sim)
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	gaveUp, err := runGoAuth0(ctx, srv.URL(), 4, job.Changes)
	if err != nil || gaveUp != 0 {
		t.Fatalf("go-auth0 gave up on %d changes, err %v", gaveUp, err)
	}
	if exact, wrong, diffs := Compare(job.Want, sim.State()); !exact || wrong != 0 {
		t.Fatalf("after the job: exact %v, %d wrong: %v", exact, wrong, diffs)
	}

	// Corrupt one enabled pair: flip its show_as_button.
	state := sim.State()
	var org, conn string
	for o, cs := range state {
		for c := range cs {
			if org == "" || o+c < org+conn {
				org, conn = o, c
			}
		}
	}
	ec := state[org][conn]
	ec.ShowAsButton = !ec.ShowAsButton
	state[org][conn] = ec
	sim.SetState(org, state[org])
	exact, wrong, diffs := Compare(job.Want, sim.State())
	if exact || wrong != 1 || len(diffs) != 1 {
		t.Fatalf("after corrupting %s/%s: exact %v, %d wrong: %v; want not exact, 1 wrong", org, conn, exact, wrong, diffs)
	}
	t.Log(diffs[0])
}

// TestBenchJobMix checks the job's shape: deterministic, the documented mix,
// and no row failing under jobstest's model.
func TestBenchJobMix(t *testing.T) {
	sim := mgmttest.New(Options{}.simConfig(Scenarios[0], 400))
	tn := tenantOf(sim)
	j, err := NewJob(tn, 400, JobSeed)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewJob(tn, 400, JobSeed)
	if !slices.Equal(j.Changes, again.Changes) {
		t.Error("two jobs from one seed differ")
	}
	if len(j.Changes) != 400 || j.Enables+j.Updates+j.Removes != 400 {
		t.Fatalf("%d changes: %d enables, %d updates, %d removes", len(j.Changes), j.Enables, j.Updates, j.Removes)
	}
	share := func(k int) float64 { return float64(k) / 400 }
	if e, u, r, rep := share(j.Enables), share(j.Updates), share(j.Removes), share(j.Repeats); e < 0.5 || e > 0.7 || u < 0.18 || u > 0.32 || r < 0.09 || r > 0.21 || rep < 0.15 || rep > 0.35 {
		t.Errorf("mix: %.2f enables, %.2f updates, %.2f removes, %.2f repeats; want about 0.60, 0.25, 0.15, 0.25", e, u, r, rep)
	}
	tn.Initial = j.Initial
	if exp := jobstest.Replay(tn, rows(j.Changes)); len(exp.Fails) != 0 || len(jobstest.Diff(j.Want, exp.Final)) != 0 {
		t.Errorf("model: %d failing rows %v", len(exp.Fails), exp.Fails)
	}
	for _, c := range j.Changes {
		if c.Action == jobs.Enable && c.IsSignupEnabled == jobs.True && c.AssignMembershipOnLogin != jobs.True {
			t.Errorf("%v: sign-up without membership in the row", c)
		}
	}
	t.Logf("%d enables (%d of an enabled pair), %d updates, %d removes, %d on a pair touched before", j.Enables, j.Reenables, j.Updates, j.Removes, j.Repeats)
}

// TestBenchBudgetFlags checks the worker flags each start gives.
func TestBenchBudgetFlags(t *testing.T) {
	for start, want := range map[Start][]string{
		StartDefaults:   nil,
		StartEnterprise: {"--plan", "enterprise"},
		StartTenant:     {"--rate", "20", "--burst", "10"},
	} {
		if got := (Run{Start: start, Rate: 20, Burst: 10}).BudgetFlags(); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", start, got, want)
		}
	}
	if _, err := ParseStart("fast"); err == nil {
		t.Error(`ParseStart("fast") succeeded`)
	}
}

// A fixed window's budget is every window begun in the span, each capped
// by the 1-s global window, not a full window at the first write plus its
// rate: on the window shape (10 per 1 s, 120 per 15 s, aligned to the
// epoch) from 13 s into a 15-s window to 50 s later, 20 + 3 × 120 + 40.
func TestWindowBudgetCountsTheWindowsBegun(t *testing.T) {
	sh, err := mgmttest.LookupShape("window")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_800_000_000, 0) // a multiple of 15 s
	first, last := start.Add(13*time.Second), start.Add(63*time.Second)
	if got := windowBudget(sh.Config(1), first, last); got != 420 {
		t.Fatalf("budget %v, want 420 (burst + rate × elapsed would say 520)", got)
	}
}
