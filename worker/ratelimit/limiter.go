package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/redis/go-redis/v9"
)

// Buckets are the starting buckets: the API-wide one and the
// organization-connections write and read ones, from a plan's documented
// numbers or --rate/--burst. A zero Rate means the bucket is not known.
type Buckets struct {
	Global, Write, Read Bucket
}

// Config configures a Limiter. Redis and Tenant are required.
type Config struct {
	// Redis holds the fleet's shared model of the budget.
	Redis redis.UniversalClient
	// Prefix is orgconn's key prefix (without braces); empty means "orgconn".
	Prefix string
	// Tenant names the budget: every worker of the fleet that talks to the
	// same tenant must use the same name (orgconn uses the domain).
	Tenant string
	// Start paces calls until the tenant's answers describe its buckets,
	// and gives a newly described bucket of the same size its first rate.
	Start Buckets
	// Override makes Start replace the starting buckets the fleet recorded
	// before (they only matter until answers arrive).
	Override bool
	// Margin is how far below a measured refill rate calls are paced; the
	// sync with each answer's Remaining hands back what the margin saves.
	// Zero means 2%.
	Margin float64
	// PauseFloor is the shortest pause after a 429. Zero means 50 ms.
	PauseFloor time.Duration
	// PauseJitter is the largest random extra added to a pause. Zero means
	// 50 ms (calls after a pause are spread by their slots anyway).
	PauseJitter time.Duration
	// MaxPause caps a pause (a far-off Reset). Zero means 5 minutes.
	MaxPause time.Duration
	// Horizon is how far ahead a call may hold a slot; a call whose slot is
	// further away waits and asks again, so that what the fleet learns
	// meanwhile applies to it. Zero means 250 ms.
	Horizon time.Duration
	// LearnEvery is how often the fleet's learning process reads the
	// answers recorded since it last looked. Zero means 250 ms.
	LearnEvery time.Duration
	// Retention is how long the learned model outlives the last answer.
	// Zero means 30 days.
	Retention time.Duration
	// Learner tunes the learning.
	Learner LearnerConfig
	// Logger receives a line when the model changes. Nil means
	// slog.Default().
	Logger *slog.Logger

	// now is the clock (tests); nil means time.Now.
	now func() time.Time
	// jitter returns a number in [0, n) for the pauses' jitter (tests:
	// a seeded source makes a virtual run repeatable); nil means
	// math/rand/v2's Int64N.
	jitter func(n int64) int64
}

// ErrStopped is returned by Wait once Stop was called.
var ErrStopped = errors.New("rate limiter stopped: the worker is shutting down")

// ErrUnavailable wraps a failure to reach Redis while pacing a call.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Limiter paces Management API calls to a tenant's budget, shared by every
// worker process using the same Redis and tenant. It implements mgmt.Pacer.
//
// Each call reserves a slot in every bucket that applies to it with one Lua
// script over a Redis hash — GCRA, as go-redis/redis_rate, reading Redis
// TIME so that every process shares one clock — and sleeps until the slot.
// Each answer is recorded with one script: the bucket its headers describe
// is synced to what the tenant said, and the answer is kept as a sample. One
// process of the fleet at a time (it holds a lease in Redis) learns from all
// the samples: each bucket's refill rate, cuts after 429s, probing upwards,
// buckets that no longer bind (see model.go). A 429 pauses every caller of
// every process until the budget is back.
//
// Safe for concurrent use.
type Limiter struct {
	cfg   Config
	store store
	log   *slog.Logger
	id    string // this process, for the learning lease

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the background goroutines end
	cancel   context.CancelFunc

	// gates hold, per class, the one goroutine of this process that
	// consults the fleet's budget; the others wait here, in this process,
	// instead of each running the reserve script for the same slot.
	gates [2]chan struct{}

	mu    sync.Mutex
	pause time.Time // local copy of the fleet's pause
	// woken is closed (and replaced) when the fleet's model changed so
	// that a slot may come sooner than a caller was told: callers told
	// to ask again later ask at once.
	woken chan struct{}
	stats Stats
	learn *learning // used by the learning goroutine only
}

// Stats counts what one Limiter (one process) did.
type Stats struct {
	Calls     int64         // calls paced
	Throttled int64         // 429 answers observed
	Waited    time.Duration // total time calls waited for budget
	Leading   bool          // this process learns for the fleet
}

// New returns a limiter and records the starting buckets unless the fleet
// already knows them. It follows the fleet's pause announcements and takes
// its turn at learning in the background; Close ends that.
func New(ctx context.Context, cfg Config) (*Limiter, error) {
	l, err := newLimiter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.followPauses(bg) }()
	go func() { defer wg.Done(); l.learnLoop(bg) }()
	go func() { wg.Wait(); close(l.done) }()
	return l, nil
}

// newLimiter builds a limiter without its background work.
func newLimiter(ctx context.Context, cfg Config) (*Limiter, error) {
	if cfg.Redis == nil || cfg.Tenant == "" {
		return nil, errors.New("ratelimit: Config.Redis and Config.Tenant are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "orgconn"
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 0.02
	}
	if cfg.PauseFloor <= 0 {
		cfg.PauseFloor = 50 * time.Millisecond
	}
	if cfg.PauseJitter <= 0 {
		cfg.PauseJitter = 50 * time.Millisecond
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = 5 * time.Minute
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = 250 * time.Millisecond
	}
	if cfg.LearnEvery <= 0 {
		cfg.LearnEvery = 250 * time.Millisecond
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	host, _ := os.Hostname()
	l := &Limiter{
		cfg:   cfg,
		store: newStore(cfg.Redis, cfg.Prefix, cfg.Tenant, cfg.Retention),
		log:   cfg.Logger.With("component", "ratelimit", "tenant", cfg.Tenant),
		id:    fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32()),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		learn: newLearning(cfg.Learner),
		gates: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		woken: make(chan struct{}),
	}
	source := "plan"
	if cfg.Override {
		source = "override"
	}
	for _, p := range planIDs {
		b := cfg.Start.of(p.id)
		if b.Rate <= 0 {
			continue
		}
		if _, err := l.store.seed(ctx, p.id, p.classes, Bucket{Burst: max(b.Burst, 1), Rate: b.Rate}, source, cfg.Override); err != nil {
			return nil, fmt.Errorf("ratelimit: record starting buckets: %w", err)
		}
	}
	return l, nil
}

// followPauses applies the pauses other processes announce.
func (l *Limiter) followPauses(ctx context.Context) {
	sub := l.cfg.Redis.Subscribe(ctx, l.store.channel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			if msg.Payload == wakeMessage {
				l.wake()
				continue
			}
			us, err := strconv.ParseInt(msg.Payload, 10, 64)
			if err == nil && us > 0 {
				l.setPause(l.cfg.now().Add(time.Duration(us) * time.Microsecond))
			}
		}
	}
}

// Close stops the limiter and its background work. It must not be used
// afterwards.
func (l *Limiter) Close() {
	l.Stop()
	l.cancel()
	<-l.done
}

// Stop makes every current and future Wait return ErrStopped, so that calls
// waiting for budget give up when the worker shuts down. Calls already sent
// are not affected.
func (l *Limiter) Stop() { l.stopOnce.Do(func() { close(l.stop) }) }

// wakeMessage, published on the pause channel, says the model changed so
// that slots may come sooner (a bucket raised, a cold start ended): every
// process's callers waiting to ask again ask at once.
const wakeMessage = "wake"

// wake makes this process's callers that wait to ask again ask at once.
func (l *Limiter) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.woken)
	l.woken = make(chan struct{})
}

// wakeFleet wakes the callers of every process of the fleet.
func (l *Limiter) wakeFleet(ctx context.Context) {
	l.wake()
	l.cfg.Redis.Publish(ctx, l.store.channel, wakeMessage)
}

// wakened returns the channel the next wake closes.
func (l *Limiter) wakened() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.woken
}

func (l *Limiter) setPause(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.pause) {
		l.pause = until
	}
}

func (l *Limiter) pausedUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pause
}

// ticket connects an answer to its reservation.
type ticket struct {
	class  mgmt.Class
	counts map[string]int64 // each bucket drawn from → its counter with this call
	at     int64            // Redis time of the reservation, µs
	waited bool             // the slot was set by a bucket's spacing: every older call was sent first
}

func otherClass(cls string) string {
	if cls == "w" {
		return "r"
	}
	return "w"
}

func classLetter(c mgmt.Class) string {
	if c == mgmt.Write {
		return "w"
	}
	return "r"
}

// Wait reserves a slot for a call of class c and sleeps until it. If a 429
// anywhere in the fleet starts a pause meanwhile, it reserves again after
// the pause. It returns ErrStopped after Stop, ctx's error when ctx ends
// (giving the slot back), and an error wrapping ErrUnavailable when Redis
// cannot be reached.
//
// Within a process, one goroutine per class at a time consults the fleet's
// budget (the local gate); the others wait for it to be granted its slot,
// so Redis sees about one reserve call per granted slot per process,
// whatever the number of goroutines waiting.
func (l *Limiter) Wait(ctx context.Context, c mgmt.Class) (mgmt.Ticket, error) {
	start := l.cfg.now()
	gate := l.gates[0]
	if c == mgmt.Write {
		gate = l.gates[1]
	}
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.stop:
		return nil, ErrStopped
	}
	defer func() { <-gate }()
	for {
		select {
		case <-l.stop:
			return nil, ErrStopped
		default:
		}
		woken := l.wakened()
		res, err := l.reserve(ctx, c)
		if err != nil {
			return nil, err
		}
		// A slot beyond the horizon is asked for again when told, or as
		// soon as the model changes so that it may be sooner (the cold
		// start's plan buckets put the next slot seconds away; the
		// first answer ends them). A slot held is kept.
		if res.reserved() {
			woken = nil
		}
		if res.wait > 0 {
			t := time.NewTimer(res.wait)
			select {
			case <-ctx.Done():
				t.Stop()
				l.giveBack(res)
				return nil, ctx.Err()
			case <-l.stop:
				t.Stop()
				l.giveBack(res)
				return nil, ErrStopped
			case <-woken:
				t.Stop()
			case <-t.C:
			}
		}
		if tk := l.claim(c, res, start); tk != nil {
			return tk, nil
		}
	}
}

// reserve asks the fleet's model for a slot (see reserveScript).
func (l *Limiter) reserve(ctx context.Context, c mgmt.Class) (reservation, error) {
	res, err := l.store.reserve(ctx, classLetter(c), l.cfg.Horizon)
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if res.pause > 0 {
		l.setPause(l.cfg.now().Add(res.pause))
	}
	return res, nil
}

// claim turns a reservation whose slot has come into a ticket; nil when
// the caller must ask again: nothing was reserved (the slot was beyond the
// horizon), or a 429 somewhere made the slot too early (it is given back).
func (l *Limiter) claim(c mgmt.Class, res reservation, start time.Time) *ticket {
	if !res.reserved() {
		return nil
	}
	if p := l.pausedUntil(); p.After(l.cfg.now()) {
		l.giveBack(res)
		return nil
	}
	l.mu.Lock()
	l.stats.Calls++
	l.stats.Waited += l.cfg.now().Sub(start)
	l.mu.Unlock()
	return &ticket{class: c, counts: res.counts, at: res.at, waited: res.spaced}
}

func (l *Limiter) giveBack(res reservation) {
	if !res.reserved() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.store.cancel(ctx, res.counts)
}

// Release gives back the slot of a ticket whose call was never sent (no
// token could be had), so that the fleet's budget does not count it.
func (l *Limiter) Release(t mgmt.Ticket) {
	if tk, _ := t.(*ticket); tk != nil {
		l.giveBack(reservation{counts: tk.counts})
	}
}

// Observe records the answer to a call paced by Wait.
func (l *Limiter) Observe(t mgmt.Ticket, e mgmt.Exchange) {
	tk, _ := t.(*ticket)
	if tk == nil || e.Status == 0 {
		return // no answer: nothing is known of the budget
	}
	now := l.cfg.now()
	cls := classLetter(tk.class)
	a := answer{class: cls, refused: e.Status == 429, waited: tk.waited, reservedAt: tk.at,
		age: now.Sub(e.Received), rtt: e.Received.Sub(e.Sent), floor: l.cfg.PauseFloor, drewFrom: tk.counts}
	rl := e.RateLimit
	if rl.Present && rl.Limit > 0 {
		id := bucketID(cls, rl.Limit)
		if _, ok := tk.counts[id]; !ok {
			// The fleet found the bucket of this size shared by both
			// classes: it is named by the other class.
			if other := bucketID(otherClass(cls), rl.Limit); tk.counts[other] > 0 {
				id = other
			}
		}
		a.bucket, a.remaining, a.count = id, rl.Remaining, tk.counts[id]
		if rl.Reset.Unix() > 0 {
			a.resetIn, a.hasReset = rl.Reset.Sub(e.Received), true
		}
		a.startBurst, a.startRate = rl.Limit, l.startRate(cls, rl.Limit)
		if a.hasReset && a.resetIn > 0 && rl.Remaining < rl.Limit {
			// A bucket first described when it is short of tokens (the
			// tightest of several) is full again at its Reset: it
			// refills at least that fast. Started at the slowest guess
			// instead, it would pace every call of its class while
			// answers describe it only when it is the tightest — never
			// full enough to be probed. (If Reset means "the next
			// token", this overestimates; the bucket's first 429 then
			// measures it.) Reset is whole seconds, rounded up: under
			// a second away, the bucket may be full up to a second
			// sooner (or, were it a window, later): (Limit − Remaining)
			// over the span and a second more is a cautious lower
			// bound, and a guess 24 times too slow is lifted at once.
			span := a.resetIn
			if span < time.Second {
				span += time.Second
			}
			a.startRate = max(a.startRate, float64(rl.Limit-rl.Remaining)/span.Seconds())
		}
	}
	if !a.refused && a.bucket == "" {
		return
	}
	if a.refused && a.bucket == "" {
		// A 429 that names no bucket still says one refused: "w0" (or
		// "r0") stands for it, found in closed loop like any bucket
		// that no success answer describes.
		a.bucket, a.count = bucketID(cls, 0), tk.counts[bucketID(cls, 0)]
		a.startBurst, a.startRate = 1, l.startRate(cls, 0)
	}
	a.retryAfter = a.refused && e.RetryAfter > 0
	if a.refused {
		a.pause = l.pauseFor(e, now)
		l.mu.Lock()
		l.stats.Throttled++
		l.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := l.store.answer(ctx, a)
	if err != nil {
		l.log.Warn("cannot record an answer in the shared model", "err", err)
		return
	}
	if got.repaced {
		l.wakeFleet(ctx)
	}
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug("answer", "bucket", a.bucket, "status", e.Status, "remaining", a.remaining, "count", a.count, "tokens_now", got.tokens, "rate", got.rate, "waited", tk.waited)
	}
	if a.refused {
		l.setPause(now.Add(got.pause)) // the fleet's, maybe shortened
		l.log.Info("429: every worker pauses", "pause", got.pause.Round(time.Millisecond), "bucket", a.bucket, "remaining", rl.Remaining, "limit", rl.Limit)
		l.cfg.Redis.Publish(ctx, l.store.channel, strconv.FormatInt(got.pause.Microseconds(), 10))
	}
}

// pauseFor is how long a 429 stops every caller: Retry-After when given,
// else until X-RateLimit-Reset, at least PauseFloor and at most MaxPause,
// plus jitter. Reset is whole seconds, may equal the current second (then
// the floor applies), and may mean "the next token" or "full" (not
// documented); the answer script shortens it when the refusing bucket's
// refill is measured.
func (l *Limiter) pauseFor(e mgmt.Exchange, now time.Time) time.Duration {
	d := l.cfg.PauseFloor
	switch {
	case e.RetryAfter > 0:
		d = max(d, e.RetryAfter)
	case e.RateLimit.Present:
		d = max(d, e.RateLimit.Reset.Sub(now))
	}
	d = min(d, l.cfg.MaxPause)
	jitter := l.cfg.jitter
	if jitter == nil {
		jitter = rand.Int64N
	}
	return d + time.Duration(jitter(int64(l.cfg.PauseJitter)+1))
}

// State returns the fleet's current model of the budget, from Redis.
func (l *Limiter) State(ctx context.Context) (State, error) { return l.store.state(ctx) }

// Stats returns what this process's limiter did.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// ReadState returns the fleet's model of a tenant's budget without joining
// the fleet (for "orgconn limits").
func ReadState(ctx context.Context, rdb redis.UniversalClient, prefix, tenant string) (State, error) {
	if prefix == "" {
		prefix = "orgconn"
	}
	s := newStore(rdb, prefix, tenant, 0)
	return s.state(ctx)
}

// bucketID names a bucket by the class of the answers that describe it and
// its size: "w10".
func bucketID(cls string, limit int) string { return cls + strconv.Itoa(limit) }

func contains(classes, cls string) bool { return strings.Contains(classes, cls) }

// Tenants lists the tenants whose budget the fleet has a model of.
func Tenants(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	if prefix == "" {
		prefix = "orgconn"
	}
	head := "{" + prefix + "}:rl:"
	seen := map[string]bool{}
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, head+"*", 500).Iterator()
		for iter.Next(ctx) {
			k := strings.TrimPrefix(iter.Val(), head)
			if strings.HasSuffix(k, ":samples") || strings.HasSuffix(k, ":leader") {
				continue
			}
			seen[k] = true
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, c)
		})
	} else {
		err = scan(ctx, rdb)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, err
}

// TenantOf names the budget of the tenant at base URL: its host (with the
// port, if any). Every worker, command and tool that shares a fleet's
// budget must name the tenant the same way.
func TenantOf(base string) string {
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		return u.Host
	}
	return base
}
