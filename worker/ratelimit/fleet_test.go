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

// vbucket is one of the tenant's token buckets.
type vbucket struct {
	name   string
	limit  int
	rate   float64
	tokens float64
	last   time.Time
}

func (b *vbucket) refill(t time.Time) {
	b.tokens = math.Min(float64(b.limit), b.tokens+t.Sub(b.last).Seconds()*b.rate)
	b.last = t
}

// vtenant is the simulated tenant: writes draw from global then write (if
// any); headers describe the tightest bucket, or alternate between them.
type vtenant struct {
	global, write *vbucket
	alternate     bool
	turn          int
}

func (v *vtenant) call(t time.Time) (int, mgmt.RateLimit) {
	bs := []*vbucket{v.global}
	if v.write != nil {
		bs = append(bs, v.write)
	}
	status := 201
	for _, b := range bs {
		b.refill(t)
		if b.tokens < 1-1e-9 {
			status = 429
		}
	}
	if status == 201 {
		for _, b := range bs {
			b.tokens--
		}
	}
	d := bs[0]
	if len(bs) == 2 {
		switch {
		case v.alternate:
			d = bs[v.turn%2]
			v.turn++
		case bs[1].tokens < bs[0].tokens:
			d = bs[1]
		}
	}
	need := float64(d.limit) - d.tokens // "full" meaning of Reset
	reset := t
	if need > 0 {
		reset = t.Add(time.Duration(need / d.rate * float64(time.Second)))
	}
	sec := reset.Unix()
	if reset.Nanosecond() > 0 {
		sec++
	}
	return status, mgmt.RateLimit{Present: true, Limit: d.limit, Remaining: int(math.Floor(d.tokens + 1e-9)), Reset: time.Unix(sec, 0)}
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
	processes, concurrency, calls int
	global, write                 Bucket // the tenant's buckets (write: Rate 0 for none)
	alternate                     bool
	halveAt                       int     // after this many applied calls, halve the rates (0: never)
	latency                       float64 // mean round trip in ms
	start                         Buckets // the limiter's starting point
	seed                          uint64
}

// fleetResult is what a virtual run measured.
type fleetResult struct {
	calls, applied, refused int
	elapsed                 time.Duration
	utilization             float64
}

func (r fleetResult) String() string {
	return fmt.Sprintf("%d applied in %v, %d calls, %d refused (%.1f%%), utilization %.3f",
		r.applied, r.elapsed.Round(time.Millisecond), r.calls, r.refused, 100*float64(r.refused)/float64(max(r.calls, 1)), r.utilization)
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
	tenant := &vtenant{global: &vbucket{name: "global", limit: sc.global.Burst, rate: sc.global.Rate, tokens: float64(sc.global.Burst), last: now}, alternate: sc.alternate}
	if sc.write.Rate > 0 {
		tenant.write = &vbucket{name: "write", limit: sc.write.Burst, rate: sc.write.Rate, tokens: float64(sc.write.Burst), last: now}
	}

	var q events
	seq := 0
	at := func(when time.Time, do func()) {
		seq++
		heap.Push(&q, event{at: when, seq: seq, do: do})
	}
	var res fleetResult
	var first, last, halvedAt time.Time
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
		start := now
		var try func()
		try = func() {
			r, err := l.reserve(ctx, mgmt.Write)
			if err != nil {
				t.Fatal(err)
			}
			at(now.Add(r.wait), func() {
				tk := l.claim(mgmt.Write, r, start)
				if tk == nil {
					try()
					return
				}
				sent := now
				reservedAt := time.UnixMicro(r.at)
				at(now.Add(halfLat()), func() {
					status, rl := tenant.call(now)
					if os.Getenv("ORGCONN_FLEET_CALLS") != "" {
						t.Logf("call reserved %6.3f slot %6.3f arrived %6.3f counts %v spaced %v -> %d R=%d", reservedAt.Sub(t0).Seconds(), sent.Sub(t0).Seconds(), now.Sub(t0).Seconds(), r.counts, r.spaced, status, rl.Remaining)
					}
					at(now.Add(halfLat()), func() {
						res.calls++
						l.Observe(tk, mgmt.Exchange{Class: mgmt.Write, Method: "POST", Status: status, RateLimit: rl, Sent: sent, Received: now})
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
							halvedAt = now
							for _, b := range []*vbucket{tenant.global, tenant.write} {
								if b != nil {
									b.refill(now)
									b.rate /= 2
								}
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
	// The budget: the binding bucket's burst, plus its refill until the end.
	b := sc.global
	if sc.write.Rate > 0 && sc.write.Rate < b.Rate {
		b = sc.write
	}
	budget := float64(b.Burst) + b.Rate*res.elapsed.Seconds()
	if !halvedAt.IsZero() {
		budget = float64(b.Burst) + b.Rate*halvedAt.Sub(first).Seconds() + b.Rate/2*last.Sub(halvedAt).Seconds()
	}
	res.utilization = float64(res.applied) / budget
	return res
}

func TestFleet(t *testing.T) {
	start := Buckets{Global: Bucket{Burst: 10, Rate: 20}} // --rate 20 --burst 10: the tenant's global numbers
	essentials := Plans["essentials"]                     // far below the tenant: discovery
	// The floors are regression guards a little under what the runs reach
	// (the acceptance figures come from `orgconn bench`, in real time).
	for _, sc := range []struct {
		name       string
		sc         scenario
		minUtil    float64
		maxRefused float64
		procs      []int // nil: 1, 2 and 4
	}{
		{"a one bucket", scenario{calls: 400, global: Bucket{10, 20}, latency: 2, start: start}, 0.93, 0.015, nil},
		{"b global and slower write, headers alternate", scenario{calls: 400, global: Bucket{10, 20}, write: Bucket{5, 10}, alternate: true, latency: 2, start: start}, 0.85, 0.04, nil},
		{"c rate halved", scenario{calls: 400, global: Bucket{10, 20}, halveAt: 200, latency: 2, start: start}, 0.85, 0.04, nil},
		{"a from the essentials plan", scenario{calls: 400, global: Bucket{10, 20}, latency: 2, start: essentials}, 0.85, 0.02, []int{4}},
		{"b from the essentials plan", scenario{calls: 400, global: Bucket{10, 20}, write: Bucket{5, 10}, alternate: true, latency: 2, start: essentials}, 0.55, 0.04, []int{4}}, // discovery from 24× too slow; a 429 halves a guessed bucket
	} {
		procs := sc.procs
		if procs == nil {
			procs = []int{1, 2, 4}
		}
		for _, p := range procs {
			s := sc.sc
			s.processes, s.concurrency, s.seed = p, 10, 1
			r := runFleet(t, s)
			t.Logf("%s, %d processes: %s", sc.name, p, r)
			if r.applied != s.calls {
				t.Errorf("%s, %d processes: %d of %d calls succeeded", sc.name, p, r.applied, s.calls)
			}
			if r.utilization < sc.minUtil {
				t.Errorf("%s, %d processes: utilization %.3f, want at least %.2f", sc.name, p, r.utilization, sc.minUtil)
			}
			if ratio := float64(r.refused) / float64(r.calls); ratio > sc.maxRefused {
				t.Errorf("%s, %d processes: %.1f%% of calls refused, want at most %.0f%%", sc.name, p, 100*ratio, 100*sc.maxRefused)
			}
		}
	}
}

// TestFleetOne runs the scenario named by ORGCONN_FLEET (a, b or c) once,
// for looking at logs (ORGCONN_FLEET_LOG=1).
func TestFleetOne(t *testing.T) {
	name := os.Getenv("ORGCONN_FLEET")
	if name == "" {
		t.Skip("set ORGCONN_FLEET to a, b or c")
	}
	sc := map[string]scenario{
		"a": {calls: 400, global: Bucket{10, 20}, latency: 2},
		"b": {calls: 400, global: Bucket{10, 20}, write: Bucket{5, 10}, alternate: true, latency: 2},
		"c": {calls: 400, global: Bucket{10, 20}, halveAt: 200, latency: 2},
	}[name]
	sc.start, sc.processes, sc.concurrency, sc.seed = Buckets{Global: Bucket{Burst: 10, Rate: 20}}, 2, 10, 1
	if p := os.Getenv("ORGCONN_FLEET_PLAN"); p != "" {
		sc.start = Plans[p]
	}
	if p := os.Getenv("ORGCONN_FLEET_PROCESSES"); p != "" {
		fmt.Sscan(p, &sc.processes)
	}
	t.Logf("%s", runFleet(t, sc))
}
