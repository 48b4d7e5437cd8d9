package ratelimit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// driveResult is what a drive measured.
type driveResult struct {
	calls, writes, throttled int
	elapsed                  time.Duration
	utilization              float64
}

func (r driveResult) String() string {
	return fmt.Sprintf("%d writes in %v, %d calls, %d throttled (%.1f%%), utilization %.3f",
		r.writes, r.elapsed.Round(time.Millisecond), r.calls, r.throttled, 100*float64(r.throttled)/float64(max(r.calls, 1)), r.utilization)
}

// drive makes n enables of distinct pairs against sim through processes
// limiters sharing one Redis, each with concurrency callers, and measures
// the tenant's side. budget gives utilization's denominator: the binding
// bucket's burst and rate (a function of time for a rate that changes).
func drive(t *testing.T, sim *mgmttest.Server, url string, env *redistest.Env, processes, concurrency, n int, start Buckets, budget func(elapsed time.Duration) float64, during func(done int)) driveResult {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ORGCONN_DRIVE_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	type pair struct{ org, conn string }
	var pairs []pair
	for _, o := range sim.Orgs() {
		for _, c := range sim.Connections() {
			pairs = append(pairs, pair{o, c.ID})
		}
	}
	if len(pairs) < n {
		t.Fatalf("the tenant has %d pairs, the drive needs %d", len(pairs), n)
	}
	var next, done atomic.Int64
	var calls, throttled atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < processes; p++ {
		lim, err := New(ctx, Config{Redis: env.Client, Prefix: env.Prefix, Tenant: "drive", Start: start, Logger: logger.With("process", p)})
		if err != nil {
			t.Fatal(err)
		}
		defer lim.Close()
		counting := &countingPacer{Limiter: lim, calls: &calls, throttled: &throttled}
		api, err := mgmt.New(mgmt.Config{BaseURL: url, Tokens: mgmt.StaticToken(sim.IssueToken(mgmttest.DefaultScopes(), time.Hour)), Pacer: counting, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		for c := 0; c < concurrency; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					for {
						_, err := api.Enable(ctx, pairs[i].org, pairs[i].conn, mgmt.Settings{})
						if mgmt.StatusOf(err) != 429 {
							break
						}
					}
					d := done.Add(1)
					if during != nil {
						during(int(d))
					}
				}
			}()
		}
	}
	wg.Wait()
	st := sim.Stats()
	res := driveResult{calls: int(calls.Load()), throttled: int(throttled.Load()), writes: st.Writes, elapsed: st.LastWrite.Sub(st.FirstWrite)}
	res.utilization = float64(res.writes) / budget(res.elapsed)
	return res
}

// countingPacer counts calls and 429s on the way through.
type countingPacer struct {
	*Limiter
	calls, throttled *atomic.Int64
}

func (c *countingPacer) Observe(t mgmtTicket, e mgmt.Exchange) {
	c.calls.Add(1)
	if e.Status == 429 {
		c.throttled.Add(1)
	}
	c.Limiter.Observe(t, e)
}

type mgmtTicket = mgmt.Ticket

func startSim(t *testing.T, cfg mgmttest.Config) (*mgmttest.Server, string) {
	t.Helper()
	sim := mgmttest.New(cfg)
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	return sim, run.URL()
}

func TestDriveOneBucket(t *testing.T) {
	if os.Getenv("ORGCONN_DRIVE") == "" {
		t.Skip("drives a simulated tenant in real time for a minute; set ORGCONN_DRIVE=1 (the virtual-time TestFleet covers the same scenarios)")
	}
	for _, processes := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d processes", processes), func(t *testing.T) {
			env := redistest.New(t)
			sim, url := startSim(t, mgmttest.Config{Orgs: 100, Connections: 4, Global: mgmttest.Bucket{Burst: 10, Rate: 20}})
			res := drive(t, sim, url, env, processes, 10, driveCalls, Plans["essentials"], func(e time.Duration) float64 { return 10 + 20*e.Seconds() }, nil)
			t.Logf("%s", res)
		})
	}
}

var driveCalls = 200

func TestDriveTwoBucketsAlternateHeaders(t *testing.T) {
	if os.Getenv("ORGCONN_DRIVE") == "" {
		t.Skip("drives a simulated tenant in real time for a minute; set ORGCONN_DRIVE=1 (the virtual-time TestFleet covers the same scenarios)")
	}
	for _, processes := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d processes", processes), func(t *testing.T) {
			env := redistest.New(t)
			sim, url := startSim(t, mgmttest.Config{Orgs: 100, Connections: 4,
				Global: mgmttest.Bucket{Burst: 10, Rate: 20}, Write: mgmttest.Bucket{Burst: 5, Rate: 10},
				HeaderPolicy: mgmttest.Alternate})
			res := drive(t, sim, url, env, processes, 10, driveCalls/2, Plans["essentials"], func(e time.Duration) float64 { return 5 + 10*e.Seconds() }, nil)
			t.Logf("%s", res)
		})
	}
}

func TestDriveRateHalved(t *testing.T) {
	if os.Getenv("ORGCONN_DRIVE") == "" {
		t.Skip("drives a simulated tenant in real time for a minute; set ORGCONN_DRIVE=1 (the virtual-time TestFleet covers the same scenarios)")
	}
	for _, processes := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d processes", processes), func(t *testing.T) {
			env := redistest.New(t)
			sim, url := startSim(t, mgmttest.Config{Orgs: 100, Connections: 4, Global: mgmttest.Bucket{Burst: 10, Rate: 20}})
			var changedAt atomic.Int64
			n := driveCalls
			res := drive(t, sim, url, env, processes, 10, n, Plans["essentials"], func(e time.Duration) float64 {
				first := sim.Stats().FirstWrite
				at := time.Unix(0, changedAt.Load()).Sub(first).Seconds()
				return 10 + 20*at + 10*(e.Seconds()-at)
			}, func(done int) {
				if done == n/2 && changedAt.CompareAndSwap(0, time.Now().UnixNano()) {
					sim.SetBucket(mgmttest.GlobalBucket, mgmttest.Bucket{Burst: 10, Rate: 10})
				}
			})
			t.Logf("%s", res)
		})
	}
}
