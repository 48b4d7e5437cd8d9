package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// Baseline retry policy, modelled on the official SDKs' 429 handling: wait
// until X-RateLimit-Reset (at least baselineMinWait, at most
// baselineMaxWait, plus up to 25% jitter), then retry, at most
// baselineRetries times; then give up on the change.
const (
	baselineRetries = 3
	baselineMinWait = 250 * time.Millisecond
	baselineMaxWait = 10 * time.Second
)

// runBaseline sends the changes from concurrency goroutines with one shared
// token and no pacing; it returns how many changes it gave up on.
func runBaseline(ctx context.Context, baseURL string, concurrency int, changes []jobs.Change) (gaveUp int) {
	api, err := mgmt.New(mgmt.Config{BaseURL: baseURL, Timeout: 10 * time.Second, UserAgent: "orgconn-bench-baseline",
		Tokens: mgmt.NewClientCredentials(baseURL, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil)})
	if err != nil {
		return len(changes)
	}
	work := make(chan jobs.Change)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if !baselineEnable(ctx, api, c) {
					mu.Lock()
					gaveUp++
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range changes {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return gaveUp
}

// baselineEnable enables one pair the SDK way; false means it gave up.
func baselineEnable(ctx context.Context, api *mgmt.Client, c jobs.Change) bool {
	for attempt := 0; ; attempt++ {
		_, err := api.Enable(ctx, c.OrgID, c.ConnectionID, mgmt.Settings{})
		var ae *mgmt.APIError
		switch {
		case err == nil:
			return true
		case errors.As(err, &ae) && ae.Status == 409:
			return true
		case errors.As(err, &ae) && ae.Status == 429 && attempt < baselineRetries:
			wait := baselineMinWait
			if ae.RateLimit.Present {
				wait = max(wait, time.Until(ae.RateLimit.Reset))
			}
			wait = min(wait, baselineMaxWait)
			wait += time.Duration(rand.Int64N(int64(wait/4) + 1))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false
			}
		default:
			return false
		}
	}
}
