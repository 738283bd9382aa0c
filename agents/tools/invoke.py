"""Calling a tool: input checked against its manifest, the call made through the
resilience layer (per-attempt timeout, retries with jitter honouring
Retry-After, a circuit breaker per tenant and tool shared through Redis), and
an idempotency key the receiving end uses to apply the call once. HTTP calls go
through the SSRF guard with the tenant's outbound policy narrowed by the tool's
manifest (`allowed_hosts`, `allowed_ports`).

A failed call says whether its effect may have happened (`applied`):
"no" when nothing reached the tool (refused input or target, an open
breaker, a 4xx answer) and "unknown" otherwise; a saga compensates the
"unknown" ones too, since compensations are idempotent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.mail import EmailMessage

from agents.spec import describe, schema_error
from agents.tools.manifests import ToolManifest
from aiaas.outbound import ForbiddenTargetError, Policy, ResponseTooLargeError, request
from aiaas.redis_keys import redis_key
from gateway.resilience import CircuitBreaker, CircuitOpenError, RetryPolicy, parse_retry_after, retry_delay

IDEMPOTENCY_HEADER = "Idempotency-Key"


class ToolCallError(Exception):
    def __init__(self, message: str, *, applied: str) -> None:
        super().__init__(message)
        self.message = message
        self.applied = applied


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def invoke(
    manifest: ToolManifest,
    tool_input: Any,
    idempotency_key: str,
    *,
    breaker: CircuitBreaker,
    tenant_schema: str,
    outbound: Policy,
    retry_policy: RetryPolicy | None = None,
) -> Any:
    """The tool's output for `tool_input`, or ToolCallError. `outbound` is the
    tenant's policy (tenants.selectors.outbound_policy)."""
    problem = schema_error(manifest.input_schema, tool_input)
    if problem is not None:
        raise ToolCallError(f"invalid input for {manifest.name}: {describe(problem)}", applied="no")
    policy = retry_policy or RetryPolicy(max_attempts=manifest.max_attempts, base_delay=0.05, max_delay=1.0)
    # Per tenant: one tenant's failing tool never opens another's breaker.
    key = redis_key("tool", tenant_schema, manifest.name)
    attempt = 0
    while True:
        attempt += 1
        try:
            permit = await breaker.acquire(key)
        except CircuitOpenError:
            raise ToolCallError(
                f"{manifest.name} is failing; its circuit is open",
                applied="no" if attempt == 1 else "unknown",
            ) from None
        try:
            output = await asyncio.wait_for(
                call_once(manifest, tool_input, idempotency_key, outbound), manifest.timeout_seconds
            )
        except (RetryableError, TimeoutError) as error:
            await breaker.record_failure(permit)
            message = str(error) or f"{manifest.name} timed out after {manifest.timeout_seconds}s"
            delay = retry_delay(policy, attempt, getattr(error, "retry_after", None))
            if manifest.implementation == "email":
                # The send runs in a thread that a timeout does not stop: it may still
                # deliver, and a retry could send the message twice. One attempt only.
                delay = None
            if delay is None:
                raise ToolCallError(message, applied="unknown") from None
            await asyncio.sleep(delay)
            continue
        except ToolCallError:
            await breaker.release(permit)
            raise
        except Exception as error:  # KeyError, OSError (SMTP), ...: the effect may have happened
            await breaker.record_failure(permit)
            raise ToolCallError(
                f"{manifest.name} failed: {type(error).__name__}: {error}", applied="unknown"
            ) from None
        except BaseException:
            await breaker.release(permit)
            raise
        await breaker.record_success(permit)
        return check_output(manifest, output)


def check_output(manifest: ToolManifest, output: Any) -> Any:
    if manifest.output_schema is not None:
        problem = schema_error(manifest.output_schema, output)
        if problem is not None:
            raise ToolCallError(
                f"{manifest.name} answered outside its output schema: {problem}", applied="unknown"
            )
    return output


async def call_once(manifest: ToolManifest, tool_input: Any, idempotency_key: str, outbound: Policy) -> Any:
    if manifest.implementation == "email":
        return await sync_to_async(send_email, thread_sensitive=False)(tool_input, idempotency_key)
    if manifest.implementation == "webhook":
        method, url, headers, body = "POST", manifest.endpoint, {}, tool_input
    else:
        method = str(tool_input.get("method", "GET")).upper()
        url, headers, body = tool_input["url"], dict(tool_input.get("headers", {})), tool_input.get("json")
    headers[IDEMPOTENCY_HEADER] = idempotency_key
    try:
        status, response_headers, response_body = await request(
            method,
            url,
            policy=tool_policy(manifest, outbound),
            timeout_seconds=manifest.timeout_seconds,
            max_bytes=settings.AGENT_TOOL_RESPONSE_MAX_BYTES,
            headers=headers,
            json_body=body,
        )
    except ForbiddenTargetError as error:
        raise ToolCallError(f"refused target: {error}", applied="no") from None
    except ResponseTooLargeError as error:  # the call was made: its effect may have happened
        raise ToolCallError(f"{manifest.name}: {error}", applied="unknown") from None
    except aiohttp.ClientError as error:
        raise RetryableError(f"{manifest.name}: {type(error).__name__}: {error}") from None
    if status == 429 or status >= 500:
        raise RetryableError(
            f"{manifest.name} answered {status}", parse_retry_after(response_headers.get("Retry-After"))
        )
    if status >= 400:
        raise ToolCallError(f"{manifest.name} answered {status}: {str(response_body)[:500]}", applied="no")
    if manifest.implementation == "webhook":
        return response_body
    return {"status": status, "body": response_body}


def tool_policy(manifest: ToolManifest, outbound: Policy) -> Policy:
    """The tenant's policy narrowed to the manifest's hosts and ports. Hosts the
    platform exempts (AGENT_TOOL_ALLOWED_HOSTS) and the hosts staff signed into
    the manifest may resolve to private addresses."""
    return outbound.narrowed(
        hosts=manifest.allowed_hosts,
        ports=manifest.allowed_ports,
        exempt_hosts=(*settings.AGENT_TOOL_ALLOWED_HOSTS, *manifest.allowed_hosts),
    )


def send_email(tool_input: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Through Django's email backend. The Message-ID comes from the idempotency
    key, so a resend after a crash is recognisably the same message."""
    message_id = f"<{idempotency_key}@agents.aiaas>"
    recipients = tool_input["to"] if isinstance(tool_input["to"], list) else [tool_input["to"]]
    message = EmailMessage(
        subject=tool_input["subject"],
        body=tool_input["body"],
        to=recipients,
        headers={"Message-ID": message_id},
    )
    message.send()
    return {"message_id": message_id, "to": recipients}
