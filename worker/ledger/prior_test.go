package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
)

func TestPriorStateFirstWriterWins(t *testing.T) {
	l, env := setup(t)
	ctx := context.Background()
	on := jobs.PairState{Present: true, ShowAsButton: true}
	n, err := l.RecordPrior(ctx, "b1", []jobs.PairRecord{{OrgID: "o1", ConnectionID: "c1", State: on}, {OrgID: "o1", ConnectionID: "c2", State: jobs.Absent}})
	if err != nil || n != 2 {
		t.Fatalf("RecordPrior = %d, %v; want 2 recorded", n, err)
	}
	// A later writer (a worker that read after apply) does not replace it.
	if err := l.BeforeWrite(ctx, "b1", change(jobs.Remove, "o1", "c1"), &jobs.Absent); err != nil {
		t.Fatal(err)
	}
	// A worker that writes without knowing the state records that it does
	// not know: a state read after its write never passes for the prior.
	if err := l.BeforeWrite(ctx, "b1", change(jobs.Remove, "o3", "c1"), nil); err != nil {
		t.Fatal(err)
	}
	if n, err := l.RecordPrior(ctx, "b1", []jobs.PairRecord{{OrgID: "o1", ConnectionID: "c2", State: on}, {OrgID: "o2", ConnectionID: "c1", State: on}, {OrgID: "o3", ConnectionID: "c1", State: on}}); err != nil || n != 1 {
		t.Fatalf("second RecordPrior = %d, %v; want only o2/c1 recorded", n, err)
	}
	got, err := l.Priors(ctx, "b1")
	want := []jobs.PairRecord{{OrgID: "o1", ConnectionID: "c1", State: on}, {OrgID: "o1", ConnectionID: "c2", State: jobs.Absent}, {OrgID: "o2", ConnectionID: "c1", State: on}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("Priors = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Priors[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if ttl := env.Client.TTL(ctx, l.priorKey("b1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("prior states kept for %v, want the batch retention (1h)", ttl)
	}
	// What the batch left: the last write wins.
	off := jobs.PairState{Present: true}
	for _, s := range []jobs.PairState{on, off} {
		if err := l.AfterWrite(ctx, "b1", change(jobs.Enable, "o1", "c1"), &s); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AfterWrite(ctx, "b1", change(jobs.Enable, "o1", "c2"), nil); err != nil {
		t.Fatal(err)
	}
	lefts, err := l.Lefts(ctx, "b1")
	if err != nil || len(lefts) != 1 || lefts[0].State != off {
		t.Errorf("Lefts = %v, %v; want only o1/c1 left %v (an unknown result records nothing)", lefts, err, off)
	}
}

func TestStateCacheKeepsWritesNewerThanARead(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	on := jobs.PairState{Present: true, ShowAsButton: true}
	if cp, err := l.CachedState(ctx, "o1", "c1"); err != nil || cp.Read {
		t.Fatalf("empty cache: %+v, %v", cp, err)
	}
	sent, err := l.Clock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A write starts after the read was sent and before it is stored.
	if err := l.BeforeWrite(ctx, "b1", change(jobs.Remove, "o1", "c2"), &on); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.StoreState(ctx, "o1", sent, map[string]jobs.PairState{"c1": on, "c2": on}); !ok || err != nil {
		t.Fatalf("StoreState = %v, %v", ok, err)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c1"); !cp.Read || !cp.Known || cp.State != on || cp.Age < 0 || cp.Age > 5*time.Second {
		t.Errorf("c1 = %+v, want known %v", cp, on)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c2"); !cp.Read || cp.Known || !cp.InFlight {
		t.Errorf("c2 while its write is in flight = %+v, want unknown, in flight", cp)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c3"); !cp.Known || cp.State.Present {
		t.Errorf("c3, not listed = %+v, want known absent", cp)
	}
	if err := l.AfterWrite(ctx, "b1", change(jobs.Remove, "o1", "c2"), &jobs.Absent); err != nil {
		t.Fatal(err)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c2"); !cp.Known || cp.State.Present {
		t.Errorf("c2 after its remove = %+v, want known absent", cp)
	}
	// A read sent before the one stored is not stored.
	if ok, err := l.StoreState(ctx, "o1", sent.Add(-time.Second), map[string]jobs.PairState{}); ok || err != nil {
		t.Errorf("an older read was stored: %v, %v", ok, err)
	}
	// A write whose result is unknown makes the pair unknown.
	if err := l.BeforeWrite(ctx, "b1", change(jobs.Enable, "o1", "c1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := l.AfterWrite(ctx, "b1", change(jobs.Enable, "o1", "c1"), nil); err != nil {
		t.Fatal(err)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c1"); cp.Known || cp.InFlight {
		t.Errorf("c1 after a write with no known result = %+v, want unknown, not in flight", cp)
	}
	// A read sent after that write ended makes it known again.
	time.Sleep(2 * time.Millisecond)
	later, _ := l.Clock(ctx)
	if ok, err := l.StoreState(ctx, "o1", later, map[string]jobs.PairState{"c1": on}); !ok || err != nil {
		t.Fatalf("StoreState = %v, %v", ok, err)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c1"); !cp.Known || cp.State != on {
		t.Errorf("c1 read after its unknown write = %+v, want known %v", cp, on)
	}
	if err := l.ForgetState(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if cp, _ := l.CachedState(ctx, "o1", "c1"); cp.Read {
		t.Errorf("after ForgetState: %+v", cp)
	}
}

func TestStateReadLock(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	if ok, err := l.LockStateRead(ctx, "o1", "a", time.Minute); !ok || err != nil {
		t.Fatalf("first lock: %v, %v", ok, err)
	}
	if ok, _ := l.LockStateRead(ctx, "o1", "b", time.Minute); ok {
		t.Fatal("second holder got the lock")
	}
	_ = l.UnlockStateRead(ctx, "o1", "b") // not the holder: no effect
	if ok, _ := l.LockStateRead(ctx, "o1", "b", time.Minute); ok {
		t.Fatal("a non-holder's unlock released the lock")
	}
	_ = l.UnlockStateRead(ctx, "o1", "a")
	if ok, _ := l.LockStateRead(ctx, "o1", "b", time.Minute); !ok {
		t.Fatal("lock not free after its holder's unlock")
	}
}

func TestUnchangedIsCountedAndHintsRoundTrip(t *testing.T) {
	l, _ := setup(t)
	ctx := context.Background()
	c := change(jobs.Enable, "o1", "c1")
	if _, err := l.Accept(ctx, "b1", "csv:t", []Row{{Line: 2, Change: c}}); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, l, c, "b1:2")
	mustResolve(t, l, payload("b1", 2, c), "b1:2", Unchanged, nil)
	bc, err := l.Batch(ctx, "b1")
	if err != nil || bc.Unchanged != 1 || bc.Pending != 0 || !bc.Done() {
		t.Errorf("batch = %+v, %v; want 1 unchanged, done", bc, err)
	}
	if o, _ := l.Outcomes(ctx, "b1", 2, 2); o[0] != Unchanged || !o[0].Resolved() || o[0].String() != "unchanged" {
		t.Errorf("outcome = %v", o)
	}
	if pairs, err := l.AppliedPairs(ctx, "b1"); err != nil || len(pairs) != 0 {
		t.Errorf("AppliedPairs = %v, %v; an unchanged line changed nothing", pairs, err)
	}
	if got, err := l.AcceptedChanges(ctx, "b1"); err != nil || got[2] != c {
		t.Errorf("AcceptedChanges = %v, %v", got, err)
	}
	if got, err := l.AcceptedChanges(ctx, "nope"); err != nil || len(got) != 0 {
		t.Errorf("AcceptedChanges of an unknown batch = %v, %v", got, err)
	}

	if _, _, ok, err := l.Hints(ctx, "b1", "o1"); ok || err != nil {
		t.Errorf("hints before SetHints: %v, %v", ok, err)
	}
	h := jobs.BatchHints{Read: jobs.ReadAlways, Rows: 10, Orgs: 2, OrgRows: map[string]int{"o1": 7, "o2": 3}, LikelyUnchanged: 0.5}
	if err := l.SetHints(ctx, "b1", h); err != nil {
		t.Fatal(err)
	}
	got, rows, ok, err := l.Hints(ctx, "b1", "o1")
	if err != nil || !ok || rows != 7 || got.Read != jobs.ReadAlways || got.Rows != 10 || got.Orgs != 2 || got.LikelyUnchanged != 0.5 {
		t.Errorf("Hints = %+v, %d, %v, %v", got, rows, ok, err)
	}
	if _, rows, _, _ := l.Hints(ctx, "b1", "o9"); rows != 0 {
		t.Errorf("rows of an organization not in the batch = %d", rows)
	}
}
