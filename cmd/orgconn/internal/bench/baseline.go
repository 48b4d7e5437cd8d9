package bench

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// laneOf returns the lane of a pair: FNV-1a of org_id and connection_id,
// modulo lanes.
func laneOf(c jobs.Change, lanes int) int {
	h := fnv.New64a()
	h.Write([]byte(c.OrgID))
	h.Write([]byte{0})
	h.Write([]byte(c.ConnectionID))
	return int(h.Sum64() % uint64(lanes))
}

// runLanes runs changes on lanes goroutines, each change on its pair's lane
// (laneOf), so that a pair's changes run one at a time in file order while
// other pairs' changes run beside them: what a careful user of an SDK does
// with a file that may change a pair more than once. apply returns false
// when it gave up on a change; runLanes returns how many it gave up on
// (changes not started because ctx ended count as given up).
func runLanes(ctx context.Context, lanes int, changes []jobs.Change, apply func(context.Context, jobs.Change) bool) (gaveUp int) {
	lanes = max(lanes, 1)
	work := make([][]jobs.Change, lanes)
	for _, c := range changes {
		l := laneOf(c, lanes)
		work[l] = append(work[l], c)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, lane := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := 0
			for _, c := range lane {
				if ctx.Err() != nil || !apply(ctx, c) {
					failed++
				}
			}
			mu.Lock()
			gaveUp += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	return gaveUp
}

// Hand-written SDK-style retry policy, modelled on the official SDKs' 429
// handling: wait until X-RateLimit-Reset (at least baselineMinWait, at most
// baselineMaxWait, plus up to 25% jitter), then retry, at most
// baselineRetries times; then give up on the change.
const (
	baselineRetries = 3
	baselineMinWait = 250 * time.Millisecond
	baselineMaxWait = 10 * time.Second
)

// runSDKStyle runs the changes through orgconn's own Management API client
// with no pacing, one shared token and the SDK-style 429 retries, on lanes
// lanes (runLanes); it returns how many changes it gave up on.
func runSDKStyle(ctx context.Context, baseURL string, lanes int, changes []jobs.Change) (gaveUp int, err error) {
	api, err := mgmt.New(mgmt.Config{BaseURL: baseURL, Timeout: 10 * time.Second, UserAgent: "orgconn-bench-sdk-style",
		Tokens: mgmt.NewClientCredentials(baseURL, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil)})
	if err != nil {
		return 0, err
	}
	return runLanes(ctx, lanes, changes, func(ctx context.Context, c jobs.Change) bool {
		return sdkStyleApply(ctx, api, c)
	}), nil
}

// sdkStyleApply applies one change; false means it gave up. An enable
// answered 409 (already enabled) becomes an update with the same flags; a
// remove answered 404 is already done.
func sdkStyleApply(ctx context.Context, api *mgmt.Client, c jobs.Change) bool {
	s := settingsOf(c)
	var err error
	switch c.Action {
	case jobs.Enable:
		err = retry429(ctx, func() error { _, err := api.Enable(ctx, c.OrgID, c.ConnectionID, s); return err })
		if statusOf(err) == 409 {
			err = nil
			if c.HasFlags() {
				err = retry429(ctx, func() error { _, err := api.Update(ctx, c.OrgID, c.ConnectionID, s); return err })
			}
		}
	case jobs.Update:
		err = retry429(ctx, func() error { _, err := api.Update(ctx, c.OrgID, c.ConnectionID, s); return err })
	case jobs.Remove:
		err = retry429(ctx, func() error { return api.Remove(ctx, c.OrgID, c.ConnectionID) })
		if statusOf(err) == 404 {
			err = nil
		}
	}
	return err == nil
}

// retry429 calls call, and again after a 429 as the policy above says.
func retry429(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		var ae *mgmt.APIError
		if !errors.As(err, &ae) || ae.Status != 429 || attempt >= baselineRetries {
			return err
		}
		wait := baselineMinWait
		if ae.RateLimit.Present {
			wait = max(wait, time.Until(ae.RateLimit.Reset))
		}
		wait = min(wait, baselineMaxWait)
		wait += time.Duration(rand.Int64N(int64(wait/4) + 1))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// statusOf returns the HTTP status of an API error, 0 for anything else.
func statusOf(err error) int {
	var ae *mgmt.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// settingsOf returns the flags c gives; the others stay nil (untouched).
func settingsOf(c jobs.Change) mgmt.Settings {
	return mgmt.Settings{
		AssignMembershipOnLogin: boolPtr(c.AssignMembershipOnLogin),
		ShowAsButton:            boolPtr(c.ShowAsButton),
		IsSignupEnabled:         boolPtr(c.IsSignupEnabled),
	}
}

// boolPtr returns nil for an unset flag, else a pointer to its value.
func boolPtr(f jobs.Flag) *bool {
	if !f.Set() {
		return nil
	}
	b := f.Bool()
	return &b
}
