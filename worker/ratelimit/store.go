package ratelimit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's model of a tenant's budget lives in one Redis hash, so every
// script runs on one node of a cluster and sees one clock (Redis TIME):
//
//	ids            space-separated bucket ids
//	pause          no call starts before this instant (µs since the epoch)
//	pauseat        when that pause was set
//	seq            number of answers recorded
//	<id>:cls       classes the bucket paces: "w", "r", "rw", or "-" for none
//	<id>:burst     its size
//	<id>:rate      its refill, tokens per second
//	<id>:tat       GCRA theoretical arrival time (µs since the epoch)
//	<id>:last      the latest slot reserved in it (µs since the epoch)
//	<id>:n         calls reserved in it (only grows); <id>:gone, <id>:g the
//	               counters of those taken back (given back or refused)
//	<id>:src       where its numbers come from: plan, override, measured,
//	               at-least, probing, cut, hidden, window
//	<id>:win       absent or 0: the bucket refills continuously (GCRA);
//	               otherwise it is a fixed window that lets <id>:burst
//	               calls through per window of this many µs (-1: of a
//	               length not known yet)
//	<id>:wend      a window bucket's current window ends at this instant
//	               (µs; 0: not known — it does not pace until an answer
//	               says; negative: a window of unknown length whose
//	               current window started at −wend and whose end no
//	               answer has said yet)
//	<id>:wn        calls reserved in that window
//	<id>:wp        for a window whose end is not known and that is used
//	               up: the earliest instant of the next probe (µs)
//
// beside it the list <hash>:samples (the latest answers, newest first) and
// the key <hash>:leader (the process that learns). Times are Redis's;
// callers send ages, never their own clock's instants.

// reserveScript reserves a slot for one call in every bucket that applies to
// its class. Each bucket is a GCRA: with burst B and emission interval
// T = 1/rate, a call may go at the earliest instant t ≥ base with
// t ≥ tat − (B−1)·T, where base is now or the end of a pause; the call goes
// at the latest of these instants over its buckets. The bucket that sets that
// instant moves its tat to max(base, tat) + T as GCRA does; the others take
// their token at base too — earlier than the call will use it, which is safe,
// whereas taking it at the later instant would block calls of other classes
// that could go before it.
//
// A slot further than the horizon away is not reserved: the caller is told
// when to ask again instead, so that no caller holds a token far ahead — a
// model that learns a faster refill, or a sync that finds spare tokens,
// helps at once instead of after every slot already handed out.
//
// KEYS[1] the hash. ARGV[1] the class letter, "w" or "r"; ARGV[2] the
// horizon in µs.
// Returns {wait µs, pause remaining µs, reserved (1/0), now µs, spaced
// (1/0), id1, n1, id2, n2, …}: when to send (or, unreserved, when to ask
// again), whether the slot was set by a bucket's spacing, and each bucket's
// counter including this call.
var reserveScript = redis.NewScript(`
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local h = KEYS[1]
local pause = tonumber(redis.call('HGET', h, 'pause') or '0')
local base = math.max(now, pause)
local at = base
local use, wins = {}, {}
for id in string.gmatch(redis.call('HGET', h, 'ids') or '', '%S+') do
  local f = redis.call('HMGET', h, id .. ':cls', id .. ':rate', id .. ':burst', id .. ':tat', id .. ':win', id .. ':wend', id .. ':wn', id .. ':wp', id .. ':last')
  local rate = tonumber(f[2] or '0') or 0
  if f[1] and string.find(f[1], ARGV[1], 1, true) and rate > 0 then
    local burst = math.max(tonumber(f[3] or '1') or 1, 1)
    local win = tonumber(f[5] or '0') or 0
    if win ~= 0 then
      wins[#wins + 1] = {id, win, tonumber(f[6] or '0') or 0, tonumber(f[7] or '0') or 0, burst, tonumber(f[8] or '0') or 0}
    else
      local T = 1000000 / rate
      local tat = tonumber(f[4] or '0') or 0
      local e = tat - (burst - 1) * T
      if e > at then at = e end
      use[#use + 1] = {id, T, tat, tonumber(f[9] or '0') or 0}
    end
  end
end
-- A window bucket lets burst calls through per window: the window that
-- holds instant t (its end and calls in it), rolled forward by whole
-- windows. Once a window of unknown length has ended, the next one
-- started then and its end is unknown (−start) until an answer says it;
-- it holds burst calls too, and when they are used up one call goes now
-- and then (probeGap) to find where it ends.
local probeGap = 1000000
local function place(w, t)
  local wend, n = w[3], w[4]
  if wend < 0 and w[2] > 0 then
    -- Its length was learned since: the window that started at −wend
    -- ends a length later.
    wend = -wend + w[2]
  end
  if wend > 0 and t >= wend then
    if w[2] > 0 then
      wend = wend + (math.floor((t - wend) / w[2]) + 1) * w[2]
    else
      wend = -wend
    end
    n = 0
  end
  return wend, n
end
-- A full window moves the call to the next one's start (plus a margin
-- for the tenant's clock), which may fill another: a few passes settle it.
for pass = 1, 4 do
  local moved = false
  for _, w in ipairs(wins) do
    local wend, n = place(w, at)
    local margin = (w[2] > 0) and math.min(50000, w[2] / 100) or 20000
    if wend > 0 and w[2] > 0 and at < wend - w[2] then
      -- The model is already on a later window (calls were reserved in
      -- it because the ones before were full): this call goes there too.
      at = wend - w[2] + margin
      moved = true
    elseif wend > 0 and n >= w[5] then
      at = wend + margin
      moved = true
    elseif wend > 0 and w[2] > 0 and at < wend - w[2] + n * w[2] / (2 * w[5]) then
      -- A window's calls go at least half its length over its size apart
      -- (all of them in its first half): the answers to the first ones
      -- come back before the last go, and sync the model (a bucket that
      -- binds only now and then shows in them) before a burst is out.
      at = wend - w[2] + n * w[2] / (2 * w[5])
      moved = true
    elseif wend < 0 and at < -wend then
      -- Reserved ahead of the start of a window whose end is unknown:
      -- the window before is full.
      at = -wend + margin
      moved = true
    elseif wend < 0 and n >= w[5] and at < w[6] then
      -- Used up, and no answer said where it ends: the next probe.
      at = w[6]
      moved = true
    end
  end
  if not moved then break end
end
-- spaced: the slot comes after the previous call's by the bucket's spacing
-- (not at once, not merely when a pause ends): calls reserved before it
-- were sent before it.
-- A slot in front of one reserved earlier (a burst's room filled in
-- ahead of calls scheduled far out) is not: an older call is still to go.
local spaced = (at > base) and 1 or 0
for _, b in ipairs(use) do
  if at < b[4] then spaced = 0 end
end
local out = {math.floor(at - now), math.floor(math.max(pause - now, 0)), 1, string.format('%.0f', now), spaced}
if at - now > tonumber(ARGV[2]) then
  -- Rounded up: asking again sooner would find the slot still too far.
  out[1] = math.max(math.ceil(at - now - tonumber(ARGV[2])), 1)
  out[3] = 0
  return out
end
for _, b in ipairs(use) do
  local tat = math.max(base, b[3]) + b[2]
  redis.call('HSET', h, b[1] .. ':tat', string.format('%.0f', tat), b[1] .. ':last', string.format('%.0f', math.max(at, b[4])))
  out[#out + 1] = b[1]
  out[#out + 1] = redis.call('HINCRBY', h, b[1] .. ':n', 1)
end
-- A window bucket's counter for the call is its place in its window (1
-- for the first): the answer compares it with what the tenant counted.
for _, w in ipairs(wins) do
  local wend, n = place(w, at)
  if wend ~= 0 then
    redis.call('HSET', h, w[1] .. ':wend', string.format('%.0f', wend), w[1] .. ':wn', n + 1)
  end
  if wend < 0 and n + 1 >= w[5] then
    -- It is used up (or this call probes it): the next probe not sooner
    -- than probeGap from now.
    redis.call('HSET', h, w[1] .. ':wp', string.format('%.0f', at + probeGap))
  end
  redis.call('HINCRBY', h, w[1] .. ':n', 1)
  out[#out + 1] = w[1]
  out[#out + 1] = n + 1
end
return out
`)

// answerScript records one answer. It
//
//   - lists a 429's call as taken back in the buckets it drew from
//     (goneLua), and starts or extends the fleet's pause;
//   - for the bucket the headers describe (ARGV[1], "" when none): creates
//     it with the given starting numbers if the fleet does not know it,
//     makes it pace the answer's class again if it had stopped, and ends the
//     cold start for the class (the plan-* buckets stop pacing it);
//   - syncs that bucket to what the tenant said: it had Remaining tokens when
//     the call arrived; since then it refilled for age at its rate and
//     (n now − n of the call − calls taken back after it) calls drew from
//     it. With fewer tokens than
//     modelled, tat moves later; with at least one more — and only if no
//     older call can still be on its way (the call waited for its slot, so
//     older ones were sent first) — it moves earlier but keeps one token in
//     hand;
//   - appends the answer to the samples list for the learning process.
//
// KEYS[1] the hash, KEYS[2] the samples list.
// ARGV[1] bucket id, ARGV[2] class letter, ARGV[3] Remaining, ARGV[4] the
// bucket's counter at the call's reservation (0: it did not draw from it),
// ARGV[5] age of the answer in µs, ARGV[6] round trip in µs, ARGV[7] flags
// (1 refused with 429, 2 the call waited for its slot), ARGV[8] pause in µs
// (0: none), ARGV[9] starting burst, ARGV[10] starting rate, ARGV[11] the
// buckets the call drew from with its counter in each ("id:n id:n"),
// ARGV[12] the Redis time (µs) of
// the call's reservation, ARGV[13] retention in seconds, ARGV[14] samples
// kept, ARGV[15] the shortest pause in µs, ARGV[16] X-RateLimit-Reset as
// µs after the answer was received ("" when none). A 429 refused by the described
// bucket (Remaining 0) whose refill was learned from answers pauses no
// longer than that bucket takes to fill: waiting longer throws refill away.
// A call is stale when it was reserved before the latest pause was set.
// Returns {pause remaining µs, the bucket's rate ×1000, its burst, its
// source, tokens the tenant has now ×1000, 1 when the answer changed which
// buckets pace (a bucket first described, a cold start ended) else 0}.
var answerScript = redis.NewScript(goneLua + rateLua + `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local h, id, cls = KEYS[1], ARGV[1], ARGV[2]
-- The buckets the call drew from, with its counter in each.
local drew = {}
for d, c in string.gmatch(ARGV[11], '(%S+):(%d+)') do
  drew[#drew + 1] = {d, tonumber(c)}
end
-- The call's counter in the bucket the answer describes (0: it did not
-- draw from it).
local callCount = tonumber(ARGV[4])
-- A bucket of this size that the fleet found shared by both classes is
-- named by the other class: answers of this class describe it too. A
-- call reserved before the two were found one drew from this class's
-- bucket, not from that one: its counter there is not a place in the
-- other's count (taken as one, a read's 2 against the writes' 72 put 70
-- calls' debt on the shared bucket: 2.9 s without a call).
if id ~= '' then
  local other = ((cls == 'w') and 'r' or 'w') .. string.sub(id, 2)
  local oc = redis.call('HGET', h, other .. ':cls') or ''
  if string.find(oc, cls, 1, true) then
    if id ~= other then
      callCount = 0
      for _, d in ipairs(drew) do
        if d[1] == other then callCount = d[2] end
      end
    end
    id = other
  end
end
local flags = tonumber(ARGV[7])
local refused = flags % 2 == 1
-- When the answer's X-RateLimit-Reset falls, on the Redis clock (0: none).
local resetAt = 0
if ARGV[16] and ARGV[16] ~= '' then
  resetAt = now - tonumber(ARGV[5]) + tonumber(ARGV[16])
end
local pf = redis.call('HMGET', h, 'pause', 'pauseat')
local pause = tonumber(pf[1] or '0') or 0
local stale = tonumber(ARGV[12]) < (tonumber(pf[2] or '0') or 0)
if not refused then
  for _, d in ipairs(drew) do
    -- A probe (a call past a used-up window whose end is not known) got
    -- through: the window had room after all (it ended, or held fewer
    -- calls than the model counted), and the next probe may go at once:
    -- while none is refused, calls go one at a time, each after the
    -- answer to the one before. A refusal's Reset says where it ends.
    local wf = redis.call('HMGET', h, d[1] .. ':win', d[1] .. ':wend', d[1] .. ':burst')
    local ww, we = tonumber(wf[1] or '0') or 0, tonumber(wf[2] or '0') or 0
    if ww < 0 and we < 0 and d[2] > (tonumber(wf[3] or '1') or 1) then
      redis.call('HSET', h, d[1] .. ':wp', 0)
    end
  end
end
local rate, burst, src, tokens = 0, 0, '', 0
-- The call's counter less the calls taken back below it: the samples'
-- counts, whose differences are the calls that drew between two answers.
local effCount = callCount
-- planTokens: the fewest tokens left in a starting bucket that still paced
-- the class; a bucket first described now starts with no more (the calls
-- of the cold start drew from it too).
local planTokens, created, ended = nil, false, false
if id ~= '' then
  local ids = redis.call('HGET', h, 'ids') or ''
  for p in string.gmatch(ids, '%S+') do
    if string.sub(p, 1, 5) == 'plan-' then
      local c = redis.call('HGET', h, p .. ':cls') or ''
      if string.find(c, cls, 1, true) then
        local pf = redis.call('HMGET', h, p .. ':rate', p .. ':burst', p .. ':tat')
        local pr = tonumber(pf[1] or '0') or 0
        if pr > 0 then
          local tk = (tonumber(pf[2] or '1') or 1) - math.max((tonumber(pf[3] or '0') or 0) - now, 0) * pr / 1000000
          if planTokens == nil or tk < planTokens then planTokens = tk end
        end
        c = string.gsub(c, cls, '')
        redis.call('HSET', h, p .. ':cls', (c == '' and '-') or c)
        ended = true
      end
    end
  end
  if not string.find(' ' .. ids .. ' ', ' ' .. id .. ' ', 1, true) then
    redis.call('HSET', h, 'ids', (ids == '' and id) or (ids .. ' ' .. id))
    redis.call('HSET', h, id .. ':cls', cls, id .. ':burst', ARGV[9], id .. ':rate', ARGV[10], id .. ':src', 'guess')
    created = true
  else
    local c = redis.call('HGET', h, id .. ':cls') or '-'
    if not string.find(c, cls, 1, true) then
      redis.call('HSET', h, id .. ':cls', (c == '-' and cls) or (c .. cls))
    end
  end
  local f = redis.call('HMGET', h, id .. ':rate', id .. ':burst', id .. ':tat', id .. ':n', id .. ':src', id .. ':win', id .. ':wend', id .. ':wn')
  rate, burst, src = tonumber(f[1] or '0') or 0, tonumber(f[2] or '1') or 1, f[5] or ''
  local win = tonumber(f[6] or '0') or 0
  local lift = tonumber(ARGV[10]) or 0
  if not created and src == 'guess' and win == 0 and rate > 0 and lift > rate and tonumber(ARGV[9]) == burst then
    -- Still at its first guess, and this answer's Reset proves a faster
    -- refill than the first answer's did (it found the bucket emptier:
    -- the first answers of a cold start's burst say Remaining 4, 2, 0
    -- of 5 with one Reset): raised to it, the debt of the calls
    -- reserved restated at the new rate.
    f[3] = string.format('%.0f', setRate(h, id, rate, ARGV[10], tonumber(f[3] or '0') or 0, now))
    rate = lift
  end
  local count = callCount
  local since = nil -- calls that drew from the bucket since this one
  if count > 0 then
    local n = tonumber(f[4] or '0') or 0
    local above = goneAbove(h, id, count)
    since = n - count - above
    if win == 0 then
      effCount = count - ((tonumber(redis.call('HGET', h, id .. ':g') or '0') or 0) - above)
    end
  elseif #drew > 0 then
    -- The call did not draw from this bucket (it was not known, or not
    -- pacing the class, when the call was reserved): the buckets it drew
    -- from tell how many calls were reserved since; all of them may draw
    -- from this one. Only a sync down is safe on that ground.
    since = 0
    for _, d in ipairs(drew) do
      if (tonumber(redis.call('HGET', h, d[1] .. ':win') or '0') or 0) == 0 then
        local n = tonumber(redis.call('HGET', h, d[1] .. ':n') or '0') or 0
        since = math.max(since, n - d[2] - goneAbove(h, d[1], d[2]))
      end
    end
    flags = flags - (flags % 4 >= 2 and 2 or 0)
  end
  if win ~= 0 and resetAt > 0 then
    -- A window bucket: the answer's window ends at resetAt and the
    -- tenant had counted burst − Remaining calls in it when this one
    -- arrived; the call's counter (callCount) is its place in the
    -- model's window (0: it did not draw from it). Calls the tenant
    -- counted before it beyond those the model placed before it came
    -- from elsewhere (other clients, calls of the other class): the
    -- window holds that many more. Never fewer: answers overtake each
    -- other, and a window only empties when the next one starts.
    local wend, wn = tonumber(f[7] or '0') or 0, tonumber(f[8] or '0') or 0
    local used = math.max(burst - tonumber(ARGV[3]), 0)
    local place = callCount
    tokens = burst - math.max(used, wn)
    if resetAt > now and (wend == 0 or resetAt > wend + 250000) then
      local ends = resetAt
      if win > 0 and ends > now + 2 * win then
        -- A window of known length holds no call past twice that
        -- length, whatever a Reset says.
        ends = now + 2 * win
      end
      redis.call('HSET', h, id .. ':wend', string.format('%.0f', ends), id .. ':wn', used)
    elseif math.abs(resetAt - wend) <= 250000 then
      local extra = (place > 0) and (used - place) or (used - wn)
      if extra > 0 then
        redis.call('HSET', h, id .. ':wn', wn + extra)
      end
    end
  elseif since and rate > 0 then
    local T = 1000000 / rate
    local tat = tonumber(f[3] or '0') or 0
    tokens = tonumber(ARGV[3]) - since + tonumber(ARGV[5]) / T
    if tokens > burst then tokens = burst end
    if created and planTokens and tokens > planTokens then tokens = math.max(planTokens, 0) end
    -- A call that did not draw from this bucket counts the calls reserved
    -- since from the buckets it drew from; many of them reached the
    -- tenant before it (answers come back out of order): fewer than none
    -- is counting them twice. An empty bucket is the most it says.
    if count == 0 and tokens < 0 then tokens = 0 end
    local target = now + (burst - tokens) * T
    if target > tat then
      redis.call('HSET', h, id .. ':tat', string.format('%.0f', target))
    elseif target + T < tat and flags % 4 >= 2 then
      -- Moving earlier hands out tokens the answer shows, but no more
      -- than the starting bucket of the class holds: a bucket no
      -- answer describes (Auth0's per-endpoint limits, shown only in
      -- their own 429s) may be far shallower than the one described (a
      -- burst of 20 into a hidden 5-deep write bucket: 15 refused).
      -- Nor more than two tokens at a time: each spaced call's answer
      -- may hand some out, so the pace is at most the model's rate plus
      -- two tokens per spaced call (three times the model's rate) until
      -- probing raises the model; more, and a described bucket far from
      -- binding (a global bucket near full) hands out a burst per
      -- answer, at many times the rate of a hidden bucket behind it.
      local t2 = math.max(target + T, tat - 2 * T)
      local cap = tonumber(redis.call('HGET', h, 'plan-' .. ((cls == 'w') and 'write' or 'read') .. ':burst') or '0') or 0
      if cap > 0 and tokens > cap then t2 = math.max(t2, now + (burst - cap) * T) end
      if t2 < tat then
        redis.call('HSET', h, id .. ':tat', string.format('%.0f', t2))
      end
    end
  end
end
if refused then
  -- The refused call drew nothing: taken back from every bucket it was
  -- counted in.
  for _, d in ipairs(drew) do
    gone(h, d[1], d[2])
  end
end
local newpause = 0
local p = tonumber(ARGV[8])
if refused and p > 0 then
  -- Retry-After (flag 16) is the tenant's own word: it stands.
  if math.floor(flags / 16) % 2 == 0 and src ~= 'plan' and src ~= 'override' and src ~= 'guess' and rate > 0 and tonumber(ARGV[3]) == 0 then
    -- The bucket that refused is known from answers: no longer than it
    -- takes to fill at the modelled rate (after a cut, at most as long as
    -- at the true rate).
    p = math.max(tonumber(ARGV[15]), math.min(p, burst * 1000000 / rate))
  end
  if now + p > pause then
    pause = now + p
    newpause = 1
    redis.call('HSET', h, 'pause', string.format('%.0f', pause), 'pauseat', string.format('%.0f', now))
  end
end
if id ~= '' then
  local seq = redis.call('HINCRBY', h, 'seq', 1)
  local at = now - tonumber(ARGV[5]) - tonumber(ARGV[6]) / 2
  local sflags = tonumber(ARGV[7]) + (stale and 4 or 0) + newpause * 8
  redis.call('LPUSH', KEYS[2], string.format('%d %.0f %s %s %s %d %d %.0f %s', seq, at, id, ARGV[3], string.format('%.0f', effCount), burst, sflags, resetAt, cls))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[14]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[13])
end
redis.call('EXPIRE', h, ARGV[13])
return {math.floor(math.max(pause - now, 0)), math.floor(rate * 1000), burst, src, math.floor(tokens * 1000), (created or ended) and 1 or 0}
`)

// tuneScript sets a bucket's numbers, as the learning process decided. A
// new rate restates the debt of calls already reserved, (tat − now)·old
// rate tokens, at the new rate.
//
// KEYS[1] the hash. ARGV[1] id, ARGV[2] rate ("" keeps, "0" stops pacing
// by it), ARGV[3] burst ("" keeps), ARGV[4] classes ("" keeps), ARGV[5]
// source ("" keeps), ARGV[6] window in µs ("" keeps, "0" continuous, "-1"
// a window of unknown length), ARGV[7] when a bucket becoming a window has
// its current window end (µs), ARGV[8] the calls that window holds.
var tuneScript = redis.NewScript(rateLua + `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local h, id = KEYS[1], ARGV[1]
local ids = redis.call('HGET', h, 'ids') or ''
if not string.find(' ' .. ids .. ' ', ' ' .. id .. ' ', 1, true) then
  redis.call('HSET', h, 'ids', (ids == '' and id) or (ids .. ' ' .. id))
end
if ARGV[2] ~= '' then
  local old = tonumber(redis.call('HGET', h, id .. ':rate') or '0') or 0
  setRate(h, id, old, ARGV[2], tonumber(redis.call('HGET', h, id .. ':tat') or '0') or 0, now)
end
if ARGV[3] ~= '' then redis.call('HSET', h, id .. ':burst', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', h, id .. ':cls', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', h, id .. ':src', ARGV[5]) end
if ARGV[6] and ARGV[6] ~= '' then
  local was = tonumber(redis.call('HGET', h, id .. ':win') or '0') or 0
  redis.call('HSET', h, id .. ':win', ARGV[6])
  if was == 0 and ARGV[7] ~= '' then
    -- Becoming a window: the current one ends at ARGV[7] and holds
    -- ARGV[8] calls (the answer that settled it; the next ones sync it).
    redis.call('HSET', h, id .. ':wend', ARGV[7], id .. ':wn', ARGV[8] or 0)
  end
end
return 0
`)

// cancelScript takes an unused reservation's call back: it is listed as
// taken back in each bucket it was counted in (goneLua). KEYS[1] the hash;
// ARGV pairs of bucket id and the call's counter in it.
var cancelScript = redis.NewScript(goneLua + `
for i = 1, #ARGV, 2 do
  gone(KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
end
return 0
`)

// rateLua sets a bucket's rate (new, as the string to store) and restates
// the debt of the calls already reserved, (tat − now) at the old rate, at
// the new one: the same calls, paid for at the new pace. It returns the
// bucket's tat after that.
const rateLua = `
local function setRate(h, id, old, new, tat, now)
  local r = tonumber(new) or 0
  if old > 0 and r > 0 and tat > now then
    tat = now + (tat - now) * old / r
    redis.call('HSET', h, id .. ':tat', string.format('%.0f', tat))
  end
  redis.call('HSET', h, id .. ':rate', new)
  return tat
end
`

// goneLua keeps, per bucket, the counters of calls reserved but taken back
// (given back unused, or refused): <id>:n only grows, so that two calls
// never share a counter, and the calls that drew from a bucket after the
// one with counter c are (n − c) less those taken back above c
// (goneAbove). <id>:gone lists the latest goneKeep of them, <id>:g
// counts them all. A window bucket's counter is its place in its window
// and its own count (wn) says what the window holds: it keeps none.
const goneLua = `
local goneKeep = 256
local function gone(h, id, c)
  if not c or c <= 0 or (tonumber(redis.call('HGET', h, id .. ':win') or '0') or 0) ~= 0 then return end
  local l = redis.call('HGET', h, id .. ':gone') or ''
  local t = {}
  for v in string.gmatch(l, '%S+') do t[#t + 1] = v end
  t[#t + 1] = tostring(c)
  while #t > goneKeep do table.remove(t, 1) end
  redis.call('HSET', h, id .. ':gone', table.concat(t, ' '))
  redis.call('HINCRBY', h, id .. ':g', 1)
end
local function goneAbove(h, id, c)
  local k = 0
  for v in string.gmatch(redis.call('HGET', h, id .. ':gone') or '', '%S+') do
    if tonumber(v) > c then k = k + 1 end
  end
  return k
end
`

// seedScript records a starting bucket unless the fleet already knows it
// (or force is set).
//
// KEYS[1] the hash. ARGV[1] id, ARGV[2] classes, ARGV[3] burst, ARGV[4]
// rate, ARGV[5] source, ARGV[6] 1 to overwrite what is known, ARGV[7]
// retention in seconds. Returns 1 if written.
var seedScript = redis.NewScript(`
local h, id = KEYS[1], ARGV[1]
local ids = redis.call('HGET', h, 'ids') or ''
local known = string.find(' ' .. ids .. ' ', ' ' .. id .. ' ', 1, true)
if known and ARGV[6] ~= '1' then
  return 0
end
if not known then
  redis.call('HSET', h, 'ids', (ids == '' and id) or (ids .. ' ' .. id))
end
redis.call('HSET', h, id .. ':cls', ARGV[2], id .. ':burst', ARGV[3], id .. ':rate', ARGV[4], id .. ':src', ARGV[5])
redis.call('EXPIRE', h, ARGV[7])
return 1
`)

// leadScript takes or keeps the learning lease. KEYS[1] the lease key;
// ARGV[1] this process, ARGV[2] lease in ms. Returns 1 if this process
// holds it.
var leadScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// store runs the scripts against one tenant's keys.
type store struct {
	rdb       redis.UniversalClient
	key       string
	samples   string
	leader    string
	channel   string
	retention time.Duration
	keep      int // samples kept
}

func newStore(rdb redis.UniversalClient, prefix, tenant string, retention time.Duration) store {
	key := "{" + prefix + "}:rl:" + tenant
	return store{rdb: rdb, key: key, samples: key + ":samples", leader: key + ":leader", channel: key + ":pause", retention: retention, keep: 4096}
}

// reservation is the answer to reserve.
type reservation struct {
	wait, pause time.Duration
	at          int64 // Redis time of the reservation, µs
	spaced      bool  // the slot was set by a bucket's spacing: older calls go first
	// counts holds each bucket drawn from and its counter with this call;
	// nil when nothing was reserved (the slot was beyond the horizon: ask
	// again after wait).
	counts map[string]int64
}

// reserved reports whether a slot was reserved.
func (r reservation) reserved() bool { return r.counts != nil }

func (s *store) reserve(ctx context.Context, class string, horizon time.Duration) (reservation, error) {
	v, err := reserveScript.Run(ctx, s.rdb, []string{s.key}, class, horizon.Microseconds()).Slice()
	if err != nil {
		return reservation{}, err
	}
	var r reservation
	w, _ := v[0].(int64)
	p, _ := v[1].(int64)
	r.wait, r.pause = time.Duration(w)*time.Microsecond, time.Duration(p)*time.Microsecond
	if ok, _ := v[2].(int64); ok == 1 {
		r.counts = map[string]int64{}
	}
	at, _ := v[3].(string)
	r.at, _ = strconv.ParseInt(at, 10, 64)
	if sp, _ := v[4].(int64); sp == 1 {
		r.spaced = true
	}
	for i := 5; i+1 < len(v); i += 2 {
		id, _ := v[i].(string)
		n, _ := v[i+1].(int64)
		r.counts[id] = n
	}
	return r, nil
}

// answer is one call to answerScript.
type answer struct {
	bucket     string // "" when the answer had no usable headers
	class      string
	remaining  int
	count      int64
	age, rtt   time.Duration
	refused    bool
	waited     bool
	retryAfter bool // the pause is the answer's Retry-After: never shortened
	pause      time.Duration
	startBurst int
	startRate  float64
	drewFrom   map[string]int64 // each bucket the call drew from → its counter with the call
	reservedAt int64
	floor      time.Duration // shortest pause
	// resetIn is X-RateLimit-Reset less the instant the answer was
	// received; hasReset false when the answer had none.
	resetIn  time.Duration
	hasReset bool
}

func drewList(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, id := range sortedKeys(m) {
		parts = append(parts, id+":"+strconv.FormatInt(m[id], 10))
	}
	return strings.Join(parts, " ")
}

// answered is what answerScript returns.
type answered struct {
	pause  time.Duration
	rate   float64
	burst  int
	source string
	tokens float64
	// repaced: the answer changed which buckets pace calls (a bucket was
	// first described, or a class's cold start ended): a slot a waiting
	// caller was told to ask for later may be sooner now.
	repaced bool
}

func (s *store) answer(ctx context.Context, a answer) (answered, error) {
	flags := 0
	if a.refused {
		flags |= 1
	}
	if a.waited {
		flags |= 2
	}
	if a.retryAfter {
		flags |= 16
	}
	resetArg := ""
	if a.hasReset {
		resetArg = strconv.FormatInt(a.resetIn.Microseconds(), 10)
	}
	v, err := answerScript.Run(ctx, s.rdb, []string{s.key, s.samples},
		a.bucket, a.class, a.remaining, a.count, a.age.Microseconds(), a.rtt.Microseconds(), flags, a.pause.Microseconds(),
		a.startBurst, strconv.FormatFloat(a.startRate, 'g', 6, 64), drewList(a.drewFrom), a.reservedAt,
		int64(s.retention/time.Second), s.keep, a.floor.Microseconds(), resetArg).Slice()
	if err != nil {
		return answered{}, err
	}
	p, _ := v[0].(int64)
	r, _ := v[1].(int64)
	b, _ := v[2].(int64)
	src, _ := v[3].(string)
	t, _ := v[4].(int64)
	repaced, _ := v[5].(int64)
	return answered{pause: time.Duration(p) * time.Microsecond, rate: float64(r) / 1000, burst: int(b), source: src, tokens: float64(t) / 1000, repaced: repaced == 1}, nil
}

// tune is one call to tuneScript: a zero rate or burst, or an empty string,
// keeps the current value; a negative rate stops pacing by the bucket.
type tune struct {
	bucket  string
	rate    float64
	burst   int
	classes string
	source  string
	// window, when not 0, makes the bucket a fixed window of that length
	// (negative: a window of unknown length) and starts it at windowEnd.
	window    time.Duration
	windowEnd time.Time
	// windowUsed is what the current window already holds, when known.
	windowUsed int
}

func (s *store) tune(ctx context.Context, t tune) error {
	rate := ""
	switch {
	case t.rate < 0:
		rate = "0"
	case t.rate > 0:
		rate = strconv.FormatFloat(t.rate, 'g', 6, 64)
	}
	burst := ""
	if t.burst > 0 {
		burst = strconv.Itoa(t.burst)
	}
	win, wend := "", ""
	if t.window > 0 {
		win = strconv.FormatInt(t.window.Microseconds(), 10)
	} else if t.window < 0 {
		win = "-1"
	}
	if win != "" && !t.windowEnd.IsZero() {
		wend = strconv.FormatInt(t.windowEnd.UnixMicro(), 10)
	}
	return tuneScript.Run(ctx, s.rdb, []string{s.key}, t.bucket, rate, burst, t.classes, t.source, win, wend, t.windowUsed).Err()
}

// cancel takes back an unused reservation: its counter in each bucket.
func (s *store) cancel(ctx context.Context, counts map[string]int64) error {
	if len(counts) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(counts))
	for id, n := range counts {
		args = append(args, id, n)
	}
	return cancelScript.Run(ctx, s.rdb, []string{s.key}, args...).Err()
}

func (s *store) seed(ctx context.Context, id, classes string, b Bucket, source string, force bool) (bool, error) {
	n, err := seedScript.Run(ctx, s.rdb, []string{s.key}, id, classes, b.Burst, strconv.FormatFloat(b.Rate, 'g', 6, 64), source, map[bool]string{true: "1", false: "0"}[force], int64(s.retention/time.Second)).Int64()
	return n == 1, err
}

// lead takes or renews the learning lease for holder.
func (s *store) lead(ctx context.Context, holder string, lease time.Duration) (bool, error) {
	n, err := leadScript.Run(ctx, s.rdb, []string{s.leader}, holder, lease.Milliseconds()).Int64()
	return n == 1, err
}

// sample is one recorded answer.
type sample struct {
	seq       int64
	at        time.Time // arrival at the tenant, Redis clock
	bucket    string
	remaining int
	count     int64
	limit     int
	refused   bool
	waited    bool
	stale     bool      // the call was reserved before the latest pause was set
	paused    bool      // this 429 started or extended the pause
	reset     time.Time // the answer's X-RateLimit-Reset on the Redis clock; zero when none
	// class is the class letter of the call answered ("r" or "w"): a
	// bucket that paces both classes is named by one of them.
	class string
}

// samplesSince returns the recorded answers after seq, oldest first.
func (s *store) samplesSince(ctx context.Context, seq int64) ([]sample, error) {
	raw, err := s.rdb.LRange(ctx, s.samples, 0, int64(s.keep)-1).Result()
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, r := range raw {
		f := strings.Fields(r)
		if len(f) < 7 || len(f) > 9 {
			continue
		}
		sm := sample{bucket: f[2]}
		sm.seq, _ = strconv.ParseInt(f[0], 10, 64)
		if sm.seq <= seq {
			break // newest first: the rest were seen
		}
		us, _ := strconv.ParseInt(f[1], 10, 64)
		sm.at = time.UnixMicro(us)
		sm.remaining, _ = strconv.Atoi(f[3])
		sm.count, _ = strconv.ParseInt(f[4], 10, 64)
		sm.limit, _ = strconv.Atoi(f[5])
		flags, _ := strconv.Atoi(f[6])
		sm.refused, sm.waited, sm.stale, sm.paused = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
		if len(f) >= 8 {
			if r, _ := strconv.ParseInt(f[7], 10, 64); r > 0 {
				sm.reset = time.UnixMicro(r)
			}
		}
		sm.class = f[2][:1]
		if len(f) == 9 {
			sm.class = f[8]
		}
		out = append(out, sm)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// BucketState is the fleet's current model of one bucket.
type BucketState struct {
	ID      string  `json:"id"`
	Classes string  `json:"classes"` // "w", "r", "rw", or "-" when it no longer paces calls
	Burst   int     `json:"burst"`
	Rate    float64 `json:"rate"`   // tokens per second
	Source  string  `json:"source"` // plan, override, guess, measured, at-least, probing, cut, hidden
	Calls   int64   `json:"calls"`  // calls that drew from it
	// Window is 0 for a bucket that refills continuously; for a fixed
	// window, its length (Burst calls per window), or -1 ns when the
	// length is not known yet.
	Window time.Duration `json:"window,omitempty"`
}

// State is the fleet's current model of a tenant's budget.
type State struct {
	Buckets     []BucketState `json:"buckets"`
	PausedUntil time.Time     `json:"paused_until,omitzero"`
	Answers     int64         `json:"answers"`
}

func (s *store) state(ctx context.Context) (State, error) {
	m, err := s.rdb.HGetAll(ctx, s.key).Result()
	if err != nil {
		return State{}, err
	}
	var st State
	for _, id := range strings.Fields(m["ids"]) {
		b := BucketState{ID: id, Classes: m[id+":cls"], Source: m[id+":src"]}
		b.Burst, _ = strconv.Atoi(m[id+":burst"])
		b.Rate, _ = strconv.ParseFloat(m[id+":rate"], 64)
		b.Calls, _ = strconv.ParseInt(m[id+":n"], 10, 64)
		if w, _ := strconv.ParseInt(m[id+":win"], 10, 64); w > 0 {
			b.Window = time.Duration(w) * time.Microsecond
		} else if w < 0 {
			b.Window = -1
		}
		st.Buckets = append(st.Buckets, b)
	}
	sort.Slice(st.Buckets, func(i, j int) bool { return st.Buckets[i].ID < st.Buckets[j].ID })
	st.Answers, _ = strconv.ParseInt(m["seq"], 10, 64)
	if p, _ := strconv.ParseInt(m["pause"], 10, 64); p > 0 {
		if tm, err := s.rdb.Time(ctx).Result(); err == nil && time.UnixMicro(p).After(tm) {
			st.PausedUntil = time.Now().Add(time.UnixMicro(p).Sub(tm))
		}
	}
	return st, nil
}

func (b BucketState) String() string {
	if b.Window != 0 {
		w := "?"
		if b.Window > 0 {
			w = b.Window.String()
		}
		return fmt.Sprintf("%s(%s) %d per %s window [%s]", b.ID, b.Classes, b.Burst, w, b.Source)
	}
	return fmt.Sprintf("%s(%s) burst %d, %.4g/s [%s]", b.ID, b.Classes, b.Burst, b.Rate, b.Source)
}
