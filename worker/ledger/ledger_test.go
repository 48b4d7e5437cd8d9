package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/redistest"
)

func setup(t *testing.T) (*Ledger, *redistest.Env) {
	t.Helper()
	env := redistest.New(t)
	l, err := New(env.Client, env.Prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l, env
}

func change(a jobs.Action, org, conn string) jobs.Change {
	c := jobs.Change{Action: a, OrgID: org, ConnectionID: conn}
	if a == jobs.Update {
		c.ShowAsButton = jobs.True
	}
	return c
}

func payload(batch string, line int, c jobs.Change) jobs.Payload {
	return jobs.Payload{Version: jobs.PayloadVersion, Change: c, Origin: jobs.Origin{Batch: batch, Line: line}}
}

func TestAcceptIsIdempotentPerLine(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	rows := []Row{{Line: 2, Change: change(jobs.Enable, "o1", "c1")}, {Line: 3, Change: change(jobs.Remove, "o1", "c1")}, {Line: 4, Change: change(jobs.Enable, "o2", "c1")}}
	got, err := l.Accept(ctx, "b1", "csv:test", rows)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Acceptance{Accepted, Accepted, Accepted}; !equal(got, want) {
		t.Fatalf("first Accept = %v, want %v", got, want)
	}
	got, err = l.Accept(ctx, "b1", "csv:test", append(rows, Row{Line: 5, Change: change(jobs.Remove, "o2", "c1")}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Acceptance{StillPending, StillPending, StillPending, Accepted}; !equal(got, want) {
		t.Fatalf("second Accept = %v, want %v", got, want)
	}
	bc, err := l.Batch(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if bc.Total != 4 || bc.Pending != 4 || bc.Source != "csv:test" {
		t.Fatalf("Batch = %+v, want total 4, pending 4", bc)
	}
	outs, err := l.Outcomes(ctx, "b1", 1, 6)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{0, Pending, Pending, Pending, Pending, 0}
	for i := range want {
		if outs[i] != want[i] {
			t.Fatalf("Outcomes = %q, want %q", outs, want)
		}
	}
}

func TestOnlyTheHeadOfAPairMayAct(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	first, second := change(jobs.Enable, "o1", "c1"), change(jobs.Update, "o1", "c1")
	other := change(jobs.Enable, "o1", "c2")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: first}, {Line: 3, Change: second}, {Line: 4, Change: other}}); err != nil {
		t.Fatal(err)
	}
	if cl, _ := l.Claim(ctx, second, "b:3", "h2", time.Minute); cl.State != NotHead {
		t.Fatalf("claim of the second change = %v, want NotHead", cl.State)
	}
	if cl, _ := l.Claim(ctx, other, "b:4", "h4", time.Minute); cl.State != Claimed || cl.Successor != "" {
		t.Fatalf("claim of another pair = %+v, want Claimed with no successor", cl)
	}
	cl, err := l.Claim(ctx, first, "b:2", "h1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cl.State != Claimed || cl.Successor != "b:3" || cl.SuccessorShape != jobs.ShapeOf(second) {
		t.Fatalf("claim of the head = %+v, want Claimed with successor b:3", cl)
	}
	if cl, _ := l.Claim(ctx, first, "b:2", "another-holder", time.Minute); cl.State != Leased {
		t.Fatalf("second claim of the head by another holder = %v, want Leased", cl.State)
	}
	next, ok, err := l.Resolve(ctx, payload("b", 2, first), "b:2", "h1", Applied, nil)
	if err != nil || !ok || next != "b:3" {
		t.Fatalf("Resolve = %q, %v, %v; want b:3, true", next, ok, err)
	}
	if cl, _ := l.Claim(ctx, first, "b:2", "h1", time.Minute); cl.State != Gone {
		t.Fatalf("claim after resolve = %v, want Gone", cl.State)
	}
	if _, ok, _ := l.Resolve(ctx, payload("b", 2, first), "b:2", "h1", Applied, nil); ok {
		t.Fatal("a second Resolve of the same change succeeded")
	}
	if cl, _ := l.Claim(ctx, second, "b:3", "h2", time.Minute); cl.State != Claimed {
		t.Fatalf("claim of the second change after the first resolved = %v, want Claimed", cl.State)
	}
}

func TestLeaseExpiresAndCanBeReleased(t *testing.T) {
	l, env := setup(t)
	ctx := context.Background()
	c := change(jobs.Remove, "o1", "c1")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: c}}); err != nil {
		t.Fatal(err)
	}
	if cl, _ := l.Claim(ctx, c, "b:2", "h1", 100*time.Millisecond); cl.State != Claimed {
		t.Fatalf("claim = %v", cl.State)
	}
	if ok, err := l.Extend(ctx, c, "h1", 100*time.Millisecond); err != nil || !ok {
		t.Fatalf("Extend by the holder = %v, %v", ok, err)
	}
	if ok, _ := l.Extend(ctx, c, "h2", time.Minute); ok {
		t.Fatal("Extend by another holder succeeded")
	}
	if err := l.Release(ctx, c, "b:2", "h1"); err != nil {
		t.Fatal(err)
	}
	if cl, _ := l.Claim(ctx, c, "b:2", "h2", 100*time.Millisecond); cl.State != Claimed {
		t.Fatalf("claim after release = %v, want Claimed", cl.State)
	}
	// The lease runs out when its holder stops renewing it.
	if env.Embedded != nil {
		env.Embedded.FastForward(200 * time.Millisecond)
	} else {
		time.Sleep(200 * time.Millisecond)
	}
	if cl, _ := l.Claim(ctx, c, "b:2", "h3", time.Minute); cl.State != Claimed {
		t.Fatalf("claim after the lease ran out = %v, want Claimed", cl.State)
	}
}

func TestResolveRecordsOutcomesAndDeadLetters(t *testing.T) {
	l, env := setup(t)
	ctx := context.Background()
	a, s, d := change(jobs.Enable, "o1", "c1"), change(jobs.Remove, "o2", "c1"), change(jobs.Remove, "o2", "c1")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: a}, {Line: 3, Change: s}, {Line: 4, Change: d}}); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, l, a, "b:2")
	mustResolve(t, l, payload("b", 2, a), "b:2", Applied, nil)
	mustClaim(t, l, s, "b:3")
	mustResolve(t, l, payload("b", 3, s), "b:3", Superseded, nil)
	mustClaim(t, l, d, "b:4")
	dl := &DeadLetter{TaskID: "b:4", Batch: "b", Line: 4, Change: d, Reason: "unknown organization", Status: 404, Message: "No organization found by that id or name", Attempts: 1, At: time.Unix(1700000000, 0).UTC()}
	mustResolve(t, l, payload("b", 4, d), "b:4", Dead, dl)

	bc, _ := l.Batch(ctx, "b")
	if bc.Total != 3 || bc.Pending != 0 || bc.Applied != 1 || bc.Superseded != 1 || bc.Dead != 1 || !bc.Done() {
		t.Fatalf("Batch = %+v", bc)
	}
	outs, _ := l.Outcomes(ctx, "b", 2, 4)
	if string([]byte{byte(outs[0]), byte(outs[1]), byte(outs[2])}) != "asd" {
		t.Fatalf("Outcomes = %q, want asd", outs)
	}
	dls, err := l.DeadLetters(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := dls[4]; got.Reason != dl.Reason || got.Status != 404 || got.Change != d || !got.At.Equal(dl.At) {
		t.Fatalf("DeadLetters[4] = %+v, want %+v", got, dl)
	}
	got, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: a}, {Line: 3, Change: s}, {Line: 4, Change: d}})
	if err != nil || !equal(got, []Acceptance{Resolved, Resolved, Resolved}) {
		t.Fatalf("Accept of resolved lines = %v, %v; want all Resolved", got, err)
	}
	// Empty pairs leave no keys behind.
	keys, _ := env.Client.Keys(ctx, l.Prefix()+":pair*").Result()
	if len(keys) != 0 {
		t.Fatalf("keys left after every pair resolved: %v", keys)
	}
}

func TestOrderHoldsAcrossBatches(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	c1, c2 := change(jobs.Enable, "o1", "c1"), change(jobs.Remove, "o1", "c1")
	if _, err := l.Accept(ctx, "first", "t", []Row{{Line: 2, Change: c1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx, "second", "t", []Row{{Line: 2, Change: c2}}); err != nil {
		t.Fatal(err)
	}
	if cl, _ := l.Claim(ctx, c2, "second:2", "h", time.Minute); cl.State != NotHead {
		t.Fatalf("the later batch's change claimed before the earlier one: %v", cl.State)
	}
	cl := mustClaim(t, l, c1, "first:2")
	if cl.Successor != "second:2" {
		t.Fatalf("successor = %q, want second:2", cl.Successor)
	}
	names, _ := l.Batches(ctx, 10)
	if len(names) != 2 {
		t.Fatalf("Batches = %v", names)
	}
}

func mustClaim(t *testing.T, l *Ledger, c jobs.Change, id string) Claim {
	t.Helper()
	cl, err := l.Claim(context.Background(), c, id, "holder-"+id, time.Minute)
	if err != nil || cl.State != Claimed {
		t.Fatalf("Claim(%s) = %+v, %v; want Claimed", id, cl, err)
	}
	return cl
}

func mustResolve(t *testing.T, l *Ledger, p jobs.Payload, id string, o Outcome, dl *DeadLetter) {
	t.Helper()
	if _, ok, err := l.Resolve(context.Background(), p, id, "holder-"+id, o, dl); err != nil || !ok {
		t.Fatalf("Resolve(%s, %v) = %v, %v", id, o, ok, err)
	}
}

func equal(a, b []Acceptance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAcceptKeepsOtherLinesOfTheSpan checks the accept script's two ways of
// reading and writing outcome bytes: in one piece for close lines (with
// gaps, lines accepted or resolved before, and a line given twice), and one
// by one for lines far apart.
func TestAcceptKeepsOtherLinesOfTheSpan(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	c := func(i int) jobs.Change { return change(jobs.Enable, fmt.Sprint("o", i), "c1") }
	if _, err := l.Accept(ctx, "b", "csv:t", []Row{{Line: 3, Change: c(3)}, {Line: 6, Change: c(6)}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Resolve(ctx, payload("b", 6, c(6)), jobs.TaskID("b", 6), "h", Applied, nil); err != nil {
		t.Fatal(err)
	}
	// Close lines: 2..9 with gaps at 4 and 8; 3 still pending, 6 applied, 7 given twice.
	got, err := l.Accept(ctx, "b", "csv:t", []Row{{Line: 2, Change: c(2)}, {Line: 3, Change: c(3)}, {Line: 5, Change: c(5)}, {Line: 6, Change: c(6)}, {Line: 7, Change: c(7)}, {Line: 7, Change: c(7)}, {Line: 9, Change: c(9)}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Acceptance{Accepted, StillPending, Accepted, Resolved, Accepted, StillPending, Accepted}; !equal(got, want) {
		t.Fatalf("Accept of close lines = %v, want %v", got, want)
	}
	// Far apart: one by one.
	got, err = l.Accept(ctx, "b", "csv:t", []Row{{Line: 4, Change: c(4)}, {Line: 5000, Change: c(5000)}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Acceptance{Accepted, Accepted}; !equal(got, want) {
		t.Fatalf("Accept of far lines = %v, want %v", got, want)
	}
	outs, err := l.Outcomes(ctx, "b", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{0, Pending, Pending, Pending, Pending, Applied, Pending, 0, Pending, 0}
	for i := range want {
		if outs[i] != want[i] {
			t.Fatalf("Outcomes 1..10 = %q, want %q", outs, want)
		}
	}
	if outs, err := l.Outcomes(ctx, "b", 4999, 5001); err != nil || outs[0] != 0 || outs[1] != Pending || outs[2] != 0 {
		t.Fatalf("Outcomes 4999..5001 = %q, %v", outs, err)
	}
	bc, err := l.Batch(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if bc.Total != 8 || bc.Pending != 7 || bc.Applied != 1 {
		t.Fatalf("Batch = %+v, want total 8, pending 7, applied 1", bc)
	}
}

func TestClaimCountsUnfinishedClaims(t *testing.T) {
	l, env := setup(t)
	ctx := context.Background()
	c := change(jobs.Remove, "o1", "c1")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: c}}); err != nil {
		t.Fatal(err)
	}
	// Two deliveries that claimed it and never finished (their worker
	// died), then one that releases it, then one that finds none.
	for i, holder := range []string{"h1", "h2", "h3"} {
		cl, err := l.Claim(ctx, c, "b:2", holder, 50*time.Millisecond)
		if err != nil || cl.State != Claimed || cl.Crashes != i {
			t.Fatalf("claim %d = %+v, %v; want Claimed with %d crashes", i+1, cl, err, i)
		}
		if holder != "h3" { // its lease runs out
			if env.Embedded != nil {
				env.Embedded.FastForward(100 * time.Millisecond)
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if err := l.Release(ctx, c, "b:2", "h3"); err != nil {
		t.Fatal(err)
	}
	if cl, _ := l.Claim(ctx, c, "b:2", "h4", time.Minute); cl.State != Claimed || cl.Crashes != 0 {
		t.Fatalf("claim after a release = %+v, want Claimed with 0 crashes", cl)
	}
}

// A crash while a change ran alone in its worker is held against it; a
// crash while it ran beside others is not (it may have been a bystander).
func TestACrashIsHeldAgainstAChangeThatRanAlone(t *testing.T) {
	l, env := setup(t)
	ctx := context.Background()
	bystander, suspect := change(jobs.Remove, "o1", "c1"), change(jobs.Remove, "o2", "c2")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: bystander}, {Line: 3, Change: suspect}}); err != nil {
		t.Fatal(err)
	}
	expire := func() {
		if env.Embedded != nil {
			env.Embedded.FastForward(100 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	claim := func(c jobs.Change, id, holder string, lease time.Duration) Claim {
		t.Helper()
		cl, err := l.Claim(ctx, c, id, holder, lease)
		if err != nil || cl.State != Claimed {
			t.Fatalf("claim %s = %+v, %v", id, cl, err)
		}
		return cl
	}
	// A worker takes both and dies.
	claim(bystander, "b:2", "h1", 50*time.Millisecond)
	claim(suspect, "b:3", "h2", 50*time.Millisecond)
	expire()
	// Taken again, each runs alone (as the worker does after a crash);
	// the suspect's worker dies again, the bystander's finishes.
	if by := claim(bystander, "b:2", "h3", time.Minute); by.Crashes != 1 || by.Suspected != 0 {
		t.Errorf("bystander claimed again = %+v; want 1 crash, 0 held against it", by)
	}
	if err := l.MarkAlone(ctx, bystander, "b:2"); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, bystander, "b:2", "h3"); err != nil {
		t.Fatal(err)
	}
	if su := claim(suspect, "b:3", "h4", 50*time.Millisecond); su.Crashes != 1 || su.Suspected != 0 {
		t.Errorf("suspect claimed again = %+v; want 1 crash, 0 held against it (it did not run alone)", su)
	}
	if err := l.MarkAlone(ctx, suspect, "b:3"); err != nil {
		t.Fatal(err)
	}
	expire()
	if su := claim(suspect, "b:3", "h5", time.Minute); su.Crashes != 2 || su.Suspected != 1 {
		t.Errorf("suspect after dying alone = %+v; want 2 crashes, 1 held against it", su)
	}
	if by := claim(bystander, "b:2", "h6", time.Minute); by.Crashes != 0 || by.Suspected != 0 {
		t.Errorf("bystander after finishing = %+v; want no crash", by)
	}
}

func TestWaitingChangesLearnTheirHead(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	c := change(jobs.Remove, "o1", "c1")
	if _, err := l.Accept(ctx, "b", "t", []Row{{Line: 2, Change: c}, {Line: 3, Change: c}}); err != nil {
		t.Fatal(err)
	}
	cl, err := l.Claim(ctx, c, "b:3", "h", time.Minute)
	if err != nil || cl.State != NotHead || cl.Head != "b:2" || cl.Check {
		t.Fatalf("claim of the second change = %+v, %v; want NotHead, head b:2, no check yet", cl, err)
	}
	ps, err := l.Pair(ctx, c)
	if err != nil || len(ps.Queue) != 2 || ps.Queue[0] != "b:2" || ps.Since.IsZero() {
		t.Fatalf("Pair = %+v, %v", ps, err)
	}
	if ok, err := l.MarkBlocked(ctx, BlockedPair{OrgID: "o1", ConnectionID: "c1", Head: "b:2", HeadState: "running"}); err != nil || !ok {
		t.Fatalf("MarkBlocked = %v, %v", ok, err)
	}
	if bs, err := l.Blocked(ctx); err != nil || len(bs) != 1 || bs[0].Head != "b:2" || bs[0].Waiting != 1 {
		t.Fatalf("Blocked = %+v, %v; want the pair waiting for b:2", bs, err)
	}
	if _, err := l.Claim(ctx, c, "b:2", "h2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Resolve(ctx, jobs.Payload{Change: c, Origin: jobs.Origin{Batch: "b", Line: 2}}, "b:2", "h2", Applied, nil); err != nil {
		t.Fatal(err)
	}
	if bs, err := l.Blocked(ctx); err != nil || len(bs) != 0 {
		t.Fatalf("Blocked after the head resolved = %+v, %v; want none", bs, err)
	}
	if ok, _ := l.MarkBlocked(ctx, BlockedPair{OrgID: "o1", ConnectionID: "c1", Head: "b:2"}); ok {
		t.Fatal("MarkBlocked recorded a head that resolved")
	}
}
