package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"strings"
	"time"
)

// How the fleet names and learns buckets.
//
// A tenant's answers say, in X-RateLimit-Limit, the size of the bucket they
// describe, not which bucket it is. A bucket is therefore known by the class
// of the calls whose answers describe it and its size: "w10" is a bucket of
// size 10 described by answers to writes. Calls of a class reserve in every
// bucket that paces their class.
//
//   - Cold start: until the first answer of a class arrives, calls of the
//     class are paced by the starting buckets (plan-global, plan-write,
//     plan-read) from the plan or --rate/--burst. The first answer ends that
//     for its class (answerScript): from then on, only buckets answers
//     describe pace it. A bucket first described starts from the starting
//     bucket of its size, else the slowest starting rate of its class.
//
// One process at a time (it holds a lease) learns for the fleet, from every
// answer recorded (samples), every LearnEvery:
//
//   - Measure: the Learner's estimate of a bucket's refill, paced at
//     min(rate·(1−Margin), rate − 2·StdErr).
//   - Probe: a call that waited for its slot found the bucket more than half
//     full: the model refills too slowly. The rate is raised by a factor of
//     1 + Remaining/Limit (up to double), at most every probeEvery, until
//     the bucket binds and can be measured.
//   - Slow start: two answers of one bucket half a second or more apart
//     prove a refill at least that fast (refilledAtLeast): a rate below it
//     is raised to it at once, up to fourfold — only for a bucket that has
//     not refused in the last 30 s (with several processes, answers that
//     overtake each other read as refill). A bucket still at its first
//     guess is lifted by any answer's Reset (answerScript), see Reset.
//   - Wake: a change that may bring slots sooner (a rate raised by 5% or
//     more, a class no longer paced by a bucket, a window) is published:
//     callers of every process told to ask again later ask at once.
//   - Overshoot: a bucket that refuses within 1.5 s of a raise on
//     evidence from below (probing, slow start) goes back to the rate
//     before that raise at once, as TCP cuts on loss; and for 30 s no
//     such evidence raises it past 97% of the lowest rate it refused at.
//   - One bucket for both classes: answers to reads and writes close in
//     time that find a bucket of one size as empty as one bucket would be
//     (the other class's last Remaining less the calls accepted in
//     between; mergeIfShared) make the write-named bucket pace both
//     classes and retire the read-named one; otherwise each class, measured alone, would read the
//     other's draws as a slow refill. For the same reason a measured refill
//     lower than modelled is adopted only for a bucket that refused lately.
//   - 429: a bucket that refuses is empty, so the calls it accepted since
//     its earlier refusals (spans of 1–15 s, or the latest one up to 60 s
//     back when none is that recent), replayed through a bucket of its
//     size, bound its refill from both sides (bracket.go): the slowest
//     refill under which each found a token, the fastest under which it
//     is empty again now. A tight bracket is a measurement, paced at
//     deliveredShare of its lower end (afterRefusal). A count over the
//     span would read low whenever the bucket sat full in between (a
//     pause, a climb from below) and threw refill away. At its first
//     refusal, the replay from full at the first call is a lower bound.
//     429s in the first second of a bucket's refusals are its burst, not
//     its rate: the rate stands. What was learned of it otherwise is
//     forgotten and measured afresh.
//   - Refused elsewhere: a 429 whose headers describe a bucket that still
//     had tokens was refused by another bucket: the other buckets pacing the
//     class are cut; if there are none, a bucket no answer ever describes
//     said no, and "hidden-w" (or "hidden-r") paces the class. A 429 with
//     no headers is "w0" (or "r0").
//   - Hidden: a bucket no success answer describes is found in closed loop
//     while calls wait for it: ×1.5 every half second until a 429
//     measures it; a first 429's lower bound (what it let through, or its
//     size over the time to its Reset) is climbed from by depth, toward
//     the middle of it and the size over a second less than that time
//     when the Reset gives one; between bounds by depth toward their
//     middle; once measured, +1% a second up to 2–10% over the
//     measurement (hiddenOver: less for a shallow bucket), held there
//     measuredHold, then on at 1% a second until a 429.
//   - Bounds: when the replay's bracket is loose (another bucket set the
//     pace, or the calls came against it only in a short burst), its
//     lower end is a lower bound, and the lower of its upper end and the
//     rate refused an upper one. The fleet then paces a little above the
//     lower (at most 25%) and climbs toward the middle of the bounds, more
//     slowly the deeper the bucket; each refusal narrows them, and so
//     does a middle held 3 s without one (the new lower bound); bounds
//     within 10% are a measurement at their middle. A tight bracket is
//     read at its middle too (its slacks widen both ends alike). A
//     measurement replaces the lower bound kept (a bound read too high
//     would otherwise hold the pace above the refill, refusing every few
//     seconds).
//   - Reset: a bucket first described short of tokens, or refusing, is
//     full again at its X-RateLimit-Reset, so it refills at least
//     (Limit − Remaining) over that span (if Reset means "the next token"
//     instead, this overestimates and the next refusal measures it). A
//     bucket first described starts there (startRate is only the floor),
//     a span under a second counted a second longer (Reset is whole
//     seconds, rounded up; a window would refill later still): a guess
//     far below a fast bucket is raised by its very first answer instead
//     of probing up from a call every few seconds.
//   - Windows: a bucket that holds one Reset while it drains — over 1.5 s
//     (strong), or losing exactly the calls made where a continuous
//     refill at the slowest rate its Resets allow would have added 2.5
//     tokens (weak), or refilling by half its size the moment its Reset
//     moves on — is a fixed window (windowEvidence). So is one a 429
//     finds empty, its Reset a second or more away, when the fleet's
//     calls, of both classes, could not have drained it were it refilling
//     continuously at half the rate its Reset implies (Limit/(Reset −
//     now)) from full at any instant of the last 30 s, and that rate is
//     well above the pace the fleet set for the class (provisionalWindow):
//     a window described only near its end or in its own 429s. It then lets Limit calls through per window,
//     reserved window by window, at least half its length over its size
//     apart (the first answers sync the model before the rest go), and
//     synced to each answer's Remaining and Reset (reserveScript,
//     answerScript); the step between Resets is its length. Until that is
//     known, a window that ended is followed by one of Limit calls whose
//     end is unknown; used up, it lets a probe through (one call a
//     second, or at once after a probe that got through) until a 429's
//     Reset says where it ends. No refill is learned for it, it is never
//     cut or retired, and reads are found sharing a write window when
//     their answers, in its current window, find it drained (sharedWindow;
//     what mergeIfShared weighed against it before it was known to be a
//     window is forgotten).
//   - Retire: a bucket that none of the last retireAfter answers of its
//     class described stops pacing (its classes become "-"): it does not
//     bind (when headers describe the tightest bucket, a binding bucket is
//     described). It keeps what was learned and paces again when an answer
//     describes it.

// probeEvery is how often a described bucket whose calls wait and find it
// more than half full may be raised (up to double): slow start.
const probeEvery = 250 * time.Millisecond

// retireAfter is how many answers of a class may pass without describing a
// bucket before it stops pacing.
const retireAfter = 100

// hiddenStep is how often a hidden bucket is raised while calls wait for it.
const hiddenStep = 500 * time.Millisecond

// maxProbeRate caps probing upwards (calls per second).
const maxProbeRate = 1000

// measuredHold is how long the climb over a measured hidden bucket holds
// at hiddenOver before it goes on.
const measuredHold = 10 * time.Second

// hiddenOver is how far above what a hidden bucket let through (d, already
// paced at deliveredShare of it) the closed loop climbs while nothing
// refuses: 10% at most, less for a shallow or fast bucket, so that the
// excess takes about 30 s to drain its depth (10% over 10/s drains a
// 5-deep bucket in 5 s: a refusal every few seconds); at least 2% (a
// floor of 5%, to make up for deliveries that read low, did not steady
// real runs: BENCHMARKS.md). Past it after measuredHold without a 429.
func hiddenOver(depth int, d float64) float64 {
	return 1 + math.Max(0.02, math.Min(0.10, float64(depth)/(30*d)))
}

// planIDs are the starting buckets and their classes.
var planIDs = []struct{ id, classes string }{{"plan-global", "rw"}, {"plan-write", "w"}, {"plan-read", "r"}}

func (b Buckets) of(id string) Bucket {
	switch id {
	case "plan-global":
		return b.Global
	case "plan-write":
		return b.Write
	case "plan-read":
		return b.Read
	}
	return Bucket{}
}

// startRate is where a newly described bucket starts: the starting bucket of
// its size and class, else the slowest starting rate of its class, else 1/s.
func (l *Limiter) startRate(cls string, limit int) float64 {
	slowest := 0.0
	for _, p := range planIDs {
		b := l.cfg.Start.of(p.id)
		if b.Rate <= 0 || !contains(p.classes, cls) {
			continue
		}
		if b.Burst == limit {
			return b.Rate
		}
		if slowest == 0 || b.Rate < slowest {
			slowest = b.Rate
		}
	}
	if slowest == 0 {
		return 1
	}
	return slowest
}

// learning is the state of the learning process.
type learning struct {
	learner *Learner
	seq     int64                  // last sample read
	answers map[string]int         // samples read, by class letter
	seen    map[string]int         // by bucket: answers of its class read when it was last described
	probed  map[string]time.Time   // by bucket: last raised by probing
	cut     map[string]time.Time   // by bucket: last cut after a 429
	model   map[string]BucketState // the fleet's model as last read

	accepted  map[string]int64       // by class letter: answers that were not 429s
	firstAt   map[string]time.Time   // by class letter: the first answer read
	refusals  map[string][]time.Time // by bucket: its latest 429s, oldest first, for the delivery estimate
	described map[string]bool        // by bucket: a success answer described it
	delivered map[string]float64     // by bucket: the rate last set from what it let through
	capped    map[string]time.Time   // by bucket: when probing first reached its cap over delivered
	bound     map[string]bool        // by bucket: delivered is only a lower bound (its first 429)
	demand    map[string]bool        // by class letter: a call waited for its slot in the last round with answers
	last      map[string]sample      // by bucket: the last success answer describing it
	shared    map[int][2]int         // by size: evidence that reads and writes draw from one bucket {for, against}
	// ceiling is, by bucket, the rate it refused at when what it let
	// through was only a lower bound: its refill is between the two.
	ceiling map[string]float64
	lower   map[string]float64 // by bucket: the best lower bound on its refill since its latest drop
	// raised is, by bucket, its rate before the latest raise on
	// evidence from below (probing, a refill seen between two answers)
	// and when: a refusal soon after means the raise overshot.
	raised map[string]rateAt
	// refusedRate is, by bucket, the lowest rate it refused at lately:
	// evidence from below does not raise it past that for a while.
	refusedRate map[string]rateAt
	upper       map[string]float64 // by bucket: the rate it refused at while only a lower bound was known
	// Fixed windows, by bucket: the first answer of the current Reset
	// epoch, the evidence that the bucket is a window (an answer
	// count), the shortest step seen between epochs, and where a bucket
	// just found to be a window has its current window end.
	epoch      map[string]sample
	epochLast  map[string]sample  // the latest answer of that epoch
	implied    map[string]float64 // the slowest continuous refill its Resets allow
	windowEv   map[string]int
	step       map[string]time.Duration
	windowEnd  map[string]time.Time
	windowUsed map[string]int
	// acceptedAt is, by class letter, the arrivals of the calls
	// accepted lately, sorted (bracket.go).
	acceptedAt map[string][]time.Time
	// paceLog is, by class letter, the answers accepted so far at
	// instants at least paceLogStep apart over the last paceSpan: the
	// pace the fleet's calls drew at (provisionalWindow).
	paceLog map[string][]delivery
}

// refilledAtLeast is the refill two successive answers describing the same
// bucket prove: Remaining went from R₁ (after call n₁) to R₂ (after call
// n₂), so at least R₂ − R₁ + (n₂ − n₁) tokens came back between them
// (exactly that many unless the bucket was full meanwhile, and answers
// that overtook each other blur it by a few calls). Only a span of 500 ms
// and three tokens or more counts, so that whole-token headers and
// overtaking do not read as a fast refill; the caller raises a rate by it
// at most fourfold at a time (slow start).
func (lg *learning) refilledAtLeast(s sample) (float64, bool) {
	p, ok := lg.last[s.bucket]
	if !ok || s.count <= p.count || p.count == 0 {
		return 0, false
	}
	dt := s.at.Sub(p.at)
	refill := float64(s.remaining - p.remaining + int(s.count-p.count))
	if dt < 500*time.Millisecond || dt > 5*time.Second || refill < 3 {
		return 0, false
	}
	return refill / dt.Seconds(), true
}

// refusedLately reports whether the bucket refused a call in the last
// 10 s of the answers read.
func (l *Limiter) refusedLately(id string) bool {
	var latest time.Time
	for _, s := range l.learn.last {
		if s.at.After(latest) {
			latest = s.at
		}
	}
	return !latest.IsZero() && l.learn.refusedWithin(id, latest, 10*time.Second)
}

// mergeIfShared weighs what an answer says about whether reads and writes
// draw from one bucket of its size: an answer of one class that finds the
// bucket as empty as the last answer of the other class left it, less the
// calls accepted since, while both were well below full, is evidence for;
// one that finds it clearly fuller or emptier than that is evidence
// against (two buckets of one size, as Essentials has).
// Answers overtaking each other blur a few comparisons, at a cold start
// most: after five answers for and at least three times as many for as
// against, the write-named bucket paces
// both classes and the read-named one stops: each class's calls then count
// the other's, and neither mistakes the other's draws for a slow refill.
func (l *Limiter) mergeIfShared(s sample, now time.Time) []BucketState {
	lg := l.learn
	cls := s.bucket[:1]
	other, ok := lg.last[otherClass(cls)+s.bucket[1:]]
	if !ok || other.limit != s.limit {
		return nil
	}
	w, r := lg.model["w"+s.bucket[1:]], lg.model["r"+s.bucket[1:]]
	if w.Rate <= 0 || r.Rate <= 0 || r.Classes == "-" || strings.Contains(w.Classes, "r") {
		return nil
	}
	dt := s.at.Sub(other.at)
	if dt < 0 || dt > 200*time.Millisecond {
		return nil
	}
	if w.Window != 0 && !s.reset.IsZero() && !other.reset.IsZero() && (s.reset.Sub(other.reset) > 250*time.Millisecond || other.reset.Sub(s.reset) > 250*time.Millisecond) {
		return nil // a window started between them: they say nothing of each other
	}
	// One bucket would hold what the other answer left, less the calls
	// of either class accepted between the two and this one, plus what
	// refilled meanwhile (at most both classes' paces). A burst of one
	// class's answers right after one of the other's (Remaining 6, 5,
	// 3, 2, 1, 0 against its 7) is just what one bucket shows.
	between := lg.countBetween("rw", other.at, s.at)
	d := s.remaining - (other.remaining - between - 1)
	slack := 1 + int(math.Ceil((w.Rate+r.Rate)*dt.Seconds()))
	ev := lg.shared[s.limit]
	switch {
	case other.remaining <= s.limit-3 && s.remaining <= s.limit-3 && d >= -slack && d <= slack:
		ev[0]++
	case d >= slack+2 || d <= -(slack+2):
		ev[1]++
	}
	if ev != lg.shared[s.limit] {
		l.log.Debug("one bucket for reads and writes?", "size", s.limit, "same", ev[0], "different", ev[1], "remaining", s.remaining, "other", other.remaining, "between", between, "dt", dt)
	}
	lg.shared[s.limit] = ev
	need := 5
	if w.Window != 0 {
		need = 3 // a window does not refill between two answers of one epoch: each comparison is exact
	}
	if ev[0] < need || ev[0] < 3*ev[1] {
		return nil
	}
	l.log.Info("reads and writes draw from one bucket: pacing both by it", "bucket", w.ID, "size", s.limit)
	w.Classes, r.Classes = "rw", "-"
	return []BucketState{w, r}
}

// rateAt is a rate and when it was set or seen.
type rateAt struct {
	rate float64
	at   time.Time
}

// overshootSpan is how soon after a raise on evidence from below a
// refusal shows that the raise overshot; refusedSpan is how long a rate
// a bucket refused at caps such raises.
const (
	overshootSpan = 1500 * time.Millisecond
	refusedSpan   = 30 * time.Second
)

// raise records that b's rate is being raised on evidence from below.
func (lg *learning) raise(b BucketState, now time.Time) {
	lg.raised[b.ID] = rateAt{b.Rate, now}
}

// raiseCap is the most that evidence from below may raise a bucket to:
// a little under the lowest rate it refused at lately (another answer
// pair or probe would read overtaking answers as refill), else no cap.
func (lg *learning) raiseCap(id string, now time.Time) float64 {
	if r, ok := lg.refusedRate[id]; ok && now.Sub(r.at) < refusedSpan {
		return 0.97 * r.rate
	}
	return math.Inf(1)
}

// delivery is a point of the delivery estimate: when a bucket refused a
// call (it was empty), and how many calls of its classes had been accepted.
type delivery struct {
	at       time.Time
	accepted int64
}

func newLearning(cfg LearnerConfig) *learning {
	return &learning{learner: NewLearner(cfg), answers: map[string]int{}, seen: map[string]int{},
		probed: map[string]time.Time{}, cut: map[string]time.Time{},
		accepted: map[string]int64{}, firstAt: map[string]time.Time{}, refusals: map[string][]time.Time{}, described: map[string]bool{},
		delivered: map[string]float64{}, capped: map[string]time.Time{}, bound: map[string]bool{}, demand: map[string]bool{}, last: map[string]sample{}, shared: map[int][2]int{}, ceiling: map[string]float64{}, lower: map[string]float64{}, upper: map[string]float64{}, raised: map[string]rateAt{}, refusedRate: map[string]rateAt{},
		epoch: map[string]sample{}, epochLast: map[string]sample{}, implied: map[string]float64{}, windowEv: map[string]int{}, step: map[string]time.Duration{}, windowEnd: map[string]time.Time{}, windowUsed: map[string]int{}, paceLog: map[string][]delivery{}, acceptedAt: map[string][]time.Time{}}
}

// learnLoop takes the learning lease when free and, while holding it,
// learns every LearnEvery.
func (l *Limiter) learnLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.LearnEvery)
	defer t.Stop()
	leading := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := l.store.lead(ctx, l.id, 4*l.cfg.LearnEvery+time.Second)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("cannot reach the learning lease", "err", err)
			}
			continue
		}
		if ok != leading {
			leading = ok
			l.mu.Lock()
			l.stats.Leading = ok
			l.mu.Unlock()
			if ok {
				l.log.Info("this process learns the tenant's budget for the fleet")
				l.learn = newLearning(l.cfg.Learner) // start from the samples still kept
			}
		}
		if ok {
			if err := l.learnOnce(ctx, l.cfg.now()); err != nil && ctx.Err() == nil {
				l.log.Warn("learning failed", "err", err)
			}
		}
	}
}

// learnOnce reads the answers recorded since the last time, learns from
// them and records what changed.
func (l *Limiter) learnOnce(ctx context.Context, now time.Time) error {
	lg := l.learn
	st, err := l.store.state(ctx)
	if err != nil {
		return err
	}
	lg.model = map[string]BucketState{}
	before := map[string]BucketState{}
	for _, b := range st.Buckets {
		lg.model[b.ID] = b
		before[b.ID] = b
	}
	samples, err := l.store.samplesSince(ctx, lg.seq)
	if err != nil {
		return err
	}
	changed := map[string]BucketState{}
	set := func(b BucketState) { lg.model[b.ID] = b; changed[b.ID] = b }
	answered := map[string]bool{} // by class letter: answers read this round
	estimates := map[string]Estimate{}
	probe := map[string]sample{}
	for _, s := range samples {
		lg.seq = s.seq
		cls := s.bucket[:1]
		lg.answers[cls]++
		lg.seen[s.bucket] = lg.answers[cls]
		if _, ok := lg.firstAt[s.class]; !ok {
			lg.firstAt[s.class] = s.at
		}
		if !s.refused {
			// By the call's class: a read answered with a bucket that
			// paces both classes drew nothing from a write-only one.
			lg.accepted[s.class]++
			lg.noteAccepted(s.class, s.at)
			lg.described[s.bucket] = true
			lg.logPace(s.class, s.at)
		}
		if !answered[cls] {
			// Demand is what this round's answers say; a round without
			// answers of the class (few calls, a pause) keeps the last.
			answered[cls] = true
			lg.demand[cls] = false
		}
		if s.waited {
			lg.demand[cls] = true
		}
		if s.paused {
			lg.learner.Break() // counts around a pause do not line up
		}
		if !s.stale {
			if est, ok := lg.learner.Observe(Sample{Bucket: s.bucket, At: s.at, Limit: s.limit, Remaining: s.remaining, Count: s.count, Throttled: s.refused}); ok {
				estimates[s.bucket] = est
			}
		}
		if b, ok := lg.model[s.bucket]; ok && !s.reset.IsZero() {
			if w, ok := l.windowEvidence(s, b); ok {
				set(w)
			}
		}
		for _, b := range l.sharedWindow(s) {
			set(b)
		}
		if b, ok := lg.model[s.bucket]; ok && l.provisionalWindow(s, b) {
			b = l.becomeWindow(s, b)
			set(b)
			lg.learner.Forget(b.ID)
			delete(estimates, b.ID)
		}
		if b, ok := lg.model[s.bucket]; ok && b.Window != 0 {
			// A fixed window: the answers set its count (answerScript);
			// there is no refill rate to learn.
			continue
		}
		switch {
		case s.refused && s.stale:
			// Reserved before a pause ended: it says nothing new.
		case s.refused && s.remaining == 0:
			if b, ok := lg.model[s.bucket]; ok && now.Sub(lg.cut[s.bucket]) >= time.Second {
				rate, how, lohi := lg.afterRefusal(b, s.at, now)
				if r, ok := lg.raised[b.ID]; ok && how == "burst" && s.at.Sub(r.at) < overshootSpan && r.rate < rate {
					// Raised on evidence from below a moment ago and
					// refused since: the raise overshot. Back to the
					// rate before it (a cut on loss, as TCP does).
					rate, how = r.rate, "overshoot"
				}
				if p, ok := lg.refusedRate[b.ID]; !ok || now.Sub(p.at) >= refusedSpan || b.Rate < p.rate {
					lg.refusedRate[b.ID] = rateAt{b.Rate, now}
				}
				if until := s.reset.Sub(s.at); until >= time.Second {
					// Empty now and full again at its Reset: it refills at
					// least its size over that span (a window even gives
					// all of it back at once).
					implied := float64(b.Burst) / until.Seconds()
					if implied > rate {
						rate, how = implied, "reset"
					}
					if !lg.described[b.ID] && lg.delivered[b.ID] == 0 {
						// A bucket only its own 429s describe, refused
						// before anything was measured: that is a lower
						// bound it climbs from by its depth (a deep
						// bucket refuses a pace above its refill only
						// once its depth drained), not a rate unknown
						// that grows ×1.5 every half second — 8 → 27/s
						// for a 30-deep 8/s bucket before it refused.
						lo := math.Min(implied, rate)
						lg.delivered[b.ID], lg.bound[b.ID], lg.lower[b.ID] = lo, true, lo
						if until >= 1500*time.Millisecond {
							// Reset is whole seconds, rounded up: full
							// again within the second before it, so no
							// faster than its size over a second less
							// (if Reset means "full"). The climb goes
							// toward the middle of the two, by depth.
							if up := float64(b.Burst) / (until - time.Second).Seconds(); up > 1.1*lo {
								lg.upper[b.ID], lg.ceiling[b.ID] = up, math.Sqrt(lo*up)
							}
						}
					}
				}
				lg.cut[s.bucket] = now
				l.log.Info("429: the bucket's rate from what it let through", "bucket", b.ID, "rate", round(rate), "was", round(b.Rate), "how", how, "bracket", lohi)
				b.Rate, b.Source = rate, "cut"
				if !lg.described[b.ID] {
					// Only its own 429s describe it: no answer will
					// measure it, so it is found in closed loop.
					b.Source = "hidden"
				}
				set(b)
				lg.learner.Forget(b.ID) // measure afresh
				delete(estimates, b.ID)
			}
		case s.refused:
			for _, b := range l.refusedElsewhere(cls, s, now) {
				set(b)
			}
		case s.waited && !s.stale && NearFull(s.remaining, s.limit):
			probe[s.bucket] = s
		}
		if !s.refused && !s.stale {
			if b, ok := lg.model[s.bucket]; ok {
				if r, ok := lg.refilledAtLeast(s); ok && r > 1.2*b.Rate && now.Sub(lg.cut[s.bucket]) >= time.Second && !lg.refusedWithin(b.ID, now, refusedSpan) {
					r = math.Min(r, 4*b.Rate)
					lg.raise(b, now)
					l.log.Info("rate-limit bucket refilled faster than modelled between two answers", "bucket", b.ID, "rate", round(r), "was", round(b.Rate))
					b.Rate, b.Source = r, string(AtLeast)
					set(b)
					lg.probed[b.ID] = now
				}
			}
			lg.last[s.bucket] = s
			for _, b := range l.mergeIfShared(s, now) {
				set(b)
			}
		}
	}
	adopted := map[string]bool{}
	for id, est := range estimates {
		if b, ok := lg.model[id]; ok && b.Window == 0 {
			if b, ok := l.adopt(b, est); ok {
				set(b)
				if est.Basis == Measured {
					adopted[id] = true
					lg.probed[id] = now // a measurement just moved it: no probe on top
				}
			}
		}
	}
	for id, s := range probe {
		b, ok := lg.model[id]
		if !ok || b.Window != 0 || b.Rate >= maxProbeRate || lg.slowerThan(id, s.bucket[:1], b.Rate) || now.Sub(lg.probed[id]) < probeEvery || now.Sub(lg.cut[id]) < 2*time.Second {
			continue
		}
		if adopted[id] || b.Source == string(Measured) && estimates[id].Rate > 0 && estimates[id].Basis == Measured {
			continue // a fresh estimate of this bucket stands
		}
		if b.Rate >= lg.raiseCap(id, now) {
			continue // it refused a little above this lately
		}
		lg.probed[id] = now
		if b.Source != "probing" {
			l.log.Info("rate-limit bucket refills faster than modelled: probing", "bucket", id, "rate", round(b.Rate))
		}
		lg.raise(b, now)
		b.Rate, b.Source = math.Min(b.Rate*(1+float64(s.remaining)/float64(s.limit)), lg.raiseCap(id, now)), "probing"
		set(b)
	}
	for _, b := range l.retireOrProbeHidden(now) {
		set(b)
	}
	sooner := false // a change that may bring slots sooner
	for _, id := range sortedKeys(changed) {
		b := changed[id]
		rate := b.Rate
		if b.Classes == "-" || rate == 0 {
			rate = 0 // keep the numbers: only the classes change
		}
		if was, ok := before[id]; ok && (rate > 1.05*was.Rate || strings.Trim(was.Classes, b.Classes+"-") != "" || b.Window != was.Window) {
			sooner = true
		}
		l.log.Debug("rate-limit model", "bucket", id, "rate", round(rate), "burst", b.Burst, "classes", b.Classes, "source", b.Source, "window", b.Window)
		if err := l.store.tune(ctx, tune{bucket: id, rate: rate, burst: b.Burst, classes: b.Classes, source: b.Source, window: b.Window, windowEnd: lg.windowEnd[id], windowUsed: lg.windowUsed[id]}); err != nil {
			return err
		}
		delete(lg.windowEnd, id)
	}
	if sooner {
		// Callers told to ask again later (their slot was far off at
		// the old numbers) ask now.
		l.wakeFleet(ctx)
	}
	return nil
}

// afterRefusal is a bucket's rate after it refused a call at instant at,
// how it was found, and the refill bracket it found (for the log).
// A bucket that refuses is empty, so the calls it accepted between two of
// its refusals bound its refill (bracket, over every recent refusal at
// least a second back: the longer the span, the less a window's or a
// round trip's granularity weighs), paced a little below. At its first
// refusal, the replay from full at the first call, after at least
// deliverySpanFirst. A refusal too soon after the last one to measure
// keeps a rate measured before, else cuts it by cutFactor. It records the
// refusal for the next estimates.
func (lg *learning) afterRefusal(b BucketState, at, now time.Time) (rate float64, how string, lohi [2]float64) {
	var accepted int64
	var first time.Time
	for _, c := range b.Classes {
		accepted += lg.accepted[string(c)]
		if f, ok := lg.firstAt[string(c)]; ok && (first.IsZero() || f.Before(first)) {
			first = f
		}
	}
	past := lg.refusals[b.ID]
	lo, hi := 0.0, math.Inf(1)
	// The other class's calls count for the upper end while it describes
	// a bucket of this size that may be this one (not merged, no
	// evidence against): see bracket.
	maybe, otherRate := "", 0.0
	if len(b.Classes) == 1 {
		o := otherClass(b.Classes)
		ob, ok := lg.model[o+b.ID[1:]]
		ev := lg.shared[b.Burst]
		if ok && ob.Classes != "-" && ob.Window == 0 && ev[1] <= ev[0] {
			maybe = o
		}
	}
	for i, p := range past {
		span := at.Sub(p)
		if span < time.Second || span > deliverySpanMax && (i < len(past)-1 || lo > 0 || span > deliverySpanLast) {
			// Past the longest span, only the latest refusal counts,
			// when no other does: the pace held that long without a
			// refusal is known better than by a rate set long ago.
			continue
		}
		// Empty at both refusals: replaying the calls it accepted in
		// between bounds its refill from both sides (bracket.go).
		others := lg.callsBetween(maybe, p, at)
		l, h := bracket(lg.callsBetween(b.Classes, p, at), others, b.Burst, false, p, at)
		if h < hi {
			otherRate = float64(len(others)) / span.Seconds()
		}
		lo, hi = math.Max(lo, l), math.Min(hi, h)
	}
	if len(past) == 0 && !first.IsZero() && at.Sub(first) >= deliverySpanFirst && accepted > int64(b.Burst) {
		// Its first refusal: full at the first call (the bucket may
		// have been full, and wasted refill, while something else
		// paced the calls: the replay counts that).
		from := first.Add(-time.Microsecond)
		lo, hi = bracket(lg.callsBetween(b.Classes, from, at), lg.callsBetween(maybe, from, at), b.Burst, true, from, at)
	}
	lohi = [2]float64{round(lo), round(hi)}
	// The calls ran against it at the end: its refill is measured, at the
	// bracket's middle (the slacks widen both ends by about as much: the
	// lower end alone read 3–7% low on a bucket of 5).
	saturated := lo > 0 && hi <= 1.15*lo && len(past) > 0
	delivered := lo
	if saturated {
		delivered = math.Sqrt(lo * hi)
	}
	lg.bound[b.ID] = delivered > 0 && !saturated
	past = append(past, at)
	for len(past) > 1 && (len(past) > 16 || at.Sub(past[0]) > deliverySpanMax) {
		past = past[1:]
	}
	lg.refusals[b.ID] = past
	delete(lg.capped, b.ID)
	if maybe != "" && !saturated && len(past) > 1 {
		// The other class may have emptied it: what this class let
		// through is only its share. Until the answers show whether the
		// two share it (mergeIfShared), this class gets what the upper
		// end leaves the other class's pace, and at least what it let
		// through; the sync to each answer's Remaining does the rest.
		lg.bound[b.ID] = false
		if !math.IsInf(hi, 1) && hi*deliveredShare < b.Rate {
			r := math.Max(lo*deliveredShare, hi*deliveredShare-otherRate)
			return r, "shared?", lohi
		}
		return b.Rate, "shared?", lohi
	}
	if b.Source == "hidden" || !lg.described[b.ID] {
		// It refused at this rate: its refill is below. Probing climbs
		// back toward it, not past it.
		lg.ceiling[b.ID] = b.Rate
	}
	if len(past) > 1 && delivered > 0 && (lg.bound[b.ID] || !lg.described[b.ID]) && delivered*deliveredShare < b.Rate {
		// Between refusals, what it let through is a lower bound on its
		// refill (it was empty at both), exact when it set the pace
		// throughout; the rate it just refused is an upper bound. The
		// two close in as refusals come: the lower bound is kept while
		// it stays below the rate refused (else the limit fell), unless
		// this delivery is exact: it replaces a bound read too high.
		lo := delivered * deliveredShare
		if prev := lg.lower[b.ID]; prev > lo && prev < b.Rate && !saturated {
			lo = prev
		}
		up := b.Rate
		if hi < up && hi > lo {
			up = hi // the replay rules out more than the rate refused
		}
		lg.lower[b.ID], lg.ceiling[b.ID] = lo, up
		if !lg.bound[b.ID] || up <= 1.15*lo {
			lg.bound[b.ID] = false
			lg.delivered[b.ID] = lo
			return lo, "delivered", lohi
		}
		// Another bucket set the pace for a while, or the calls came
		// against it only in a short burst: a little over the bound
		// (at most 25%: a deep bucket takes long to drain, and refuses
		// long after the pace passed its refill), and setting the pace
		// from now on, its next refusal measures it.
		mid := math.Sqrt(lo * up)
		r := math.Min(mid, 1.25*lo)
		lg.delivered[b.ID], lg.ceiling[b.ID], lg.upper[b.ID] = r, mid, up
		return r, "between", lohi
	}
	if lg.bound[b.ID] && delivered*deliveredShare < b.Rate {
		// A first refusal's lower bound below the rate says nothing
		// about the rate.
		delivered, lg.bound[b.ID] = 0, false
	}
	switch {
	case delivered > 0:
		lg.delivered[b.ID] = delivered * deliveredShare
		if lg.bound[b.ID] && delivered*deliveredShare > lg.lower[b.ID] {
			// The next refusal's delivery, if it reads lower (a span
			// across a pause, another bucket pacing), does not undo it.
			lg.lower[b.ID] = delivered * deliveredShare
		}
		return delivered * deliveredShare, "delivered", lohi
	case lg.delivered[b.ID] > 0:
		// Measured before: back to that, whatever probing added since.
		return math.Min(b.Rate, lg.delivered[b.ID]), "kept", lohi
	case len(past) == 0 || at.Sub(past[0]) < time.Second:
		// Refused before anything could be measured (its first 429s,
		// within a second): the burst of the first calls, not the
		// rate, was too much. The pause and the sync to Remaining
		// handle that.
		return b.Rate, "burst", lohi
	}
	return b.Rate * cutFactor(b.Source, now.Sub(lg.cut[b.ID])), "cut", lohi
}

// The spans of the delivery estimate: the longest looked back over, and
// the shortest a first refusal is measured from.
const (
	deliverySpanMax   = 15 * time.Second
	deliverySpanFirst = 100 * time.Millisecond
	deliverySpanLast  = 60 * time.Second
)

// deliveredShare is the share of a bucket's delivered rate the fleet paces
// at after a 429: a little below, so that the bucket is not emptied again
// at once; probing raises it back while nothing refuses.
const deliveredShare = 0.97

// adopt takes a learned estimate into the bucket when it differs enough.
func (l *Limiter) adopt(b BucketState, est Estimate) (BucketState, bool) {
	pace := est.Rate
	if est.Basis == Measured {
		// Pace below the measurement by the margin, or by two standard
		// errors when the samples are few or noisy: the sync with each
		// answer hands back what caution leaves unused; too fast costs 429s.
		pace = math.Min(est.Rate*(1-l.cfg.Margin), est.Rate-2*est.StdErr)
		if pace <= 0 {
			return b, false
		}
		if pace < b.Rate && !l.refusedLately(b.ID) {
			// A bucket that refuses nothing is not shown to be slower
			// than modelled: its Remaining may fall because calls of
			// the other class (or another client) draw from it too.
			return b, false
		}
	} else if pace <= b.Rate {
		return b, false // a lower bound below what is known tells nothing
	}
	if math.Abs(pace-b.Rate) <= 0.03*b.Rate && b.Source == string(est.Basis) {
		return b, false
	}
	level := slog.LevelDebug
	if math.Abs(pace-b.Rate) > 0.1*b.Rate || b.Source != string(est.Basis) {
		level = slog.LevelInfo
	}
	l.log.Log(context.Background(), level, "rate-limit refill learned", "bucket", b.ID, "burst", b.Burst, "rate", round(pace), "was", round(b.Rate), "basis", string(est.Basis), "samples", est.Points, "stderr", round(est.StdErr))
	b.Rate, b.Source = pace, string(est.Basis)
	return b, true
}

// refusedElsewhere handles a 429 whose headers describe a bucket that still
// had tokens (see the comment at the top of this file).
func (l *Limiter) refusedElsewhere(cls string, s sample, now time.Time) []BucketState {
	lg := l.learn
	var out []BucketState
	for _, id := range sortedKeys(lg.model) {
		b := lg.model[id]
		if id == s.bucket || b.Window != 0 || !contains(b.Classes, cls) || b.Rate <= 0 || strings.HasPrefix(id, "plan-") || now.Sub(lg.cut[id]) < time.Second {
			continue
		}
		f := cutFactor(b.Source, now.Sub(lg.cut[id]))
		lg.cut[id] = now
		lg.learner.Forget(id)
		l.log.Info("429 from another bucket than the answer describes: cutting it", "bucket", id, "rate", round(b.Rate*f), "described", s.bucket)
		b.Rate, b.Source = b.Rate*f, map[bool]string{true: "hidden", false: "cut"}[b.Source == "hidden"]
		out = append(out, b)
	}
	if len(out) > 0 || lg.hasPacer(cls, s.bucket) {
		return out
	}
	id := "hidden-" + cls
	described := lg.model[s.bucket]
	h := BucketState{ID: id, Classes: cls, Burst: max(1, described.Burst/2), Rate: described.Rate * 0.7, Source: "hidden"}
	lg.cut[id] = now
	l.log.Info("a bucket the answers do not describe refused a call: pacing by it", "bucket", id, "rate", round(h.Rate), "burst", h.Burst)
	return []BucketState{h}
}

// windowEvidence weighs what an answer says about whether its bucket is
// a fixed window rather than a bucket that refills continuously, and
// returns the bucket changed when that is now settled (or its window's
// length newly known).
//
// An epoch is the answers that carry one X-RateLimit-Reset. A bucket that
// refills continuously moves its Reset later as it drains (Reset is when
// it is full again): one Reset held over answers 1.5 s apart while
// Remaining fell is a window (strong evidence). Within a shorter epoch, a
// Remaining that fell by exactly the calls between two answers although
// a continuous refill over that span would have been 2.5 tokens or more
// (at the slowest rate its Resets allow: a bucket at Remaining R with
// Reset u away refills at least (Limit−R)/u) is evidence for (weak); one that fell by 3 or more fewer than the calls is evidence
// against (a window refills only when it starts again). The step between
// successive epochs is the window's length (the shortest seen: a window
// described only near its end skips epochs).
func (l *Limiter) windowEvidence(s sample, b BucketState) (BucketState, bool) {
	lg := l.learn
	if until := s.reset.Sub(s.at); until >= 100*time.Millisecond && 2*s.remaining <= s.limit {
		// Were it refilling continuously, it would be full at Reset (or
		// sooner: Reset is rounded up to a second): at least this fast.
		lg.implied[s.bucket] = max(lg.implied[s.bucket], float64(s.limit-s.remaining)/until.Seconds())
	}
	e, ok := lg.epoch[s.bucket]
	prev, hadPrev := lg.epochLast[s.bucket]
	if !ok || s.reset.Sub(e.reset) > 250*time.Millisecond || e.reset.Sub(s.reset) > 250*time.Millisecond {
		if !ok || s.reset.After(e.reset) {
			lg.epoch[s.bucket], lg.epochLast[s.bucket] = s, s
		}
		if !ok || !s.reset.After(e.reset) {
			return b, false
		}
		if b.Window == 0 && hadPrev && s.at.Sub(prev.at) <= 150*time.Millisecond && s.remaining-prev.remaining >= max(2, b.Burst/2) {
			// Refilled by half its size or more in a moment, exactly
			// as its Reset moved on: a window started (a bucket
			// refilling continuously that fast would fill five times a
			// second).
			lg.windowEv[s.bucket] += 4
			l.log.Debug("window evidence: refilled as Reset moved on", "bucket", s.bucket, "from", prev.remaining, "to", s.remaining, "ev", lg.windowEv[s.bucket])
		}
		d := s.reset.Sub(e.reset).Round(time.Millisecond)
		if d < 900*time.Millisecond {
			return b, false
		}
		if st := lg.step[s.bucket]; st == 0 || d < st {
			lg.step[s.bucket] = d
		}
		if b.Window != 0 && b.Window != lg.step[s.bucket] {
			b.Window = lg.step[s.bucket]
			b.Rate = float64(b.Burst) / b.Window.Seconds()
			l.log.Info("rate-limit window length learned", "bucket", b.ID, "limit", b.Burst, "window", b.Window)
			return b, true
		}
		if b.Window != 0 || lg.windowEv[s.bucket] < windowSettled {
			return b, false
		}
		return l.becomeWindow(s, b), true
	}
	if s.at.After(prev.at) {
		lg.epochLast[s.bucket] = s
	}
	if b.Window != 0 {
		return b, false
	}
	dt := s.at.Sub(e.at)
	drop := e.remaining - s.remaining
	ev := lg.windowEv[s.bucket]
	switch {
	case dt >= 1500*time.Millisecond && drop >= 2:
		ev += 5
	case !s.refused && !e.refused && e.count > 0 && s.count > e.count && dt >= 30*time.Millisecond && lg.implied[s.bucket]*dt.Seconds() >= 2.5:
		// Calls of the other class may draw from it too: a drop above
		// the calls counted is no refill either.
		k := int(s.count - e.count)
		if drop >= 1 && drop >= k-1 {
			ev++
		} else if drop <= k-3 {
			// (Calls counted here that another bucket refused drew
			// nothing: weak evidence against.)
			ev--
		}
	}
	ev = max(ev, -4)
	lg.windowEv[s.bucket] = ev
	l.log.Debug("window evidence", "bucket", s.bucket, "ev", ev, "dt", dt, "drop", drop, "k", s.count-e.count, "implied", lg.implied[s.bucket], "reset", s.reset.Sub(s.at))
	if ev < windowSettled {
		return b, false
	}
	return l.becomeWindow(s, b), true
}

// Pace log: one point per paceLogStep, kept over paceSpan.
const (
	paceLogStep = 100 * time.Millisecond
	paceSpan    = 30 * time.Second
)

// logPace records that an answer of class cls arriving at at was accepted.
func (lg *learning) logPace(cls string, at time.Time) {
	pl := lg.paceLog[cls]
	if len(pl) > 0 && at.Sub(pl[len(pl)-1].at) < paceLogStep {
		return
	}
	pl = append(pl, delivery{at: at, accepted: lg.accepted[cls]})
	for len(pl) > 2 && at.Sub(pl[1].at) > paceSpan {
		pl = pl[1:]
	}
	lg.paceLog[cls] = pl
}

// provisionalWindow reports whether a 429 that finds bucket b empty
// shows it to be a fixed window. Were it refilling continuously, it would be full at its Reset
// (Reset is rounded up to a second, so no sooner), so it refills at least
// (Limit − Remaining)/(Reset − now); and a bucket that fast, full at some
// instant t₀, is that empty now only if the calls it accepted since t₀
// cover what it lacks and that refill. When they fall short
// by a margin for every t₀ over the last paceSpan (and since the first
// answer, when that is nearer), the fleet's calls could not have emptied
// it: it is a window of unknown length, empty until its Reset
// (becomeWindow; the next answers, or probes, tell where the following
// ones end).
func (l *Limiter) provisionalWindow(s sample, b BucketState) bool {
	lg := l.learn
	if b.ID == "" || b.Window != 0 || s.stale || s.reset.IsZero() || strings.HasPrefix(b.ID, "plan-") || lg.windowEv[s.bucket] < 0 {
		return false
	}
	// Only a 429 that finds it empty with its Reset a second or more
	// away: success answers that found a bucket half empty took real
	// processes' continuous buckets for windows (split's and
	// alternate's write buckets, 5 deep, drained by a burst the sync
	// allowed: the fleet then paced them at 5 a second, half the
	// budget). A window of a second is found by windowEvidence.
	if !s.refused || s.remaining != 0 {
		return false
	}
	until := s.reset.Sub(s.at)
	if until < time.Second {
		return false
	}
	implied := math.Max(lg.implied[s.bucket], float64(s.limit-s.remaining)/until.Seconds())
	// Every call counts, of either class: a bucket not yet found shared
	// may be drained by both. Half the implied refill allows for Reset's
	// rounding and for the clocks.
	const classes = "rw"
	refill := implied / 2
	// And only far above the pace the fleet set for the class: nearer,
	// the paces logged (probing, a pause) decide it, and a real clock's
	// jitter took split's write bucket (5, 8/s, paced at 6.3/s) for a
	// window of 5 a second.
	pace := math.Inf(1)
	for _, o := range lg.model {
		if o.Rate > 0 && contains(o.Classes, s.class) {
			pace = math.Min(pace, o.Rate)
		}
	}
	if refill < 1.5*pace {
		return false
	}
	slack := 2 + float64(s.limit)/10
	span := time.Duration(0)
	for _, c := range classes {
		pl := lg.paceLog[string(c)]
		if len(pl) == 0 {
			continue
		}
		span = max(span, s.at.Sub(pl[0].at))
	}
	if span < time.Second {
		return false // too little known
	}
	// For each instant of the log, the calls accepted since: the
	// classes' logs are walked together, oldest first.
	type point struct {
		at       time.Time
		cls      int
		accepted int64
	}
	var points []point
	for i, c := range classes {
		for _, p := range lg.paceLog[string(c)] {
			points = append(points, point{p.at, i, p.accepted})
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i].at.Before(points[j].at) })
	var now, then [len(classes)]int64
	for i, c := range classes {
		now[i] = lg.accepted[string(c)]
	}
	for _, p := range points {
		then[p.cls] = p.accepted // the latest count at or before p.at
		since := now[0] - then[0] + now[1] - then[1]
		if float64(since)+slack >= float64(s.limit-s.remaining)+refill*s.at.Sub(p.at).Seconds() {
			return false
		}
	}
	l.log.Info("the fleet's calls could not have emptied the bucket this far were it refilling continuously: a fixed window", "bucket", b.ID, "remaining", s.remaining, "refused", s.refused, "implied", round(implied), "span", span, "reset", until)
	return true
}

// becomeWindow makes b a fixed window whose current window ends at s's
// Reset.
func (l *Limiter) becomeWindow(s sample, b BucketState) BucketState {
	lg := l.learn
	pace := b.Rate // what the fleet paced its calls at until now
	b.Window, b.Source = -1, "window"
	if st := lg.step[s.bucket]; st > 0 {
		b.Window = st
		b.Rate = float64(b.Burst) / st.Seconds()
	}
	lg.windowEnd[b.ID] = s.reset
	// Used in the current window: what the emptiest answer of it said,
	// and the calls sent since that the answers read do not show yet
	// (about a learning round's worth at the pace so far, and one more).
	// Fewer, and the calls the model lets through at once meet a window
	// already full (five 429s at once when a 1-s window was found).
	remaining := s.remaining
	if e, ok := lg.epochLast[s.bucket]; ok && e.reset.Equal(s.reset) {
		remaining = min(remaining, e.remaining)
	}
	inFlight := int(math.Ceil(pace*l.cfg.LearnEvery.Seconds())) + 1
	lg.windowUsed[b.ID] = min(max(b.Burst-remaining, 0)+inFlight, b.Burst)
	if strings.HasPrefix(b.ID, "w") {
		// Comparisons of reads and writes across the window's starts,
		// before it was known to be a window, read as two buckets:
		// they say nothing (sharedWindow weighs it afresh).
		ev := lg.shared[b.Burst]
		ev[1] = 0
		lg.shared[b.Burst] = ev
	}
	l.log.Info("rate-limit bucket is a fixed window: pacing it window by window", "bucket", b.ID, "limit", b.Burst, "window", b.Window, "ends", s.reset)
	return b
}

// sharedWindow weighs, for an answer to a read that describes a bucket of
// the size of a write window, whether reads draw from that window too:
// in the window's current epoch (same Reset), a read bucket of its own
// would be nearly full (reads are few), while the shared window is
// drained by the writes — a read answer that finds it 3 or more short
// (or refuses) is evidence for; one nearly full while the window's
// latest write answer was 4 or more short is evidence against. Three for
// and thrice as many as against make the window pace both classes, as
// mergeIfShared does for buckets that refill continuously.
func (l *Limiter) sharedWindow(s sample) []BucketState {
	lg := l.learn
	if s.bucket[:1] != "r" || s.reset.IsZero() {
		return nil // (a stale answer still tells what the window held)
	}
	wid := "w" + s.bucket[1:]
	w, ok := lg.model[wid]
	r := lg.model[s.bucket]
	if !ok || w.Window == 0 || strings.Contains(w.Classes, "r") || r.Classes == "-" {
		return nil
	}
	e, ok := lg.epochLast[wid]
	if !ok || s.reset.Sub(e.reset) > 250*time.Millisecond || e.reset.Sub(s.reset) > 250*time.Millisecond {
		return nil
	}
	ev := lg.shared[s.limit]
	switch {
	case s.refused || s.remaining <= s.limit-3:
		ev[0]++
	case s.remaining >= s.limit-1 && e.remaining <= s.limit-4 && e.at.Before(s.at):
		// (Only when the write arrived first: answers overtake each
		// other, and a read that arrived first found the window full.)
		ev[1]++
	}
	lg.shared[s.limit] = ev
	l.log.Debug("shared window evidence", "bucket", wid, "for", ev[0], "against", ev[1], "remaining", s.remaining, "refused", s.refused, "write", e.remaining)
	if ev[0] < 3 || ev[0] < 3*ev[1] {
		return nil
	}
	l.log.Info("reads draw from the write window too: pacing both by it", "bucket", w.ID, "size", s.limit)
	w.Classes, r.Classes = "rw", "-"
	return []BucketState{w, r}
}

// windowSettled is the evidence (answers) that makes a bucket a window.
const windowSettled = 8

// depthStep is the factor a climb raises a bucket of the given depth by in
// one step: 1 + min(most, k/depth). The deeper the bucket, the longer it
// takes to refuse a pace above its refill, the smaller the step.
func depthStep(depth int, most, k float64) float64 {
	return 1 + math.Min(most, k/float64(max(depth, 1)))
}

// refusedWithin reports whether the bucket refused a call within d of now:
// a bucket described only when it refuses (a window that binds near its
// end) is not retired for going undescribed in between.
func (lg *learning) refusedWithin(id string, now time.Time, d time.Duration) bool {
	past := lg.refusals[id]
	return len(past) > 0 && now.Sub(past[len(past)-1]) < d
}

// slowerThan reports whether a bucket other than except paces class cls
// at a rate clearly below rate.
func (lg *learning) slowerThan(except, cls string, rate float64) bool {
	for id, b := range lg.model {
		if id != except && contains(b.Classes, cls) && b.Rate > 0 && b.Rate < 0.98*rate {
			return true
		}
	}
	return false
}

// hasPacer reports whether a bucket other than except paces the class.
func (lg *learning) hasPacer(cls, except string) bool {
	for id, b := range lg.model {
		if id != except && contains(b.Classes, cls) && b.Rate > 0 && !strings.HasPrefix(id, "plan-") {
			return true
		}
	}
	return false
}

// retireOrProbeHidden stops pacing by buckets that answers no longer
// describe, and probes hidden ones.
func (l *Limiter) retireOrProbeHidden(now time.Time) []BucketState {
	lg := l.learn
	var out []BucketState
	for _, id := range sortedKeys(lg.model) {
		b := lg.model[id]
		if b.Classes == "-" || strings.HasPrefix(id, "plan-") || b.Rate <= 0 || b.Window != 0 {
			continue // a window may go undescribed for most of each window
		}
		if b.Source == "hidden" {
			// Closed loop, as TCP finds a path's capacity: while calls
			// wait for it and it refuses none, a bucket no success answer
			// describes is raised.
			//  - Known only from below (never measured: ×1.5 every
			//    hiddenStep; above a first refusal's lower bound: by its
			//    depth every second).
			//  - Between a lower bound and a rate it refused: toward the
			//    middle, by its depth; a middle held 3 s is the new lower
			//    bound (bisection upward).
			//  - Measured: +1% a second up to 2–10% over what it let
			//    through (never past a rate it refused); past that after
			//    measuredHold without a 429 (the measurement may have
			//    read low, or its limit been raised).
			// A deep bucket drains slowly, so a fast climb would
			// overshoot long before it refuses.
			d, c := lg.delivered[id], lg.ceiling[id]
			// Between bounds, a middle the rate was set to is a ceiling
			// even when the store's rounding put the rate a hair above
			// it (from below, that read as "climb ×1.5 a second").
			fromBelow := (d == 0 || lg.bound[id]) && !(c > 0 && (c > b.Rate || lg.upper[id] > 0 && c >= 0.999*b.Rate))
			every := time.Second
			if fromBelow && d == 0 {
				every = hiddenStep
			}
			cls := b.Classes[:1]
			if lg.demand[cls] && !lg.slowerThan(id, cls, b.Rate) && now.Sub(lg.cut[id]) >= time.Second && now.Sub(lg.probed[id]) >= every {
				lg.probed[id] = now
				rate := math.Min(b.Rate*1.5, maxProbeRate)
				switch {
				case fromBelow && d > 0:
					// ×1.5 a second for a bucket of 5, ×1.08 for 30: a
					// deep bucket refuses a pace above its refill only
					// once its depth has drained.
					rate = b.Rate * depthStep(b.Burst, 0.5, 2.5)
				case fromBelow:
				case (lg.bound[id] || d == 0) && b.Rate < 0.92*c:
					// 10% a second for 5 tokens, 2% for 25.
					rate = math.Min(b.Rate*depthStep(b.Burst, 0.1, 0.5), 0.92*c)
				default:
					limit := hiddenOver(b.Burst, d) * d
					if lg.bound[id] || d == 0 {
						limit = c
					} else if c > 0 {
						limit = math.Min(limit, c)
					}
					if up := lg.upper[id]; lg.bound[id] && up > 0 && b.Rate >= 0.92*c && now.Sub(lg.cut[id]) >= 3*time.Second {
						// It has taken the middle of its bounds for a
						// while without refusing: that is its new lower
						// bound, and the middle moves up (bisection).
						lo := max(lg.lower[id], b.Rate)
						lg.lower[id] = lo
						target := math.Sqrt(lo * up)
						if up <= 1.1*lo {
							// Closed in: measured, at the middle (as a
							// tight bracket is), and free to climb to the
							// upper end (capping it at the old middle held
							// the pace at that for 30 s).
							lg.bound[id], lg.delivered[id] = false, max(lo, deliveredShare*target)
							delete(lg.upper, id)
							lg.ceiling[id], target = up, lg.delivered[id]
						} else {
							lg.ceiling[id] = target
						}
						b.Rate = math.Min(b.Rate*depthStep(b.Burst, 0.1, 0.5), target)
						out = append(out, b)
						continue
					}
					rate = b.Rate * 1.01
					if rate > limit {
						if lg.capped[id].IsZero() {
							lg.capped[id] = now
						}
						if now.Sub(lg.capped[id]) < measuredHold {
							continue
						}
						// Held that long without a refusal: the
						// measurement may have read low (instants
						// off by a slow answer) or the limit been
						// raised. It climbs on, 1% a second, until a
						// refusal measures it again.
						lg.delivered[id] = rate
						delete(lg.ceiling, id)
					}
				}
				b.Rate = rate
				out = append(out, b)
			}
			continue
		}
		cls := b.Classes[:1]
		seen, ok := lg.seen[id]
		if !ok {
			lg.seen[id] = lg.answers[cls] // first met now: count from here
			continue
		}
		if lg.answers[cls]-seen > retireAfter && !lg.refusedWithin(id, now, 30*time.Second) {
			l.log.Info("rate-limit bucket no longer described: not pacing by it", "bucket", id, "answers", lg.answers[cls]-seen)
			b.Classes = "-"
			out = append(out, b)
		}
	}
	return out
}

// cutFactor is how much a 429 from a bucket cuts its rate: to 75% when
// the rate was measured or is a plan's (the estimate was close, the limits
// just changed, or a cold start's burst ran out); to 50% when it is a guess
// (a bucket first described, started from the starting buckets), an
// override or a probe, or when a cut less than 3 s before was not enough.
func cutFactor(source string, sinceLastCut time.Duration) float64 {
	switch {
	case source == "guess" || source == "override" || source == "probing":
		return 0.5
	case sinceLastCut < 3*time.Second:
		return 0.5
	default:
		return 0.75
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }
