package ratelimit

import (
	"math"
	"sort"
	"strconv"
	"time"
)

// A Sample is what one answer said about one bucket, with the fleet-wide
// count of calls that had drawn from that bucket when this call was
// reserved (this call included).
type Sample struct {
	// Bucket names the bucket the answer describes; samples with the same
	// Bucket are one series. Empty means the series is named by Limit.
	Bucket    string
	At        time.Time // when the call reached the tenant (best estimate)
	Limit     int       // X-RateLimit-Limit: the bucket's size
	Remaining int       // X-RateLimit-Remaining, after this call
	Count     int64     // the bucket's consumption counter at this call's reservation
	Throttled bool      // a 429: the call took no token
}

// LearnerConfig tunes a Learner. Zero fields take the defaults shown.
type LearnerConfig struct {
	Window      time.Duration // samples kept per bucket (10 s)
	MinSpan     time.Duration // shortest span a measurement needs (2 s)
	MinPoints   int           // fewest samples a measurement needs (8)
	ShortWindow time.Duration // recent span compared with the whole, to see a change (2 s)
}

func (c LearnerConfig) withDefaults() LearnerConfig {
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.MinSpan <= 0 {
		c.MinSpan = 2 * time.Second
	}
	if c.MinPoints <= 0 {
		c.MinPoints = 8
	}
	if c.ShortWindow <= 0 {
		c.ShortWindow = 2 * time.Second
	}
	return c
}

// Basis says how an Estimate was reached.
type Basis string

// The bases of an estimate.
const (
	// Measured: the refill rate was measured while the bucket was not full.
	Measured Basis = "measured"
	// AtLeast: the bucket kept filling up, so it is not what limits calls;
	// its refill is at least the rate at which calls drew from it.
	AtLeast Basis = "at-least"
)

// Estimate is what a Learner knows of one bucket.
type Estimate struct {
	Limit int
	Rate  float64 // tokens per second
	// StdErr is the standard error of a Measured Rate: the fewer and the
	// noisier the samples, the larger. Pace by Rate − 2·StdErr or less.
	StdErr float64
	Basis  Basis
	// Points is the number of samples behind a Measured rate.
	Points int
	// NearFull is the share of recent samples that found the bucket more
	// than half full: near 1, the bucket is not what limits calls.
	NearFull float64
}

// Learner estimates token buckets from successive answers. For a bucket of
// size L refilled at r per second, between two calls i and j during which
// it never filled up,
//
//	Remaining_j − Remaining_i = r·(t_j − t_i) − (calls taken between them)
//
// so Remaining + Count (Count counting every call that drew from the bucket,
// fleet-wide) grows at exactly r: the rate is the least-squares slope of
// Remaining + Count over time. The floor in Remaining adds less than one
// token of noise per sample, which a few seconds of samples average out.
// A sample with Remaining ≥ L−1 means the bucket was full just before, so
// refill may have been lost: the measurement restarts there. When the recent
// samples disagree with the whole window by more than noise allows, the
// tenant's limits changed: the window is cut to the recent samples.
//
// A Learner is not safe for concurrent use. Time comes from the samples, so
// tests can feed fixed instants.
type Learner struct {
	cfg     LearnerConfig
	buckets map[string]*series
}

type point struct {
	t     time.Time
	count int64   // the bucket's counter at this call's reservation
	taken float64 // calls that took a token from the bucket, fleet-wide, up to this one
	y     float64 // Remaining + taken: grows at the refill rate while the bucket is not full
	full  bool    // the bucket was near full (NearFull), or a Break came: refill may have been lost around it
}

// NearFull reports whether Remaining is more than half the bucket. From
// there refill may reach the top — and be lost — before the next answer, so
// such answers take no part in measuring the refill rate, and they cut the
// stretches measured. Below half, refilling to the top takes far longer
// than the gap between answers.
func NearFull(remaining, limit int) bool { return 2*remaining > limit-1 }

type series struct {
	limit  int
	points []point
	est    Estimate
	broken bool // a Break came since the last sample: the next one starts a stretch
}

// NewLearner returns an empty learner.
func NewLearner(cfg LearnerConfig) *Learner {
	return &Learner{cfg: cfg.withDefaults(), buckets: map[string]*series{}}
}

// Observe adds a sample and returns the bucket's current estimate; ok is
// false while the samples cannot tell the rate yet.
func (l *Learner) Observe(s Sample) (Estimate, bool) {
	if s.Limit <= 0 || s.Remaining < 0 {
		return Estimate{}, false
	}
	key := s.Bucket
	if key == "" {
		key = "L" + strconv.Itoa(s.Limit)
	}
	b := l.buckets[key]
	if b == nil {
		b = &series{}
		l.buckets[key] = b
	}
	if b.limit != s.Limit {
		// The bucket's size changed (a plan change): start over.
		b.points, b.est, b.limit = b.points[:0], Estimate{}, s.Limit
	}
	taken := float64(s.Count)
	if s.Throttled {
		taken-- // the counter counted this call, which took nothing
	}
	p := point{t: s.At, count: s.Count, taken: taken, y: float64(s.Remaining) + taken, full: NearFull(s.Remaining, s.Limit) && !s.Throttled || b.broken}
	b.broken = false
	// Keep points in time order (answers may arrive out of order).
	i := sort.Search(len(b.points), func(i int) bool { return b.points[i].t.After(p.t) })
	b.points = append(b.points, point{})
	copy(b.points[i+1:], b.points[i:])
	b.points[i] = p
	l.trim(b, s.At)
	est, ok := l.estimate(b, s.Limit)
	if ok {
		b.est = est
	}
	full := 0
	for _, p := range b.points {
		if p.full {
			full++
		}
	}
	b.est.NearFull = float64(full) / float64(len(b.points))
	return b.est, b.est.Rate > 0
}

// trim drops samples older than the window.
func (l *Learner) trim(b *series, now time.Time) {
	cut := 0
	for cut < len(b.points) && now.Sub(b.points[cut].t) > l.cfg.Window {
		cut++
	}
	b.points = b.points[cut:]
}

func (l *Learner) estimate(b *series, limit int) (Estimate, bool) {
	if rate, se, ok := l.measure(b, b.points, l.cfg.MinSpan); ok {
		// Did the limits change? Compare the recent samples with the whole.
		last := b.points[len(b.points)-1].t
		first := len(b.points)
		for first > 0 && last.Sub(b.points[first-1].t) <= l.cfg.ShortWindow {
			first--
		}
		if recent := b.points[first:]; first > 0 {
			if short, shortSE, ok := l.measure(b, recent, l.cfg.ShortWindow/2); ok {
				if math.Abs(short-rate) > math.Max(0.08*rate, 3*math.Hypot(se, shortSE)) {
					// Forget what came before the recent samples.
					b.points = append(b.points[:0], recent...)
					return Estimate{Limit: limit, Rate: short, StdErr: shortSE, Basis: Measured, Points: len(recent)}, true
				}
			}
		}
		return Estimate{Limit: limit, Rate: rate, StdErr: se, Basis: Measured, Points: len(b.points)}, true
	}
	// Not measurable: the bucket is full at almost every sample (it does not
	// bind), or it is not a token bucket (a fixed window refills all at
	// once). The slope across the whole window, fill-ups included, can only
	// under-estimate the refill (a full bucket loses refill): a bound that
	// may raise an estimate, never lower it.
	if rate, ok := l.slope(b.points, l.cfg.MinSpan); ok && rate > b.est.Rate {
		basis := AtLeast
		if b.est.Basis == Measured {
			basis = Measured // a measurement that proved too low is still one
		}
		return Estimate{Limit: limit, Rate: rate, Basis: basis, Points: len(b.points)}, true
	}
	return Estimate{}, false
}

// measure estimates the refill from the stretches between fill-ups: a
// sample that found the bucket full starts a new stretch, because refill
// was lost before it. Within a stretch Remaining + taken grows at the
// refill rate, so one slope is fitted to all stretches, each with its own
// intercept (least squares with fixed effects). It returns the slope and
// its standard error; ok needs MinPoints samples in stretches of two or
// more, covering minSpan in all.
func (l *Learner) measure(b *series, ps []point, minSpan time.Duration) (rate, stdErr float64, ok bool) {
	var sxy, sxx, syy, covered float64
	n, stretches := 0, 0
	for start := 0; start < len(ps); {
		if ps[start].full {
			start++ // near full: refill may have been lost around it
			continue
		}
		end := start + 1
		for end < len(ps) && !ps[end].full {
			end++
		}
		if seg := ps[start:end]; len(seg) >= 2 {
			t0 := seg[0].t
			mt, my := means(seg, t0)
			for _, p := range seg {
				dt, dy := p.t.Sub(t0).Seconds()-mt, p.y-my
				sxy += dt * dy
				sxx += dt * dt
				syy += dy * dy
			}
			covered += seg[len(seg)-1].t.Sub(t0).Seconds()
			n += len(seg)
			stretches++
		}
		start = end
	}
	if n < l.cfg.MinPoints || covered < minSpan.Seconds() || sxx == 0 {
		return 0, 0, false
	}
	r := sxy / sxx
	// Residuals: what the fit leaves unexplained (the floor in Remaining,
	// arrival times, calls that crossed on their way).
	dof := float64(n - stretches - 1)
	if dof < 1 {
		dof = 1
	}
	rss := math.Max(syy-sxy*sxy/sxx, 0)
	// The floor alone leaves about 1/12 of a token² per sample: never claim
	// less noise than that.
	variance := math.Max(rss/dof, 1.0/12)
	return r, math.Sqrt(variance / sxx), r > 0
}

// slope fits y = a + r·t by least squares over all of ps; ok needs
// MinPoints samples spanning minSpan.
func (l *Learner) slope(ps []point, minSpan time.Duration) (float64, bool) {
	if len(ps) < l.cfg.MinPoints || ps[len(ps)-1].t.Sub(ps[0].t) < minSpan {
		return 0, false
	}
	t0 := ps[0].t
	mt, my := means(ps, t0)
	var num, den float64
	for _, p := range ps {
		dt := p.t.Sub(t0).Seconds() - mt
		num += dt * (p.y - my)
		den += dt * dt
	}
	if den == 0 || num <= 0 {
		return 0, false
	}
	return num / den, true
}

// means returns the mean of ps's times (seconds after t0) and of their y.
func means(ps []point, t0 time.Time) (mt, my float64) {
	for _, p := range ps {
		mt += p.t.Sub(t0).Seconds()
		my += p.y
	}
	return mt / float64(len(ps)), my / float64(len(ps))
}

// Forget drops what is known of a bucket: after a 429 it refused, its
// history is suspect (its limits changed, or the estimate was wrong) and it
// must be measured afresh.
func (l *Learner) Forget(bucket string) { delete(l.buckets, bucket) }

// Break says that counts before and after now do not line up (calls were
// taken back after a 429): the next sample of every bucket starts a new
// stretch.
func (l *Learner) Break() {
	for _, b := range l.buckets {
		b.broken = true
	}
}

// Estimates returns what is known of every bucket seen, by size.
func (l *Learner) Estimates() []Estimate {
	var out []Estimate
	for _, b := range l.buckets {
		if b.est.Rate > 0 {
			out = append(out, b.est)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Limit < out[j].Limit })
	return out
}
