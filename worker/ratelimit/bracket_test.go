package ratelimit

import (
	"math"
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
	lo, hi := bracket(calls, 5, false, t0, refused)
	t.Logf("span %v: %d accepted, count/span %.2f/s, bracket [%.2f, %.2f]/s (refill 10/s)", refused.Sub(t0), len(calls), count, lo, hi)
	if count > 9 {
		t.Fatalf("count/span %.2f: the case does not show what it is for", count)
	}
	if lo < 9.5 || lo > 10 || hi < 10 || hi > 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a tight one around 10", lo, hi)
	}
}

func TestBracketOfABucketThatBoundOnlyAtTheEndIsLoose(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 5, rate: 10, tokens: 5, last: t0}
	// Paced elsewhere at 4/s, then a burst: the bucket refuses, but
	// what it let through says little of its refill.
	calls, refused := drive(b, t0, [2]float64{4, 5}, [2]float64{100, 1})
	lo, hi := bracket(calls, 5, true, t0.Add(-time.Microsecond), refused)
	if lo > 10 || hi < 10 || hi <= 1.15*lo {
		t.Errorf("bracket [%.2f, %.2f], want a loose one holding 10", lo, hi)
	}
}

func TestBracketFromAFullBucketAtTheFirstCalls(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &tenantBucket{burst: 5, rate: 10, tokens: 5, last: t0}
	calls, refused := drive(b, t0, [2]float64{20, 5})
	lo, hi := bracket(calls, 5, true, t0.Add(-time.Microsecond), refused)
	if lo < 7 || lo > 10 || hi < 10 {
		t.Errorf("bracket [%.2f, %.2f], want it to hold 10", lo, hi)
	}
}
