package worker_test

import (
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// TestShutdownFinishesCallsInFlightAndLosesNothing stops a worker while it
// has calls in flight and more changes waiting for budget: the calls in
// flight complete (the tenant sees no request abandoned), shutdown does not
// wait for the budget, and a new worker finishes the rest exactly.
func TestShutdownFinishesCallsInFlightAndLosesNothing(t *testing.T) {
	e := newE2E(t, mgmttest.Config{Orgs: 60, Connections: 2, Seed: 3, Faults: mgmttest.Faults{Latency: 400 * time.Millisecond}})
	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 10, Rate: 2}}
	var rows []jobstest.Row
	for i, org := range e.tenant.Orgs {
		rows = append(rows, jobstest.Row{Line: i + 2, Change: jobs.Change{Action: jobs.Enable, OrgID: org, ConnectionID: e.tenant.Connections[0].ID}})
	}
	e.importRows(rows)

	w := e.startWorker("first", 20)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.sim.Writes()) == 0 && e.sim.Stats().Total == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the burst's calls are now inside the tenant's latency
	start := time.Now()
	w.Shutdown()
	took := time.Since(start)

	st := e.sim.Stats()
	if n := st.Requests("", 0); n != 0 {
		t.Errorf("%d requests were abandoned by shutdown (no response sent); want every call in flight to finish", n)
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v: it waited for budget instead of putting waiting changes back", took)
	}
	bc, err := e.ledger.Batch(t.Context(), e.batch)
	if err != nil {
		t.Fatal(err)
	}
	if bc.Applied == 0 || bc.Pending == 0 {
		t.Fatalf("after shutdown %+v; the test needs some changes applied and some still pending", bc)
	}
	t.Logf("shutdown took %v with %d applied and %d pending", took.Round(time.Millisecond), bc.Applied, bc.Pending)

	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 100, Rate: 1000}}
	e.startWorker("second", 20)
	bc = e.waitDone(time.Minute)
	if bc.Applied != int64(len(rows)) {
		t.Errorf("after a second worker: %+v, want all %d applied", bc, len(rows))
	}
	e.verify()
	outs, _ := e.ledger.Outcomes(t.Context(), e.batch, 2, len(rows)+1)
	for i, o := range outs {
		if o != ledger.Applied {
			t.Errorf("line %d: %v", i+2, o)
		}
	}
}
