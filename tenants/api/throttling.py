"""/api throttles: each API key, and each tenant across its keys, gets a request rate.

Rates are spelled DRF's way ("600/min"; s, min, hour or day, no other word) in
API_KEY_THROTTLE_RATE and API_TENANT_THROTTLE_RATE, read at each request, so a
changed setting applies at once. Both are checked by one atomic Lua script on the
limits Redis (the "control" pool), on the Redis server's clock, shared by every
process:

- Exact across processes (GCRA): from rest, a key with a rate of N per period is
  admitted N in a burst, then one more each period/N.
- A request is admitted only when both its key and its tenant have room, and then
  counts against both; a refused request counts against neither.
- Retry-After is the wait (whole seconds, rounded up) after which the same request
  would be admitted were nothing else admitted meanwhile.
- Fail closed: when Redis does not answer, the request is refused with 503 and
  Retry-After, like the /v1 limiter.

Every state key carries the tenant's id (`throttle:{t<id>}:api:...`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import redis
from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from aiaas.redis_clients import sync_client
from aiaas.redis_keys import tenant_key
from tenants.models import ApiKey

PERIOD_SECONDS = {
    **dict.fromkeys(("s", "sec", "second"), 1),
    **dict.fromkeys(("m", "min", "minute"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
    **dict.fromkeys(("d", "day"), 86_400),
}
PERIOD_WORDS = {1: "second", 60: "minute", 3600: "hour", 86_400: "day"}
UNAVAILABLE_RETRY_SECONDS = 1

# KEYS: the key's and the tenant's theoretical arrival times (ms).
# ARGV: per key, its emission interval (ms) then its burst (requests).
# Returns {0, 0} when admitted, else {the refusing limit's index, its wait in ms}.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local arrivals, refused, wait = {}, 0, 0
for i = 1, #KEYS do
  local interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local arrival = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now) + interval
  local over = arrival - now - interval * burst
  if over > wait then refused, wait = i, over end
  arrivals[i] = arrival
end
if refused > 0 then return {refused, math.ceil(wait)} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], arrivals[i], 'PX', math.ceil(arrivals[i] - now))
end
return {0, 0}
"""


@dataclass(frozen=True)
class Rate:
    """`requests` per `period_seconds`, parsed from DRF's "N/period" spelling."""

    requests: int
    period_seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        count, _, period = text.partition("/")
        seconds = PERIOD_SECONDS.get(period.strip())
        if not count.strip().isdigit() or int(count) < 1 or seconds is None:
            raise ValueError(f"a throttle rate reads like '600/min', not {text!r}")
        return cls(int(count), seconds)

    @property
    def interval_ms(self) -> float:
        return self.period_seconds * 1000 / self.requests

    def __str__(self) -> str:
        return f"{self.requests} requests per {PERIOD_WORDS[self.period_seconds]}"


class ThrottleUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The rate limiter is unavailable; retry shortly."
    default_code = "throttle_unavailable"
    wait = UNAVAILABLE_RETRY_SECONDS  # DRF's handler sends it as Retry-After


class ApiRateThrottle(BaseThrottle):
    """The key's and its tenant's rates, checked and counted together (see the module).

    A refusal is raised here rather than returned, so its message names the limit
    reached (DRF's own names none): 429 `rate_limit_exceeded` with Retry-After.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):  # permissions run first: never reached without a key
            raise exceptions.NotAuthenticated()
        keys = [
            tenant_key("throttle", api_key.tenant_id, "api", "key", api_key.pk),
            tenant_key("throttle", api_key.tenant_id, "api", "tenant"),
        ]
        rates = [Rate.parse(settings.API_KEY_THROTTLE_RATE), Rate.parse(settings.API_TENANT_THROTTLE_RATE)]
        try:
            refused, wait_ms = admit(keys, rates)
        except redis.RedisError:
            raise ThrottleUnavailable() from None
        if refused:
            subject = ("API key", "organization")[refused - 1]
            raise exceptions.Throttled(
                wait=max(1, math.ceil(wait_ms / 1000)),
                detail=f"Rate limit of {rates[refused - 1]} for this {subject} reached.",
                code="rate_limit_exceeded",
            )
        return True


def admit(keys: list[str], rates: list[Rate]) -> tuple[int, int]:
    """Run the script: (0, 0) when admitted, else (the refusing rate's 1-based index, wait in ms)."""
    script = sync_client("control").register_script(GCRA_SCRIPT)
    args = [value for rate in rates for value in (rate.interval_ms, rate.requests)]
    refused, wait_ms = cast("list[int]", script(keys=keys, args=args))
    return int(refused), int(wait_ms)
