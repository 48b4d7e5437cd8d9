package ratelimit

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/redis/go-redis/v9"
)

// A virtual fleet: the real Limiter and the real Lua scripts (on an
// embedded Redis whose TIME is the virtual clock) pace callers of several
// processes against a simulated tenant; sleeping and the network are events
// on a queue, so a scenario of a minute of tenant time runs in one to ten
// seconds of CPU (most of it the Lua scripts), without sleeping. Latencies
// and the limiter's pause jitter come from seeded sources, so a run is
// repeatable (up to the order in which goroutine-free events tie).

// shapeScale is the time scale a virtual run uses for a shape: the plan
// shapes' per-minute budgets run faster, as `orgconn simulate --time-scale`
// would (the numbers the shapes' help suggests).
var shapeScale = map[string]float64{"essentials": 20, "enterprise": 4}

// vtenant is the simulated tenant: the simulator's own rate limiting
// (mgmttest.Limits), in one of the zoo's shapes, driven on the virtual
// clock.
type vtenant struct {
	cfg     mgmttest.Config
	limits  *mgmttest.Limits
	binding mgmttest.Bucket
	// writesOnly: the binding bucket is the write bucket (reads do not
	// draw from it).
	writesOnly bool
}

func newVTenant(t *testing.T, shape string, now time.Time) *vtenant {
	t.Helper()
	sh, err := mgmttest.LookupShape(shape)
	if err != nil {
		t.Fatal(err)
	}
	scale := shapeScale[shape]
	cfg := sh.Config(scale)
	v := &vtenant{cfg: cfg, limits: mgmttest.NewLimits(cfg, now), binding: sh.Binding(scale)}
	v.writesOnly = cfg.Write.Rate > 0 && v.binding == cfg.Write
	return v
}

// call answers a call of class cls at t.
func (v *vtenant) call(cls mgmt.Class, t time.Time) (int, mgmt.RateLimit, time.Duration) {
	method := "POST"
	if cls == mgmt.Read {
		method = "GET"
	}
	vd := v.limits.Take(method, t)
	status := 201
	if !vd.Allowed {
		status = 429
	}
	h := vd.Headers
	return status, mgmt.RateLimit{Present: h.Present, Limit: h.Limit, Remaining: h.Remaining, Reset: time.Unix(h.Reset, 0)}, vd.RetryAfter
}

// budget is the number of writes a perfect client would have had accepted
// from first to last on this shape: burst + rate × elapsed for a bucket
// that refills continuously, every window begun for a fixed window — what a
// client sending each write the moment the tenant would take it gets.
func (v *vtenant) budget(first, last time.Time) float64 {
	l := mgmttest.NewLimits(v.cfg, first)
	n := 0
	for t := first; !t.After(last); t = t.Add(time.Millisecond) {
		for l.Take("POST", t).Allowed {
			n++
		}
	}
	return float64(n)
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
	shape                         string // a vshapes name
	processes, concurrency, calls int
	readShare                     float64 // share of calls that are reads (the unknown-organization checks)
	halveAt                       int     // after this many applied calls, halve the rates (0: never)
	latency                       float64 // mean round trip in ms
	spikes                        float64 // share of half round trips 50–400 ms longer
	start                         Buckets // the limiter's starting point
	seed                          uint64
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
		jr := rand.New(rand.NewPCG(sc.seed, uint64(p)+100)) // pause jitter, seeded: a run is repeatable
		l, err := newLimiter(ctx, Config{Redis: rdb, Tenant: "v", Start: sc.start, Logger: logger.With("process", p), now: clock, jitter: jr.Int64N})
		if err != nil {
			t.Fatal(err)
		}
		lims = append(lims, l)
	}
	tenant := newVTenant(t, sc.shape, now)

	var q events
	seq := 0
	at := func(when time.Time, do func()) {
		seq++
		heap.Push(&q, event{at: when, seq: seq, do: do})
	}
	var res fleetResult
	var first, last, halvedAt time.Time
	var onBinding int
	next := 0
	halfLat := func() time.Duration {
		d := (sc.latency / 2) * (0.5 + rng.Float64())
		if sc.spikes > 0 && rng.Float64() < sc.spikes {
			// The tail: a garbage collection, a busy core, a slow
			// path through the tenant's edge.
			d += 50 + 350*rng.Float64()
		}
		return time.Duration(d * float64(time.Millisecond))
	}
	// Each process lets one caller per class consult the budget at a
	// time, as Limiter.Wait's gate does; the others queue behind it.
	type gate struct {
		busy  bool
		queue []func()
	}
	gates := make(map[*Limiter]*[2]gate)
	for _, l := range lims {
		gates[l] = new([2]gate)
	}
	gateOf := func(l *Limiter, c mgmt.Class) *gate {
		if c == mgmt.Write {
			return &gates[l][1]
		}
		return &gates[l][0]
	}
	enter := func(l *Limiter, c mgmt.Class, fn func()) {
		g := gateOf(l, c)
		if g.busy {
			g.queue = append(g.queue, fn)
			return
		}
		g.busy = true
		fn()
	}
	leave := func(l *Limiter, c mgmt.Class) {
		g := gateOf(l, c)
		if len(g.queue) == 0 {
			g.busy = false
			return
		}
		fn := g.queue[0]
		g.queue = g.queue[1:]
		at(now, fn)
	}
	// A caller told to ask again later asks at once when its process is
	// woken (the model changed so that slots may come sooner), as Wait
	// does; a wake reaches every process (pub/sub).
	type watcher struct {
		woken <-chan struct{}
		fire  func()
		done  *bool
	}
	var watchers []watcher
	var caller func(l *Limiter)
	caller = func(l *Limiter) {
		if next >= sc.calls {
			return
		}
		next++
		class := mgmt.Write
		if rng.Float64() < sc.readShare {
			class = mgmt.Read
		}
		start := now
		var try func()
		try = func() {
			woken := l.wakened()
			res.reserves++
			r, err := l.reserve(ctx, class)
			if err != nil {
				t.Fatal(err)
			}
			if r.reserved() {
				woken = nil // a slot held is kept
			}
			done := new(bool)
			fire := func() {
				if *done {
					return
				}
				*done = true
				tk := l.claim(class, r, start)
				if tk == nil {
					try()
					return
				}
				leave(l, class)
				sent := now
				at(now.Add(halfLat()), func() {
					status, rl, retryAfter := tenant.call(class, now)
					if status != 429 && (class == mgmt.Write || !tenant.writesOnly) {
						onBinding++
					}
					if os.Getenv("ORGCONN_FLEET_CALLS") != "" {
						t.Logf("%v call slot %6.3f arrived %6.3f counts %v -> %d L=%d R=%d", class, sent.Sub(t0).Seconds(), now.Sub(t0).Seconds(), r.counts, status, rl.Limit, rl.Remaining)
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
							enter(l, class, try) // the same change, again
							return
						}
						res.applied++
						if first.IsZero() {
							first = now
						}
						last = now
						if sc.halveAt > 0 && res.applied == sc.halveAt {
							halvedAt = now
							for _, which := range []mgmttest.BucketName{mgmttest.GlobalBucket, mgmttest.WriteBucket, mgmttest.ReadBucket} {
								if b, ok := tenant.limits.Bucket(which); ok && b.Rate > 0 {
									b.Rate /= 2
									if err := tenant.limits.SetBucket(which, b, now); err != nil {
										t.Fatal(err)
									}
								}
							}
						}
						caller(l)
					})
				})
			}
			at(now.Add(r.wait), fire)
			if woken != nil && r.wait > 0 {
				watchers = append(watchers, watcher{woken, fire, done})
			}
		}
		enter(l, class, try)
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
		woken := lims[0].wakened()
		e.do()
		select {
		case <-woken:
			for _, o := range lims[1:] {
				o.wake()
			}
		default:
		}
		kept := watchers[:0]
		for _, w := range watchers {
			if *w.done {
				continue
			}
			select {
			case <-w.woken:
				at(now, w.fire)
			default:
				kept = append(kept, w)
			}
		}
		watchers = kept
		if now.Sub(t0) > time.Hour {
			t.Fatalf("virtual run did not finish within an hour: %s", res)
		}
	}
	res.elapsed = last.Sub(first)
	if os.Getenv("ORGCONN_FLEET_LOG") != "" {
		st, _ := lims[0].State(ctx)
		t.Logf("final model: %v", st.Buckets)
	}
	// The budget: what a perfect client would have had accepted (halved:
	// the binding bucket's burst, plus its refill at each rate).
	budget := tenant.budget(first, last)
	if !halvedAt.IsZero() {
		b := tenant.binding
		budget = float64(b.Burst) + b.Rate*halvedAt.Sub(first).Seconds() + b.Rate/2*last.Sub(halvedAt).Seconds()
	}
	res.utilization = float64(onBinding) / budget
	return res
}

// fleetGuards are, per shape, the floors TestFleet holds: a fleet of two
// processes started on the defaults (the essentials plan, far below most
// shapes, so discovery is part of the run) must reach at least minUtil and
// refuse at most maxRatio of its calls. They are regression guards a
// little under what the model reaches today, not the goal: issue 11 asks
// for utilization ≥ 0.90 and ≤ 2% refused on every shape, which
// `ORGCONN_FLEET_TARGETS=1 go test -run TestFleet ./worker/ratelimit/`
// checks over 1, 2 and 4 processes and both starts (and fails where the
// model falls short: see BENCHMARKS.md).
var fleetGuards = map[string]struct{ minUtil, maxRatio float64 }{
	"shared":        {0.90, 0.02},
	"split":         {0.90, 0.02},
	"burst-headers": {0.90, 0.02},
	"alternate":     {0.90, 0.02}, // the first answers' Resets lift the write guess (24x too slow) at once
	"window":        {0.93, 0.02}, // the 15-s window is found at its first 429s (3–6 refused)
	"reset-now":     {0.90, 0.02},
	"essentials":    {0.90, 0.02},
	"enterprise":    {0.88, 0.02}, // the hidden write bucket (24x the guess) is found in ~2 s
}

// fleetSeed is the seed of TestFleet's runs: ORGCONN_FLEET_SEED, else 1.
// A run is repeatable for one seed; other seeds show how a cell moves.
func fleetSeed(t *testing.T) uint64 {
	v := os.Getenv("ORGCONN_FLEET_SEED")
	if v == "" {
		return 1
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("ORGCONN_FLEET_SEED=%q: %v", v, err)
	}
	return n
}

// fleetSpikes is the share of half round trips TestFleet delays by 50–400
// ms: ORGCONN_FLEET_SPIKES, else 0.
func fleetSpikes(t *testing.T) float64 {
	v := os.Getenv("ORGCONN_FLEET_SPIKES")
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		t.Fatalf("ORGCONN_FLEET_SPIKES=%q: want a share in [0, 1]", v)
	}
	return f
}

// A fleet over every shape of the zoo. Each case is a subtest:
// go test -run 'TestFleet/burst-headers/defaults/2' ./worker/ratelimit/
func TestFleet(t *testing.T) {
	targets := os.Getenv("ORGCONN_FLEET_TARGETS") != ""
	starts := []struct {
		name              string
		start             Buckets
		minUtil, maxRatio float64
	}{
		{"defaults", Plans["essentials"], 0.90, 0.02},
		{"enterprise", Plans["enterprise"], 0.85, 0.03},
	}
	procs := []int{2}
	if targets {
		procs = []int{1, 2, 4}
	} else {
		starts = starts[:1]
	}
	for _, shape := range mgmttest.ShapeNames() {
		t.Run(shape, func(t *testing.T) {
			for _, st := range starts {
				t.Run(st.name, func(t *testing.T) {
					for _, p := range procs {
						t.Run(strconv.Itoa(p), func(t *testing.T) {
							t.Parallel()
							s := scenario{shape: shape, calls: 400, readShare: 0.05, latency: 20, start: st.start, processes: p, concurrency: 10, seed: fleetSeed(t), spikes: fleetSpikes(t)}
							r := runFleet(t, s)
							t.Logf("%s from %s, %d processes: %s", shape, st.name, p, r)
							minUtil, maxRatio := st.minUtil, st.maxRatio
							if !targets {
								g, ok := fleetGuards[shape]
								if !ok {
									t.Fatalf("no guard for shape %q: add one to fleetGuards", shape)
								}
								minUtil, maxRatio = g.minUtil, g.maxRatio
							}
							if r.applied != s.calls {
								t.Errorf("%d of %d calls succeeded", r.applied, s.calls)
							}
							if r.utilization < minUtil {
								t.Errorf("utilization %.3f, want at least %.2f", r.utilization, minUtil)
							}
							if ratio := float64(r.refused) / float64(r.calls); ratio > maxRatio {
								t.Errorf("%.1f%% of calls refused, want at most %.0f%%", 100*ratio, 100*maxRatio)
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
