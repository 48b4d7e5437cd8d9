package worker

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
)

// A 429 from the token endpoint waits and tries again without failing the
// change (issue 11: it spent a retry attempt).
func TestTokenEndpoint429WaitsAndTriesAgain(t *testing.T) {
	var calls atomic.Int32
	err := untilNotThrottled(context.Background(), func() error {
		if calls.Add(1) < 3 {
			return &mgmt.TokenError{Status: http.StatusTooManyRequests, RetryAfter: time.Millisecond}
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls, want success on the third", err, calls.Load())
	}
	if k := Classify(&mgmt.TokenError{Status: http.StatusTooManyRequests}).Kind; k != Throttled {
		t.Errorf("a token endpoint 429 is %v, want throttled", k)
	}
}
