package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
)

func TestRowEncodingRoundTrips(t *testing.T) {
	for _, c := range []jobs.Change{
		{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: jobs.True, IsSignupEnabled: jobs.True},
		{Action: jobs.Update, OrgID: "o", ConnectionID: "c", ShowAsButton: jobs.False},
		{Action: jobs.Remove, OrgID: "org_ünïcode", ConnectionID: "con:x"},
	} {
		got, err := decodeRow(encodeRow(c))
		if err != nil || got != c {
			t.Errorf("decodeRow(encodeRow(%v)) = %v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "e---", "x---o/c", "e-2-o/c", "e---oc"} {
		if _, err := decodeRow(bad); err == nil {
			t.Errorf("decodeRow(%q) succeeded", bad)
		}
	}
}

func TestLinesKeepChangesFailuresAndOutcomes(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	a := jobs.Change{Action: jobs.Enable, OrgID: "o1", ConnectionID: "c1", ShowAsButton: jobs.False}
	r := change(jobs.Remove, "o2", "c1")
	p := change(jobs.Update, "o3", "c1")
	// Lines on both sides of a rows block boundary.
	rows := []Row{{Line: 2, Change: a}, {Line: RowsBlock + 1, Change: r}, {Line: RowsBlock + 5, Change: p}}
	if _, err := l.Accept(ctx, "b", "csv:x.csv", rows); err != nil {
		t.Fatal(err)
	}
	// Line 2 fails twice, then is applied; line RowsBlock+5 fails once and
	// stays pending.
	for i := 1; i <= 2; i++ {
		f := Failure{Failed: i, Reason: "server_error", Status: 503, Message: "Service Unavailable"}
		if ok, err := l.MarkRetry(ctx, payload("b", 2, a), "b:2", f); err != nil || !ok {
			t.Fatalf("MarkRetry = %v, %v", ok, err)
		}
	}
	if ok, err := l.MarkRetry(ctx, payload("b", RowsBlock+5, p), jobs.TaskID("b", RowsBlock+5), Failure{Failed: 1, Reason: "timeout"}); err != nil || !ok {
		t.Fatalf("MarkRetry = %v, %v", ok, err)
	}
	bc, _ := l.Batch(ctx, "b")
	if bc.Retrying != 2 || bc.Pending != 3 || bc.Waiting() != 1 {
		t.Fatalf("after two lines failed: %+v, want 2 retrying of 3 pending", bc)
	}
	mustClaim(t, l, a, "b:2")
	mustResolve(t, l, payload("b", 2, a), "b:2", Applied, nil)
	if ok, _ := l.MarkRetry(ctx, payload("b", 2, a), "b:2", Failure{Failed: 3}); ok {
		t.Fatal("MarkRetry of a resolved line succeeded")
	}
	id := jobs.TaskID("b", RowsBlock+1)
	mustClaim(t, l, r, id)
	mustResolve(t, l, payload("b", RowsBlock+1, r), id, Dead, &DeadLetter{TaskID: id, Batch: "b", Line: RowsBlock + 1, Change: r, Reason: "unknown_organization", Status: 404, Attempts: 1})

	bc, _ = l.Batch(ctx, "b")
	if bc.Retrying != 1 || bc.Pending != 1 || bc.Applied != 1 || bc.Dead != 1 || bc.Resolved != 2 {
		t.Fatalf("counts = %+v, want 1 retrying, 1 pending, 1 applied, 1 dead, 2 resolved lately", bc)
	}
	if eta, ok := bc.ETA(); !ok || bc.Rate() <= 0 || eta <= 0 {
		t.Fatalf("rate %v, ETA %v %v: want a positive rate and an estimate", bc.Rate(), eta, ok)
	}
	last, err := l.LastLine(ctx, "b")
	if err != nil || last != RowsBlock+5 {
		t.Fatalf("LastLine = %d, %v", last, err)
	}
	lines, err := l.Lines(ctx, "b", 1, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("Lines returned %d lines, want 3: %+v", len(lines), lines)
	}
	want := []struct {
		line     int
		o        Outcome
		c        jobs.Change
		attempts int
	}{{2, Applied, a, 3}, {RowsBlock + 1, Dead, r, 1}, {RowsBlock + 5, Retrying, p, 1}}
	for i, w := range want {
		ln := lines[i]
		if ln.Line != w.line || ln.Outcome != w.o || !ln.Known || ln.Change != w.c || ln.Attempts() != w.attempts {
			t.Errorf("line %d = %+v (attempts %d), want outcome %v, change %v, attempts %d", w.line, ln, ln.Attempts(), w.o, w.c, w.attempts)
		}
	}
	if lines[1].Dead == nil || lines[1].Dead.Reason != "unknown_organization" {
		t.Errorf("dead line has dead letter %+v", lines[1].Dead)
	}
	if lines[0].Failure == nil || lines[0].Failure.Status != 503 {
		t.Errorf("applied line's last failure = %+v, want the 503", lines[0].Failure)
	}
	if _, err := l.LastLine(ctx, "nope"); err == nil {
		t.Error("LastLine of an unknown batch succeeded")
	}
}

// deadLine accepts c as line of batch, claims it and dead-letters it.
func deadLine(t *testing.T, l *Ledger, batch string, line int, c jobs.Change) DeadLetter {
	t.Helper()
	ctx := context.Background()
	if _, err := l.Accept(ctx, batch, "t", []Row{{Line: line, Change: c}}); err != nil {
		t.Fatal(err)
	}
	id := jobs.TaskID(batch, line)
	mustClaim(t, l, c, id)
	dl := DeadLetter{TaskID: id, Batch: batch, Line: line, Change: c, Reason: "retries_exhausted", Status: 503, Attempts: 8}
	mustResolve(t, l, payload(batch, line, c), id, Dead, &dl)
	return dl
}

func TestRequeueKeepsPairOrder(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	now := time.Unix(1800000000, 0)
	c := change(jobs.Enable, "o1", "c1")

	// The pair's latest change: requeued at the end of its (empty) queue.
	dl := deadLine(t, l, "b1", 2, c)
	rr, err := l.Requeue(ctx, dl, false, now)
	if err != nil || rr.State != Requeued || rr.DeadLetter.RequeuedAt == nil || !rr.DeadLetter.RequeuedAt.Equal(now) {
		t.Fatalf("Requeue of the pair's latest change = %+v, %v; want Requeued", rr, err)
	}
	bc, _ := l.Batch(ctx, "b1")
	if bc.Dead != 0 || bc.Pending != 1 || bc.Requeued != 1 {
		t.Fatalf("after requeue: %+v, want 0 dead, 1 pending", bc)
	}
	if rr, _ := l.Requeue(ctx, dl, false, now); rr.State != NotDead || rr.Outcome != Pending {
		t.Fatalf("second Requeue = %+v, want NotDead (pending)", rr)
	}
	if stored, _ := l.DeadLetter(ctx, "b1", 2); stored.RequeuedAt == nil {
		t.Fatalf("the dead letter of a requeued line = %+v, want it kept, marked requeued", stored)
	}
	// It acts again and dies again: the dead letter is current again.
	mustClaim(t, l, c, "b1:2")
	mustResolve(t, l, payload("b1", 2, c), "b1:2", Dead, &DeadLetter{TaskID: "b1:2", Batch: "b1", Line: 2, Change: c, Reason: "retries_exhausted", Attempts: 8})

	// A later change to the pair, accepted (and applied): refused.
	later := change(jobs.Remove, "o1", "c1")
	if _, err := l.Accept(ctx, "b2", "t", []Row{{Line: 2, Change: later}}); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, l, later, "b2:2")
	mustResolve(t, l, payload("b2", 2, later), "b2:2", Applied, nil)
	dl, _ = l.DeadLetter(ctx, "b1", 2)
	rr, err = l.Requeue(ctx, dl, false, now)
	if err != nil || rr.State != RefusedLater || rr.Later != "b2:2" {
		t.Fatalf("Requeue with a later applied change = %+v, %v; want RefusedLater naming b2:2", rr, err)
	}
	if bc, _ := l.Batch(ctx, "b1"); bc.Dead != 1 || bc.Pending != 0 {
		t.Fatalf("a refused requeue changed the counts: %+v", bc)
	}

	// A later change still pending: refused too; forced, the requeued change
	// goes after it.
	pending := change(jobs.Update, "o1", "c1")
	if _, err := l.Accept(ctx, "b3", "t", []Row{{Line: 2, Change: pending}}); err != nil {
		t.Fatal(err)
	}
	if rr, _ := l.Requeue(ctx, dl, false, now); rr.State != RefusedLater || rr.Later != "b3:2" {
		t.Fatalf("Requeue with a later pending change = %+v, want RefusedLater naming b3:2", rr)
	}
	if rr, err := l.Requeue(ctx, dl, true, now); err != nil || rr.State != Requeued {
		t.Fatalf("forced Requeue = %+v, %v", rr, err)
	}
	if cl, _ := l.Claim(ctx, c, "b1:2", "h", time.Minute); cl.State != NotHead {
		t.Fatalf("the forced requeue's change claimed before the change pending before it: %v", cl.State)
	}
	if cl := mustClaim(t, l, pending, "b3:2"); cl.Successor != "b1:2" {
		t.Fatalf("successor of the pending change = %q, want the requeued b1:2", cl.Successor)
	}
}

func TestPurgeKeepsTheLineDead(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	c := change(jobs.Remove, "o9", "c1")
	dl := deadLine(t, l, "b", 3, c)
	if ok, err := l.Purge(ctx, "b", 3); err != nil || !ok {
		t.Fatalf("Purge = %v, %v", ok, err)
	}
	if ok, _ := l.Purge(ctx, "b", 3); ok {
		t.Fatal("a second Purge succeeded")
	}
	if _, err := l.DeadLetter(ctx, "b", 3); err == nil {
		t.Fatal("the purged dead letter is still there")
	}
	bc, _ := l.Batch(ctx, "b")
	if bc.Dead != 1 || bc.Purged != 1 {
		t.Fatalf("after purge: %+v, want 1 dead, 1 purged", bc)
	}
	if rr, _ := l.Requeue(ctx, dl, false, time.Now()); rr.State != Purged {
		t.Fatalf("Requeue of a purged line = %+v, want Purged", rr)
	}
	// A requeued line (pending again) is not purged.
	c2 := change(jobs.Remove, "o8", "c1")
	dl2 := deadLine(t, l, "b", 4, c2)
	if rr, _ := l.Requeue(ctx, dl2, false, time.Now()); rr.State != Requeued {
		t.Fatalf("Requeue = %+v", rr)
	}
	if ok, _ := l.Purge(ctx, "b", 4); ok {
		t.Fatal("Purge of a pending requeued line succeeded")
	}
	names, err := l.BatchesWithDeadLetters(ctx)
	if err != nil || len(names) != 1 || names[0] != "b" {
		t.Fatalf("BatchesWithDeadLetters = %v, %v", names, err)
	}
}
