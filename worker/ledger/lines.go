package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// RowsBlock is how many consecutive lines share one hash of row changes.
// With ids of typical length a block stays within Redis's compact hash
// encoding (hash-max-listpack-entries 128, values up to 64 bytes), which
// keeps a row's change to about 50 bytes.
const RowsBlock = 128

// encodeRow writes a change compactly: the action's first letter, one byte
// per flag ('-' not given, '0', '1'), then "org/connection" (ids never
// contain '/'). A change the compact form cannot hold — a disable, an
// organization_connection_name or organization_access_level, a name — is
// written as its JSON instead, which starts with '{' (the compact form
// never does), so records written before JSON rows existed still decode.
func encodeRow(c jobs.Change) string {
	if !compactable(c) {
		b, err := json.Marshal(c)
		if err == nil {
			return string(b)
		}
	}
	var b strings.Builder
	b.Grow(4 + len(c.OrgID) + 1 + len(c.ConnectionID))
	switch c.Action {
	case jobs.Enable:
		b.WriteByte('e')
	case jobs.Update:
		b.WriteByte('u')
	case jobs.Remove:
		b.WriteByte('r')
	default:
		b.WriteByte('?')
	}
	for _, f := range c.Flags() {
		switch f.Value {
		case jobs.True:
			b.WriteByte('1')
		case jobs.False:
			b.WriteByte('0')
		default:
			b.WriteByte('-')
		}
	}
	b.WriteString(c.OrgID)
	b.WriteByte('/')
	b.WriteString(c.ConnectionID)
	return b.String()
}

// compactable reports whether the compact row form holds all of c: one of
// enable, update and remove, the three flags and both ids, nothing else.
func compactable(c jobs.Change) bool {
	switch c.Action {
	case jobs.Enable, jobs.Update, jobs.Remove:
	default:
		return false
	}
	return c.OrgConnectionName == "" && c.AccessLevel == "" && c.OrgName == "" && c.ConnectionName == "" &&
		c.OrgID != "" && c.ConnectionID != ""
}

// decodeRow reads what encodeRow wrote, in either form.
func decodeRow(s string) (jobs.Change, error) {
	if strings.HasPrefix(s, "{") {
		var c jobs.Change
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return jobs.Change{}, fmt.Errorf("row record %.80q: %w", s, err)
		}
		if _, ok := jobs.ParseAction(string(c.Action)); !ok {
			return jobs.Change{}, fmt.Errorf("row record %.80q: unknown action %q", s, c.Action)
		}
		return c, nil
	}
	if len(s) < 6 {
		return jobs.Change{}, fmt.Errorf("row record %q is too short", s)
	}
	var c jobs.Change
	switch s[0] {
	case 'e':
		c.Action = jobs.Enable
	case 'u':
		c.Action = jobs.Update
	case 'r':
		c.Action = jobs.Remove
	default:
		return jobs.Change{}, fmt.Errorf("row record %q: unknown action %q", s, s[0])
	}
	flags := []*jobs.Flag{&c.AssignMembershipOnLogin, &c.ShowAsButton, &c.IsSignupEnabled}
	for i, f := range flags {
		switch s[1+i] {
		case '1':
			*f = jobs.True
		case '0':
			*f = jobs.False
		case '-':
		default:
			return jobs.Change{}, fmt.Errorf("row record %q: bad flag %q", s, s[1+i])
		}
	}
	var ok bool
	c.OrgID, c.ConnectionID, ok = strings.Cut(s[4:], "/")
	if !ok {
		return jobs.Change{}, fmt.Errorf("row record %q has no '/' between organization and connection", s)
	}
	return c, nil
}

// Failure is the last failed attempt of a line that failed at least once and
// may still succeed (5xx, network, timeout). It is kept after the line
// resolves, until a requeue starts the line afresh.
type Failure struct {
	Failed    int       `json:"failed"` // failed attempts so far
	Reason    string    `json:"reason"`
	Status    int       `json:"status,omitempty"`
	ErrorCode string    `json:"error_code,omitempty"`
	Message   string    `json:"message,omitempty"`
	At        time.Time `json:"at"`
}

// MarkRetry records a failed attempt of the pending change p (task taskID):
// its line counts as retrying until it resolves. It reports false when the
// change is not pending.
func (l *Ledger) MarkRetry(ctx context.Context, p jobs.Payload, taskID string, f Failure) (bool, error) {
	rec, err := json.Marshal(f)
	if err != nil {
		return false, fmt.Errorf("ledger: encode failure of %s: %w", taskID, err)
	}
	b := p.Origin.Batch
	n, err := markRetryScript.Run(ctx, l.rdb, []string{l.queueKey(p.Change), l.batchKey(b), l.outKey(b), l.triesKey(b)},
		taskID, p.Origin.Line, rec, int64(l.retention/time.Second)).Int64()
	if err != nil {
		return false, fmt.Errorf("ledger: record failed attempt of %s: %w", taskID, err)
	}
	return n == 1, nil
}

// Line is what the ledger knows of one accepted line.
type Line struct {
	Line    int
	Outcome Outcome
	// Change is the line's change; Known is false for lines accepted by a
	// version of orgconn that did not keep changes (or whose row record
	// expired).
	Change jobs.Change
	Known  bool
	// Dead is the line's dead letter: for a dead line unless purged, and for
	// a requeued line still pending (RequeuedAt set).
	Dead *DeadLetter
	// Failure is the line's last failed attempt, if it had any since it
	// was accepted or requeued.
	Failure *Failure
}

// Attempts is how many calls the line's change made, as far as the ledger
// knows: the dead letter's count for a dead line, failed attempts plus the
// one that succeeded for an applied line, failed attempts otherwise.
func (ln Line) Attempts() int {
	failed := 0
	if ln.Failure != nil {
		failed = ln.Failure.Failed
	}
	switch ln.Outcome {
	case Dead:
		if ln.Dead != nil {
			return ln.Dead.Attempts
		}
	case Applied:
		return failed + 1
	}
	return failed
}

// LastLine returns the highest line ever accepted in the batch (0 when
// none), or ErrNoBatch.
func (l *Ledger) LastLine(ctx context.Context, batch string) (int, error) {
	n, err := l.rdb.StrLen(ctx, l.outKey(batch)).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: read outcomes of batch %s: %w", batch, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("batch %s: %w", batch, ErrNoBatch)
	}
	return int(n) - 1, nil
}

// Lines returns the accepted lines among from..to (inclusive) of batch, in
// order. Lines never accepted (invalid rows, the header) are left out.
func (l *Ledger) Lines(ctx context.Context, batch string, from, to int) ([]Line, error) {
	if from < 1 {
		from = 1
	}
	if to < from {
		return nil, nil
	}
	fields := make([]string, 0, to-from+1)
	for i := from; i <= to; i++ {
		fields = append(fields, strconv.Itoa(i))
	}
	var (
		out          *redis.StringCmd
		blocks       []*redis.MapStringStringCmd
		tries, deads *redis.SliceCmd
	)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		out = p.GetRange(ctx, l.outKey(batch), int64(from), int64(to))
		for b := from / RowsBlock; b <= to/RowsBlock; b++ {
			blocks = append(blocks, p.HGetAll(ctx, l.rowsKey(batch, b*RowsBlock)))
		}
		tries = p.HMGet(ctx, l.triesKey(batch), fields...)
		deads = p.HMGet(ctx, l.deadKey(batch), fields...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: read lines %d-%d of batch %s: %w", from, to, batch, err)
	}
	rows := map[string]string{}
	for _, b := range blocks {
		for k, v := range b.Val() {
			rows[k] = v
		}
	}
	outs, tv, dv := out.Val(), tries.Val(), deads.Val()
	var lines []Line
	for i := range fields {
		if i >= len(outs) {
			break
		}
		o := Outcome(outs[i])
		if o == 0 {
			continue
		}
		ln := Line{Line: from + i, Outcome: o}
		if r, ok := rows[fields[i]]; ok {
			c, err := decodeRow(r)
			if err != nil {
				return nil, fmt.Errorf("ledger: batch %s line %d: %w", batch, ln.Line, err)
			}
			ln.Change, ln.Known = c, true
		}
		if s, ok := tv[i].(string); ok {
			var f Failure
			if err := json.Unmarshal([]byte(s), &f); err != nil {
				return nil, fmt.Errorf("ledger: batch %s line %d: failure record: %w", batch, ln.Line, err)
			}
			ln.Failure = &f
		}
		if s, ok := dv[i].(string); ok {
			var dl DeadLetter
			if err := json.Unmarshal([]byte(s), &dl); err != nil {
				return nil, fmt.Errorf("ledger: batch %s line %d: dead letter: %w", batch, ln.Line, err)
			}
			ln.Dead = &dl
			if !ln.Known {
				ln.Change, ln.Known = dl.Change, true
			}
		}
		lines = append(lines, ln)
	}
	return lines, nil
}
