package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// What a batch did to each pair, for rollback. Per batch and pair the
// ledger keeps
//
//   - the prior state: the pair's state before the batch's first write to
//     it (absent, or present with its three flags), recorded once — the
//     first writer wins — by whoever knows it: apply and rollback at plan
//     time, the worker when it read the organization before writing;
//   - the left state: the state the batch's last successful write to the
//     pair left, recorded by the worker after each write, so that rollback
//     can tell whether someone changed the pair since.
//
// Both are hashes under the batch's keys (field "<org>/<connection>",
// value jobs.PairState.Encode) and are kept as long as the batch's record.

func (l *Ledger) priorKey(b string) string { return l.prefix + ":batch:" + b + ":prior" }
func (l *Ledger) leftKey(b string) string  { return l.prefix + ":batch:" + b + ":left" }
func (l *Ledger) hintsKey(b string) string { return l.prefix + ":batch:" + b + ":hints" }
func (l *Ledger) orgRowsKey(b string) string {
	return l.prefix + ":batch:" + b + ":orgrows"
}

// pairID is a pair's field in the prior and left hashes.
func pairID(org, conn string) string { return org + "/" + conn }

// recordPriorScript records prior states, each only if none is recorded
// for its pair: the first writer wins.
//
// KEYS[1] the batch's prior hash. ARGV[1] retention in seconds, then per
// pair: ARGV[2i] its field, ARGV[2i+1] its encoded state.
// Returns how many were newly recorded.
var recordPriorScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV, 2 do
  n = n + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
`)

// RecordPrior records, for each pair of recs, its state before batch's
// first write to it, unless a prior state is recorded for the pair already
// (the first writer wins). It returns how many were newly recorded.
func (l *Ledger) RecordPrior(ctx context.Context, batch string, recs []jobs.PairRecord) (int, error) {
	total := 0
	for start := 0; start < len(recs); start += MaxAcceptRows {
		chunk := recs[start:min(start+MaxAcceptRows, len(recs))]
		args := make([]any, 0, 1+2*len(chunk))
		args = append(args, int64(l.retention/time.Second))
		for _, r := range chunk {
			args = append(args, pairID(r.OrgID, r.ConnectionID), r.State.Encode())
		}
		n, err := recordPriorScript.Run(ctx, l.rdb, []string{l.priorKey(batch)}, args...).Int()
		if err != nil {
			return total, fmt.Errorf("ledger: record prior state of %d pairs of batch %s: %w", len(chunk), batch, err)
		}
		total += n
	}
	return total, nil
}

// Priors returns the prior states recorded for batch, sorted by
// organization then connection. Pairs the batch wrote to without knowing
// their state are not among them.
func (l *Ledger) Priors(ctx context.Context, batch string) ([]jobs.PairRecord, error) {
	return l.pairRecords(ctx, l.priorKey(batch), "prior states of batch "+batch)
}

// Lefts returns the states the batch's writes left, sorted by organization
// then connection.
func (l *Ledger) Lefts(ctx context.Context, batch string) ([]jobs.PairRecord, error) {
	return l.pairRecords(ctx, l.leftKey(batch), "states left by batch "+batch)
}

// unknownPrior is the prior state recorded for a pair a worker wrote to
// without knowing its state.
const unknownPrior = "?"

func (l *Ledger) pairRecords(ctx context.Context, key, what string) ([]jobs.PairRecord, error) {
	m, err := l.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", what, err)
	}
	out := make([]jobs.PairRecord, 0, len(m))
	for k, v := range m {
		if v == unknownPrior {
			continue // written to without knowing its state: no prior state
		}
		org, conn, ok := strings.Cut(k, "/")
		if !ok {
			return nil, fmt.Errorf("ledger: %s: field %q is not <org>/<connection>", what, k)
		}
		st, err := jobs.ParsePairState(v)
		if err != nil {
			return nil, fmt.Errorf("ledger: %s: %s: %w", what, k, err)
		}
		out = append(out, jobs.PairRecord{OrgID: org, ConnectionID: conn, State: st})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].OrgID != out[j].OrgID {
			return out[i].OrgID < out[j].OrgID
		}
		return out[i].ConnectionID < out[j].ConnectionID
	})
	return out, nil
}

// SetHints stores what the batch's producer tells its workers (the read
// mode and what the auto mode weighs). Call it before the batch's tasks are
// enqueued. OrgRows is stored when given.
func (l *Ledger) SetHints(ctx context.Context, batch string, h jobs.BatchHints) error {
	ttl := l.retention
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, l.hintsKey(batch), "read", string(h.Read), "rows", h.Rows, "orgs", h.Orgs,
			"likely", strconv.FormatFloat(h.LikelyUnchanged, 'f', -1, 64))
		p.Expire(ctx, l.hintsKey(batch), ttl)
		if len(h.OrgRows) > 0 {
			p.Del(ctx, l.orgRowsKey(batch))
			args := make([]any, 0, 2*len(h.OrgRows))
			for org, n := range h.OrgRows {
				args = append(args, org, n)
			}
			p.HSet(ctx, l.orgRowsKey(batch), args...)
			p.Expire(ctx, l.orgRowsKey(batch), ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: store the hints of batch %s: %w", batch, err)
	}
	return nil
}

// Hints returns what the batch's producer told its workers and the rows of
// org in the batch (0 when not recorded per organization); ok is false when
// the producer told nothing (a webhook batch, or one imported before hints
// existed).
func (l *Ledger) Hints(ctx context.Context, batch, org string) (h jobs.BatchHints, orgRows int, ok bool, err error) {
	var (
		all  *redis.MapStringStringCmd
		rows *redis.StringCmd
	)
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, l.hintsKey(batch))
		rows = p.HGet(ctx, l.orgRowsKey(batch), org)
		return nil
	})
	if err != nil && err != redis.Nil {
		return h, 0, false, fmt.Errorf("ledger: read the hints of batch %s: %w", batch, err)
	}
	m := all.Val()
	if len(m) == 0 {
		return h, 0, false, nil
	}
	h.Read = jobs.ReadMode(m["read"])
	h.Rows, _ = strconv.Atoi(m["rows"])
	h.Orgs, _ = strconv.Atoi(m["orgs"])
	h.LikelyUnchanged, _ = strconv.ParseFloat(m["likely"], 64)
	orgRows, _ = strconv.Atoi(rows.Val())
	return h, orgRows, true, nil
}

// AppliedPairs returns the distinct pairs of batch's applied lines, in
// line order, or an error wrapping ErrNoBatch.
func (l *Ledger) AppliedPairs(ctx context.Context, batch string) ([][2]string, error) {
	last, err := l.LastLine(ctx, batch)
	if err != nil {
		return nil, err
	}
	seen := map[[2]string]bool{}
	var out [][2]string
	const chunk = 1024
	for from := 1; from <= last; from += chunk {
		lines, err := l.Lines(ctx, batch, from, min(from+chunk-1, last))
		if err != nil {
			return nil, err
		}
		for _, ln := range lines {
			k := [2]string{ln.Change.OrgID, ln.Change.ConnectionID}
			if ln.Outcome == Applied && ln.Known && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// AcceptedChanges returns the changes of batch's accepted lines by line
// (empty for a batch the ledger does not know).
func (l *Ledger) AcceptedChanges(ctx context.Context, batch string) (map[int]jobs.Change, error) {
	last, err := l.LastLine(ctx, batch)
	if errors.Is(err, ErrNoBatch) {
		return map[int]jobs.Change{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int]jobs.Change{}
	const chunk = 1024
	for from := 1; from <= last; from += chunk {
		lines, err := l.Lines(ctx, batch, from, min(from+chunk-1, last))
		if err != nil {
			return nil, err
		}
		for _, ln := range lines {
			if ln.Known {
				out[ln.Line] = ln.Change
			}
		}
	}
	return out, nil
}
