package ledger

import "github.com/redis/go-redis/v9"

// markRetryScript records a failed attempt of a pending change: the line's
// outcome byte goes from "p" to "r" (counted once in the batch's retrying
// field) and its last failure is kept in the batch's tries hash.
//
// KEYS[1] pair queue, KEYS[2] batch hash, KEYS[3] batch out string, KEYS[4]
// batch tries hash.
// ARGV[1] task id, ARGV[2] line, ARGV[3] failure record (JSON), ARGV[4]
// retention in seconds.
// Returns 1 when recorded, 0 when the change is not pending.
var markRetryScript = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local line = tonumber(ARGV[2])
if redis.call('GETRANGE', KEYS[3], line, line) == 'p' then
  redis.call('SETRANGE', KEYS[3], line, 'r')
  redis.call('HINCRBY', KEYS[2], 'retrying', 1)
end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
local ttl = redis.call('TTL', KEYS[2])
if ttl <= 0 then ttl = tonumber(ARGV[4]) end
redis.call('EXPIRE', KEYS[4], ttl)
return 1
`)

// requeueScript accepts a dead-lettered line again, at the end of its pair's
// queue, with its failure history cleared, and keeps the batch's counters,
// outcomes and dead letters for another retention period. Unless forced, it refuses when a
// change to the pair was accepted after this one (or when the ledger no
// longer knows the pair's latest change), because the requeued change would
// then take effect after it.
//
// KEYS[1] batch hash, KEYS[2] batch out string, KEYS[3] batch dead-letter
// hash, KEYS[4] batch tries hash, KEYS[5] pair hash, KEYS[6] pair queue,
// KEYS[7] pair's last-accepted key.
// ARGV[1] line, ARGV[2] task id, ARGV[3] shape, ARGV[4] the dead letter
// marked requeued (JSON), ARGV[5] "1" to force, ARGV[6] retention in seconds.
// Returns {1} requeued; {0, outcome byte} when the line is not dead-lettered;
// {3} when its dead letter was purged; {2, later task id or ""} refused.
var requeueScript = redis.NewScript(`
local line = tonumber(ARGV[1])
local cur = redis.call('GETRANGE', KEYS[2], line, line)
if cur ~= 'd' then
  return {0, cur}
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  return {3}
end
local last = redis.call('GET', KEYS[7])
if ARGV[5] ~= '1' and last ~= ARGV[2] then
  return {2, last or ''}
end
redis.call('SETRANGE', KEYS[2], line, 'p')
redis.call('HINCRBY', KEYS[1], 'dead', -1)
redis.call('HINCRBY', KEYS[1], 'pending', 1)
redis.call('HINCRBY', KEYS[1], 'requeued', 1)
redis.call('HSET', KEYS[1], 'updated', redis.call('TIME')[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[1])
local seq = redis.call('HINCRBY', KEYS[5], 'seq', 1)
redis.call('HSET', KEYS[5], 'd:' .. ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[6], seq, ARGV[2])
redis.call('SET', KEYS[7], ARGV[2], 'EX', tonumber(ARGV[6]))
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6]))
end
return {1}
`)

// purgeScript deletes the dead letter of a dead-lettered line. The line's
// outcome stays "d" and it stays counted as dead; the batch counts it as
// purged.
//
// KEYS[1] batch hash, KEYS[2] batch out string, KEYS[3] batch dead-letter
// hash. ARGV[1] line.
// Returns 1 purged, 0 when the line has no dead letter or is not dead (a
// requeued line that is pending again).
var purgeScript = redis.NewScript(`
local line = tonumber(ARGV[1])
if redis.call('GETRANGE', KEYS[2], line, line) ~= 'd' then
  return 0
end
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'purged', 1)
redis.call('HSET', KEYS[1], 'updated', redis.call('TIME')[1])
return 1
`)
