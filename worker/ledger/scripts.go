package ledger

import "github.com/redis/go-redis/v9"

// Every script touches only keys under the ledger's {prefix} hash tag, so it
// runs on one node of a Redis Cluster. Outcome bytes in the batch's out
// string: "p" pending (accepted), "r" pending after at least one failed
// attempt (retrying), "a" applied, "s" superseded, "u" unchanged (already
// in effect, no write), "d" dead letter; "\0" (or
// past the end) means the line was never accepted.

// acceptScript records rows of one batch as accepted, each exactly once, and
// keeps each accepted row's change (for reports) and its pair's latest
// accepted change (for the requeue rule).
//
// KEYS[1] batch hash, KEYS[2] batch out string, KEYS[3] batches index;
// then for row i: KEYS[3+4i-3] its pair hash, KEYS[3+4i-2] its pair queue,
// KEYS[3+4i-1] its pair's last-accepted key, KEYS[3+4i] its rows block hash.
// ARGV[1] batch name, ARGV[2] retention in seconds, ARGV[3] source,
// then for row i: ARGV[3+4i-3] line, ARGV[3+4i-2] task id, ARGV[3+4i-1]
// shape, ARGV[3+4i] the row's change in the rows encoding.
// Returns one integer per row: 1 newly accepted, 2 accepted before and still
// pending, 0 accepted before and resolved.
var acceptScript = redis.NewScript(`
local now = tonumber(redis.call('TIME')[1])
local ttl = tonumber(ARGV[2])
local res = {}
local added = 0
local n = (#ARGV - 3) / 4
-- The outcome bytes of the lines lo..hi are read and written in one piece
-- when the rows' lines are close together (an import's are consecutive),
-- else one by one.
local lo, hi = math.huge, 0
for i = 1, n do
  local line = tonumber(ARGV[3 + 4*i - 3])
  if line < lo then lo = line end
  if line > hi then hi = line end
end
local span = nil
if hi - lo < 4 * n + 64 then
  span = {}
  local cur = redis.call('GETRANGE', KEYS[2], lo, hi)
  for j = 1, hi - lo + 1 do
    local c = string.sub(cur, j, j)
    span[j] = (c == '') and '\0' or c
  end
end
local expired = {}
for i = 1, n do
  local line = tonumber(ARGV[3 + 4*i - 3])
  local task = ARGV[3 + 4*i - 2]
  local prev
  if span then
    prev = span[line - lo + 1]
  else
    prev = redis.call('GETRANGE', KEYS[2], line, line)
  end
  if prev == 'p' or prev == 'r' then
    res[i] = 2
  elseif prev ~= '' and prev ~= '\0' then
    res[i] = 0
  else
    if span then
      span[line - lo + 1] = 'p'
    else
      redis.call('SETRANGE', KEYS[2], line, 'p')
    end
    local pair, q = KEYS[3 + 4*i - 3], KEYS[3 + 4*i - 2]
    local seq = redis.call('HINCRBY', pair, 'seq', 1)
    redis.call('HSET', pair, 'd:' .. task, ARGV[3 + 4*i - 1])
    redis.call('ZADD', q, seq, task)
    redis.call('SET', KEYS[3 + 4*i - 1], task, 'EX', ttl)
    redis.call('HSET', KEYS[3 + 4*i], line, ARGV[3 + 4*i])
    added = added + 1
    res[i] = 1
  end
  local rows = KEYS[3 + 4*i]
  if not expired[rows] then
    redis.call('EXPIRE', rows, ttl)
    expired[rows] = true
  end
end
if span and added > 0 then
  redis.call('SETRANGE', KEYS[2], lo, table.concat(span))
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'created', now, 'source', ARGV[3])
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - ttl))
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
  redis.call('HINCRBY', KEYS[1], 'pending', added)
  redis.call('HSET', KEYS[1], 'updated', now)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return res
`)

// claimScript lets the holder act on its change if the change is the head of
// its pair's queue and no one else holds the pair's lease.
//
// A change that has to wait learns how long the pair has been waiting for
// its current head: the pair hash keeps the head last seen by a waiting
// change (field hh) and since when (hs, milliseconds of the Redis clock).
// Once the pair has waited checkAfter for one head, one waiting change per
// checkEvery is told to check that the head still has a task (field hc: the
// last check).
//
// A change that is claimed counts the claim in the pair hash (field
// cr:<task id>); Release and Resolve clear it. A claim that finds the count
// above zero follows deliveries that claimed the change and never finished:
// their worker died while acting on it.
//
// A worker runs a change that follows unfinished claims alone (nothing else
// in flight in its process) and says so (MarkAlone: field ca:<task id>). A
// claim after an unfinished one that ran alone counts a crash this change
// is proven to cause (field cp:<task id>).
//
// KEYS[1] pair queue, KEYS[2] pair hash, KEYS[3] pair lease.
// ARGV[1] task id, ARGV[2] holder, ARGV[3] lease in milliseconds, ARGV[4]
// checkAfter in milliseconds, ARGV[5] checkEvery in milliseconds.
// Returns {0} gone (not pending: resolved before); {1, head, waited ms,
// check 0/1} not the head; {2, head, waited ms, 0} leased by another
// holder; {3, successor id or "", successor shape or "", unfinished claims
// before this one, of which crashes it ran alone in} claimed.
var claimScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {0}
end
local head = redis.call('ZRANGE', KEYS[1], 0, 1)
local cur = redis.call('GET', KEYS[3])
if head[1] ~= ARGV[1] or (cur and cur ~= ARGV[2]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local f = redis.call('HMGET', KEYS[2], 'hh', 'hs', 'hc')
  local since, checked = tonumber(f[2]), tonumber(f[3])
  if f[1] ~= head[1] or not since then
    since, checked = now, 0
    redis.call('HSET', KEYS[2], 'hh', head[1], 'hs', now, 'hc', 0)
  end
  local waited = now - since
  if head[1] ~= ARGV[1] then
    local check = 0
    if waited >= tonumber(ARGV[4]) and now - (checked or 0) >= tonumber(ARGV[5]) then
      redis.call('HSET', KEYS[2], 'hc', now)
      check = 1
    end
    return {1, head[1], waited, check}
  end
  return {2, head[1], waited, 0}
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
local crashes = redis.call('HINCRBY', KEYS[2], 'cr:' .. ARGV[1], 1) - 1
-- The worker of the unfinished claim died. If that claim ran alone in its
-- worker (MarkAlone: nothing else was in flight there), this change killed
-- it; otherwise it may have been a bystander.
local prime = tonumber(redis.call('HGET', KEYS[2], 'cp:' .. ARGV[1]) or '0') or 0
if crashes > 0 and redis.call('HGET', KEYS[2], 'ca:' .. ARGV[1]) == '1' then
  prime = redis.call('HINCRBY', KEYS[2], 'cp:' .. ARGV[1], 1)
end
redis.call('HDEL', KEYS[2], 'ca:' .. ARGV[1])
local nxt = head[2] or ''
local shape = ''
if nxt ~= '' then
  shape = redis.call('HGET', KEYS[2], 'd:' .. nxt) or ''
end
return {3, nxt, shape, crashes, prime}
`)

// resolveScript records the final outcome of a pending change, frees its
// pair for the next change and names that change. It counts the resolution
// in the batch's rate buckets (fields "t:<unix time / 5>" of the batch hash,
// the last 13 kept) and, for a line that had failed attempts, takes it out of
// the retrying count. A dead letter is kept as long as the batch's record; a
// line that resolves otherwise (after a requeue) loses its old dead letter.
//
// The pair is no longer blocked by this change: its entry in the blocked
// pairs hash goes.
//
// KEYS[1] pair queue, KEYS[2] pair hash, KEYS[3] pair lease, KEYS[4] batch
// hash, KEYS[5] batch out string, KEYS[6] batch dead-letter hash, KEYS[7]
// blocked pairs hash.
// ARGV[1] task id, ARGV[2] holder, ARGV[3] outcome byte (a, s, u or d),
// ARGV[4] line, ARGV[5] dead-letter record (JSON, for d), ARGV[6] counter
// field (applied, superseded, unchanged or dead), ARGV[7] retention in seconds, ARGV[8]
// the pair's field in the blocked pairs hash.
// Returns {0} when the change was not pending (resolved before), else {1,
// next head id or ""}.
var resolveScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return {0}
end
redis.call('HDEL', KEYS[2], 'd:' .. ARGV[1], 'cr:' .. ARGV[1], 'cp:' .. ARGV[1], 'ca:' .. ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[8])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
local line = tonumber(ARGV[4])
if redis.call('GETRANGE', KEYS[5], line, line) == 'r' then
  redis.call('HINCRBY', KEYS[4], 'retrying', -1)
end
redis.call('SETRANGE', KEYS[5], line, ARGV[3])
redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
redis.call('HINCRBY', KEYS[4], 'pending', -1)
local now = tonumber(redis.call('TIME')[1])
redis.call('HSET', KEYS[4], 'updated', now)
if redis.call('TTL', KEYS[4]) == -1 then
  -- The batch's record had expired while this change was pending: the
  -- counters made again expire too.
  redis.call('EXPIRE', KEYS[4], ARGV[7])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
local b = math.floor(now / 5)
local last = tonumber(redis.call('HGET', KEYS[4], 'tlast'))
if last == nil then
  redis.call('HSET', KEYS[4], 'tlast', b)
elseif b < last then
  b = last
elseif b > last then
  for i = last - 12, math.min(last, b - 13) do
    redis.call('HDEL', KEYS[4], 't:' .. i)
  end
  redis.call('HSET', KEYS[4], 'tlast', b)
end
redis.call('HINCRBY', KEYS[4], 't:' .. b, 1)
if ARGV[3] == 'd' then
  redis.call('HSET', KEYS[6], ARGV[4], ARGV[5])
  local ttl = redis.call('TTL', KEYS[4])
  if ttl <= 0 then ttl = tonumber(ARGV[7]) end
  redis.call('EXPIRE', KEYS[6], ttl)
else
  redis.call('HDEL', KEYS[6], ARGV[4])
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0)
if #nxt == 0 then
  redis.call('DEL', KEYS[2])
  return {1, ''}
end
return {1, nxt[1]}
`)

// releaseScript drops the pair lease if the holder still has it, and clears
// the change's count of unfinished claims (the claim finished).
//
// KEYS[1] pair lease, KEYS[2] pair hash. ARGV[1] holder, ARGV[2] task id.
// Returns 1 if released.
var releaseScript = redis.NewScript(`
redis.call('HDEL', KEYS[2], 'cr:' .. ARGV[2], 'cp:' .. ARGV[2], 'ca:' .. ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// markBlockedScript records that a pair waits for its head, if the change
// is still the head.
//
// KEYS[1] pair queue, KEYS[2] blocked pairs hash. ARGV[1] head task id,
// ARGV[2] the pair's field, ARGV[3] the record (JSON).
// Returns 1 if recorded, 0 when the change is no longer the head.
var markBlockedScript = redis.NewScript(`
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// extendScript renews the pair lease if the holder still has it.
//
// KEYS[1] pair lease. ARGV[1] holder, ARGV[2] lease in milliseconds.
// Returns 1 if renewed, 0 if the lease was lost.
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)
