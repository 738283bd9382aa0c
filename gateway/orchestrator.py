"""Serving a request along its route plan: retries, fallbacks, the breaker and
streams that survive a provider dying mid-answer.

Decisions, per failed attempt (at most `MAX_ATTEMPTS` per request in all):
- a client error (4xx other than 429 and context length) is the caller's
  fault: it is returned at once, nothing else is tried;
- otherwise, when a later model remains in the plan, fall back to it at once
  (the answer comes sooner than after a backoff);
- on the last model, retry it after the backoff, honouring Retry-After;
- a model whose breaker is open is skipped without using an attempt.

A stream cut after its first token is continued on the next model, so the
client gets one complete answer. A text answer of one choice is continued by
sending the partial answer back as a final assistant message. Anything else
(tool-call deltas, several choices) is replayed: the request is sent again as it
was, what the client already has is checked against the new answer and held
back, and only the rest is relayed; an answer that differs from what was sent
cannot continue it (UNRESUMABLE). If nothing can continue a stream, it ends with
an explicit error event and never with `[DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from aiaas import tracing
from aiaas.observability.metrics import PROVIDER_ERRORS, series
from gateway.events import ChatDelta, ChatEvent, ChatFailed, ChatFinished
from gateway.providers.client import ProviderClient, UpstreamTiming
from gateway.providers.errors import FailureKind, ProviderError
from gateway.resilience import (
    AttemptBudget,
    CircuitBreaker,
    CircuitOpenError,
    Deadline,
    Permit,
    RetryPolicy,
    retry_delay,
)
from gateway.validation import (
    embeddings_tokens_bound,
    estimate_tokens,
    output_tokens_bound,
    prompt_tokens_bound,
)
from routing.catalog import ModelSpec
from routing.policy import RoutePlan

MAX_ATTEMPTS = 3
CLOSED_CACHE_SECONDS = 1.0
T = TypeVar("T")


@dataclass
class Usage:
    """Tokens and their cost over every attempt, each priced at its own model's rates
    times `price_factor` (below 1 for discounted work: batch lines)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated: bool = False
    # The provider's prompt_tokens_details and completion_tokens_details, summed.
    details: dict[str, dict[str, int]] = field(default_factory=dict)
    price_factor: Decimal = Decimal(1)

    def count(self, model: ModelSpec, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += model.cost_usd(prompt_tokens, completion_tokens) * self.price_factor

    def add(self, model: ModelSpec, usage: Any) -> bool:
        """Count a provider's `usage` object; False when there was none."""
        if not isinstance(usage, dict):
            return False
        self.count(model, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        self.add_details(usage)
        return True

    def as_dict(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        return usage | self.details

    def add_details(self, usage: dict[str, Any]) -> None:
        """Sum the provider's token details (cached, reasoning, ...) across attempts."""
        for name in ("prompt_tokens_details", "completion_tokens_details"):
            details = usage.get(name)
            if isinstance(details, dict):
                into = self.details.setdefault(name, {})
                for key, value in details.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        into[key] = into.get(key, 0) + value


@dataclass
class Outcome:
    """What served a request and what it cost; filled in as the request runs."""

    model: ModelSpec | None = None
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    timing: UpstreamTiming = field(default_factory=UpstreamTiming)
    errors: list[str] = field(default_factory=list)
    rejected: list[ModelSpec] = field(default_factory=list)  # answers early exit did not accept
    # Holds what the next attempt may bill before it starts (gateway/metering.py), or
    # raises ProviderError(BUDGET_EXHAUSTED): usage so far, the model, its prompt and
    # output token bounds.
    guard: SpendGuard | None = None
    # Whose request it is: provider slots and breaker failures are shared per tenant.
    tenant_id: int | None = None


SpendGuard = Callable[[Usage, ModelSpec, int, int], Awaitable[None]]
# An attempt's prompt and output token bounds on a model.
Bounds = Callable[[ModelSpec], tuple[int, int]]


class Orchestrator:
    def __init__(
        self, providers: ProviderClient, breaker: CircuitBreaker, retry_policy: RetryPolicy | None = None
    ) -> None:
        self.providers = providers
        self.breaker = breaker
        self.retry_policy = retry_policy or RetryPolicy(max_attempts=MAX_ATTEMPTS)
        self._background: set[asyncio.Task[None]] = set()
        self._closed_until: dict[str, tuple[float, int]] = {}  # breaker key -> (until, generation)

    async def _admit(self, model: ModelSpec, outcome: Outcome) -> Permit:
        """A breaker permit. A breaker this process saw closed less than
        CLOSED_CACHE_SECONDS ago admits without a Redis round trip; another
        process's opening of it is seen within that time, and a failure here
        drops the shortcut at once."""
        key = model.breaker_key
        cached = self._closed_until.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return Permit(key=key, token=uuid.uuid4().hex, is_probe=False, generation=cached[1])
        try:
            permit = await self.breaker.acquire(key)
        except CircuitOpenError as error:
            outcome.errors.append(f"{model.model_id}: circuit open")
            raise ProviderError(
                FailureKind.CIRCUIT_OPEN,
                f"{model.model_id} is failing; its circuit is open",
                retry_after=error.retry_after_seconds,
            ) from None
        if not permit.is_probe and permit.generation is not None:  # admitted by a closed breaker
            self._closed_until[key] = (time.monotonic() + CLOSED_CACHE_SECONDS, permit.generation)
        return permit

    async def _report(self, permit: Permit, error: ProviderError | None, tenant_id: int | None) -> None:
        if error is not None and error.counts_against_provider:
            if not await self._counts(permit, error, tenant_id):
                await self.breaker.release(permit)
                return
            self._closed_until.pop(permit.key, None)
            await self.breaker.record_failure(permit)  # awaited: the next attempt must see it
        elif permit.is_probe:
            await self.breaker.record_success(permit)  # awaited: it closes the breaker
        else:
            # A success on a closed breaker only feeds its failure ratio: record it
            # without making the client wait for Redis.
            task = asyncio.create_task(self.breaker.record_success(permit))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _counts(self, permit: Permit, error: ProviderError, tenant_id: int | None) -> bool:
        """A timeout, the failure a tenant's own requests cause (huge prompts, huge
        outputs), counts toward the shared breaker only within the tenant's share;
        a provider's errors and refused connections always count."""
        if tenant_id is None or error.kind is not FailureKind.TIMEOUT:
            return True
        return await self.breaker.counts_for_tenant(permit.key, tenant_id)

    async def run(
        self,
        plan: RoutePlan,
        deadline: Deadline,
        outcome: Outcome,
        call: Callable[[ModelSpec], Awaitable[T]],
        bounds: Bounds | None = None,
    ) -> T:
        """Run `call` along the plan until one attempt succeeds; raise the last error.
        Each attempt's bill (`bounds`) is held by the outcome's guard first."""
        budget = AttemptBudget(MAX_ATTEMPTS)
        last_error: ProviderError | None = None
        for position, model in enumerate(plan.chain):
            is_last = position == len(plan.chain) - 1
            attempt_on_model = 0
            while not deadline.expired and budget.remaining:
                if outcome.guard is not None and bounds is not None:
                    await outcome.guard(outcome.usage, model, *bounds(model))
                try:
                    permit = await self._admit(model, outcome)
                except ProviderError as error:
                    last_error = error
                    break
                budget.take()
                attempt_on_model += 1
                outcome.attempts += 1
                try:
                    with tracing.span("provider call", attempt_attributes(model, attempt_on_model)):
                        result = await call(model)
                except asyncio.CancelledError:
                    await self.breaker.release(permit)  # a cancelled probe must not hold half-open
                    raise
                except ProviderError as error:
                    series(PROVIDER_ERRORS, model.provider.slug, error.kind).inc()
                    await self._report(permit, error, outcome.tenant_id)
                    outcome.errors.append(f"{model.model_id}: {error.kind}")
                    last_error = error
                    if not error.fallbackable:
                        raise
                    delay = self._retry_delay(error, attempt_on_model, is_last, budget, deadline)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                    continue
                await self._report(permit, None, outcome.tenant_id)
                outcome.model = model
                return result
            if budget.remaining == 0:
                break
        raise last_error or ProviderError(FailureKind.TIMEOUT, "the request's deadline passed")

    def _retry_delay(
        self, error: ProviderError, attempt: int, is_last: bool, budget: AttemptBudget, deadline: Deadline
    ) -> float | None:
        if not is_last or not error.retryable or budget.remaining == 0:
            return None
        delay = retry_delay(self.retry_policy, attempt, error.retry_after)
        if delay is None or delay >= deadline.remaining():
            return None
        return delay

    async def complete(
        self,
        body: dict[str, Any],
        plan: RoutePlan,
        deadline: Deadline,
        outcome: Outcome,
        accepts: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first answer along the plan. With `accepts` (early exit), an answer it
        rejects is paid for and the next model asked; the last model's answer stands."""

        async def call(model: ModelSpec) -> dict[str, Any]:
            upstream = {**body, "model": model.upstream_model, "stream": False}
            upstream.pop("stream_options", None)
            data = await self.providers.post_json(
                model, "/chat/completions", upstream, deadline, outcome.timing, outcome.tenant_id
            )
            if not valid_completion(data):
                raise ProviderError(
                    FailureKind.BAD_RESPONSE, f"{model.model_id} sent a completion without a message"
                )
            if accepts is not None and model is not plan.chain[-1] and not accepts(data):
                count_usage(outcome.usage, model, body, data)
                outcome.rejected.append(model)
                raise ProviderError(
                    FailureKind.INVALID_OUTPUT, f"{model.model_id}'s answer does not follow the schema"
                )
            return data

        prompt, output = prompt_tokens_bound(body), output_tokens_bound(body)
        run = self.run(plan, deadline, outcome, call, lambda model: (prompt, output))
        data = await asyncio.wait_for(run, timeout=deadline.remaining())
        assert outcome.model is not None
        count_usage(outcome.usage, outcome.model, body, data)
        return data

    async def embed(
        self, body: dict[str, Any], plan: RoutePlan, deadline: Deadline, outcome: Outcome
    ) -> dict[str, Any]:
        async def call(model: ModelSpec) -> dict[str, Any]:
            upstream = {**body, "model": model.upstream_model}
            return await self.providers.embeddings(
                model, upstream, deadline, outcome.timing, outcome.tenant_id
            )

        prompt = embeddings_tokens_bound(body)
        run = self.run(plan, deadline, outcome, call, lambda model: (prompt, 0))
        data = await asyncio.wait_for(run, timeout=deadline.remaining())
        assert outcome.model is not None
        if not outcome.usage.add(outcome.model, data.get("usage")):
            outcome.usage.count(outcome.model, estimate_tokens(str(body.get("input"))), 0)
            outcome.usage.estimated = True
        return data

    def stream(
        self, body: dict[str, Any], plan: RoutePlan, deadline: Deadline, outcome: Outcome
    ) -> AsyncIterator[ChatEvent]:
        return ContinuedStream(self, body, plan, deadline, outcome).events()


def attempt_attributes(model: ModelSpec, attempt: int) -> dict[str, str | int]:
    return {
        "aiaas.model": model.model_id,
        "aiaas.provider": model.provider.slug,
        "aiaas.tier": model.tier,
        "aiaas.attempt": attempt,
    }


def count_usage(usage: Usage, model: ModelSpec, body: dict[str, Any], data: dict[str, Any]) -> None:
    """Count an answer's tokens at `model`'s prices: the provider's figures, else an estimate."""
    if not usage.add(model, data.get("usage")):
        usage.count(
            model,
            estimate_tokens(str(body.get("messages"))),
            estimate_tokens(str(data["choices"][0]["message"].get("content") or "")),
        )
        usage.estimated = True


def valid_completion(data: dict[str, Any]) -> bool:
    choices = data.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and isinstance(choices[0], dict)
        and isinstance(choices[0].get("message"), dict)
    )


@dataclass
class ContinuedStream:
    """One client stream, served by as many upstream streams as it takes.

    Yields each upstream delta as a ChatDelta (only new output), then one
    ChatFinished or ChatFailed.
    """

    orchestrator: Orchestrator
    body: dict[str, Any]
    plan: RoutePlan
    deadline: Deadline
    outcome: Outcome
    text: list[str] = field(default_factory=list)
    # How many of `text`'s pieces the reader took, and whether it stopped reading.
    delivered: int = 0
    reader_left: bool = False
    relayed_structured_deltas: bool = False
    reported_usage: bool = False
    # What each choice has sent, and (while replaying) how much of it the new answer repeated.
    sent: dict[int, SentChoice] = field(default_factory=dict)
    replayed: dict[int, SentChoice] = field(default_factory=dict)
    replaying: bool = False
    queue: asyncio.Queue[ChatEvent | None] = field(default_factory=lambda: asyncio.Queue(maxsize=64))

    def upstream_body(self, model: ModelSpec) -> dict[str, Any]:
        body = {
            **self.body,
            "model": model.upstream_model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.sent and not self.must_replay:
            body["messages"] = [
                *self.body["messages"],
                {"role": "assistant", "content": self.sent[0].content},
            ]
        return body

    @property
    def must_replay(self) -> bool:
        """A partial answer that no final assistant message can carry: tool calls, several choices."""
        return self.relayed_structured_deltas or set(self.sent) != {0}

    def bounds(self, model: ModelSpec) -> tuple[int, int]:
        """An attempt's prompt (the partial answer included) and output bounds."""
        body = self.upstream_body(model)
        return prompt_tokens_bound(body), output_tokens_bound(body)

    async def attempt(self, model: ModelSpec) -> dict[int, str]:
        """Relay one upstream stream; return each choice's finish_reason or raise ProviderError."""
        started_with = len(self.text)
        body = self.upstream_body(model)
        self.reported_usage = False
        self.replaying, self.replayed = bool(self.sent) and self.must_replay, {}
        try:
            finish_reasons = await self.relay(model, body)
            if len(finish_reasons) < choices_of(self.body):
                # A clean end without finish_reason is a cut stream, never a complete answer.
                raise ProviderError(
                    FailureKind.STREAM_CUT, f"{model.model_id} ended its stream before finishing"
                )
            if self.replaying:
                self.check_replayed_whole(model)
        except ProviderError:
            if not self.reported_usage:
                self.estimate_usage(model, body, started_with)
            raise
        except asyncio.CancelledError:
            # Cut short (the reader left, the deadline, a shutdown): the prompt was
            # sent, and what was produced is paid for; a reader that left pays for
            # what it took.
            if not self.reported_usage:
                self.estimate_usage(model, body, started_with, self.delivered if self.reader_left else None)
            raise
        if not self.reported_usage:
            self.estimate_usage(model, body, started_with)
        return finish_reasons

    def estimate_usage(
        self, model: ModelSpec, body: dict[str, Any], started_with: int, until: int | None = None
    ) -> None:
        """A stream that sent no usage may still be billed for what it produced
        (up to piece `until`): count an estimate, marked as such."""
        prompt = " ".join(str(message.get("content") or "") for message in body["messages"])
        produced = self.text[started_with:until] if until is None or until > started_with else []
        self.outcome.usage.count(
            model,
            estimate_tokens(prompt, len(body["messages"])),
            estimate_tokens("".join(produced)) if produced else 0,
        )
        self.outcome.usage.estimated = True

    async def relay(self, model: ModelSpec, body: dict[str, Any]) -> dict[int, str]:
        """Forward one upstream stream's deltas to the queue; return the finish_reason of each choice."""
        finish_reasons: dict[int, str] = {}
        async for chunk in self.orchestrator.providers.stream_chunks(
            model, body, self.deadline, self.outcome.timing, self.outcome.tenant_id
        ):
            self.reported_usage = self.outcome.usage.add(model, chunk.get("usage")) or self.reported_usage
            for choice in chunk.get("choices") or []:
                index = choice.get("index") if isinstance(choice.get("index"), int) else 0
                delta = {
                    key: value
                    for key, value in (choice.get("delta") or {}).items()
                    if key != "role" and value not in (None, "")
                }
                logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else None
                if self.replaying:
                    delta, logprobs = self.unsent(model, index, delta, logprobs)
                if delta:
                    await self.forward(model, index, delta, logprobs)
                if choice.get("finish_reason"):
                    finish_reasons[index] = choice["finish_reason"]
        return finish_reasons

    async def forward(
        self, model: ModelSpec, index: int, delta: dict[str, Any], logprobs: dict[str, Any] | None
    ) -> None:
        content = delta.get("content")
        sent = self.sent.setdefault(index, SentChoice())
        if isinstance(content, str):
            self.text.append(content)
        if set(delta) - {"content"}:
            self.relayed_structured_deltas = True
        sent.add(delta)
        self.outcome.model = model
        await self.queue.put(ChatDelta(model, delta, index, logprobs))

    def unsent(
        self, model: ModelSpec, index: int, delta: dict[str, Any], logprobs: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The part of a replayed delta the client does not have yet; UNRESUMABLE when
        it contradicts what the client has."""
        sent, seen = self.sent.get(index), self.replayed.setdefault(index, SentChoice())
        if sent is None:
            return delta, logprobs
        rest: dict[str, Any] = {}
        content = delta.get("content")
        if isinstance(content, str):
            rest_content = seen.repeat("content", sent.content, content)
            if rest_content is None:
                diverged(model)
            if rest_content:
                rest["content"] = rest_content
            else:
                logprobs = None
        calls = [self.unsent_call(model, sent, seen, call) for call in delta.get("tool_calls") or []]
        if any(calls):
            rest["tool_calls"] = [call for call in calls if call]
        rest |= {key: value for key, value in delta.items() if key not in {"content", "tool_calls"}}
        return rest, logprobs

    def unsent_call(
        self, model: ModelSpec, sent: SentChoice, seen: SentChoice, call: dict[str, Any]
    ) -> dict[str, Any] | None:
        position = call.get("index", 0)
        known = sent.calls.get(position)
        if known is None:
            return call
        function = call.get("function") or {}
        if function.get("name") not in (None, known["name"]):
            diverged(model)
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not arguments:
            return None
        rest = seen.repeat(f"call {position}", known["arguments"], arguments)
        if rest is None:
            diverged(model)
        return {"index": position, "function": {"arguments": rest}} if rest else None

    def check_replayed_whole(self, model: ModelSpec) -> None:
        """A replayed answer must repeat all the client has, not only a part of it."""
        for index, sent in self.sent.items():
            seen = self.replayed.get(index, SentChoice())
            expected = {"content": len(sent.content)} | {
                f"call {position}": len(call["arguments"]) for position, call in sent.calls.items()
            }
            if any(seen.lengths.get(name, 0) < length for name, length in expected.items()):
                diverged(model)

    async def produce(self) -> None:
        try:
            finish_reasons = await asyncio.wait_for(
                self.orchestrator.run(self.plan, self.deadline, self.outcome, self.attempt, self.bounds),
                timeout=max(0.0, self.deadline.remaining()),
            )
            ordered = tuple(sorted(finish_reasons.items()))
            await self.queue.put(ChatFinished(ordered[0][1], ordered))
        except ProviderError as error:
            await self.queue.put(ChatFailed(error))
        except TimeoutError:
            await self.queue.put(
                ChatFailed(ProviderError(FailureKind.TIMEOUT, "the request's deadline passed"))
            )
        finally:
            await self.queue.put(None)

    async def events(self) -> AsyncIterator[ChatEvent]:
        producer = asyncio.create_task(self.produce())
        try:
            while (event := await self.queue.get()) is not None:
                if isinstance(event, ChatDelta) and isinstance(event.delta.get("content"), str):
                    self.delivered += 1
                yield event
        finally:
            self.reader_left = True
            producer.cancel()
            # Take what it still puts: a cancellation that Python 3.11's wait_for
            # swallowed must not leave it blocked on a queue nobody reads.
            while not producer.done():
                while not self.queue.empty():
                    self.queue.get_nowait()
                await asyncio.wait([producer], timeout=0.05)
            with contextlib.suppress(asyncio.CancelledError):
                await producer


@dataclass
class SentChoice:
    """What one choice has sent: its content and its tool calls (by their index).
    While replaying, `lengths` counts how much of each part the new answer repeated."""

    content: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)

    def add(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("content"), str):
            self.content += delta["content"]
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            known = self.calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
            known["name"] = function.get("name") or known["name"]
            known["arguments"] += function.get("arguments") or ""

    def repeat(self, part: str, sent: str, text: str) -> str | None:
        """The end of `text` past what was `sent` of `part`, "" when all of it was
        sent, None when it contradicts what was sent."""
        start = self.lengths.get(part, 0)
        overlap = sent[start : start + len(text)]
        if not text.startswith(overlap):
            return None
        self.lengths[part] = start + len(text)
        return text[len(overlap) :]


def diverged(model: ModelSpec) -> NoReturn:
    raise ProviderError(
        FailureKind.UNRESUMABLE,
        f"{model.model_id}'s answer differs from the part already streamed; it cannot continue it",
    )


def choices_of(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
