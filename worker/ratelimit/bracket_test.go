package ratelimit

import (
	"math"
	"sort"
	"testing"
	"time"
)

// tenantBucket is a token bucket as the tenant keeps it.
type tenantBucket struct {
	burst, rate, tokens float64
	last                time.Time
}

func (b *tenantBucket) take(at time.Time) bool {
	b.tokens = math.Min(b.burst, b.tokens+b.rate*at.Sub(b.last).Seconds())
	b.last = at
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// drive sends calls at the paces given (calls per second, for how long)
// from t0 into b, and returns the arrivals it accepted and the first
// refusal after the last phase began (zero when none).
func drive(b *tenantBucket, t0 time.Time, phases ...[2]float64) (accepted []time.Time, refused time.Time) {
	t := t0
	for i, ph := range phases {
		if ph[0] == 0 {
			t = t.Add(time.Duration(ph[1] * float64(time.Second)))
			continue
		}
		step := time.Duration(float64(time.Second) / ph[0])
		end := t.Add(time.Duration(ph[1] * float64(time.Second)))
		for ; t.Before(end); t = t.Add(step) {
			if b.take(t) {
				accepted = append(accepted, t)
			} else if i == len(phases)-1 {
				return accepted, t
			}
		}
	}
	return accepted, time.Time{}
}

func TestBracketMeasuresARefillThatACountOverTheSpanReadsLow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 5, rate: 10, last: t0} // empty: it just refused at t0
	// The fleet pauses a second (the bucket fills and throws refill
	// away), paces below the refill for two seconds as it climbs back,
	// then above it until the bucket refuses.
	calls, refused := drive(b, t0, [2]float64{0, 1}, [2]float64{8, 2}, [2]float64{13, 10})
	if refused.IsZero() {
		t.Fatal("the bucket never refused")
	}
	count := float64(len(calls)) / refused.Sub(t0).Seconds()
	lo, hi := bracket(calls, nil, 5, false, t0, refused)
	t.Logf("span %v: %d accepted, count/span %.2f/s, bracket [%.2f, %.2f]/s (refill 10/s)", refused.Sub(t0), len(calls), count, lo, hi)
	if count > 9 {
		t.Fatalf("count/span %.2f: the case does not show what it is for", count)
	}
	if lo < 9.5 || lo > 10 || hi < 10 || hi > 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a tight one around 10", lo, hi)
	}
	// afterRefusal takes a tight bracket's middle: nearer the refill
	// than either end.
	if mid := math.Sqrt(lo * hi); math.Abs(mid-10) > math.Min(10-lo, hi-10) || math.Abs(mid-10) > 0.2 {
		t.Errorf("middle %.2f of [%.2f, %.2f], want within 2%% of 10 and nearer than either end", mid, lo, hi)
	}
}

func TestBracketOfABucketThatBoundOnlyAtTheEndIsLoose(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 5, rate: 10, tokens: 5, last: t0}
	// Paced elsewhere at 4/s, then a burst: the bucket refuses, but
	// what it let through says little of its refill.
	calls, refused := drive(b, t0, [2]float64{4, 5}, [2]float64{100, 1})
	lo, hi := bracket(calls, nil, 5, true, t0.Add(-time.Microsecond), refused)
	if lo > 10 || hi < 10 || hi <= 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a loose one holding 10", lo, hi)
	}
}

func TestBracketFromAFullBucketAtTheFirstCalls(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 5, rate: 10, tokens: 5, last: t0}
	calls, refused := drive(b, t0, [2]float64{20, 5})
	lo, hi := bracket(calls, nil, 5, true, t0.Add(-time.Microsecond), refused)
	if lo < 7 || lo > 10 || hi < 10 {
		t.Errorf("bracket [%.2f, %.2f], want it to hold 10", lo, hi)
	}
}

func TestBracketWithInstantsFarOffIsNotAMeasurement(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 10, rate: 20, last: t0}
	calls, refused := drive(b, t0, [2]float64{0, 0.5}, [2]float64{25, 10})
	if refused.IsZero() {
		t.Fatal("the bucket never refused")
	}
	if lo, hi := bracket(calls, nil, 10, false, t0, refused); lo < 19 || hi > 1.15*lo {
		t.Fatalf("without the rough instants: bracket [%.2f, %.2f], want a tight one near 20", lo, hi)
	}
	// The answers of four slow calls put them 5 ms apart just after the
	// earlier refusal.
	for i := 1; i <= 4; i++ {
		calls[len(calls)/2+i] = t0.Add(time.Duration(i) * 5 * time.Millisecond)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].Before(calls[j]) })
	lo, hi := bracket(calls, nil, 10, false, t0, refused)
	t.Logf("bracket [%.2f, %.2f] (refill 20/s)", lo, hi)
	if lo > 20 || hi <= 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a loose one whose lower end is not above 20", lo, hi)
	}
}

func TestBracketCountsTheOtherClassForTheUpperEndWhileSharingIsUndecided(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 10, rate: 20, last: t0} // one bucket, empty at t0
	var writes, reads []time.Time
	var refused time.Time
	// Writes at 13/s and reads at 9/s draw from it, interleaved, until
	// a write is refused.
	w, r := t0.Add(500*time.Millisecond), t0.Add(520*time.Millisecond)
	for refused.IsZero() && w.Before(t0.Add(20*time.Second)) {
		if w.Before(r) {
			if b.take(w) {
				writes = append(writes, w)
			} else {
				refused = w
			}
			w = w.Add(time.Second / 13)
		} else {
			if b.take(r) {
				reads = append(reads, r)
			}
			r = r.Add(time.Second / 9)
		}
	}
	if refused.IsZero() {
		t.Fatal("the bucket never refused a write")
	}
	alone, aloneHi := bracket(writes, nil, 10, false, t0, refused)
	lo, hi := bracket(writes, reads, 10, false, t0, refused)
	t.Logf("writes alone [%.2f, %.2f]; with the reads for the upper end [%.2f, %.2f] (one bucket, 20/s)", alone, aloneHi, lo, hi)
	if aloneHi > 1.15*alone || aloneHi > 16 {
		t.Fatalf("writes alone [%.2f, %.2f]: the case does not show a tight bracket around the writes' share", alone, aloneHi)
	}
	if hi < 20 || hi <= 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a loose one whose upper end holds the bucket's 20/s", lo, hi)
	}
}

// A hidden bucket between bounds whose pace held the middle for 3 s
// without a refusal is closed in: measured at the middle of what held and
// the upper end, and free to climb toward the upper end. (It was capped at
// the old middle: a virtual Enterprise run with slow answers paced its
// 10/s write bucket at 9.2/s for 30 s.)
func TestHiddenBucketClosedInClimbsPastTheOldMiddle(t *testing.T) {
	l, _ := fixedLimiter(t, Buckets{})
	l.learn = newLearning(l.cfg.Learner)
	lg := l.learn
	// A 429 left it between 8.39 (what it let through) and 10.11 (the
	// replay's upper end): paced at the middle, 9.209.
	mid := math.Sqrt(8.388 * 10.11)
	lg.model = map[string]BucketState{"w5": {ID: "w5", Classes: "w", Burst: 5, Rate: 9.209, Source: "hidden"}}
	lg.bound["w5"], lg.lower["w5"], lg.upper["w5"] = true, 8.388, 10.11
	lg.delivered["w5"], lg.ceiling["w5"] = mid, mid
	lg.demand["w"] = true
	lg.cut["w5"] = t0
	rate := 9.209
	for s := 3; s <= 10; s++ {
		for _, b := range l.retireOrProbeHidden(t0.Add(time.Duration(s) * time.Second)) {
			if b.ID == "w5" {
				rate = b.Rate
				lg.model["w5"] = b
			}
		}
	}
	if lg.ceiling["w5"] != 10.11 || lg.bound["w5"] {
		t.Errorf("closed in: ceiling %.3f, bound %v; want the upper end 10.11 and measured", lg.ceiling["w5"], lg.bound["w5"])
	}
	if rate < 9.4 || rate > 10.11 {
		t.Errorf("pace 8 s after the refusal %.3f, want past the old middle (%.3f) and under the upper end", rate, mid)
	}
	t.Logf("pace %.3f/s, measured %.3f/s, ceiling %.2f/s", rate, lg.delivered["w5"], lg.ceiling["w5"])
}
