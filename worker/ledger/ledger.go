// Package ledger is orgconn's own record in Redis of every accepted change:
// one queue per (organization, connection) pair that fixes the order in which
// the pair's changes take effect, a short lease so that one worker acts on a
// pair at a time, and per batch the outcome of every line and a durable dead
// letter for every line that failed.
//
// asynq carries the tasks; the ledger decides which of them may act. A task
// may act only when its change is the head of its pair's queue; it leaves the
// queue once resolved (applied, superseded, unchanged or dead-lettered), which makes the
// next change the head. Every step is one atomic Lua script over keys that
// share the {prefix} hash tag, so the ledger works on a Redis Cluster too.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// DefaultRetention is how long a batch's record is kept after its last
// accepted line.
const DefaultRetention = 30 * 24 * time.Hour

// Ledger reads and writes the record. Safe for concurrent use.
type Ledger struct {
	rdb       redis.UniversalClient
	name      string // the prefix as given, without braces
	prefix    string
	retention time.Duration
}

// New returns a ledger whose keys start with "{prefix}:". prefix must be
// non-empty and must not contain braces; retention zero means
// DefaultRetention.
func New(rdb redis.UniversalClient, prefix string, retention time.Duration) (*Ledger, error) {
	if prefix == "" {
		return nil, errors.New("ledger: empty key prefix")
	}
	for _, r := range prefix {
		if r == '{' || r == '}' {
			return nil, fmt.Errorf("ledger: key prefix %q contains a brace", prefix)
		}
	}
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &Ledger{rdb: rdb, name: prefix, prefix: "{" + prefix + "}", retention: retention}, nil
}

// Prefix returns the key prefix including its hash tag, e.g. "{orgconn}".
func (l *Ledger) Prefix() string { return l.prefix }

// Name returns the key prefix as given to New, without its hash tag
// ("orgconn"): what packages that add their own braces (the rate budget,
// the token cache, the API mode memory) and orgconn's --prefix take.
func (l *Ledger) Name() string { return l.name }

// The pair's keys use jobs.Change.PairKey: "org/connection" by ids (the
// keys orgconn always used), or "name:…" on a side given only by its name,
// so that a change enqueued with a name still unresolved keeps the place
// it was accepted at, whatever the worker resolves the name to.
func (l *Ledger) pairKey(c jobs.Change) string {
	return l.prefix + ":pair:" + c.PairKey()
}
func (l *Ledger) queueKey(c jobs.Change) string {
	return l.prefix + ":pairq:" + c.PairKey()
}
func (l *Ledger) leaseKey(c jobs.Change) string {
	return l.prefix + ":lease:" + c.PairKey()
}
func (l *Ledger) blockedKey() string       { return l.prefix + ":blocked" }
func (l *Ledger) batchKey(b string) string { return l.prefix + ":batch:" + b }
func (l *Ledger) outKey(b string) string   { return l.prefix + ":batch:" + b + ":out" }
func (l *Ledger) deadKey(b string) string  { return l.prefix + ":batch:" + b + ":dead" }
func (l *Ledger) batchesKey() string       { return l.prefix + ":batches" }
func (l *Ledger) triesKey(b string) string { return l.prefix + ":batch:" + b + ":tries" }
func (l *Ledger) pairLastKey(c jobs.Change) string {
	return l.prefix + ":last:" + c.PairKey()
}

// rowsKey is the hash holding the changes of lines line/RowsBlock*RowsBlock
// onwards: blocks of RowsBlock lines stay small enough for Redis's compact
// hash encoding.
func (l *Ledger) rowsKey(b string, line int) string {
	return l.prefix + ":batch:" + b + ":rows:" + strconv.Itoa(line/RowsBlock)
}

// Row is one change to accept. The accept vocabulary (Row, Acceptance and
// MaxAcceptRows) lives in package jobs, so that producers hand rows to the
// ledger without importing it; the names here are the same types.
type Row = jobs.Row

// MaxAcceptRows bounds one Accept call (one Lua script run).
const MaxAcceptRows = jobs.MaxAcceptRows

// Acceptance says what Accept did with a row.
type Acceptance = jobs.Acceptance

// The acceptances: see jobs.Resolved, jobs.Accepted and jobs.StillPending.
const (
	Resolved     = jobs.Resolved
	Accepted     = jobs.Accepted
	StillPending = jobs.StillPending
)

// Accept records rows of batch as accepted, in the given order, each line at
// most once ever (within retention), and says per row what it did. A newly
// accepted change goes to the end of its pair's queue, its change is kept
// for the batch's report (Lines) and it becomes its pair's latest accepted
// change (the requeue rule). source describes the batch ("csv:users.csv",
// "webhook"). Every Accept call keeps the batch's record for another
// retention period.
func (l *Ledger) Accept(ctx context.Context, batch, source string, rows []Row) ([]Acceptance, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	if len(rows) > MaxAcceptRows {
		return nil, fmt.Errorf("ledger: accept %d rows at once, the limit is %d", len(rows), MaxAcceptRows)
	}
	keys := make([]string, 0, 3+4*len(rows))
	keys = append(keys, l.batchKey(batch), l.outKey(batch), l.batchesKey())
	args := make([]any, 0, 3+4*len(rows))
	args = append(args, batch, int64(l.retention/time.Second), source)
	for _, r := range rows {
		if r.Line < 1 {
			return nil, fmt.Errorf("ledger: accept line %d of batch %s: lines start at 1", r.Line, batch)
		}
		keys = append(keys, l.pairKey(r.Change), l.queueKey(r.Change), l.pairLastKey(r.Change), l.rowsKey(batch, r.Line))
		args = append(args, r.Line, jobs.TaskID(batch, r.Line), jobs.ShapeOf(r.Change).String(), encodeRow(r.Change))
	}
	res, err := acceptScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("ledger: accept %d rows of batch %s: %w", len(rows), batch, err)
	}
	out := make([]Acceptance, len(res))
	for i, v := range res {
		out[i] = Acceptance(v)
	}
	return out, nil
}

// ClaimState is the answer to a claim.
type ClaimState int

// The claim answers.
const (
	// Gone: the change is not pending; it was resolved before (a repeated
	// delivery). Nothing to do.
	Gone ClaimState = iota
	// NotHead: an earlier change to the same pair is still pending.
	NotHead
	// Leased: another holder is acting on this change right now.
	Leased
	// Claimed: the holder may act on the change until it resolves or
	// releases it, renewing the lease meanwhile.
	Claimed
)

// A pair whose changes have waited BlockedAfter for the same head is
// blocked: Claim tells one waiting change per BlockedAfter to check the
// head (Claim.Check), and the worker records what it found (MarkBlocked).
const BlockedAfter = 10 * time.Second

// Claim is the result of Ledger.Claim.
type Claim struct {
	State ClaimState
	// Successor is the next pending change to the pair, when Claimed; "" if
	// none. SuccessorShape is its shape.
	Successor      string
	SuccessorShape jobs.Shape
	// Crashes counts, when Claimed, the earlier claims of this change that
	// neither released nor resolved it: deliveries whose worker died while
	// acting on it.
	Crashes int
	// Suspected counts, of Crashes, those where this change ran alone in
	// its worker (MarkAlone): it caused them. In the others it may have
	// been a bystander of the change that did.
	Suspected int
	// Head is the pair's head when NotHead or Leased, and Waited how long
	// the pair's waiting changes have waited for it (on the Redis clock).
	Head   string
	Waited time.Duration
	// Check is true, when NotHead, for one waiting change per BlockedAfter
	// once the pair waited BlockedAfter: it should make sure the head has a
	// task, and record the pair as blocked.
	Check bool
}

// Claim asks to act on the change with the given task id. holder identifies
// this attempt; lease is how long the claim lasts unless renewed. Each
// claim counts until Release or Resolve clears it (Claim.Crashes).
func (l *Ledger) Claim(ctx context.Context, c jobs.Change, taskID, holder string, lease time.Duration) (Claim, error) {
	v, err := claimScript.Run(ctx, l.rdb, []string{l.queueKey(c), l.pairKey(c), l.leaseKey(c)}, taskID, holder, lease.Milliseconds(),
		BlockedAfter.Milliseconds(), BlockedAfter.Milliseconds()).Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("ledger: claim %s: %w", taskID, err)
	}
	state, _ := v[0].(int64)
	cl := Claim{State: ClaimState(state)}
	switch cl.State {
	case Claimed:
		cl.Successor, _ = v[1].(string)
		if s, _ := v[2].(string); s != "" {
			if cl.SuccessorShape, err = jobs.ParseShape(s); err != nil {
				return Claim{}, fmt.Errorf("ledger: claim %s: successor %s: %w", taskID, cl.Successor, err)
			}
		}
		n, _ := v[3].(int64)
		cl.Crashes = int(n)
		if len(v) > 4 {
			p, _ := v[4].(int64)
			cl.Suspected = int(p)
		}
	case NotHead, Leased:
		cl.Head, _ = v[1].(string)
		ms, _ := v[2].(int64)
		cl.Waited = time.Duration(ms) * time.Millisecond
		check, _ := v[3].(int64)
		cl.Check = check == 1
	}
	return cl, nil
}

// MarkAlone records that the holder of the change's claim runs it alone in
// its process, with nothing else in flight: should that process die now,
// the change caused it (Claim.Suspected of the next claim).
func (l *Ledger) MarkAlone(ctx context.Context, c jobs.Change, taskID string) error {
	if err := l.rdb.HSet(ctx, l.pairKey(c), "ca:"+taskID, "1").Err(); err != nil {
		return fmt.Errorf("ledger: mark %s alone: %w", taskID, err)
	}
	return nil
}

// Outcome is how a change ended.
type Outcome byte

// The outcomes, as stored in a batch's out string.
const (
	Pending Outcome = 'p'
	// Retrying is pending after at least one failed attempt.
	Retrying   Outcome = 'r'
	Applied    Outcome = 'a'
	Superseded Outcome = 's'
	// Unchanged: the worker read the tenant and found the change already in
	// effect; no write was sent.
	Unchanged Outcome = 'u'
	Dead      Outcome = 'd'
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Retrying:
		return "retrying"
	case Applied:
		return "applied"
	case Superseded:
		return "superseded"
	case Unchanged:
		return "unchanged"
	case Dead:
		return "dead"
	}
	return "not accepted"
}

// Resolved reports whether the outcome is final (applied, superseded,
// unchanged or dead).
func (o Outcome) Resolved() bool {
	return o == Applied || o == Superseded || o == Unchanged || o == Dead
}

// DeadLetter is the durable record of a change that cannot succeed.
type DeadLetter struct {
	TaskID     string      `json:"task_id"`
	Batch      string      `json:"batch"`
	Line       int         `json:"line"`
	Event      string      `json:"event,omitempty"`
	Change     jobs.Change `json:"change"`
	Reason     string      `json:"reason"`           // short class, e.g. "unknown organization"
	Status     int         `json:"status,omitempty"` // HTTP status of the last answer; 0 when none came
	ErrorCode  string      `json:"error_code,omitempty"`
	Message    string      `json:"message,omitempty"` // Auth0's message or the last error
	Attempts   int         `json:"attempts"`
	At         time.Time   `json:"at"`
	RequeuedAt *time.Time  `json:"requeued_at,omitempty"` // set while the line is pending again after a requeue
}

// Resolve records the final outcome of the change (Applied, Superseded,
// Unchanged or Dead, with dl for Dead) and returns the change that is now the head of the
// pair's queue ("" if none). ok is false when the change was not pending.
func (l *Ledger) Resolve(ctx context.Context, p jobs.Payload, taskID, holder string, o Outcome, dl *DeadLetter) (next string, ok bool, err error) {
	field := map[Outcome]string{Applied: "applied", Superseded: "superseded", Unchanged: "unchanged", Dead: "dead"}[o]
	if field == "" {
		return "", false, fmt.Errorf("ledger: resolve %s with outcome %q", taskID, o)
	}
	var record []byte
	if o == Dead {
		if dl == nil {
			return "", false, fmt.Errorf("ledger: resolve %s as dead without a dead letter", taskID)
		}
		if record, err = json.Marshal(dl); err != nil {
			return "", false, fmt.Errorf("ledger: encode dead letter %s: %w", taskID, err)
		}
	}
	b := p.Origin.Batch
	keys := []string{l.queueKey(p.Change), l.pairKey(p.Change), l.leaseKey(p.Change), l.batchKey(b), l.outKey(b), l.deadKey(b), l.blockedKey()}
	v, err := resolveScript.Run(ctx, l.rdb, keys, taskID, holder, string(o), p.Origin.Line, record, field, int64(l.retention/time.Second), pairField(p.Change)).Slice()
	if err != nil {
		return "", false, fmt.Errorf("ledger: resolve %s as %s: %w", taskID, o, err)
	}
	if n, _ := v[0].(int64); n == 0 {
		return "", false, nil
	}
	next, _ = v[1].(string)
	return next, true, nil
}

// Release gives up the claim of the change with the given task id without
// resolving it (the change will be tried again).
func (l *Ledger) Release(ctx context.Context, c jobs.Change, taskID, holder string) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.leaseKey(c), l.pairKey(c)}, holder, taskID).Err(); err != nil {
		return fmt.Errorf("ledger: release %s: %w", c.PairKey(), err)
	}
	return nil
}

// Extend renews the claim; it reports false when the lease was lost.
func (l *Ledger) Extend(ctx context.Context, c jobs.Change, holder string, lease time.Duration) (bool, error) {
	n, err := extendScript.Run(ctx, l.rdb, []string{l.leaseKey(c)}, holder, lease.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("ledger: extend lease %s: %w", c.PairKey(), err)
	}
	return n == 1, nil
}

// BatchCounts are a batch's counters.
type BatchCounts struct {
	Name       string
	Source     string
	Created    time.Time
	Updated    time.Time
	Total      int64 // accepted lines
	Pending    int64 // accepted and not resolved (queued, waiting, retrying or running)
	Retrying   int64 // of Pending: lines with at least one failed attempt
	Applied    int64
	Superseded int64
	Unchanged  int64 // lines the tenant already reflected: no write sent
	Dead       int64 // dead-lettered lines, purged ones included
	Purged     int64 // of Dead: dead letters deleted by a purge
	Requeued   int64 // dead letters requeued so far (each requeue counts)
	// Resolved is the number of lines resolved in the last Window, and
	// Now the Redis server's clock when the counters were read; see Rate.
	Resolved int64
	Window   time.Duration
	Now      time.Time
}

// Done reports whether every accepted line is resolved.
func (c BatchCounts) Done() bool { return c.Total > 0 && c.Pending == 0 }

// ErrNoBatch is returned for a batch the ledger does not know.
var ErrNoBatch = errors.New("no such batch")

// Batch returns the batch's counters and its recent pace.
func (l *Ledger) Batch(ctx context.Context, name string) (BatchCounts, error) {
	var (
		all *redis.MapStringStringCmd
		now *redis.TimeCmd
	)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, l.batchKey(name))
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return BatchCounts{}, fmt.Errorf("ledger: read batch %s: %w", name, err)
	}
	m := all.Val()
	if len(m) == 0 {
		return BatchCounts{}, fmt.Errorf("batch %s: %w", name, ErrNoBatch)
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	bc := BatchCounts{
		Name: name, Source: m["source"],
		Created: time.Unix(num("created"), 0), Updated: time.Unix(num("updated"), 0),
		Total: num("total"), Pending: num("pending"), Retrying: num("retrying"), Applied: num("applied"),
		Superseded: num("superseded"), Unchanged: num("unchanged"), Dead: num("dead"), Purged: num("purged"), Requeued: num("requeued"),
		Now: now.Val(),
	}
	bc.Resolved, bc.Window = recent(m, bc.Now, bc.Created)
	return bc, nil
}

// Batches returns the names of known batches, the most recently imported
// first, at most limit (all when limit is 0 or less).
func (l *Ledger) Batches(ctx context.Context, limit int) ([]string, error) {
	names, err := l.rdb.ZRevRange(ctx, l.batchesKey(), 0, max(int64(limit), 0)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: list batches: %w", err)
	}
	return names, nil
}

// Outcomes returns the outcome of lines from..to (inclusive) of batch; index
// i of the result is line from+i.
func (l *Ledger) Outcomes(ctx context.Context, batch string, from, to int) ([]Outcome, error) {
	s, err := l.rdb.GetRange(ctx, l.outKey(batch), int64(from), int64(to)).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: read outcomes of batch %s: %w", batch, err)
	}
	out := make([]Outcome, to-from+1)
	for i := range out {
		if i < len(s) {
			out[i] = Outcome(s[i])
		}
	}
	return out, nil
}

// DeadLetters returns the batch's dead letters by line: the dead-lettered
// lines not purged, and the requeued lines still pending (RequeuedAt set).
func (l *Ledger) DeadLetters(ctx context.Context, batch string) (map[int]DeadLetter, error) {
	m, err := l.rdb.HGetAll(ctx, l.deadKey(batch)).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: read dead letters of batch %s: %w", batch, err)
	}
	out := make(map[int]DeadLetter, len(m))
	for k, v := range m {
		line, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("ledger: dead letter of batch %s has line %q", batch, k)
		}
		var dl DeadLetter
		if err := json.Unmarshal([]byte(v), &dl); err != nil {
			return nil, fmt.Errorf("ledger: dead letter of batch %s line %d: %w", batch, line, err)
		}
		out[line] = dl
	}
	return out, nil
}
