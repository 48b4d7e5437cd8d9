// Package ratelimit paces Management API calls to the tenant's rate budget.
//
// Auth0 checks each request against an API-wide (global) token bucket and
// then the endpoint's bucket; writes and reads of organization connections
// have separate buckets. A Limiter models each bucket it knows as a token
// bucket (golang.org/x/time/rate), makes a call wait until every bucket that
// applies to it has a token, follows the X-RateLimit-* headers of answers,
// and after a 429 pauses every caller until the budget is back.
package ratelimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"golang.org/x/time/rate"
)

// ErrStopped is returned by Wait once Stop was called.
var ErrStopped = errors.New("rate limiter stopped: the worker is shutting down")

// Bucket is a token bucket: Burst tokens at most, refilled at Rate per
// second. A zero Rate means the bucket is not modelled.
type Bucket struct {
	Burst int
	Rate  float64
}

// Config configures a Local limiter.
type Config struct {
	// Global applies to every call; Write and Read to calls of their class.
	// Buckets with a zero Rate are not modelled; with none modelled, calls
	// are paced only by 429 pauses.
	Global, Write, Read Bucket
	// PauseFloor is the shortest pause after a 429. Zero means 1 second.
	PauseFloor time.Duration
	// PauseJitter is the largest random extra added to a pause, so that
	// paused callers do not all resume at once. Zero means 250 ms.
	PauseJitter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Local is a limiter for one process. Safe for concurrent use.
type Local struct {
	cfg     Config
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*rate.Limiter // "global", "write", "read"
	paused  time.Time                // no call starts before this instant
	waiting time.Duration            // total time callers spent waiting
	limited int                      // 429s seen
	stop    chan struct{}            // closed by Stop
	stopped sync.Once
}

// NewLocal returns a limiter for cfg.
func NewLocal(cfg Config) *Local {
	if cfg.PauseFloor <= 0 {
		cfg.PauseFloor = time.Second
	}
	if cfg.PauseJitter <= 0 {
		cfg.PauseJitter = 250 * time.Millisecond
	}
	l := &Local{cfg: cfg, now: cfg.Now, buckets: map[string]*rate.Limiter{}, stop: make(chan struct{})}
	if l.now == nil {
		l.now = time.Now
	}
	for name, b := range map[string]Bucket{"global": cfg.Global, "write": cfg.Write, "read": cfg.Read} {
		if b.Rate > 0 {
			burst := max(b.Burst, 1)
			l.buckets[name] = rate.NewLimiter(rate.Limit(b.Rate), burst)
		}
	}
	return l
}

func (l *Local) applicable(c mgmt.Class) []*rate.Limiter {
	var out []*rate.Limiter
	if g := l.buckets["global"]; g != nil {
		out = append(out, g)
	}
	if b := l.buckets[c.String()]; b != nil {
		out = append(out, b)
	}
	return out
}

// Wait blocks until a call of class c may be sent: every bucket that applies
// has a token for it and no pause is in force. It returns ctx's error if ctx
// ends first, or ErrStopped once Stop is called, giving the reserved tokens
// back.
func (l *Local) Wait(ctx context.Context, c mgmt.Class) error {
	for {
		select {
		case <-l.stop:
			return ErrStopped
		default:
		}
		l.mu.Lock()
		now := l.now()
		delay := l.paused.Sub(now)
		var res []*rate.Reservation
		if delay <= 0 {
			delay = 0
			for _, b := range l.applicable(c) {
				r := b.ReserveN(now, 1)
				res = append(res, r)
				delay = max(delay, r.DelayFrom(now))
			}
		}
		l.mu.Unlock()
		if delay == 0 {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, r := range res {
				r.Cancel()
			}
			return ctx.Err()
		case <-l.stop:
			t.Stop()
			for _, r := range res {
				r.Cancel()
			}
			return ErrStopped
		case <-t.C:
		}
		l.mu.Lock()
		l.waiting += delay
		stillPaused := l.paused.After(l.now())
		l.mu.Unlock()
		if len(res) > 0 && !stillPaused {
			return nil
		}
		// Either the pause ended (now reserve tokens) or a 429 started a new
		// pause while we slept on our tokens (wait it out, reserve again).
		for _, r := range res {
			r.Cancel()
		}
	}
}

// Stop makes every current and future Wait return ErrStopped, so that calls
// waiting for budget give up when the worker shuts down. Calls already sent
// are not affected.
func (l *Local) Stop() { l.stopped.Do(func() { close(l.stop) }) }

// Observe follows the answer of one call: a 429 pauses every caller until
// the budget is back (Retry-After if given, else X-RateLimit-Reset, at least
// PauseFloor, plus jitter); X-RateLimit-Limit sets the size of the bucket it
// describes and X-RateLimit-Remaining caps its tokens.
func (l *Local) Observe(e mgmt.Exchange) {
	now := e.Received
	if now.IsZero() {
		now = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Status == 429 {
		l.limited++
		until := now.Add(l.cfg.PauseFloor)
		if e.RetryAfter > 0 {
			until = maxTime(until, now.Add(e.RetryAfter))
		} else if e.RateLimit.Present {
			until = maxTime(until, e.RateLimit.Reset)
		}
		until = until.Add(time.Duration(rand.Int64N(int64(l.cfg.PauseJitter) + 1)))
		l.paused = maxTime(l.paused, until)
	}
	if !e.RateLimit.Present || e.RateLimit.Limit <= 0 {
		return
	}
	b := l.describedBucket(e.Class, e.RateLimit.Limit)
	if b == nil {
		return
	}
	if b.Burst() != e.RateLimit.Limit {
		b.SetBurstAt(now, e.RateLimit.Limit)
	}
	if extra := int(b.TokensAt(now)) - e.RateLimit.Remaining; extra > 0 {
		b.ReserveN(now, extra) // the tenant has fewer tokens than we thought
	}
}

// describedBucket guesses which modelled bucket a header set describes: the
// one of the call's buckets whose size equals the Limit, else the call's own
// class bucket, else the global one.
func (l *Local) describedBucket(c mgmt.Class, limit int) *rate.Limiter {
	cands := l.applicable(c)
	for _, b := range cands {
		if b.Burst() == limit {
			return b
		}
	}
	if b := l.buckets[c.String()]; b != nil {
		return b
	}
	return l.buckets["global"]
}

// Stats is what a Local limiter has seen.
type Stats struct {
	PausedUntil time.Time
	Waited      time.Duration // total time callers waited for budget
	Throttled   int           // 429 answers observed
	Buckets     map[string]Bucket
}

// Stats returns a snapshot.
func (l *Local) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{PausedUntil: l.paused, Waited: l.waiting, Throttled: l.limited, Buckets: map[string]Bucket{}}
	for name, b := range l.buckets {
		s.Buckets[name] = Bucket{Burst: b.Burst(), Rate: float64(b.Limit())}
	}
	return s
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
