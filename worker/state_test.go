package worker_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// TestStateAwareWorkerWritesOnlyWhatDiffers: a batch of 160 rows over 20
// organizations, half of them already in effect. With --read always the
// workers read each organization once, send writes for the other half only
// (an enable of an existing pair as one PATCH, no POST → 409), count the
// rest unchanged, and record every changed pair's prior state and the
// state it left. With --read never every row writes.
func TestStateAwareWorkerWritesOnlyWhatDiffers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	for _, mode := range []jobs.ReadMode{jobs.ReadAlways, jobs.ReadNever} {
		t.Run(string(mode), func(t *testing.T) { stateAware(t, mode) })
	}
}

func stateAware(t *testing.T, mode jobs.ReadMode) {
	e := newE2E(t, mgmttest.Config{Orgs: 20, Connections: 8, Seed: 5, Global: mgmttest.Bucket{Burst: 50, Rate: 200}})
	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 50, Rate: 200}}
	ctx := context.Background()
	cs := e.sim.Connections()
	c := func(i int) string { return cs[i].ID }
	base := mgmttest.EnabledConnection{ShowAsButton: true}
	var rows []jobstest.Row
	row := func(a jobs.Action, org string, conn int, assign, show jobs.Flag) {
		rows = append(rows, jobstest.Row{Line: len(rows) + 2, Change: jobs.Change{Action: a, OrgID: org, ConnectionID: c(conn), AssignMembershipOnLogin: assign, ShowAsButton: show}})
	}
	const no = jobs.Unset
	for _, org := range e.sim.Orgs() {
		// c0..c4 enabled (assign false, button shown), c5..c7 not.
		e.sim.SetState(org, map[string]mgmttest.EnabledConnection{c(0): base, c(1): base, c(2): base, c(3): base, c(4): base})
		// In effect already.
		row(jobs.Enable, org, 0, no, jobs.True)
		row(jobs.Update, org, 1, jobs.False, no)
		row(jobs.Enable, org, 2, no, no)
		row(jobs.Remove, org, 5, no, no)
		// Not in effect: one PATCH, one DELETE, two POSTs.
		row(jobs.Enable, org, 3, no, jobs.False)
		row(jobs.Remove, org, 4, no, no)
		row(jobs.Enable, org, 6, jobs.True, no)
		row(jobs.Enable, org, 7, no, no)
	}
	before := e.sim.State()
	e.readMode = mode
	if mode == jobs.ReadAlways {
		// As orgconn import --read always stores it with the batch (the
		// worker follows the batch: its own ReadMode stays empty).
		e.readMode = ""
		if err := e.ledger.SetHints(ctx, e.batch, jobs.BatchHints{Read: jobs.ReadAlways, Rows: len(rows), Orgs: 20, LikelyUnchanged: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	if res := e.importRows(rows); res.Enqueued != 160 {
		t.Fatalf("import = %+v, want 160 enqueued", res)
	}
	start := time.Now()
	e.startWorker("w1", 5)
	e.startWorker("w2", 5)
	bc := e.waitDone(time.Minute)
	after := e.sim.State()
	stateOf := func(m map[string]map[string]mgmttest.EnabledConnection, org, conn string) jobs.PairState {
		ec, ok := m[org][conn]
		if !ok {
			return jobs.Absent
		}
		return jobs.PairState{Present: true, AssignMembershipOnLogin: ec.AssignMembershipOnLogin, ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled}
	}
	// Each pair has one row: the final state is each row applied to the
	// state before.
	for _, r := range rows {
		c := r.Change
		want, _ := stateOf(before, c.OrgID, c.ConnectionID).After(c)
		if got := stateOf(after, c.OrgID, c.ConnectionID); got != want {
			t.Errorf("line %d %v: %s/%s is %v, want %v", r.Line, c, c.OrgID, c.ConnectionID, got, want)
		}
	}
	st := e.sim.Stats()
	count := func(method, route string, status int) int { return st.Count(method, route, status) }
	posts201 := count("POST", mgmttest.RouteEnabledConnections, 201)
	posts409 := count("POST", mgmttest.RouteEnabledConnections, 409)
	patches := count("PATCH", mgmttest.RouteEnabledConnection, 200)
	deletes := count("DELETE", mgmttest.RouteEnabledConnection, 204)
	lists := count("GET", mgmttest.RouteEnabledConnections, 200)
	// Write requests the tenant let through, whatever their answer; a 429
	// is the pacer meeting the bucket's edge (the budget here is the
	// bucket's own size and rate, so one may happen), not a write sent for
	// a row already in effect, and is counted apart.
	sent, refused := 0, 0
	for k, n := range st.ByRoute {
		m, _, _ := strings.Cut(k, " ")
		if m != "POST" && m != "PATCH" && m != "DELETE" {
			continue
		}
		if strings.HasSuffix(k, " 429") {
			refused += n
		} else {
			sent += n
		}
	}
	t.Logf("--read %s: %v; %d write requests let through, %d refused, %d writes applied (POST 201 %d, POST 409 %d, PATCH %d, DELETE %d), list calls %d; %+v",
		mode, time.Since(start).Round(time.Millisecond), sent, refused, st.Writes, posts201, posts409, patches, deletes, lists, bc)
	if refused > 4 {
		t.Errorf("%d write requests refused with 429 on a budget set to the bucket's own size and rate; want a few at most", refused)
	}

	if mode == jobs.ReadNever {
		if bc.Unchanged != 0 || sent < 160 {
			t.Errorf("--read never: %d unchanged, %d write requests; want none and a write per row at least", bc.Unchanged, sent)
		}
		return
	}
	if bc.Unchanged != 80 || bc.Applied != 80 {
		t.Errorf("outcomes: %d unchanged, %d applied; want 80 and 80", bc.Unchanged, bc.Applied)
	}
	if sent != 80 || st.Writes != 80 || posts201 != 40 || posts409 != 0 || patches != 20 || deletes != 20 {
		t.Errorf("%d write requests, %d applied (POST 201 %d, 409 %d, PATCH %d, DELETE %d); want 80 (40, 0, 20, 20)", sent, st.Writes, posts201, posts409, patches, deletes)
	}
	if lists < 20 || lists > 24 {
		t.Errorf("%d list calls for 20 organizations; want one each (a few more if a read aged out)", lists)
	}
	// Every changed pair's prior state is the state before the batch, and
	// what the batch left is the state after.
	priors, err := e.ledger.Priors(ctx, e.batch)
	if err != nil {
		t.Fatal(err)
	}
	lefts, err := e.ledger.Lefts(ctx, e.batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(priors) != 80 || len(lefts) != 80 {
		t.Fatalf("%d prior states and %d states left recorded; want 80 each", len(priors), len(lefts))
	}
	for i := range priors {
		p, l := priors[i], lefts[i]
		if want := stateOf(before, p.OrgID, p.ConnectionID); p.State != want {
			t.Errorf("prior of %s/%s = %v, want %v", p.OrgID, p.ConnectionID, p.State, want)
		}
		if want := stateOf(after, l.OrgID, l.ConnectionID); l.State != want {
			t.Errorf("left of %s/%s = %v, want %v", l.OrgID, l.ConnectionID, l.State, want)
		}
	}
	if bc.Applied+bc.Unchanged != bc.Total || bc.Dead != 0 {
		t.Errorf("batch = %+v: every line applied or unchanged", bc)
	}
}

// TestStateAwareBenchmark measures a state-aware run against --read never
// on the essentials shape, time-scaled (ORGCONN_STATE_SCALE, default 20):
// 1,000 rows over 200 organizations, half of them in effect already.
// Opt-in (ORGCONN_BENCH_STATE=1): two runs of a minute or more each.
func TestStateAwareBenchmark(t *testing.T) {
	if os.Getenv("ORGCONN_BENCH_STATE") == "" {
		t.Skip("set ORGCONN_BENCH_STATE=1 to measure")
	}
	scale := 20.0
	if v, err := strconv.ParseFloat(os.Getenv("ORGCONN_STATE_SCALE"), 64); err == nil && v > 0 {
		scale = v
	}
	shape := os.Getenv("ORGCONN_STATE_SHAPE")
	if shape == "" {
		shape = "essentials"
	}
	perOrg := 5
	if v, err := strconv.Atoi(os.Getenv("ORGCONN_STATE_ROWS_PER_ORG")); err == nil && v > 0 {
		perOrg = v
	}
	elapsed := map[jobs.ReadMode]time.Duration{}
	for _, mode := range []jobs.ReadMode{jobs.ReadNever, jobs.ReadAuto} {
		sh, err := mgmttest.LookupShape(shape)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sh.Config(scale)
		cfg.Orgs, cfg.Connections, cfg.Seed = 1000/perOrg, max(perOrg, 2), 3
		e := newE2E(t, cfg)
		e.budget, e.planStart = ratelimit.Plans[shape], true
		if e.budget.Global.Rate == 0 {
			e.budget = ratelimit.Plans["essentials"]
		}
		for _, b := range []*ratelimit.Bucket{&e.budget.Global, &e.budget.Write, &e.budget.Read} {
			b.Rate *= scale
		}
		e.readMode = mode
		cs := e.sim.Connections()
		var rows []jobstest.Row
		for i, org := range e.sim.Orgs() {
			m := map[string]mgmttest.EnabledConnection{}
			for j := 0; j < perOrg; j++ {
				conn := cs[j%len(cs)].ID
				present := j < (perOrg+1)/2
				if present {
					m[conn] = mgmttest.EnabledConnection{ShowAsButton: true}
				}
				inPlace := (i*perOrg+j)%2 == 0
				c := jobs.Change{OrgID: org, ConnectionID: conn}
				switch {
				case present && inPlace:
					c.Action, c.ShowAsButton = jobs.Enable, jobs.True
				case present:
					c.Action, c.ShowAsButton = jobs.Update, jobs.False
				case inPlace:
					c.Action = jobs.Remove
				default:
					c.Action = jobs.Enable
				}
				rows = append(rows, jobstest.Row{Line: len(rows) + 2, Change: c})
			}
			e.sim.SetState(org, m)
		}
		if err := e.ledger.SetHints(context.Background(), e.batch, jobs.BatchHints{Read: jobs.ReadAuto, Rows: len(rows), Orgs: len(e.sim.Orgs()), LikelyUnchanged: 0.5}); err != nil {
			t.Fatal(err)
		}
		e.importRows(rows)
		start := time.Now()
		e.startWorker("w1", 10)
		e.startWorker("w2", 10)
		bc := e.waitDone(15 * time.Minute)
		elapsed[mode] = time.Since(start)
		st := e.sim.Stats()
		t.Logf("%s ×%g, %d rows, %d per organization, --read %s: %v; %d unchanged, %d applied; %d requests, %d writes applied, %d list calls, %d throttled",
			shape, scale, len(rows), perOrg, mode, elapsed[mode].Round(time.Millisecond), bc.Unchanged, bc.Applied, st.Total, st.Writes,
			st.Count("GET", mgmttest.RouteEnabledConnections, 200), st.Throttled)
	}
	t.Logf("auto / never = %.2f", elapsed[jobs.ReadAuto].Seconds()/elapsed[jobs.ReadNever].Seconds())
}
