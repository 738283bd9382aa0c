"""The limiter's Lua scripts: admitting a request checks and consumes every rate
limit and budget in one script call, and reconciling it is one more, so any
number of gateway processes enforce one limit, never a multiple of it.

Keys of tenant 7 and its API key 9 (`{t7}` is a Redis Cluster hash tag: all of
a tenant's keys share a slot, so one script may touch all of them, and every
key names its tenant, so two tenants never share a counter):

- `limits:{t7}:k9:rpm`, `limits:{t7}:k9:tpm`, `limits:{t7}:rpm`,
  `limits:{t7}:tpm`: hashes holding one GCRA bucket each, `x` its content and
  `t` the server time (ms) it was last written. They expire when the bucket
  would have drained empty, so an idle tenant leaves nothing behind.
- `limits:{t7}:budget:2026-11` and `limits:{t7}:k9:budget:2026-11`: the
  period's budget counters, `spent_tokens`, `reserved_tokens`, `spent_micros`
  and `reserved_micros` (USD micros), and the tenant's `requests` admitted,
  kept whether or not a cap applies, so a
  cap set mid-period counts what was spent before it. The tenant's hash also
  holds one `r:<reservation id>` field per reservation not yet reconciled,
  which makes a retried admit or reconcile count once. Both expire some days
  after the period ends (the caller passes the time).

Rate limits are GCRA in its continuous-state (leaky bucket) form, with the
burst equal to the per-minute limit L: a bucket holds at most L and drains L a
minute; a request costs 1 (requests) or its estimated tokens (tokens) and is
admitted when that still fits. In the stored units one request or token
weighs 60,000 and a bucket drains L a millisecond, so with L < 2^31 and
requests under 10^11 tokens every quantity is an integer below 2^53: Lua's
doubles compute exactly and a burst admits exactly L, whatever L is. The
units do not depend on L, so a changed limit applies at once. A token cost
above L is charged as L (such a request is admitted only into an empty
bucket, and reconciling adds the rest as debt), so every denial has a wait
that works. Times come from the server's TIME, never from client clocks.
"""

from __future__ import annotations

# The order of the rate limits in ADMIT's KEYS and results.
KEY_REQUESTS, KEY_TOKENS, TENANT_REQUESTS, TENANT_TOKENS = 0, 1, 2, 3
# ADMIT's wait when a budget, not a rate, refused: the caller waits for the period's end.
BUDGET_WAIT = -1

_BUCKETS = """
local PERIOD_MS = 60000

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Numbers reach Redis through '%.14g' otherwise, which may print an exponent;
-- and Redis refuses '-0'.
local function integer(value)
  if value == 0 then return '0' end
  return string.format('%.0f', value)
end

-- A bucket's content now: what was stored, drained by `limit` units each ms since.
local function content(key, limit, now)
  local state = redis.call('HMGET', key, 'x', 't')
  local x, t = tonumber(state[1]), tonumber(state[2])
  if not x then return 0 end
  return math.max(0, x - math.max(0, now - t) * limit)
end

local function store(key, x, limit, now)
  redis.call('HSET', key, 'x', integer(x), 't', integer(now))
  -- It expires when it would have drained empty: forgetting it then loses nothing.
  redis.call('PEXPIRE', key, integer(math.ceil(x / limit) + 1000))
end
"""

# KEYS: key rpm, key tpm, tenant rpm, tenant tpm, tenant budget, key budget.
# ARGV: 1-4 the limits of KEYS[1-4]; 5 estimated tokens; 6 estimated micros;
# 7 tenant token cap, 8 tenant micros cap, 9 key token cap, 10 key micros cap
# (-1: no cap); 11 budget expiry (unix seconds); 12 reservation id; 13 tenant
# requests cap (-1: no cap).
# Returns {allowed, reason, wait_ms, now_ms, then remaining and reset_ms for
# each of KEYS[1-4]}. reason is 1-4 for KEYS[1-4], 5-8 for the tenant's token
# and micros caps then the key's, 9 for the tenant's requests cap; wait_ms is
# BUDGET_WAIT for a budget. An admitted request counts in the tenant budget's
# `requests` at once (a request's count is known when it is admitted).
ADMIT = (
    _BUCKETS
    + """
local now = now_ms()
local tokens, micros = tonumber(ARGV[5]), tonumber(ARGV[6])
local marker = 'r:' .. ARGV[12]
-- A reservation already made means this is a retry whose reply was lost.
local replay = redis.call('HEXISTS', KEYS[5], marker) == 1
local limits, contents, costs = {}, {}, {}
local reason, wait = 0, 0
for i = 1, 4 do
  limits[i] = tonumber(ARGV[i])
  contents[i] = content(KEYS[i], limits[i], now)
  costs[i] = 1
  if i % 2 == 0 then costs[i] = math.min(tokens, limits[i]) end
  local over = contents[i] + (costs[i] - limits[i]) * PERIOD_MS
  if over > 0 and math.ceil(over / limits[i]) > wait then
    reason, wait = i, math.ceil(over / limits[i])
  end
end

local budgets = {{5, 'tokens', tokens}, {5, 'micros', micros}, {6, 'tokens', tokens}, {6, 'micros', micros}}
for j, budget in ipairs(budgets) do
  local cap = tonumber(ARGV[6 + j])
  if cap >= 0 then
    local counters = redis.call('HMGET', KEYS[budget[1]], 'spent_' .. budget[2], 'reserved_' .. budget[2])
    if (tonumber(counters[1]) or 0) + (tonumber(counters[2]) or 0) + budget[3] > cap then
      reason, wait = 4 + j, -1
      break
    end
  end
end

local request_cap = tonumber(ARGV[13])
if reason == 0 and request_cap >= 0 then
  if (tonumber(redis.call('HGET', KEYS[5], 'requests')) or 0) + 1 > request_cap then
    reason, wait = 9, -1
  end
end

local allowed = replay or reason == 0
if allowed and not replay then
  redis.call('HINCRBY', KEYS[5], 'requests', 1)
  for i = 1, 4 do
    contents[i] = contents[i] + costs[i] * PERIOD_MS
    store(KEYS[i], contents[i], limits[i], now)
  end
  for i = 5, 6 do
    redis.call('HINCRBY', KEYS[i], 'reserved_tokens', integer(tokens))
    redis.call('HINCRBY', KEYS[i], 'reserved_micros', integer(micros))
    redis.call('EXPIREAT', KEYS[i], ARGV[11])
  end
  redis.call('HSET', KEYS[5], marker, integer(now))
end

local result = {0, reason, wait, now}
if allowed then result = {1, 0, 0, now} end
for i = 1, 4 do
  table.insert(result, math.max(0, math.floor((limits[i] * PERIOD_MS - contents[i]) / PERIOD_MS)))
  table.insert(result, math.ceil(contents[i] / limits[i]))
end
return result
"""
)

# KEYS: tenant budget, key budget.
# ARGV: 1 extra tokens, 2 extra micros; 3 tenant token cap, 4 tenant micros cap,
# 5 key token cap, 6 key micros cap (-1: no cap); 7 budget expiry (unix
# seconds); 8 reservation id; 9 the extension's number (1, 2, ... per reservation).
# Adds to a live reservation's budget hold when every cap still has room.
# Returns 1 (held, or already held by this extension), 0 when a cap refuses,
# -1 when the reservation is not live (reconciled, or its period's counters gone).
EXTEND = """
local marker = 'x:' .. ARGV[8]
if redis.call('HEXISTS', KEYS[1], 'r:' .. ARGV[8]) == 0 then return -1 end
local number = tonumber(ARGV[9])
if (tonumber(redis.call('HGET', KEYS[1], marker)) or 0) >= number then return 1 end
local amounts = {tokens = tonumber(ARGV[1]), micros = tonumber(ARGV[2])}
local budgets = {{1, 'tokens'}, {1, 'micros'}, {2, 'tokens'}, {2, 'micros'}}
for j, budget in ipairs(budgets) do
  local cap = tonumber(ARGV[2 + j])
  if cap >= 0 then
    local counters = redis.call('HMGET', KEYS[budget[1]], 'spent_' .. budget[2], 'reserved_' .. budget[2])
    if (tonumber(counters[1]) or 0) + (tonumber(counters[2]) or 0) + amounts[budget[2]] > cap then
      return 0
    end
  end
end
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], 'reserved_tokens', ARGV[1])
  redis.call('HINCRBY', KEYS[i], 'reserved_micros', ARGV[2])
  redis.call('EXPIREAT', KEYS[i], ARGV[7])
end
redis.call('HSET', KEYS[1], marker, ARGV[9])
return 1
"""

# KEYS: key tpm, tenant tpm, tenant budget, key budget.
# ARGV: 1 key tpm limit, 2 tenant tpm limit (both as at admission);
# 3 reservation id; 4 estimated tokens; 5 estimated micros; 6 actual tokens;
# 7 actual micros; 8 budget expiry (unix seconds); 9 and 10 the tokens and
# micros held in the budgets (the estimates plus every EXTEND).
# Returns 1, or 0 when the reservation was already reconciled or its period's
# counters are gone.
RECONCILE = (
    _BUCKETS
    + """
if redis.call('HDEL', KEYS[3], 'r:' .. ARGV[3]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], 'x:' .. ARGV[3])
local now = now_ms()
local estimated, actual = tonumber(ARGV[4]), tonumber(ARGV[6])
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  -- Never below empty: tokens estimated but not used are given back, not banked.
  local x = content(KEYS[i], limit, now) + (actual - math.min(estimated, limit)) * PERIOD_MS
  store(KEYS[i], math.max(0, x), limit, now)
end
for i = 3, 4 do
  redis.call('HINCRBY', KEYS[i], 'reserved_tokens', integer(-tonumber(ARGV[9])))
  redis.call('HINCRBY', KEYS[i], 'spent_tokens', ARGV[6])
  redis.call('HINCRBY', KEYS[i], 'reserved_micros', integer(-tonumber(ARGV[10])))
  redis.call('HINCRBY', KEYS[i], 'spent_micros', ARGV[7])
  redis.call('EXPIREAT', KEYS[i], ARGV[8])
end
return 1
"""
)
