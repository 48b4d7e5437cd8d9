package worker_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// stuck fails the test with msg after logging what a batch that does not
// finish is waiting for: asynq's sets (active, pending, scheduled, retry,
// archived, with task ids and when and why), the ledger's pending lines of
// the batch with their pair's queue and lease, the fleet's rate model, and
// the pairs recorded as blocked. Every end-to-end test that gives up waiting calls it.
func (e *e2e) stuck(format string, args ...any) {
	e.t.Helper()
	e.t.Log(e.dump())
	e.t.Fatalf(format, args...)
}

// dump describes the queue and the batch's pending lines.
func (e *e2e) dump() string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "=== what batch %s waits for, at %s\n", e.batch, time.Now().UTC().Format("15:04:05.000"))
	insp := asynq.NewInspectorFromRedisClient(e.env.Client)
	if qi, err := insp.GetQueueInfo(e.env.Queue); err != nil {
		fmt.Fprintf(&b, "queue %s: %v\n", e.env.Queue, err)
	} else {
		fmt.Fprintf(&b, "queue %s: %d active, %d pending, %d scheduled, %d retry, %d archived\n", e.env.Queue, qi.Active, qi.Pending, qi.Scheduled, qi.Retry, qi.Archived)
	}
	lists := []struct {
		name string
		list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	}{
		{"active", insp.ListActiveTasks}, {"pending", insp.ListPendingTasks}, {"scheduled", insp.ListScheduledTasks},
		{"retry", insp.ListRetryTasks}, {"archived", insp.ListArchivedTasks},
	}
	leases, _ := e.env.Client.ZRangeWithScores(ctx, "asynq:{"+e.env.Queue+"}:lease", 0, -1).Result()
	leaseOf := map[string]time.Time{}
	for _, z := range leases {
		leaseOf[fmt.Sprint(z.Member)] = time.Unix(int64(z.Score), 0)
	}
	for _, l := range lists {
		ts, err := l.list(e.env.Queue, asynq.PageSize(200))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", l.name, err)
			continue
		}
		for _, ti := range ts {
			fmt.Fprintf(&b, "  %-9s %-12s retried %d", l.name, ti.ID, ti.Retried)
			if !ti.NextProcessAt.IsZero() && l.name != "active" && l.name != "pending" {
				fmt.Fprintf(&b, ", next in %v", time.Until(ti.NextProcessAt).Round(time.Millisecond))
			}
			if at, ok := leaseOf[ti.ID]; ok {
				fmt.Fprintf(&b, ", asynq lease expires in %v", time.Until(at).Round(time.Second))
			} else if l.name == "active" {
				b.WriteString(", no asynq lease")
			}
			if ti.LastErr != "" {
				fmt.Fprintf(&b, ", last error %q", ti.LastErr)
			}
			b.WriteByte('\n')
		}
	}
	lines, err := e.ledger.PendingLines(ctx, e.batch, 200)
	if err != nil {
		fmt.Fprintf(&b, "ledger: pending lines: %v\n", err)
	}
	fmt.Fprintf(&b, "ledger: %d pending lines (at most 200 shown)\n", len(lines))
	for _, ln := range lines {
		fmt.Fprintf(&b, "  line %d %s %s/%s %s", ln.Line, ln.Outcome, ln.Change.OrgID, ln.Change.ConnectionID, ln.Change.Action)
		if ln.Failure != nil {
			fmt.Fprintf(&b, ", %d failed attempts, last %s %q", ln.Failure.Failed, ln.Failure.Reason, ln.Failure.Message)
		}
		if ps, err := e.ledger.Pair(ctx, ln.Change); err != nil {
			fmt.Fprintf(&b, ", pair: %v", err)
		} else {
			fmt.Fprintf(&b, ", pair queue %v", ps.Queue)
			if ps.Holder != "" {
				fmt.Fprintf(&b, " leased by %s", ps.Holder)
			}
			if !ps.Since.IsZero() {
				fmt.Fprintf(&b, ", waiting for the head for %v", time.Since(ps.Since).Round(time.Second))
			}
		}
		if info, err := insp.GetTaskInfo(e.env.Queue, fmt.Sprintf("%s:%d", e.batch, ln.Line)); err != nil {
			fmt.Fprintf(&b, ", task: %v", err)
		} else {
			fmt.Fprintf(&b, ", task %v", info.State)
		}
		b.WriteByte('\n')
	}
	// The fleet's rate model: a bucket learned near zero holds every call
	// of its class (and so their pairs) as surely as a lost task.
	if tenants, err := ratelimit.Tenants(ctx, e.env.Client, e.env.Prefix); err != nil {
		fmt.Fprintf(&b, "limiter: %v\n", err)
	} else {
		for _, tn := range tenants {
			st, err := ratelimit.ReadState(ctx, e.env.Client, e.env.Prefix, tn)
			if err != nil {
				fmt.Fprintf(&b, "limiter %s: %v\n", tn, err)
				continue
			}
			fmt.Fprintf(&b, "limiter %s: paused until %v;", tn, st.PausedUntil.Format("15:04:05.000"))
			for _, bk := range st.Buckets {
				fmt.Fprintf(&b, " %s[%s] %d @ %.3f/s (%s, %d calls);", bk.ID, bk.Classes, bk.Burst, bk.Rate, bk.Source, bk.Calls)
			}
			b.WriteByte('\n')
		}
	}
	if bs, err := e.ledger.Blocked(ctx); err != nil {
		fmt.Fprintf(&b, "blocked pairs: %v\n", err)
	} else {
		for _, bp := range bs {
			fmt.Fprintf(&b, "  blocked %s/%s waits for %s since %v (%d waiting): %s\n", bp.OrgID, bp.ConnectionID, bp.Head, time.Since(bp.Since).Round(time.Second), bp.Waiting, bp.HeadState)
		}
	}
	return b.String()
}

// waitProgress polls the batch's counters until done(bc) holds, and calls
// stuck after timeout. Errors reading the counters count as not done (Redis
// restarting: redisrestart_test.go).
func (e *e2e) waitProgress(what string, timeout time.Duration, done func(ledger.BatchCounts) bool) ledger.BatchCounts {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bc, err := e.ledger.Batch(context.Background(), e.batch)
		if err == nil && done(bc) {
			return bc
		}
		if time.Now().After(deadline) {
			e.stuck("%s: not after %v: %+v, %v", what, timeout, bc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
