package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// Blocked pairs.
//
// A pair's changes act one at a time, in order: while its head is pending,
// every later change waits. A head that takes long — retrying with
// back-off, held by a worker that died, or whose task was lost — blocks its
// pair. The worker that finds a pair waiting BlockedAfter for the same head
// checks the head's task and records what it found here, in one hash of
// pair → record; resolving the head removes the record. status lists them.

// BlockedPair is a pair whose waiting changes have waited at least
// BlockedAfter for its head.
type BlockedPair struct {
	OrgID        string `json:"org_id"`
	ConnectionID string `json:"connection_id"`
	// OrgName and ConnectionName are the names of a side its changes give
	// only by name (its pair key is "name:…"): set them with the ids left
	// empty for such a pair.
	OrgName        string `json:"org_name,omitempty"`
	ConnectionName string `json:"connection_name,omitempty"`
	// Head is the task id of the change the pair waits for.
	Head string `json:"head"`
	// Since is when the pair started waiting for Head (Redis clock), as
	// far as its waiting changes saw.
	Since time.Time `json:"since"`
	// Waiting is how many changes of the pair wait behind Head.
	Waiting int `json:"waiting"`
	// HeadState is what the worker found of the head's task: "lost,
	// re-enqueued", "retrying", "running", "queued", ….
	HeadState string `json:"head_state"`
	// Checked is when a worker last checked the head.
	Checked time.Time `json:"checked"`
	// Waiter is the task id of the waiting change that checked.
	Waiter string `json:"waiter"`
}

func pairField(c jobs.Change) string { return c.PairKey() }

// change is a change of b's pair, for its keys.
func (b BlockedPair) change() jobs.Change {
	return jobs.Change{OrgID: b.OrgID, ConnectionID: b.ConnectionID, OrgName: b.OrgName, ConnectionName: b.ConnectionName}
}

// Pair is b's pair key (jobs.Change.PairKey): "org/connection", a side
// given only by name as "name:…".
func (b BlockedPair) Pair() string { return b.change().PairKey() }

// MarkBlocked records b (its pair — ids, or names — and Head) as blocked,
// unless b.Head is no longer its pair's head. It reports whether it
// recorded it.
func (l *Ledger) MarkBlocked(ctx context.Context, b BlockedPair) (bool, error) {
	c := b.change()
	rec, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("ledger: encode blocked pair %s: %w", pairField(c), err)
	}
	n, err := markBlockedScript.Run(ctx, l.rdb, []string{l.queueKey(c), l.blockedKey()}, b.Head, pairField(c), rec).Int64()
	if err != nil {
		return false, fmt.Errorf("ledger: record blocked pair %s: %w", pairField(c), err)
	}
	return n == 1, nil
}

// Blocked returns the pairs recorded as blocked whose head is still the
// same, the longest blocked first. Records whose head has moved on since are
// left out (and deleted).
func (l *Ledger) Blocked(ctx context.Context) ([]BlockedPair, error) {
	m, err := l.rdb.HGetAll(ctx, l.blockedKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: read blocked pairs: %w", err)
	}
	var (
		all   []BlockedPair
		heads []*redis.ZSliceCmd
	)
	for field, v := range m {
		var b BlockedPair
		if err := json.Unmarshal([]byte(v), &b); err != nil {
			return nil, fmt.Errorf("ledger: blocked pair %s: %w", field, err)
		}
		all = append(all, b)
	}
	if len(all) == 0 {
		return nil, nil
	}
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, b := range all {
			heads = append(heads, p.ZRangeWithScores(ctx, l.queueKey(b.change()), 0, -1))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("ledger: read blocked pairs' queues: %w", err)
	}
	var out []BlockedPair
	for i, b := range all {
		q := heads[i].Val()
		if len(q) == 0 || q[0].Member != b.Head {
			// Moved on: resolve removes the record, unless a check raced
			// with it. Best effort.
			_ = l.rdb.HDel(ctx, l.blockedKey(), b.Pair()).Err()
			continue
		}
		b.Waiting = len(q) - 1
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, nil
}

// PairState is what the ledger holds for one pair: its pending changes in
// order (task ids) and the holder of its lease ("" when free). For
// diagnostics.
type PairState struct {
	Queue  []string
	Holder string
	// Since is when the pair's waiting changes started waiting for the
	// head (zero when none waited yet).
	Since time.Time
}

// Pair returns the pair's state.
func (l *Ledger) Pair(ctx context.Context, c jobs.Change) (PairState, error) {
	var (
		q      *redis.StringSliceCmd
		holder *redis.StringCmd
		wait   *redis.SliceCmd
	)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		q = p.ZRange(ctx, l.queueKey(c), 0, -1)
		holder = p.Get(ctx, l.leaseKey(c))
		wait = p.HMGet(ctx, l.pairKey(c), "hh", "hs")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return PairState{}, fmt.Errorf("ledger: read pair %s: %w", pairField(c), err)
	}
	ps := PairState{Queue: q.Val(), Holder: holder.Val()}
	if v := wait.Val(); len(v) == 2 && len(ps.Queue) > 0 {
		if hh, _ := v[0].(string); hh == ps.Queue[0] {
			if s, _ := v[1].(string); s != "" {
				var ms int64
				fmt.Sscan(s, &ms)
				ps.Since = time.UnixMilli(ms)
			}
		}
	}
	return ps, nil
}

// PendingLines returns the lines of batch that are pending (or retrying),
// at most limit of them (all when limit is 0 or less), in order.
func (l *Ledger) PendingLines(ctx context.Context, batch string, limit int) ([]Line, error) {
	last, err := l.LastLine(ctx, batch)
	if err != nil {
		return nil, err
	}
	var out []Line
	const chunk = 4096
	for from := 1; from <= last; from += chunk {
		to := min(from+chunk-1, last)
		s, err := l.rdb.GetRange(ctx, l.outKey(batch), int64(from), int64(to)).Result()
		if err != nil {
			return nil, fmt.Errorf("ledger: read outcomes of batch %s: %w", batch, err)
		}
		if !strings.ContainsAny(s, "pr") {
			continue
		}
		for i := 0; i < len(s); i++ {
			if s[i] != byte(Pending) && s[i] != byte(Retrying) {
				continue
			}
			ls, err := l.Lines(ctx, batch, from+i, from+i)
			if err != nil {
				return nil, err
			}
			out = append(out, ls...)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// Stalled returns the batches among the limit most recently imported that
// have pending lines and whose record has not changed (no line accepted or
// resolved) for idle, by the Redis server's clock.
func (l *Ledger) Stalled(ctx context.Context, idle time.Duration, limit int) ([]string, error) {
	names, err := l.Batches(ctx, limit)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		bc, err := l.Batch(ctx, n)
		if errors.Is(err, ErrNoBatch) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if bc.Pending > 0 && bc.Now.Sub(bc.Updated) >= idle {
			out = append(out, n)
		}
	}
	return out, nil
}

// Turn reports whether the caller may do a fleet-wide chore called name
// now: true for one caller per every.
func (l *Ledger) Turn(ctx context.Context, name string, every time.Duration) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.prefix+":turn:"+name, "1", every).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: take the turn for %s: %w", name, err)
	}
	return ok, nil
}
