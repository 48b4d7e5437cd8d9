package ratelimit

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/redis/go-redis/v9"
)

// A virtual fleet: the real Limiter and the real Lua scripts (on an
// embedded Redis whose TIME is the virtual clock) pace callers of several
// processes against a simulated tenant; sleeping and the network are events
// on a queue, so a scenario of minutes runs in milliseconds, at fixed
// instants, the same every time for a seed.

// vbucket is one of the tenant's token buckets: continuous refill at rate,
// or, with a window, limit tokens at the start of each window.
type vbucket struct {
	name    string
	classes string // the classes of calls that draw from it: "r", "w" or "rw"
	limit   int
	rate    float64
	window  time.Duration
	tokens  float64
	last    time.Time
}

func (b *vbucket) refill(t time.Time) {
	if b.window > 0 {
		if t.Truncate(b.window).After(b.last.Truncate(b.window)) {
			b.tokens = float64(b.limit)
		}
		b.last = t
		return
	}
	b.tokens = math.Min(float64(b.limit), b.tokens+t.Sub(b.last).Seconds()*b.rate)
	b.last = t
}

// steady is the bucket's long-run refill per second.
func (b *vbucket) steady() float64 {
	if b.window > 0 {
		return float64(b.limit) / b.window.Seconds()
	}
	return b.rate
}

// resetAt is what X-RateLimit-Reset says for the bucket at t.
func (b *vbucket) resetAt(t time.Time, meaning string) time.Time {
	switch {
	case meaning == "now":
		return t.Add(-time.Duration(t.UnixNano()%2) * time.Second) // now or already past
	case b.window > 0:
		return t.Truncate(b.window).Add(b.window)
	}
	need := float64(b.limit) - b.tokens // "full"
	if meaning == "next" {
		need = 1 - (b.tokens - math.Floor(b.tokens+1e-9))
	}
	if need <= 0 {
		return t
	}
	return t.Add(time.Duration(need / b.rate * float64(time.Second)))
}

// vtenant is a simulated tenant in one of Auth0's plausible shapes (the
// zoo of issue 11): which buckets each class draws from, which bucket the
// headers describe, what Reset means.
type vtenant struct {
	buckets []*vbucket // the first is the global one
	// policy: "tightest" (the fewest tokens left, the global one on a tie),
	// "global" (success answers describe the global bucket, a 429 the
	// bucket that refused), "alternate" (each answer one bucket in turn).
	policy     string
	reset      string // "full", "next" or "now"
	retryAfter bool   // 429s carry Retry-After
	turn       int
}

// vshapes are the virtual tenants, by the names `orgconn simulate --shape`
// uses. Per-minute plans run 20 times faster (the simulator's time scale).
var vshapes = map[string]func() *vtenant{
	"shared": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 20}}, policy: "tightest"}
	},
	"split": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 20}, {name: "read", classes: "r", limit: 5, rate: 10}, {name: "write", classes: "w", limit: 5, rate: 8}}, policy: "tightest", retryAfter: true}
	},
	"burst-headers": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 20}, {name: "write", classes: "w", limit: 30, rate: 8}}, policy: "global"}
	},
	"alternate": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 20}, {name: "write", classes: "w", limit: 5, rate: 10}}, policy: "alternate"}
	},
	"window": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, window: time.Second}, {name: "write", classes: "w", limit: 480, window: time.Minute}}, policy: "tightest"}
	},
	"reset-now": func() *vtenant {
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 20}}, policy: "tightest", reset: "now"}
	},
	"essentials": func() *vtenant { // ×20
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 10, rate: 150.0 / 60 * 20}, {name: "read", classes: "r", limit: 5, rate: 50.0 / 60 * 20}, {name: "write", classes: "w", limit: 5, rate: 25.0 / 60 * 20}}, policy: "tightest"}
	},
	"enterprise": func() *vtenant { // ×4
		return &vtenant{buckets: []*vbucket{{name: "global", classes: "rw", limit: 50, rate: 16 * 4}, {name: "read", classes: "r", limit: 10, rate: 100.0 / 60 * 4}, {name: "write", classes: "w", limit: 5, rate: 150.0 / 60 * 4}}, policy: "global"}
	},
}

// start fills every bucket at t.
func (v *vtenant) start(t time.Time) {
	for _, b := range v.buckets {
		b.tokens, b.last = float64(b.limit), t
	}
}

// binding is the bucket that limits writes in the long run.
func (v *vtenant) binding() *vbucket {
	var slow *vbucket
	for _, b := range v.buckets {
		if strings.Contains(b.classes, "w") && (slow == nil || b.steady() < slow.steady()) {
			slow = b
		}
	}
	return slow
}

// call answers a call of class cls ("r" or "w") at t: its status, headers,
// Retry-After, and whether it drew from bucket b.
func (v *vtenant) call(cls string, t time.Time) (int, mgmt.RateLimit, time.Duration, []*vbucket) {
	var bs []*vbucket
	var refused *vbucket
	for _, b := range v.buckets {
		if strings.Contains(b.classes, cls) {
			b.refill(t)
			bs = append(bs, b)
			if refused == nil && b.tokens < 1-1e-9 {
				refused = b
			}
		}
	}
	status := 201
	if refused != nil {
		status = 429
	} else {
		for _, b := range bs {
			b.tokens--
		}
	}
	d := bs[0]
	switch v.policy {
	case "alternate":
		d = bs[v.turn%len(bs)]
		v.turn++
	case "global":
		if refused != nil {
			d = refused
		}
	default:
		for _, b := range bs[1:] {
			if math.Floor(b.tokens+1e-9) < math.Floor(d.tokens+1e-9) {
				d = b
			}
		}
	}
	reset := d.resetAt(t, v.reset)
	sec := reset.Unix()
	if reset.Nanosecond() > 0 {
		sec++
	}
	var ra time.Duration
	if refused != nil && v.retryAfter {
		ra = time.Duration(math.Ceil(refused.resetAt(t, "next").Sub(t).Seconds())) * time.Second
	}
	if refused != nil {
		bs = nil
	}
	return status, mgmt.RateLimit{Present: true, Limit: d.limit, Remaining: int(math.Floor(d.tokens + 1e-9)), Reset: time.Unix(sec, 0)}, ra, bs
}

// event is something that happens at an instant.
type event struct {
	at  time.Time
	seq int
	do  func()
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at.Equal(e[j].at) {
		return e[i].seq < e[j].seq
	}
	return e[i].at.Before(e[j].at)
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// scenario is one virtual run.
type scenario struct {
	shape                        string // a vshapes name
	processes, concurrency, calls int
	readShare                    float64 // share of calls that are reads (the unknown-organization checks)
	halveAt                      int     // after this many applied calls, halve the rates (0: never)
	latency                      float64 // mean round trip in ms
	start                        Buckets // the limiter's starting point
	seed                         uint64
}

// fleetResult is what a virtual run measured.
type fleetResult struct {
	calls, applied, refused int
	elapsed                 time.Duration
	utilization             float64
	reserves                int // reserve scripts run
}

func (r fleetResult) String() string {
	return fmt.Sprintf("%d applied in %v, %d calls, %d refused (%.1f%%), utilization %.3f, %.2f reserve scripts a call",
		r.applied, r.elapsed.Round(time.Millisecond), r.calls, r.refused, 100*float64(r.refused)/float64(max(r.calls, 1)), r.utilization, float64(r.reserves)/float64(max(r.calls, 1)))
}

func runFleet(t *testing.T, sc scenario) fleetResult {
	t.Helper()
	ctx := context.Background()
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	rng := rand.New(rand.NewPCG(sc.seed, 7))

	now := t0
	mr.SetTime(now)
	clock := func() time.Time { return now }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ORGCONN_FLEET_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var lims []*Limiter
	for p := 0; p < sc.processes; p++ {
		l, err := newLimiter(ctx, Config{Redis: rdb, Tenant: "v", Start: sc.start, Logger: logger.With("process", p), now: clock})
		if err != nil {
			t.Fatal(err)
		}
		lims = append(lims, l)
	}
	mk, ok := vshapes[sc.shape]
	if !ok {
		t.Fatalf("no shape %q", sc.shape)
	}
	tenant := mk()
	tenant.start(now)
	binding := tenant.binding()

	var q events
	seq := 0
	at := func(when time.Time, do func()) {
		seq++
		heap.Push(&q, event{at: when, seq: seq, do: do})
	}
	var res fleetResult
	var first, last, halvedAt time.Time
	var onBinding, onBindingAtHalf int
	next := 0
	halfLat := func() time.Duration {
		return time.Duration((sc.latency / 2) * (0.5 + rng.Float64()) * float64(time.Millisecond))
	}
	var caller func(l *Limiter)
	caller = func(l *Limiter) {
		if next >= sc.calls {
			return
		}
		next++
		class, cls := mgmt.Write, "w"
		if rng.Float64() < sc.readShare {
			class, cls = mgmt.Read, "r"
		}
		start := now
		var try func()
		try = func() {
			res.reserves++
			r, err := l.reserve(ctx, class)
			if err != nil {
				t.Fatal(err)
			}
			at(now.Add(r.wait), func() {
				tk := l.claim(class, r, start)
				if tk == nil {
					try()
					return
				}
				sent := now
				at(now.Add(halfLat()), func() {
					status, rl, retryAfter, drew := tenant.call(cls, now)
					for _, b := range drew {
						if b == binding {
							onBinding++
						}
					}
					if os.Getenv("ORGCONN_FLEET_CALLS") != "" {
						t.Logf("%s call slot %6.3f arrived %6.3f counts %v -> %d L=%d R=%d", cls, sent.Sub(t0).Seconds(), now.Sub(t0).Seconds(), r.counts, status, rl.Limit, rl.Remaining)
					}
					at(now.Add(halfLat()), func() {
						res.calls++
						method := "POST"
						if class == mgmt.Read {
							method = "GET"
						}
						l.Observe(tk, mgmt.Exchange{Class: class, Method: method, Status: status, RateLimit: rl, RetryAfter: retryAfter, Sent: sent, Received: now})
						if status == 429 {
							res.refused++
							// The pause reaches every process at once (pub/sub).
							if p, err := rdb.HGet(ctx, l.store.key, "pause").Int64(); err == nil {
								for _, o := range lims {
									o.setPause(time.UnixMicro(p))
								}
							}
							try() // the same change, again
							return
						}
						res.applied++
						if first.IsZero() {
							first = now
						}
						last = now
						if sc.halveAt > 0 && res.applied == sc.halveAt {
							halvedAt, onBindingAtHalf = now, onBinding
							for _, b := range tenant.buckets {
								b.refill(now)
								b.rate /= 2
								b.limit = max(1, b.limit/2)
								b.tokens = math.Min(b.tokens, float64(b.limit))
							}
						}
						caller(l)
					})
				})
			})
		}
		try()
	}
	for _, l := range lims {
		for c := 0; c < sc.concurrency; c++ {
			caller(l)
		}
	}
	if os.Getenv("ORGCONN_FLEET_LOG") != "" {
		var progress func()
		progress = func() {
			st, _ := lims[0].State(ctx)
			t.Logf("t=%5.1fs applied %3d refused %2d model %v", now.Sub(t0).Seconds(), res.applied, res.refused, st.Buckets)
			if res.applied < sc.calls {
				at(now.Add(2*time.Second), progress)
			}
		}
		at(now, progress)
	}
	var learn func()
	learn = func() {
		if err := lims[0].learnOnce(ctx, now); err != nil {
			t.Fatal(err)
		}
		if res.applied < sc.calls {
			at(now.Add(lims[0].cfg.LearnEvery), learn)
		}
	}
	at(now.Add(lims[0].cfg.LearnEvery), learn)

	for q.Len() > 0 && res.applied < sc.calls {
		e := heap.Pop(&q).(event)
		now = e.at
		mr.SetTime(now)
		e.do()
		if now.Sub(t0) > time.Hour {
			t.Fatalf("virtual run did not finish within an hour: %s", res)
		}
	}
	res.elapsed = last.Sub(first)
	if os.Getenv("ORGCONN_FLEET_LOG") != "" {
		st, _ := lims[0].State(ctx)
		t.Logf("final model: %v", st.Buckets)
	}
	// The budget: the binding bucket's burst, plus its refill until the
	// end (a window bucket: the windows begun, each full).
	budget := float64(binding.limit) + binding.steady()*res.elapsed.Seconds()
	if binding.window > 0 {
		budget = float64(binding.limit) * float64(1+int(last.Sub(first.Truncate(binding.window))/binding.window))
	}
	if !halvedAt.IsZero() {
		budget = float64(binding.limit*2) + binding.steady()*2*halvedAt.Sub(first).Seconds() + binding.steady()*last.Sub(halvedAt).Seconds()
		_ = onBindingAtHalf
	}
	res.utilization = float64(onBinding) / budget
	return res
}

// A fleet over every shape of the zoo, from the defaults (the essentials
// plan: far below most shapes, so discovery is part of the run) and from
// the enterprise plan (far above the small shapes). Each case is a subtest:
// go test -run 'TestFleet/burst-headers/defaults/2' ./worker/ratelimit/
func TestFleet(t *testing.T) {
	starts := []struct {
		name              string
		start             Buckets
		minUtil, maxRatio float64
	}{
		{"defaults", Plans["essentials"], 0.90, 0.02},
		{"enterprise", Plans["enterprise"], 0.85, 0.03},
	}
	shapes := []string{"shared", "split", "burst-headers", "alternate", "window", "reset-now", "essentials", "enterprise"}
	for _, shape := range shapes {
		t.Run(shape, func(t *testing.T) {
			for _, st := range starts {
				t.Run(st.name, func(t *testing.T) {
					for _, p := range []int{1, 2, 4} {
						t.Run(strconv.Itoa(p), func(t *testing.T) {
							t.Parallel()
							s := scenario{shape: shape, calls: 400, readShare: 0.05, latency: 20, start: st.start, processes: p, concurrency: 10, seed: 1}
							r := runFleet(t, s)
							t.Logf("%s from %s, %d processes: %s", shape, st.name, p, r)
							if r.applied != s.calls {
								t.Errorf("%d of %d calls succeeded", r.applied, s.calls)
							}
							if r.utilization < st.minUtil {
								t.Errorf("utilization %.3f, want at least %.2f", r.utilization, st.minUtil)
							}
							if ratio := float64(r.refused) / float64(r.calls); ratio > st.maxRatio {
								t.Errorf("%.1f%% of calls refused, want at most %.0f%%", 100*ratio, 100*st.maxRatio)
							}
						})
					}
				})
			}
		})
	}
}

// The rate halved mid-run (another client, a plan change): the fleet
// follows within a few answers.
func TestFleetFollowsAHalvedRate(t *testing.T) {
	for _, p := range []int{1, 4} {
		s := scenario{shape: "shared", calls: 400, halveAt: 200, latency: 20, start: Plans["essentials"], processes: p, concurrency: 10, seed: 1}
		r := runFleet(t, s)
		t.Logf("%d processes: %s", p, r)
		if r.applied != s.calls || r.utilization < 0.85 || float64(r.refused)/float64(r.calls) > 0.04 {
			t.Errorf("%d processes: %s; want every call, utilization ≥ 0.85, ≤ 4%% refused", p, r)
		}
	}
}
