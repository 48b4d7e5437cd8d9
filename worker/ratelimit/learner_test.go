package ratelimit

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// tokenBucket is the tenant side of a test: Auth0's token bucket, with the
// fleet-wide counter as orgconn keeps it: every reservation adds one, and a
// 429 takes its call back out once the answer is seen, lag calls later.
type tokenBucket struct {
	limit   int
	rate    float64
	tokens  float64
	last    time.Time
	count   int64 // calls that drew from it (the fleet-wide counter)
	lag     int   // calls reserved before a 429's answer is seen
	pending []int // calls left until each seen 429 is taken out
}

func newTokenBucket(limit int, rate float64) *tokenBucket {
	return &tokenBucket{limit: limit, rate: rate, tokens: float64(limit), last: t0}
}

// call is one call arriving at t; it returns the sample the answer gives.
func (b *tokenBucket) call(t time.Time) Sample {
	b.tokens = math.Min(float64(b.limit), b.tokens+t.Sub(b.last).Seconds()*b.rate)
	b.last = t
	for i := 0; i < len(b.pending); i++ {
		if b.pending[i]--; b.pending[i] < 0 {
			b.count--
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			i--
		}
	}
	b.count++
	s := Sample{At: t, Limit: b.limit, Count: b.count}
	if b.tokens >= 1 {
		b.tokens--
	} else {
		s.Throttled = true
		b.pending = append(b.pending, b.lag)
	}
	s.Remaining = int(math.Floor(b.tokens))
	return s
}

// fixedWindow is a fixed-window limiter: limit calls per window.
type fixedWindow struct {
	limit  int
	window time.Duration
	start  time.Time
	used   int
	count  int64
}

func (w *fixedWindow) call(t time.Time) Sample {
	for t.Sub(w.start) >= w.window {
		w.start = w.start.Add(w.window)
		w.used = 0
	}
	w.count++
	s := Sample{At: t, Limit: w.limit, Count: w.count}
	if w.used < w.limit {
		w.used++
	} else {
		s.Throttled = true
		w.count-- // taken back out when the 429 is seen
	}
	s.Remaining = w.limit - w.used
	return s
}

func within(t *testing.T, what string, got, want, tolerance float64) {
	t.Helper()
	if math.Abs(got-want) > tolerance*want {
		t.Errorf("%s = %.3f, want %.3f ± %.0f%%", what, got, want, tolerance*100)
	}
}

// every returns the send times of calls at rate per second from start for d.
func every(start time.Time, rate float64, d time.Duration) []time.Time {
	var out []time.Time
	step := time.Duration(float64(time.Second) / rate)
	for t := start; t.Before(start.Add(d)); t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

func TestLearnerMeasuresATokenBucket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  int
		rate   float64
		send   float64 // calls per second sent
		within time.Duration
		lag    int
	}{
		{"20 per second, sent a little faster", 10, 20, 22, 3 * time.Second, 0},
		{"20 per second, sent faster, 429s seen 8 calls late", 10, 20, 24, 3 * time.Second, 8},
		{"20 per second, burst then exactly the rate", 10, 20, 20, 3 * time.Second, 0},
		{"essentials writes: 25 a minute", 5, 25.0 / 60, 0.5, 40 * time.Second, 0},
		{"enterprise global: 16 per second", 50, 16, 30, 5 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTokenBucket(tc.limit, tc.rate)
			b.lag = tc.lag
			l := NewLearner(LearnerConfig{Window: 60 * time.Second})
			var est Estimate
			var ok bool
			// The burst first, then the steady sending rate.
			for i := 0; i < tc.limit; i++ {
				est, ok = l.Observe(b.call(t0.Add(time.Duration(i) * time.Millisecond)))
			}
			for _, at := range every(t0.Add(10*time.Millisecond), tc.send, tc.within) {
				est, ok = l.Observe(b.call(at))
			}
			if !ok || est.Basis != Measured {
				t.Fatalf("after %v: estimate %+v, ok %v; want a measurement", tc.within, est, ok)
			}
			within(t, "rate", est.Rate, tc.rate, 0.03)
		})
	}
}

func TestLearnerBucketThatNeverBinds(t *testing.T) {
	// Calls at 8/s into a bucket refilled at 20/s: it is always nearly
	// full, the rate cannot be measured, but it is at least 8/s.
	b := newTokenBucket(10, 20)
	l := NewLearner(LearnerConfig{})
	var est Estimate
	for _, at := range every(t0, 8, 5*time.Second) {
		est, _ = l.Observe(b.call(at))
	}
	if est.Basis != AtLeast {
		t.Fatalf("estimate %+v, want an at-least bound", est)
	}
	within(t, "lower bound", est.Rate, 8, 0.1)
}

func TestLearnerFixedWindow(t *testing.T) {
	// 20 calls per 1-second window, calls sent at 25/s: the learner cannot
	// see a token bucket, but must settle near 20/s, not above.
	w := &fixedWindow{limit: 20, window: time.Second, start: t0}
	l := NewLearner(LearnerConfig{})
	var est Estimate
	for _, at := range every(t0, 25, 10*time.Second) {
		est, _ = l.Observe(w.call(at))
	}
	if est.Rate <= 0 || est.Rate > 20*1.05 {
		t.Fatalf("estimate %+v, want a rate near 20/s and not above it", est)
	}
	within(t, "rate", est.Rate, 20, 0.15)
}

func TestLearnerTwoBucketsDescribedInTurn(t *testing.T) {
	// Every call draws from a global bucket (10, 20/s) and a write bucket
	// (5, 10/s); each answer describes one of them, in turn. Calls are sent
	// at the write bucket's pace.
	global, write := newTokenBucket(10, 20), newTokenBucket(5, 10)
	l := NewLearner(LearnerConfig{})
	for i, at := range every(t0, 10.5, 8*time.Second) {
		g, w := global.call(at), write.call(at)
		if w.Throttled {
			// A call refused by one bucket takes nothing from the other.
			global.tokens++
			g.Throttled = true
		}
		if i%2 == 0 {
			l.Observe(g)
		} else {
			l.Observe(w)
		}
	}
	ests := map[int]Estimate{}
	for _, e := range l.Estimates() {
		ests[e.Limit] = e
	}
	if e := ests[5]; e.Basis != Measured {
		t.Fatalf("write bucket: %+v, want measured", e)
	}
	within(t, "write bucket rate", ests[5].Rate, 10, 0.05)
	if e := ests[10]; e.Basis != AtLeast || e.Rate < 9 {
		t.Fatalf("global bucket: %+v, want at least ~10/s (it never binds)", e)
	}
}

func TestLearnerSeesTheRateHalved(t *testing.T) {
	b := newTokenBucket(10, 20)
	l := NewLearner(LearnerConfig{})
	var est Estimate
	change := t0.Add(6 * time.Second)
	var when time.Time
	for _, at := range every(t0, 20, 12*time.Second) {
		if !at.Before(change) && b.rate == 20 {
			b.tokens = math.Min(b.tokens+at.Sub(b.last).Seconds()*b.rate, float64(b.limit))
			b.last, b.rate = at, 10
		}
		est, _ = l.Observe(b.call(at))
		if when.IsZero() && at.After(change) && math.Abs(est.Rate-10) < 1.5 {
			when = at
		}
	}
	within(t, "rate after the change", est.Rate, 10, 0.08)
	if when.IsZero() || when.Sub(change) > 3*time.Second {
		t.Fatalf("the estimate reached 10±1.5/s %v after the change; want within 3 s", when.Sub(change))
	}
	t.Logf("converged %v after the change", when.Sub(change))
}

func TestLearnerIgnoresUnusableSamples(t *testing.T) {
	l := NewLearner(LearnerConfig{})
	for _, s := range []Sample{{At: t0, Limit: 0, Remaining: 3, Count: 1}, {At: t0, Limit: 10, Remaining: -1, Count: 2}} {
		if _, ok := l.Observe(s); ok {
			t.Errorf("Observe(%+v) gave an estimate", s)
		}
	}
	if len(l.Estimates()) != 0 {
		t.Fatalf("estimates from unusable samples: %v", l.Estimates())
	}
}

func TestLearnerTakesSamplesOutOfOrder(t *testing.T) {
	b := newTokenBucket(10, 20)
	l := NewLearner(LearnerConfig{})
	var samples []Sample
	for _, at := range every(t0, 25, 3*time.Second) {
		samples = append(samples, b.call(at))
	}
	for i := 0; i+1 < len(samples); i += 2 {
		samples[i], samples[i+1] = samples[i+1], samples[i] // answers arrive in pairs swapped
	}
	var est Estimate
	for _, s := range samples {
		est, _ = l.Observe(s)
	}
	within(t, "rate", est.Rate, 20, 0.03)
}

// A bucket that an answer finds empty when the fleet's calls could not
// have emptied it were it refilling at the rate its Reset implies is a
// window (the 120-per-15-s write window, drained by 10 calls a second,
// refuses with its Reset 2 s away: 60/s); one that the calls could have
// emptied is not (a bucket of 10 at 20/s, drained by 20 calls a second).
func TestProvisionalWindowFromWhatTheCallsCouldDrain(t *testing.T) {
	for _, c := range []struct {
		name          string
		limit, perSec int
		reset         time.Duration
		pace          float64 // the slowest rate pacing writes in the model
		want          bool
	}{
		{"window", 120, 10, 2 * time.Second, 10, true},
		{"continuous", 10, 20, time.Second, 20, false},
		// A bucket paced at 6.3/s after a slow climb (the log holds the
		// climb) whose Reset implies 6.25/s: near the pace, the log says
		// nothing (a real clock took split's 5-token write bucket for a
		// window of 5 a second).
		{"paced near its refill", 5, 2, 800 * time.Millisecond, 6.3, false},
	} {
		l, _ := fixedLimiter(t, Buckets{})
		l.learn = newLearning(l.cfg.Learner)
		lg := l.learn
		lg.model = map[string]BucketState{"w10": {ID: "w10", Classes: "w", Burst: 10, Rate: c.pace}}
		for i := 0; i <= 100; i++ { // 10 s of answers, one every 100 ms
			lg.accepted["w"] = int64(i * c.perSec / 10)
			lg.logPace("w", t0.Add(time.Duration(i)*100*time.Millisecond))
		}
		at := t0.Add(10 * time.Second)
		id := bucketID("w", c.limit)
		s := sample{bucket: id, class: "w", limit: c.limit, remaining: 0, refused: true, at: at, reset: at.Add(c.reset)}
		if got := l.provisionalWindow(s, BucketState{ID: id, Classes: "w", Burst: c.limit, Rate: 1}); got != c.want {
			t.Errorf("%s: provisionalWindow = %v, want %v", c.name, got, c.want)
		}
	}
}
