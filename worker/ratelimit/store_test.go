package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// fixedStore is a store on an embedded Redis whose clock the test sets.
type fixedStore struct {
	store
	mr  *miniredis.Miniredis
	now time.Time
}

// fixedRedis is an embedded Redis whose clock stands at t0 until the test
// moves it.
func fixedRedis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Close)
	mr.SetTime(t0)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

func newFixedStore(t *testing.T) *fixedStore {
	t.Helper()
	mr, rdb := fixedRedis(t)
	return &fixedStore{store: newStore(rdb, "t", "tenant", time.Hour), mr: mr, now: t0}
}

func (s *fixedStore) at(d time.Duration) {
	s.now = t0.Add(d)
	s.mr.SetTime(s.now)
}

func (s *fixedStore) mustSeed(t *testing.T, id, cls string, b Bucket) {
	t.Helper()
	if _, err := s.seed(context.Background(), id, cls, b, "plan", false); err != nil {
		t.Fatal(err)
	}
}

func (s *fixedStore) mustReserve(t *testing.T, class string) reservation {
	t.Helper()
	r, err := s.reserve(context.Background(), class, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *fixedStore) mustAnswer(t *testing.T, a answer) answered {
	t.Helper()
	if a.class == "" {
		a.class = "w"
	}
	got, err := s.answer(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (s *fixedStore) mustCancel(t *testing.T, r reservation) {
	t.Helper()
	if err := s.cancel(context.Background(), r.counts); err != nil {
		t.Fatal(err)
	}
}

func waits(t *testing.T, s *fixedStore, class string, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := 0; i < n; i++ {
		out = append(out, s.mustReserve(t, class).wait)
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > time.Microsecond || d < -time.Microsecond {
			return false
		}
	}
	return true
}

func TestReserveIsAGCRA(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 3, Rate: 10})
	// A full bucket lets 3 go at once, then one every 100 ms.
	got := waits(t, s, "w", 5)
	want := []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	if !equalDurations(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	// 250 ms later, the slot after the last reserved one is 50 ms away.
	s.at(250 * time.Millisecond)
	if w := s.mustReserve(t, "r").wait; w != 50*time.Millisecond {
		t.Fatalf("wait %v, want 50ms", w)
	}
	// After a long idle spell the bucket is full again, not fuller.
	s.at(time.Minute)
	if got := waits(t, s, "w", 4); !equalDurations(got, []time.Duration{0, 0, 0, 100 * time.Millisecond}) {
		t.Fatalf("waits after idling %v", got)
	}
}

func TestReserveDrawsFromEveryBucketOfTheClass(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 10, Rate: 100})
	s.mustSeed(t, "write", "w", Bucket{Burst: 2, Rate: 1})
	r := s.mustReserve(t, "w")
	if r.wait != 0 || r.counts["global"] != 1 || r.counts["write"] != 1 {
		t.Fatalf("first write %+v", r)
	}
	s.mustReserve(t, "w")
	if w := s.mustReserve(t, "w").wait; w != time.Second {
		t.Fatalf("third write waits %v, want 1s (the write bucket)", w)
	}
	// A read draws from the global bucket only: not held by the writes.
	r = s.mustReserve(t, "r")
	if r.wait != 0 || len(r.counts) != 1 || r.counts["global"] != 4 {
		t.Fatalf("read %+v, want no wait and only the global bucket", r)
	}
}

func TestObserveSyncsTheModelToTheTenant(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 5, Rate: 10})
	r := s.mustReserve(t, "w") // the model thinks 4 tokens remain
	// The tenant says none remain (someone else spent them).
	s.mustAnswer(t, answer{bucket: "global", remaining: 0, count: r.counts["global"]})
	if w := s.mustReserve(t, "w").wait; w != 100*time.Millisecond {
		t.Fatalf("after a sync down the next call waits %v, want 100ms", w)
	}
	// Calls reserved since the answer's call count as spent: two more
	// reservations leave the tenant's 0 + refill short by two.
	s.at(time.Second) // 10 tokens of refill: the model is full again
	r1 := s.mustReserve(t, "w")
	for i := 0; i < 4; i++ {
		s.mustReserve(t, "w")
	}
	// The tenant's answer to r1 says 1 remained after it; four calls were
	// reserved after r1, so the model must be empty and owe 3 tokens.
	s.mustAnswer(t, answer{bucket: "global", remaining: 1, count: r1.counts["global"]})
	if w := s.mustReserve(t, "w").wait; w != 400*time.Millisecond {
		t.Fatalf("after a sync with calls in flight the next call waits %v, want 400ms", w)
	}
}

func TestObserveSyncsUpKeepingOneTokenInHand(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 10, Rate: 1})
	for i := 0; i < 10; i++ {
		s.mustReserve(t, "w") // the model is empty
	}
	r := s.mustReserve(t, "w") // waits 1 s in the model
	if r.wait != time.Second {
		t.Fatalf("wait %v", r.wait)
	}
	// The tenant refills faster than modelled and says 8 tokens remain after
	// r: the model takes two of them (at most two per answer, one always
	// kept in hand: a near-full bucket that does not bind would otherwise
	// hand a burst to every spaced call).
	// An answer to a call sent at once with others proves nothing: a call
	// reserved before it may still be on its way.
	s.mustAnswer(t, answer{bucket: "global", remaining: 8, count: r.counts["global"]})
	extra := s.mustReserve(t, "w")
	if extra.wait != 2*time.Second {
		t.Fatalf("an unsettled answer moved the model up: next wait %v, want 2s", extra.wait)
	}
	s.mustCancel(t, extra)
	s.mustAnswer(t, answer{bucket: "global", remaining: 8, count: r.counts["global"], waited: true})
	// Without the answer the next call would wait 3 s (the cancelled
	// call's slot stays taken); two tokens sooner, 1 s.
	got := waits(t, s, "w", 3)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if !equalDurations(got, want) {
		t.Fatalf("waits after a sync up %v, want %v", got, want)
	}
	// The next spaced answer that shows spare tokens hands two more.
	s.mustAnswer(t, answer{bucket: "global", remaining: 8, count: r.counts["global"], waited: true})
	if got := waits(t, s, "w", 1); !equalDurations(got, []time.Duration{2 * time.Second}) {
		t.Fatalf("after a second sync up the next call waits %v, want 2s", got)
	}
	// Having one token more than modelled changes nothing (noise).
	s.at(10 * time.Second)
	r = s.mustReserve(t, "w")
	before := s.mustReserve(t, "w")
	s.mustAnswer(t, answer{bucket: "global", remaining: 9, count: r.counts["global"], waited: true})
	after := s.mustReserve(t, "w")
	if after.wait != 0 || before.wait != 0 {
		t.Fatalf("waits %v %v", before.wait, after.wait)
	}
}

func TestObserveThrottledPausesAndTakesTheCallBack(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 5, Rate: 10})
	s.mustSeed(t, "write", "w", Bucket{Burst: 5, Rate: 10})
	r := s.mustReserve(t, "w")
	p := s.mustAnswer(t, answer{bucket: "global", remaining: 0, count: r.counts["global"], refused: true, pause: 2 * time.Second, drewFrom: r.counts}).pause
	if p != 2*time.Second {
		t.Fatalf("pause %v, want 2s", p)
	}
	next := s.mustReserve(t, "w")
	if next.wait < 2*time.Second || next.pause != 2*time.Second {
		t.Fatalf("a call after a 429 waits %v (pause %v), want at least the 2 s pause", next.wait, next.pause)
	}
	for _, id := range []string{"global", "write"} {
		if g, _ := s.rdb.HGet(context.Background(), s.key, id+":gone").Result(); g != "1" || next.counts[id] != 2 {
			t.Fatalf("%s: counter %d, taken back %q: want 2 (counters only grow) and the refused call (1) taken back", id, next.counts[id], g)
		}
	}
	// A shorter pause does not cut a longer one short.
	if p := s.mustAnswer(t, answer{refused: true, pause: time.Second}).pause; p != 2*time.Second {
		t.Fatalf("pause %v after a shorter one, want 2s", p)
	}
}

func TestSeedKeepsWhatTheFleetLearned(t *testing.T) {
	s := newFixedStore(t)
	ctx := context.Background()
	s.mustSeed(t, "write", "w", Bucket{Burst: 5, Rate: 0.4})
	if err := s.tune(ctx, tune{bucket: "write", rate: 9.8, source: "measured"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.seed(ctx, "write", "w", Bucket{Burst: 5, Rate: 0.4}, "plan", false); ok {
		t.Fatal("a restart's plan overwrote a learned rate")
	}
	st, _ := s.state(ctx)
	if len(st.Buckets) != 1 || st.Buckets[0].Rate != 9.8 || st.Buckets[0].Source != "measured" {
		t.Fatalf("state %+v", st)
	}
	if ok, _ := s.seed(ctx, "write", "w", Bucket{Burst: 5, Rate: 3}, "override", true); !ok {
		t.Fatal("an override did not replace the learned rate")
	}
	st, _ = s.state(ctx)
	if st.Buckets[0].Rate != 3 || st.Buckets[0].Source != "override" {
		t.Fatalf("state after override %+v", st)
	}
}

func TestReserveBeyondTheHorizonReservesNothing(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 1, Rate: 2})
	ctx := context.Background()
	r, _ := s.reserve(ctx, "w", 100*time.Millisecond)
	if !r.reserved() || r.wait != 0 {
		t.Fatalf("first call %+v", r)
	}
	r, _ = s.reserve(ctx, "w", 100*time.Millisecond)
	if r.reserved() || r.wait != 400*time.Millisecond {
		t.Fatalf("a slot 500 ms away with a 100 ms horizon: %+v, want nothing reserved and ask again in 400ms", r)
	}
	s.at(450 * time.Millisecond)
	r, _ = s.reserve(ctx, "w", 100*time.Millisecond)
	if !r.reserved() || r.wait != 50*time.Millisecond || r.counts["global"] != 2 {
		t.Fatalf("asked again within the horizon: %+v, want reserved in 50ms as the second call", r)
	}
}

// A window bucket lets its size through per window, half its length
// over its size apart: the calls beyond go at the next window's start
// (plus the clock margin), counted in that window; an answer from a
// later window moves the model to it.
func TestWindowBucketReservesWindowByWindow(t *testing.T) {
	s := newFixedStore(t)
	ctx := context.Background()
	s.mustSeed(t, "w3", "w", Bucket{Burst: 3, Rate: 3})
	end := t0.Add(time.Second)
	if err := s.tune(ctx, tune{bucket: "w3", window: time.Second, windowEnd: end, windowUsed: 1}); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for range 5 {
		waits = append(waits, s.mustReserve(t, "w").wait)
	}
	// 1 used: two more, 1/6 s apart (half the window over its size),
	// then three from the next window's start (1 s + 10 ms margin: a
	// hundredth of the window), 1/6 s apart.
	us := time.Microsecond
	want := []time.Duration{166666 * us, 333333 * us, 1010 * time.Millisecond, 1166666 * us, 1333333 * us}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	if r := s.mustReserve(t, "w"); r.wait != 2010*time.Millisecond {
		t.Errorf("sixth call waits %v, want 2.01s (the window after)", r.wait)
	}
	st, err := s.state(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Buckets) != 1 || st.Buckets[0].Window != time.Second {
		t.Errorf("state %v, want w3 as a 1 s window", st.Buckets)
	}
}

// A call given back, or refused, drew nothing: the calls counted after
// an answer's call are those reserved after it less those taken back
// after it — a call taken back before it must not lower the count (it
// did: counters were decremented, two calls shared one, and an answer
// read the bucket fuller than it was).
func TestCallsTakenBackCountOnlyAfterTheirPlace(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "global", "rw", Bucket{Burst: 10, Rate: 1})
	a := s.mustReserve(t, "w")
	b := s.mustReserve(t, "w")
	c := s.mustReserve(t, "w")
	d := s.mustReserve(t, "w")
	s.mustCancel(t, a) // older than b: b's answer still counts c and d
	got := s.mustAnswer(t, answer{bucket: "global", remaining: 5, count: b.counts["global"]})
	if got.tokens != 3 {
		t.Fatalf("tokens after b's answer %v, want 3 (5 less c and d)", got.tokens)
	}
	s.mustCancel(t, d) // newer than b: b's answer counts c only
	got = s.mustAnswer(t, answer{bucket: "global", remaining: 5, count: b.counts["global"]})
	if got.tokens != 4 {
		t.Fatalf("tokens after d was given back %v, want 4", got.tokens)
	}
	s.mustAnswer(t, answer{bucket: "global", remaining: 0, count: c.counts["global"], refused: true, drewFrom: c.counts})
	got = s.mustAnswer(t, answer{bucket: "global", remaining: 5, count: b.counts["global"]})
	if got.tokens != 5 {
		t.Fatalf("tokens after c was refused %v, want 5", got.tokens)
	}
	if e := s.mustReserve(t, "w"); e.counts["global"] != 5 {
		t.Fatalf("the next call's counter %d, want 5 (counters only grow)", e.counts["global"])
	}
}

// A window of unknown length lets its size through from its end on, in a
// window whose end is unknown; used up, it lets one call through a second
// (a probe), at once after a probe that got through, until a 429's Reset
// says where the window ends.
func TestWindowOfUnknownLengthProbes(t *testing.T) {
	s := newFixedStore(t)
	ctx := context.Background()
	s.mustSeed(t, "w3", "w", Bucket{Burst: 3, Rate: 3})
	if err := s.tune(ctx, tune{bucket: "w3", window: -1, windowEnd: t0.Add(time.Second), windowUsed: 3}); err != nil {
		t.Fatal(err)
	}
	var rs []reservation
	for range 5 {
		rs = append(rs, s.mustReserve(t, "w"))
	}
	// Full until 1 s: three from its end on (+20 ms margin), then a probe
	// a second later, and the next a second after that.
	ms := time.Millisecond
	want := []time.Duration{1020 * ms, 1020 * ms, 1020 * ms, 2020 * ms, 3020 * ms}
	for i := range want {
		if rs[i].wait != want[i] {
			t.Fatalf("call %d waits %v, want %v", i+1, rs[i].wait, want[i])
		}
	}
	// The first probe got through: the next may go at once.
	s.at(2100 * ms)
	s.mustAnswer(t, answer{bucket: "w10", remaining: 5, drewFrom: map[string]int64{"w3": rs[3].counts["w3"]}, reservedAt: 0})
	if r := s.mustReserve(t, "w"); r.wait != 0 {
		t.Fatalf("after a probe got through, the next waits %v, want 0", r.wait)
	}
	// A 429 says the window ends at 5 s: nothing goes before.
	s.mustAnswer(t, answer{bucket: "w3", remaining: 0, refused: true, count: 6, drewFrom: map[string]int64{"w3": 6}, hasReset: true, resetIn: 2900 * ms})
	if r := s.mustReserve(t, "w"); r.wait != 2920*ms {
		t.Fatalf("after a 429 with Reset in 2.9 s, the next waits %v, want 2.92s", r.wait)
	}
}

// A bucket still at its first guess is lifted by any answer whose Reset
// proves a faster refill (a cold start's burst: the first answer says
// Remaining 4 of 5, the third 0 with the same Reset), not only by the
// answer that first described it; once the learning has set its rate, an
// answer's Reset no longer moves it.
func TestGuessedBucketIsLiftedByALaterAnswersReset(t *testing.T) {
	s := newFixedStore(t)
	s.mustSeed(t, "plan-write", "w", Bucket{Burst: 5, Rate: 0.4})
	rate := func() float64 {
		t.Helper()
		v, err := s.rdb.HGet(context.Background(), s.key, "w5:rate").Float64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	r := s.mustReserve(t, "w")
	s.mustAnswer(t, answer{bucket: "w5", remaining: 4, startBurst: 5, startRate: 0.55, drewFrom: r.counts})
	if got := rate(); got != 0.55 {
		t.Fatalf("first described at %v/s, want the first answer's 0.55", got)
	}
	s.mustAnswer(t, answer{bucket: "w5", remaining: 0, startBurst: 5, startRate: 2.8, drewFrom: r.counts})
	if got := rate(); got != 2.8 {
		t.Fatalf("after an answer whose Reset proves 2.8/s the guess is %v/s, want 2.8", got)
	}
	s.mustAnswer(t, answer{bucket: "w5", remaining: 3, startBurst: 5, startRate: 1, drewFrom: r.counts})
	if got := rate(); got != 2.8 {
		t.Fatalf("an answer proving less lowered the guess to %v/s", got)
	}
	if err := s.tune(context.Background(), tune{bucket: "w5", rate: 2, source: "measured"}); err != nil {
		t.Fatal(err)
	}
	s.mustAnswer(t, answer{bucket: "w5", remaining: 0, startBurst: 5, startRate: 5, drewFrom: r.counts})
	if got := rate(); got != 2 {
		t.Fatalf("a measured bucket was moved by an answer's Reset to %v/s, want the measured 2", got)
	}
}
