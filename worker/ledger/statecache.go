package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// The state cache: what the workers last read of an organization's
// associations, shared by every worker of the fleet for a short time
// (StateTTL), and kept true to orgconn's own writes.
//
// One hash per organization ({prefix}:state:<org>): field "@at" is the
// Redis clock (milliseconds) when the last list read of the organization
// was sent; each connection field is
//
//	K:<ms>:<state>  known: the state (jobs.PairState.Encode), as of <ms>
//	I               a write to the pair is in flight: unknown
//	D:<ms>          a write ended without a known result at <ms>: unknown
//
// and a connection with no field was absent when the list was read. The
// cache is per organization, not per batch: a pair's changes of several
// batches run in order, and each write marks the one cache every batch
// reads, so no batch can trust a state another batch's write has made
// stale. Writes by other clients are only bounded by the age a worker
// accepts (see the worker's StateMaxAge).

// StateTTL is how long an organization's cached state lives after its last
// read.
const StateTTL = 2 * time.Minute

func (l *Ledger) stateKey(org string) string { return l.prefix + ":state:" + org }
func (l *Ledger) stateLockKey(org string) string {
	return l.prefix + ":stateread:" + org
}

// storeStateScript stores a list read of an organization, unless a read
// sent later is stored already. Fields written since the read was sent
// (their time is not before it) and writes in flight are kept: they are at
// least as new as the read.
//
// KEYS[1] the organization's state hash. ARGV[1] the read's send time (ms,
// Redis clock), ARGV[2] TTL in ms, then per associated connection:
// ARGV[2i+1] its id, ARGV[2i+2] its encoded state.
// Returns 1 if stored, 0 if a later read was stored already.
var storeStateScript = redis.NewScript(`
local start = tonumber(ARGV[1])
local at = tonumber(redis.call('HGET', KEYS[1], '@at') or '0')
if at >= start then
  return 0
end
local cur = redis.call('HGETALL', KEYS[1])
local keep = {}
for i = 1, #cur, 2 do
  local f, v = cur[i], cur[i+1]
  if f ~= '@at' then
    if v == 'I' then
      keep[f] = v
    else
      local ts = tonumber(string.match(v, '^[KD]:(%d+)'))
      if ts and ts >= start then
        keep[f] = v
      end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '@at', start)
for i = 3, #ARGV, 2 do
  if not keep[ARGV[i]] then
    redis.call('HSET', KEYS[1], ARGV[i], 'K:' .. start .. ':' .. ARGV[i+1])
  end
end
for f, v in pairs(keep) do
  redis.call('HSET', KEYS[1], f, v)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// loadStateScript reads what the cache knows of one pair.
//
// KEYS[1] the organization's state hash. ARGV[1] the connection id.
// Returns {now ms, @at or -1, the connection's field or ""}.
var loadStateScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], '@at', ARGV[1])
return {now, tonumber(f[1] or '-1'), f[2] or ''}
`)

// beforeWriteScript runs before a worker writes to a pair: it records the
// pair's prior state for the batch unless one is recorded — "?" when the
// worker does not know it, so that a state read after this write can never
// pass for the state before the batch — and
// marks the pair's cached state as in flight. The mark is made even when
// the organization is not cached, so that a read sent before the write
// lands, and stored after, cannot make the pair look known.
//
// KEYS[1] the batch's prior hash, KEYS[2] the organization's state hash.
// ARGV[1] retention in seconds, ARGV[2] the pair's field in the prior hash,
// ARGV[3] its encoded prior state or "?" (not known), ARGV[4] the
// connection id, ARGV[5] the state hash's TTL in ms.
// Returns 1 if a prior state was newly recorded.
var beforeWriteScript = redis.NewScript(`
local n = redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[4], 'I')
if redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return n
`)

// afterWriteScript runs after a worker's write to a pair ended: it records
// the state the write left for the batch (when it is known) and updates the
// pair's cached state: known, or unknown since now.
//
// KEYS[1] the batch's left hash, KEYS[2] the organization's state hash.
// ARGV[1] retention in seconds, ARGV[2] the pair's field in the left hash,
// ARGV[3] the encoded state left or "" (not known), ARGV[4] the connection
// id.
var afterWriteScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[4], 'K:' .. now .. ':' .. ARGV[3])
  else
    redis.call('HSET', KEYS[2], ARGV[4], 'D:' .. now)
  end
end
return 1
`)

// Clock returns the Redis server's clock: the time base of the state cache.
func (l *Ledger) Clock(ctx context.Context) (time.Time, error) {
	t, err := l.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: read the Redis clock: %w", err)
	}
	return t, nil
}

// StoreState stores a list read of org's associations (connection id →
// state, the present ones) sent at sent (the Redis clock, from Clock). It
// reports false when a read sent later was stored already.
func (l *Ledger) StoreState(ctx context.Context, org string, sent time.Time, conns map[string]jobs.PairState) (bool, error) {
	args := make([]any, 0, 2+2*len(conns))
	args = append(args, sent.UnixMilli(), StateTTL.Milliseconds())
	for id, st := range conns {
		args = append(args, id, st.Encode())
	}
	n, err := storeStateScript.Run(ctx, l.rdb, []string{l.stateKey(org)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: store the state of %s: %w", org, err)
	}
	return n == 1, nil
}

// CachedPair is what the state cache knows of a pair.
type CachedPair struct {
	// Read is false when the organization has no cached read.
	Read bool
	// Age is how long ago the organization's last read was sent.
	Age time.Duration
	// Known is true when the pair's state is known: State is it.
	Known bool
	State jobs.PairState
	// InFlight is true when a write of the pair has not ended (or its
	// worker died): unknown, and a read does not make it known.
	InFlight bool
}

// CachedState returns what the state cache knows of the pair (org, conn).
func (l *Ledger) CachedState(ctx context.Context, org, conn string) (CachedPair, error) {
	v, err := loadStateScript.Run(ctx, l.rdb, []string{l.stateKey(org)}, conn).Slice()
	if err != nil {
		return CachedPair{}, fmt.Errorf("ledger: read the cached state of %s/%s: %w", org, conn, err)
	}
	now, _ := v[0].(int64)
	at, _ := v[1].(int64)
	f, _ := v[2].(string)
	if at < 0 {
		return CachedPair{}, nil
	}
	cp := CachedPair{Read: true, Age: time.Duration(now-at) * time.Millisecond}
	switch {
	case f == "I":
		cp.InFlight = true
	case f == "":
		cp.Known, cp.State = true, jobs.Absent
	case strings.HasPrefix(f, "K:"):
		rest := f[2:]
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return cp, nil
		}
		if _, err := strconv.ParseInt(rest[:i], 10, 64); err != nil {
			return cp, nil
		}
		st, err := jobs.ParsePairState(rest[i+1:])
		if err != nil {
			return cp, nil // unreadable: unknown
		}
		cp.Known, cp.State = true, st
	}
	return cp, nil
}

// ForgetState drops the cached state of org: a write found the state moved.
func (l *Ledger) ForgetState(ctx context.Context, org string) error {
	if err := l.rdb.Del(ctx, l.stateKey(org)).Err(); err != nil {
		return fmt.Errorf("ledger: forget the cached state of %s: %w", org, err)
	}
	return nil
}

// LockStateRead takes the right to read org's associations for the fleet
// for ttl, so that workers starting on one organization at once read it
// once; it reports false when another holder has it. UnlockStateRead gives
// it back.
func (l *Ledger) LockStateRead(ctx context.Context, org, holder string, ttl time.Duration) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.stateLockKey(org), holder, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: lock the read of %s: %w", org, err)
	}
	return ok, nil
}

// unlockScript deletes a lock if its holder still has it.
//
// KEYS[1] the lock. ARGV[1] the holder. Returns 1 if deleted.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// UnlockStateRead gives back the right LockStateRead took.
func (l *Ledger) UnlockStateRead(ctx context.Context, org, holder string) error {
	if err := unlockScript.Run(ctx, l.rdb, []string{l.stateLockKey(org)}, holder).Err(); err != nil {
		return fmt.Errorf("ledger: unlock the read of %s: %w", org, err)
	}
	return nil
}

// BeforeWrite is called before a worker writes to the pair of c for
// batch: it records prior as the pair's prior state for the batch unless
// one is recorded (nil records that the prior state is not known: a state
// read later is not the state before the batch), and marks the pair's cached state unknown
// while the write is in flight.
func (l *Ledger) BeforeWrite(ctx context.Context, batch string, c jobs.Change, prior *jobs.PairState) error {
	enc := unknownPrior
	if prior != nil {
		enc = prior.Encode()
	}
	err := beforeWriteScript.Run(ctx, l.rdb, []string{l.priorKey(batch), l.stateKey(c.OrgID)},
		int64(l.retention/time.Second), pairID(c.OrgID, c.ConnectionID), enc, c.ConnectionID, StateTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("ledger: record before writing %s/%s: %w", c.OrgID, c.ConnectionID, err)
	}
	return nil
}

// AfterWrite is called when a worker's write to the pair of c for batch
// ended: left, when not nil, is the state it left (recorded for the batch
// and in the cache); nil means the result is not known (the cache then
// knows the pair as unknown).
func (l *Ledger) AfterWrite(ctx context.Context, batch string, c jobs.Change, left *jobs.PairState) error {
	enc := ""
	if left != nil {
		enc = left.Encode()
	}
	err := afterWriteScript.Run(ctx, l.rdb, []string{l.leftKey(batch), l.stateKey(c.OrgID)},
		int64(l.retention/time.Second), pairID(c.OrgID, c.ConnectionID), enc, c.ConnectionID).Err()
	if err != nil {
		return fmt.Errorf("ledger: record after writing %s/%s: %w", c.OrgID, c.ConnectionID, err)
	}
	return nil
}

// reflectedScript records, for a pair the batch wrote to before (it has a
// prior state, known or not), the state the tenant was read in when a
// later change of the batch found nothing to do: the batch's earlier write
// may have landed without its answer (a lost response), and this is what
// the batch left.
//
// KEYS[1] the batch's prior hash, KEYS[2] the batch's left hash. ARGV[1]
// retention in seconds, ARGV[2] the pair's field, ARGV[3] the encoded state.
// Returns 1 if recorded.
var reflectedScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
`)

// Reflected is called when the worker found the tenant already reflecting
// c, in state st: if the batch wrote to the pair before, st is what the
// batch left.
func (l *Ledger) Reflected(ctx context.Context, batch string, c jobs.Change, st jobs.PairState) error {
	err := reflectedScript.Run(ctx, l.rdb, []string{l.priorKey(batch), l.leftKey(batch)},
		int64(l.retention/time.Second), pairID(c.OrgID, c.ConnectionID), st.Encode()).Err()
	if err != nil {
		return fmt.Errorf("ledger: record the state of %s/%s: %w", c.OrgID, c.ConnectionID, err)
	}
	return nil
}
