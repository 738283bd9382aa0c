"""The circuit breaker's Lua scripts: every read and transition of one breaker
is a single script call, so any number of processes agree on its state.

Keys of the breaker `k` (the `{k}` braces are a Redis Cluster hash tag, so one
breaker's keys share a slot and a script may touch all of them):

- `breaker:{k}:state`  hash. `generation`: id of the current episode, changed
  by every transition; `open_until`: server time (ms) the open period ends,
  absent while closed. Open when now < open_until, half-open after it.
- `breaker:{k}:probes` sorted set of half-open probe tokens scored by the
  server time (ms) their slot expires, so a probe that never reports frees its
  slot by itself.
- `breaker:{k}:window` hash of outcome counters in time buckets (`c<n>` calls,
  `f<n>` failures of bucket n): the rolling window in bounded memory whatever
  the traffic.

Transitions: closed -> open when a failure brings the window to the threshold
or over the failure ratio; open -> half-open by time alone; half-open -> closed
on a probe success, -> open on a probe failure. Opening and closing both clear
the window and the probes and start a new generation, so outcomes of calls
admitted in an earlier episode are ignored instead of re-opening a breaker that
just closed. Times come from the server's TIME, never from client clocks.
"""

from __future__ import annotations

# Verdicts of ACQUIRE (the script declares the same numbers).
ADMITTED = 0
PROBE = 1
REJECTED = 2

# Results of RECORD (the script declares the same numbers).
UNCHANGED = 0
OPENED = 1
CLOSED = 2
STALE = 3

_NOW = """
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function current_generation()
  return tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
end
"""

# KEYS: state, probes. ARGV: token, half_open_probes, probe_timeout_ms.
# Returns {verdict, generation, retry_after_ms}.
ACQUIRE = (
    _NOW
    + """
local ADMITTED, PROBE, REJECTED = 0, 1, 2
local now = now_ms()
local generation = current_generation()
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if not open_until then return {ADMITTED, generation, 0} end
if now < open_until then return {REJECTED, generation, open_until - now} end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[2]) then
  local expires_at = now + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], expires_at, ARGV[1])
  -- The newest slot expires last, so the set lives exactly as long as it matters.
  redis.call('PEXPIREAT', KEYS[2], expires_at)
  return {PROBE, generation, 0}
end
local earliest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {REJECTED, generation, tonumber(earliest[2]) - now}
"""
)

# KEYS: state, probes, window. ARGV: token, generation, is_probe (1/0),
# outcome (success/failure/release), failure_threshold, failure_ratio,
# minimum_calls, window_ms, bucket_ms, buckets, open_ms, idle_ms.
# Returns UNCHANGED, OPENED, CLOSED or STALE.
RECORD = (
    _NOW
    + """
local UNCHANGED, OPENED, CLOSED, STALE = 0, 1, 2, 3
local now = now_ms()
local threshold, ratio, minimum_calls = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local window_ms, bucket_ms, buckets = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local open_ms, idle_ms = tonumber(ARGV[11]), tonumber(ARGV[12])

local function transition(open)
  -- Monotonic even after the state key expired and the counter restarted at 0.
  local generation = math.max(current_generation() + 1, now)
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'generation', string.format('%.0f', generation))
  if open then
    redis.call('HSET', KEYS[1], 'open_until', string.format('%.0f', now + open_ms))
    redis.call('PEXPIRE', KEYS[1], open_ms + idle_ms)
    return OPENED
  end
  redis.call('HDEL', KEYS[1], 'open_until')
  redis.call('PEXPIRE', KEYS[1], idle_ms)
  return CLOSED
end

local function count_in_window(is_failure)
  local bucket = string.format('%.0f', math.floor(now / bucket_ms))
  redis.call('HINCRBY', KEYS[3], 'c' .. bucket, 1)
  if is_failure then redis.call('HINCRBY', KEYS[3], 'f' .. bucket, 1) end
  redis.call('PEXPIRE', KEYS[3], window_ms + bucket_ms)
  local oldest = tonumber(bucket) - buckets + 1
  local fields = redis.call('HGETALL', KEYS[3])
  local calls, failures, expired = 0, 0, {}
  for i = 1, #fields, 2 do
    local kind, index = string.sub(fields[i], 1, 1), tonumber(string.sub(fields[i], 2))
    if index < oldest then
      table.insert(expired, fields[i])
    elseif kind == 'c' then
      calls = calls + tonumber(fields[i + 1])
    else
      failures = failures + tonumber(fields[i + 1])
    end
  end
  if #expired > 0 then redis.call('HDEL', KEYS[3], unpack(expired)) end
  return calls, failures
end

if tonumber(ARGV[2]) ~= current_generation() then return STALE end
local outcome = ARGV[4]
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if outcome == 'success' then return transition(false) end
  if outcome == 'failure' then return transition(true) end
  return UNCHANGED
end
-- A non-probe permit of the current generation means the breaker is closed:
-- opening always starts a new generation.
if outcome == 'release' then return UNCHANGED end
local calls, failures = count_in_window(outcome == 'failure')
local over_ratio = calls >= minimum_calls and failures > ratio * calls
if outcome == 'failure' and (failures >= threshold or over_ratio) then return transition(true) end
return UNCHANGED
"""
)

# KEYS: state. Returns 0 closed, 1 open, 2 half-open.
STATE = (
    _NOW
    + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if not open_until then return 0 end
if now_ms() < open_until then return 1 end
return 2
"""
)
