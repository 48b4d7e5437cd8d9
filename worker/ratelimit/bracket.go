package ratelimit

import (
	"math"
	"sort"
	"time"
)

// What a bucket's refusals and the calls it accepted between them say
// about its refill.
//
// A bucket that refuses a call is empty. Between two of its refusals it
// accepted calls at known instants (the answers' arrival at the tenant).
// Counting them over the span (n/span) reads low whenever the bucket was
// full for a while in between — the fleet paused after the first refusal,
// or paced below the refill as it climbed back — because a full bucket
// throws its refill away. Replaying the calls through a bucket of the
// known size instead gives both bounds, whatever the pace did:
//
//   - lower: the slowest refill under which every accepted call found a
//     token (starting empty at the first refusal, or full at the first
//     call). The stretch where the calls came tightest against the
//     bucket decides it; stretches where it sat full cost nothing.
//   - upper: the fastest refill under which the bucket was still empty at
//     the refusal that ends the span.
//
// When the calls ran against the bucket at the end of the span the two
// meet, and the refill is measured to within a few percent; when the pace
// was set elsewhere throughout, they stay far apart and the lower one is
// only a bound.

// tokenSlack is the share of a token the refusal may find above one (half
// that, a replayed call may be short of); instantSlack is how far a call's
// instant may be off (arrivals are estimated from round trips, and the
// answers of calls sent together overtake each other).
const (
	tokenSlack   = 0.5
	instantSlack = 25 * time.Millisecond
)

// keepAccepted is how long the instants of accepted calls are kept for the
// replay: the longest span looked back over, and some.
const keepAccepted = deliverySpanLast + 10*time.Second

// noteAccepted records the arrival of an accepted call of class cls.
func (lg *learning) noteAccepted(cls string, at time.Time) {
	a := append(lg.acceptedAt[cls], at)
	// Answers overtake each other by a few ms: keep it sorted.
	for i := len(a) - 1; i > 0 && a[i].Before(a[i-1]); i-- {
		a[i], a[i-1] = a[i-1], a[i]
	}
	cut := 0
	for cut < len(a) && at.Sub(a[cut]) > keepAccepted {
		cut++
	}
	lg.acceptedAt[cls] = a[cut:]
}

// callsBetween returns the arrivals of accepted calls of the classes in
// (from, to), sorted.
func (lg *learning) callsBetween(classes string, from, to time.Time) []time.Time {
	var out []time.Time
	for _, c := range classes {
		a := lg.acceptedAt[string(c)]
		i, j := arrivedIn(a, from, to)
		out = append(out, a[i:j]...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// countBetween is how many accepted calls of the classes in classes
// arrived in (from, to): len(callsBetween(…)) without building the list.
func (lg *learning) countBetween(classes string, from, to time.Time) int {
	n := 0
	for _, c := range classes {
		i, j := arrivedIn(lg.acceptedAt[string(c)], from, to)
		n += j - i
	}
	return n
}

// arrivedIn returns the bounds [i, j) of the instants of the sorted a that
// fall in (from, to); i == j when none do.
func arrivedIn(a []time.Time, from, to time.Time) (i, j int) {
	i = sort.Search(len(a), func(k int) bool { return a[k].After(from) })
	j = sort.Search(len(a), func(k int) bool { return !a[k].Before(to) })
	return i, max(i, j)
}

// fits reports whether every call finds a token (within the slacks) in a
// bucket of size burst refilling at r that holds start tokens at from.
func fits(calls []time.Time, burst int, r, start float64, from time.Time) bool {
	b := float64(burst)
	tokens, last := start, from
	for _, t := range calls {
		tokens = math.Min(b, tokens+r*t.Sub(last).Seconds())
		last = t
		if tokens+r*instantSlack.Seconds() < 1-tokenSlack/2 {
			return false
		}
		tokens--
	}
	return true
}

// left is how many tokens such a bucket holds at to, the calls drawn
// (none short: a call without a token leaves it at zero).
func left(calls []time.Time, burst int, r, start float64, from, to time.Time) float64 {
	b := float64(burst)
	tokens, last := start, from
	for _, t := range calls {
		tokens = math.Min(b, tokens+r*t.Sub(last).Seconds())
		last = t
		tokens = math.Max(0, tokens-1)
	}
	return math.Min(b, tokens+r*to.Sub(last).Seconds())
}

// bracket is the refill a bucket of size burst must have had for the calls
// it accepted between from and to to find tokens (lo) and for it to be
// empty at to (hi; +Inf when no rate is ruled out). full says the bucket
// was full at from (its first calls), else empty (a refusal: it held less
// than one token, which the lower bound grants it and the upper one does
// not). When they cross, an instant was off by more than the slack (the
// answer of a slow or retried call): a few calls placed close together by
// such an answer read as a refill many times the true one. Crossed by a
// little, the two swap; crossed far, the bracket is loose, its lower end
// what the count alone proves (n calls from empty: at least (n − 1) over
// the span).
//
// others are calls of the other class that may have drawn from the same
// bucket (it is not known yet whether the two classes share it): they
// count for the upper end only. Left out, a bucket that reads drained as
// well would look like a slower bucket emptied by writes alone, a tight
// bracket around the writes' share of it.
func bracket(calls, others []time.Time, burst int, full bool, from, to time.Time) (lo, hi float64) {
	if burst <= 0 || !to.After(from) {
		return 0, math.Inf(1)
	}
	startLo, startHi := 1.0, 0.0
	if full {
		startLo, startHi = float64(burst), float64(burst)
	}
	if !fits(calls, burst, 0, startLo, from) {
		a, z := 0.0, math.Max(1, 4*float64(len(calls))/to.Sub(from).Seconds())
		for !fits(calls, burst, z, startLo, from) && z < 1e6 {
			a, z = z, z*4
		}
		_, lo = edge(a, z, func(r float64) bool { return !fits(calls, burst, r, startLo, from) })
	}
	// What it holds at to grows with the rate: the fastest rate that
	// leaves it empty (the refusal's instant may be a little late).
	end := to.Add(-instantSlack)
	drew := calls
	if len(others) > 0 {
		drew = append(append([]time.Time(nil), calls...), others...)
		sort.Slice(drew, func(i, j int) bool { return drew[i].Before(drew[j]) })
	}
	empty := func(r float64) bool { return left(drew, burst, r, startHi, from, end) < 1+tokenSlack }
	if !empty(lo) {
		a, _ := edge(0, lo, empty)
		if lo > 1.15*a && !full {
			return math.Min(a, float64(len(calls)-1)/to.Sub(from).Seconds()), lo
		}
		return a, lo
	}
	a, z := lo, math.Max(1, 2*lo)
	for empty(z) {
		if z >= 1e6 {
			return lo, math.Inf(1)
		}
		a, z = z, z*4
	}
	a, _ = edge(a, z, empty)
	return lo, a
}

// edge narrows [a, z], where below holds at a and not at z (below is true
// up to some rate and false past it), to that rate within 2⁻⁴⁰ of the span.
func edge(a, z float64, below func(float64) bool) (float64, float64) {
	for i := 0; i < 40; i++ {
		if mid := (a + z) / 2; below(mid) {
			a = mid
		} else {
			z = mid
		}
	}
	return a, z
}
