package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// reserveCounter counts the reserve scripts a client runs.
type reserveCounter struct{ n atomic.Int64 }

func (c *reserveCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *reserveCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *reserveCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 1 {
			if s, ok := args[1].(string); ok && (s == reserveScript.Hash()) {
				c.n.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}

// runningLimiter is a limiter with its background work (pauses, wakes,
// learning) on rdb, starting from start; closed when the test ends.
func runningLimiter(t *testing.T, rdb redis.UniversalClient, prefix, tenant string, start Buckets) *Limiter {
	t.Helper()
	l, err := New(context.Background(), Config{Redis: rdb, Prefix: prefix, Tenant: tenant, Start: start, Override: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// Forty goroutines waiting on a slow budget: each granted slot costs about
// one reserve script, not one per waiting goroutine (the local gate).
func TestWaitingGoroutinesShareOneReservePerSlot(t *testing.T) {
	env := redistest.New(t)
	rdb, ok := env.Client.(*redis.Client)
	if !ok {
		t.Skip("needs a single-node client")
	}
	counter := &reserveCounter{}
	rdb.AddHook(counter)
	l := runningLimiter(t, rdb, env.Prefix, "gate", Buckets{Global: Bucket{Burst: 1, Rate: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var granted atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := l.Wait(ctx, mgmt.Write); err == nil {
					granted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	g, r := granted.Load(), counter.n.Load()
	t.Logf("40 goroutines, budget 2/s for 3 s: %d slots granted, %d reserve scripts (%.2f a slot)", g, r, float64(r)/float64(max(g, 1)))
	if g < 4 {
		t.Fatalf("only %d slots granted in 3 s at 2/s", g)
	}
	if float64(r) > 3*float64(g)+3 {
		t.Errorf("%d reserve scripts for %d granted slots: more than 3 a slot", r, g)
	}
}

// A caller told to ask again seconds later (the cold start's plan bucket
// put its slot far off) asks at once when an answer ends the cold start:
// the first answers describe a bucket that refills far faster than the
// plan's guess, and waiting out the plan's slot would leave the fleet idle.
func TestCallerWaitingForAFarSlotAsksAgainWhenTheColdStartEnds(t *testing.T) {
	env := redistest.New(t)
	l := runningLimiter(t, env.Client, env.Prefix, "wake", Buckets{Write: Bucket{Burst: 1, Rate: 0.2}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := l.Wait(ctx, mgmt.Write) // the plan's one token
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		if _, err := l.Wait(ctx, mgmt.Write); err != nil {
			t.Error(err)
		}
		got <- time.Since(start)
	}()
	time.Sleep(300 * time.Millisecond) // the second caller asked, and was told ~4.5 s
	now := time.Now()
	// The tenant's answer: a bucket of 10, empty, full again within a
	// second: it refills at 5/s at least.
	l.Observe(first, mgmt.Exchange{Class: mgmt.Write, Method: "POST", Status: 201, Sent: now, Received: now,
		RateLimit: mgmt.RateLimit{Present: true, Limit: 10, Remaining: 0, Reset: now.Add(time.Second)}})
	waited := <-got
	t.Logf("second caller waited %v (the plan's slot was 5 s after the first)", waited.Round(time.Millisecond))
	if waited > 2*time.Second {
		t.Errorf("the second caller waited %v: it slept out the plan's far slot instead of asking again when the cold start ended", waited)
	}
}
