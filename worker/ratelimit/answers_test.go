package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// fixedLimiter is a limiter without background work on an embedded Redis,
// both clocks at t0.
func fixedLimiter(t *testing.T, start Buckets) (*Limiter, *miniredis.Miniredis) {
	t.Helper()
	mr, rdb := fixedRedis(t)
	l, err := newLimiter(context.Background(), Config{Redis: rdb, Tenant: "t", Start: start,
		PauseFloor: 100 * time.Millisecond, PauseJitter: time.Nanosecond, now: func() time.Time { return t0 },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return l, mr
}

// call reserves a write at t0 and returns its ticket.
func call(t *testing.T, l *Limiter) mgmt.Ticket {
	t.Helper()
	tk, err := l.Wait(context.Background(), mgmt.Write)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func exchange(status int, rl mgmt.RateLimit, retryAfter time.Duration) mgmt.Exchange {
	return mgmt.Exchange{Class: mgmt.Write, Method: "POST", Status: status, RateLimit: rl, RetryAfter: retryAfter, Sent: t0, Received: t0}
}

func pauseOf(t *testing.T, l *Limiter) time.Duration {
	t.Helper()
	return l.pausedUntil().Sub(t0)
}

func TestResetEqualToNowPausesForTheFloor(t *testing.T) {
	// X-RateLimit-Reset is whole seconds: it can name the current second,
	// or one already past when clocks differ. Neither may mean "no pause"
	// nor a negative one.
	for _, reset := range []time.Time{t0, t0.Add(-3 * time.Second)} {
		l, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
		l.Observe(call(t, l), exchange(429, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: reset}, 0))
		if p := pauseOf(t, l); p < 100*time.Millisecond || p > 101*time.Millisecond {
			t.Errorf("Reset %v from now: pause %v, want the 100ms floor", reset.Sub(t0), p)
		}
		if paused, _ := l.store.rdb.HGet(context.Background(), l.store.key, "pause").Int64(); paused != t0.Add(100*time.Millisecond).UnixMicro() && paused != t0.Add(100*time.Millisecond).UnixMicro()+1 {
			t.Errorf("the fleet's pause ends at %v, want t0+100ms", time.UnixMicro(paused).Sub(t0))
		}
	}
}

func TestResetInTheFutureAndRetryAfter(t *testing.T) {
	l, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
	l.Observe(call(t, l), exchange(429, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: t0.Add(2 * time.Second)}, 0))
	if p := pauseOf(t, l); p < 2*time.Second || p > 2*time.Second+time.Millisecond {
		t.Errorf("Reset 2s ahead: pause %v, want 2s", p)
	}
	l2, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
	l2.Observe(call(t, l2), exchange(429, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: t0.Add(9 * time.Second)}, 3*time.Second))
	if p := pauseOf(t, l2); p < 3*time.Second || p > 3*time.Second+time.Millisecond {
		t.Errorf("Retry-After 3s with Reset 9s: pause %v, want Retry-After's 3s", p)
	}
}

// Retry-After is the tenant's own word: a bucket whose refill the fleet
// measured does not shorten it to the time it takes to fill.
func TestRetryAfterIsNotShortenedByALearnedRefill(t *testing.T) {
	l, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
	ctx := context.Background()
	l.Observe(call(t, l), exchange(201, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 9, Reset: t0}, 0))
	if err := l.store.tune(ctx, tune{bucket: "w10", rate: 20, source: "measured"}); err != nil {
		t.Fatal(err)
	}
	l.Observe(call(t, l), exchange(429, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: t0.Add(time.Second)}, 5*time.Second))
	if p := pauseOf(t, l); p < 5*time.Second || p > 5*time.Second+time.Millisecond {
		t.Errorf("Retry-After 5s on a bucket that fills in 0.5s: pause %v, want 5s", p)
	}
	// Without Retry-After, Reset is shortened to the fill time.
	l2, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
	l2.Observe(call(t, l2), exchange(201, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 9, Reset: t0}, 0))
	if err := l2.store.tune(ctx, tune{bucket: "w10", rate: 20, source: "measured"}); err != nil {
		t.Fatal(err)
	}
	l2.Observe(call(t, l2), exchange(429, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: t0.Add(5 * time.Second)}, 0))
	if p := pauseOf(t, l2); p > 600*time.Millisecond {
		t.Errorf("Reset 5s on a bucket that fills in 0.5s: pause %v, want it shortened to about 0.5s", p)
	}
}

func TestHeadersMissing(t *testing.T) {
	start := Buckets{Global: Bucket{Burst: 10, Rate: 20}}
	l, _ := fixedLimiter(t, start)
	ctx := context.Background()
	before, _ := l.State(ctx)

	// A success without X-RateLimit-* headers says nothing of the budget:
	// no bucket is made up, no sample is recorded, the start keeps pacing.
	l.Observe(call(t, l), exchange(201, mgmt.RateLimit{}, 0))
	after, _ := l.State(ctx)
	if after.Answers != before.Answers || len(after.Buckets) != len(before.Buckets) {
		t.Fatalf("an answer without headers changed the model: %+v → %+v", before, after)
	}
	for _, b := range after.Buckets {
		if b.ID == "plan-global" && (b.Classes != "rw" || b.Rate != 20) {
			t.Fatalf("the starting bucket stopped pacing: %+v", b)
		}
	}

	// Headers that are present but malformed parse as missing (mgmt's
	// ParseRateLimit); a Limit of 0 is no bucket either.
	l.Observe(call(t, l), exchange(201, mgmt.RateLimit{Present: true, Limit: 0, Remaining: 5, Reset: t0}, 0))
	st2, _ := l.State(ctx)
	if len(st2.Buckets) != len(before.Buckets) {
		t.Errorf("Limit 0 made up a bucket: %+v", st2.Buckets)
	}

	// A 429 without headers (and without Retry-After) still stops the
	// fleet, for the floor, and teaches: a bucket that no answer names
	// refused writes, "w0", which now paces them (found in closed loop).
	l.Observe(call(t, l), exchange(429, mgmt.RateLimit{}, 0))
	if p := pauseOf(t, l); p < 100*time.Millisecond || p > 101*time.Millisecond {
		t.Errorf("429 without headers: pause %v, want the 100ms floor", p)
	}
	st, _ := l.State(ctx)
	var w0 *BucketState
	for i, b := range st.Buckets {
		if b.ID == "w0" {
			w0 = &st.Buckets[i]
		}
	}
	if w0 == nil || w0.Classes != "w" || w0.Rate <= 0 {
		t.Errorf("a 429 without headers taught nothing: %+v", st.Buckets)
	}
	if got := l.Stats().Throttled; got != 1 {
		t.Errorf("throttled %d, want 1", got)
	}
}

func TestFirstAnswerWithHeadersDescribesABucket(t *testing.T) {
	l, _ := fixedLimiter(t, Buckets{Global: Bucket{Burst: 10, Rate: 20}})
	l.Observe(call(t, l), exchange(201, mgmt.RateLimit{Present: true, Limit: 10, Remaining: 9, Reset: t0.Add(time.Second)}, 0))
	st, _ := l.State(context.Background())
	var w10, plan BucketState
	for _, b := range st.Buckets {
		switch b.ID {
		case "w10":
			w10 = b
		case "plan-global":
			plan = b
		}
	}
	if w10.Classes != "w" || w10.Burst != 10 || w10.Rate != 20 {
		t.Errorf("bucket described by the answer: %+v, want w10 pacing writes, burst 10, starting at the plan's 20/s", w10)
	}
	if plan.Classes != "r" {
		t.Errorf("plan-global after the first write answer paces %q, want reads only (the cold start of writes is over)", plan.Classes)
	}
}

// A read reserved from the read bucket before the fleet found that reads
// and writes share one bucket, answered after: its counter in the read
// bucket is no place in the shared bucket's count. (Taken as one, a
// read's 2 against the writes' 72 put 70 calls' debt on the shared bucket:
// a virtual fleet sent nothing for 2.9 s.)
func TestAnswerReservedBeforeAMergeIsNoPlaceInTheSharedCount(t *testing.T) {
	l, _ := fixedLimiter(t, Buckets{})
	ctx := context.Background()
	us := strconv.FormatInt(t0.UnixMicro(), 10)
	if err := l.store.rdb.HSet(ctx, l.store.key,
		"ids", "w10 r10",
		"w10:cls", "rw", "w10:burst", 10, "w10:rate", 20, "w10:src", "measured", "w10:n", 72, "w10:tat", us,
		"r10:cls", "-", "r10:burst", 10, "r10:rate", 2.5, "r10:src", "guess", "r10:n", 2, "r10:tat", us).Err(); err != nil {
		t.Fatal(err)
	}
	tk := &ticket{class: mgmt.Read, counts: map[string]int64{"r10": 2}, at: t0.UnixMicro()}
	l.Observe(tk, mgmt.Exchange{Class: mgmt.Read, Method: "GET", Status: 200, Sent: t0, Received: t0,
		RateLimit: mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: t0.Add(time.Second)}})
	tat, err := l.store.rdb.HGet(ctx, l.store.key, "w10:tat").Int64()
	if err != nil {
		t.Fatal(err)
	}
	// Empty now: full again in 10 tokens at 20/s.
	if ahead := time.UnixMicro(tat).Sub(t0); ahead > 600*time.Millisecond {
		t.Errorf("the shared bucket's next token is %v ahead, want at most the 0.5 s it takes to fill", ahead)
	}
}

// weighShared feeds mergeIfShared a read answer leaving the bucket at 7,
// then a burst of write answers 1–30 ms later (each accepted call noted as
// the learning loop notes it), and returns the evidence {for, against}
// and whether it merged.
func weighShared(t *testing.T, writesLeave []int) ([2]int, bool) {
	t.Helper()
	l, _ := fixedLimiter(t, Buckets{})
	lg := l.learn
	lg.model = map[string]BucketState{
		"w10": {ID: "w10", Classes: "w", Burst: 10, Rate: 11},
		"r10": {ID: "r10", Classes: "r", Burst: 10, Rate: 2.5},
	}
	read := sample{bucket: "r10", class: "r", at: t0, limit: 10, remaining: 7, count: 3}
	lg.noteAccepted("r", read.at)
	lg.last["r10"] = read
	merged := false
	for i, rem := range writesLeave {
		s := sample{bucket: "w10", class: "w", at: t0.Add(time.Duration(1+5*i) * time.Millisecond), limit: 10, remaining: rem, count: int64(20 + i)}
		lg.noteAccepted("w", s.at)
		lg.last["w10"] = s
		if len(l.mergeIfShared(s, t0)) > 0 {
			merged = true
		}
	}
	return lg.shared[10], merged
}

// One bucket for reads and writes, drained by a burst of writes right
// after a read: each write leaves one token fewer than the one before.
// Compared with the read's 7 alone, 5, 3, 2, 1, 0 looked like a second
// bucket (the demo's slow runs: 20 against, 5 for, merged late, 1.34× the
// ideal); less the writes accepted in between, each is what one bucket
// leaves.
func TestABurstAfterTheOtherClassIsEvidenceOfOneBucket(t *testing.T) {
	ev, merged := weighShared(t, []int{6, 5, 4, 3, 2, 1})
	if ev[1] != 0 || !merged {
		t.Errorf("evidence %v (for, against), merged %v; want nothing against and one bucket", ev, merged)
	}
}

// Two buckets of one size (Essentials): writes that stay near 7 while the
// same writes would have drained one shared bucket are evidence against.
func TestWritesThatDoNotDrainTheReadsBucketAreEvidenceOfTwo(t *testing.T) {
	ev, merged := weighShared(t, []int{6, 7, 6, 7, 6, 7})
	if ev[1] < 3 || merged {
		t.Errorf("evidence %v (for, against), merged %v; want most against and no merge", ev, merged)
	}
}
