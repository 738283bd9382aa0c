"""What the degrade level does to one model request, decided from this process's
copy of the level (capacity/state.py): no I/O, so the gateway's hot path pays a
few comparisons. The gateway applies them (gateway/service.py) and marks the
response `x-aiaas-degraded: <level>` when one changed it."""

from __future__ import annotations

from typing import Any

import orjson

from aiaas.observability import metrics
from capacity.state import Snapshot

# Kept whatever the budget: the instructions, and the message being answered.
KEPT_ROLES = frozenset({"system", "developer"})
CHARACTERS_PER_TOKEN = 4
MESSAGE_FRAMING_TOKENS = 4


def sheds(snapshot: Snapshot, priority: str) -> bool:
    """Whether a request of a key of `priority` is refused at this level (counted)."""
    if priority not in snapshot.effects.shed_priorities:
        return False
    metrics.series(metrics.SHED, snapshot.level.value, priority).inc()
    return True


def capped_output(snapshot: Snapshot, max_output_tokens: int) -> int | None:
    """The lower output limit the level imposes, or None when it imposes none."""
    cap = snapshot.effects.max_tokens
    return cap if cap is not None and max_output_tokens > cap else None


def lowered_quality_target(snapshot: Snapshot, target: float) -> float | None:
    """The lower quality target `auto` routes with at this level, or None."""
    ceiling = snapshot.effects.quality_target
    return ceiling if ceiling is not None and target > ceiling else None


def shrunk_messages(snapshot: Snapshot, messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation with its oldest turns dropped until its estimate fits the
    level's context budget, system and developer messages and the last message
    kept (a tool result whose call was dropped goes too); None when nothing is dropped."""
    budget = snapshot.effects.context_tokens
    if budget is None:
        return None
    costs = [message_tokens(message) for message in messages]
    total = sum(costs)
    if total <= budget:
        return None
    dropped: set[int] = set()
    for index, message in enumerate(messages[:-1]):
        if total <= budget:
            break
        if message.get("role") not in KEPT_ROLES:
            dropped.add(index)
            total -= costs[index]
    dropped |= orphaned_tool_results(messages, dropped)
    return [message for index, message in enumerate(messages) if index not in dropped] if dropped else None


def orphaned_tool_results(messages: list[dict[str, Any]], dropped: set[int]) -> set[int]:
    """Tool results left at the head of the kept conversation (their call was dropped)."""
    orphans: set[int] = set()
    for index, message in enumerate(messages[:-1]):
        if index in dropped or message.get("role") in KEPT_ROLES:
            continue
        if message.get("role") != "tool":
            break
        orphans.add(index)
    return orphans


def message_tokens(message: dict[str, Any]) -> int:
    """A local estimate: ~4 characters a token of the message as JSON (tool calls
    included), plus framing."""
    return len(orjson.dumps(message)) // CHARACTERS_PER_TOKEN + MESSAGE_FRAMING_TOKENS
