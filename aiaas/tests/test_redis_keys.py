"""Redis key names: one builder, and the names already in Redis kept letter for letter
(a renamed key forgets limits, breakers, learned routing and live streams)."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from aiaas.redis_keys import hash_tag, redis_key, tenant_key
from billing.limits.limiter import _budget_keys, _rate_keys
from gateway.resilience.breaker import _redis_keys as breaker_keys
from realtime.streams import log_key
from realtime.tokens import token_key
from routing.router import outcomes


def test_a_tenant_key_carries_the_tenant_in_a_hash_tag() -> None:
    assert tenant_key("limits", 7, "k9", "rpm") == "limits:{t7}:k9:rpm"
    assert redis_key("router", "outcomes", 7) == "router:outcomes:7"
    assert hash_tag("acme", "run_1") == "{acme:run_1}"


@pytest.mark.parametrize("tenant_id", [0, -1, True, "7", None])
def test_a_key_without_a_real_tenant_is_refused(tenant_id: object) -> None:
    with pytest.raises(ValueError, match="tenant"):
        tenant_key("limits", tenant_id, "rpm")  # type: ignore[arg-type]


def test_an_empty_part_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        redis_key("breaker", "", "state")
    with pytest.raises(ValueError, match="at least one"):
        redis_key()


def test_the_names_already_in_redis_are_unchanged() -> None:
    assert _rate_keys(7, 9) == (
        "limits:{t7}:k9:rpm",
        "limits:{t7}:k9:tpm",
        "limits:{t7}:rpm",
        "limits:{t7}:tpm",
    )
    assert _budget_keys(7, 9, "2026-12") == ("limits:{t7}:budget:2026-12", "limits:{t7}:k9:budget:2026-12")
    assert breaker_keys("sim:small") == (
        "breaker:{sim:small}:state",
        "breaker:{sim:small}:probes",
        "breaker:{sim:small}:window",
    )
    assert log_key("acme", "run_" + "0" * 32) == "rt:{acme:run_" + "0" * 32 + "}:log"
    assert token_key("st_x") == "rt:token:" + hashlib.sha256(b"st_x").hexdigest()
    assert outcomes.outcomes_key(7) == "router:outcomes:7"
    assert outcomes.decision_key("req_1") == "router:decision:req_1"
    assert outcomes.canary_key(7) == "router:canary:7"
    assert outcomes.daily_key(7, datetime.date(2026, 12, 7)) == "router:daily:7:2026-12-07"
