package bench

import (
	"context"
	"testing"
	"time"
)

// TestMeasureRunsTheJobAndTheBaseline runs scenario a small, in process:
// the fleet applies every change, the figures are computed from the
// simulator's counts, and the baseline runs the same job beside it.
func TestMeasureRunsTheJobAndTheBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a small job at the tenant's pace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Measure(ctx, Options{Scenarios: Scenarios[:1], Processes: []int{2}, Changes: 60, Concurrency: 5,
		Workers: InProcess, Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Client != "orgconn" || res[1].Client != "baseline" {
		t.Fatalf("results %+v, want orgconn then baseline", res)
	}
	o := res[0]
	t.Logf("%s\n%s", o, res[1])
	if o.Applied != 60 || o.GaveUp != 0 {
		t.Errorf("orgconn applied %d of 60 (gave up %d)", o.Applied, o.GaveUp)
	}
	if o.Requests < o.Applied || o.CallsPerChange != float64(o.Requests)/float64(o.Applied) {
		t.Errorf("requests %d, calls per change %v", o.Requests, o.CallsPerChange)
	}
	if o.Elapsed <= 0 || o.Budget != 10+20*o.Elapsed.Seconds() || o.Utilization != float64(o.Applied)/o.Budget {
		t.Errorf("budget %v over %v, utilization %v: not burst + rate × elapsed", o.Budget, o.Elapsed, o.Utilization)
	}
	if o.Tokens != 1 {
		t.Errorf("two workers fetched %d tokens, want 1 for the fleet", o.Tokens)
	}
	b := res[1]
	if b.Applied+b.GaveUp != 60 {
		t.Errorf("baseline applied %d and gave up %d of 60", b.Applied, b.GaveUp)
	}
}
