"""A local Stripe for tests, driven by the real stripe library through STRIPE_API_BASE.

localstripe (PyPI) serves customers, plans, subscriptions, invoices and events,
statefully. What it lacks is added on the same server (the meter event stream
on a second address, as Stripe's is on meter-events.stripe.com), following
Stripe's documented request and response shapes:

- The v2 meter event stream: POST /v2/billing/meter_event_session (secret key)
  gives a token that lasts 15 minutes; POST /v2/billing/meter_event_stream
  takes up to 100 events per request (JSON) with that token, answers 401
  `temporary_session_expired` once it has expired, and 400 to a malformed
  request (nothing of it is kept). As at Stripe, the events of an accepted
  request are validated afterwards: an identifier seen before is dropped
  (counted in `duplicate_meter_events`), an event for a customer this server
  does not know is not counted but kept as an error report
  (`meter_event_errors`, code meter_event_customer_not_found).
- POST /v1/billing/meter_events (one event a call): identifiers are unique; a
  repeated one gets Stripe's 400 ("An event already exists with identifier ...").
- On both: a test can make the next calls answer 429 with a Retry-After, make
  the stream refuse (400) any request carrying an event it picks (as Stripe
  refuses a malformed request), or run a hook on each accepted event (to kill
  a pusher right after Stripe has counted a row, say).
- POST /v1/checkout/sessions and POST /v1/billing_portal/sessions: sessions
  with a URL, recorded with the parameters they were created with; Checkout
  sessions listed (GET, by `customer` and `status`) and expired
  (POST /v1/checkout/sessions/<id>/expire, open ones only).
- POST /v1/subscriptions/<id> as Stripe documents it (localstripe's takes one
  item only, by `plan`): `items` by id with a new `price` (swapped in place,
  the item keeps its id) or `deleted`, or without id (added); one item per
  price; `proration_behavior`, `payment_behavior`, `cancel_at_period_end`,
  `metadata` (a test may run a hook on each, before it is answered).
  Prorations are checked and recorded, not invoiced, with one exception: an
  update that raises the flat price with `proration_behavior=always_invoice`
  charges the customer's default card, and a card that declines charges
  (4000000000000341, localstripe's) or needs authentication fails it as
  Stripe does: `error_if_incomplete` gets a 402 `card_error` and nothing
  changes, `allow_incomplete` (the default) applies the update and leaves the
  subscription `past_due`. Each applied update is recorded
  (`subscription_updates`), and an `Idempotency-Key` is honoured as at Stripe:
  the same key with the same body replays the first answer
  (`Idempotent-Replayed: true`), with another body it is a 400
  `idempotency_error`, and while the first is in flight a 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from localstripe import server as localstripe_server
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Plan,
    Subscription,
    SubscriptionItem,
    store,
    try_convert_to_bool,
)

STARTUP_TIMEOUT_SECONDS = 10.0
SESSION_LIFETIME = timedelta(minutes=15)  # Stripe's, for a meter event session's token
EVENTS_PER_REQUEST = 100  # Stripe's limit for one meter event stream request
IDENTIFIER_MAX_LENGTH = 100


@dataclass
class StripeStandIn:
    url: str = ""
    meter_events_url: str = ""
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_meter_events: int = 0
    meter_event_errors: list[dict[str, Any]] = field(default_factory=list)
    # Meter event session tokens and when each expires; stream requests answered so far.
    meter_event_sessions: dict[str, datetime] = field(default_factory=dict)
    stream_requests: int = 0
    # Answer 400 to a stream request carrying an event for which this returns a message.
    refuse_event: Callable[[dict[str, Any]], str | None] | None = None
    checkout_sessions: list[dict[str, Any]] = field(default_factory=list)
    portal_sessions: list[dict[str, Any]] = field(default_factory=list)
    # Subscription updates applied (not replays): {"subscription", "params", "idempotency_key"}.
    subscription_updates: list[dict[str, Any]] = field(default_factory=list)
    # Idempotency-Key -> (path, SHA-256 of the body, status, answer); None while in flight.
    idempotent_answers: dict[str, tuple[str, str, int, bytes] | None] = field(default_factory=dict)
    # Run on the server's thread after each applied subscription update, before it is answered.
    on_subscription_update: Callable[[dict[str, Any]], None] | None = None
    # Answer the next N meter event calls with 429 and this Retry-After ("" for none).
    rate_limited_calls: int = 0
    retry_after: str = ""
    on_meter_event: Callable[[dict[str, Any]], None] | None = None
    # Added before answering each meter event call (v1 and stream): Stripe's round trip.
    latency_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


# The one stand-in the server's routes answer for (a test process runs one).
current = StripeStandIn()


def error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    code: str = "",
    param: str = "",
    **headers: str,
) -> web.Response:
    details = (
        {"message": message, "type": kind}
        | ({"code": code} if code else {})
        | ({"param": param} if param else {})
    )
    return web.json_response({"error": details}, status=status, headers=headers)


def rate_limited() -> web.Response | None:
    """The 429 a test asked for, if any is left (call with the lock held)."""
    if current.rate_limited_calls <= 0:
        return None
    current.rate_limited_calls -= 1
    headers = {"Retry-After": current.retry_after} if current.retry_after else {}
    return error(429, "Too many requests.", "rate_limit_error", **headers)


async def create_meter_event(request: web.Request) -> web.Response:
    await asyncio.sleep(current.latency_seconds)
    data = await localstripe_server.get_post_data(request) or {}
    payload = data.get("payload") or {}
    if not data.get("event_name") or not payload.get("stripe_customer_id") or "value" not in payload:
        return error(400, "Missing required param: event_name or payload.")
    with current.lock:
        if refusal := rate_limited():
            return refusal
        identifier = data.get("identifier") or f"idmp_{secrets.token_hex(8)}"
        if identifier in current.meter_events:
            current.duplicate_meter_events += 1
            return error(400, f"An event already exists with identifier {identifier}.")
        event = {
            "object": "billing.meter_event",
            "created": int(time.time()),
            "event_name": data["event_name"],
            "identifier": identifier,
            "livemode": False,
            "payload": {key: str(value) for key, value in payload.items()},
            "timestamp": int(data.get("timestamp") or time.time()),
        }
        current.meter_events[identifier] = event
    if current.on_meter_event is not None:
        current.on_meter_event(event)
    return web.json_response(event)


def v2_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def bearer(request: web.Request) -> str:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential if scheme == "Bearer" else ""


async def create_meter_event_session(request: web.Request) -> web.Response:
    """A session for the meter event stream; only a secret key may open one."""
    if not bearer(request).startswith(("sk_", "rk_")):
        return error(401, "Invalid API Key provided.", "invalid_request_error")
    if not request.headers.get("Stripe-Version"):
        return error(400, "v2 requests need a Stripe-Version header.")
    now = datetime.now(UTC)
    token = f"mes_tok_{secrets.token_hex(16)}"
    with current.lock:
        current.meter_event_sessions[token] = now + SESSION_LIFETIME
    session = {
        "id": f"mes_{secrets.token_hex(12)}",
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": v2_time(now),
        "expires_at": v2_time(now + SESSION_LIFETIME),
        "livemode": False,
    }
    return web.json_response(session)


def expire_meter_event_sessions() -> None:
    """As if every session's 15 minutes were over."""
    with current.lock:
        for token in current.meter_event_sessions:
            current.meter_event_sessions[token] = datetime.now(UTC) - timedelta(seconds=1)


def invalid_stream_event(index: int, event: Any) -> tuple[str, str] | None:
    """(param, message) of what makes an event of a stream request malformed, if anything."""
    if not isinstance(event, dict):
        return f"events[{index}]", "An event must be an object."
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        return f"events[{index}].event_name", "Missing required param: event_name."
    payload = event.get("payload")
    if not isinstance(payload, dict) or not all(isinstance(value, str) for value in payload.values()):
        return f"events[{index}].payload", "payload must be a map of strings."
    if "stripe_customer_id" not in payload or "value" not in payload:
        return f"events[{index}].payload", "payload needs stripe_customer_id and value."
    identifier = event.get("identifier", "")
    if not isinstance(identifier, str) or len(identifier) > IDENTIFIER_MAX_LENGTH:
        return f"events[{index}].identifier", "identifier must be a string of at most 100 characters."
    try:
        datetime.fromisoformat(str(event.get("timestamp", v2_time(datetime.now(UTC)))).replace("Z", "+00:00"))
    except ValueError:
        return f"events[{index}].timestamp", "timestamp must be an RFC 3339 date-time."
    return None


def stream_refusal(events: Any) -> web.Response | None:
    """Stripe's answer to a stream request it refuses as a whole, or None."""
    if not isinstance(events, list) or not 1 <= len(events) <= EVENTS_PER_REQUEST:
        return error(400, "events must hold 1 to 100 events.", param="events")
    for index, event in enumerate(events):
        problem = invalid_stream_event(index, event)
        if problem is None and current.refuse_event is not None:
            message = current.refuse_event(event)
            problem = None if message is None else (f"events[{index}]", message)
        if problem is not None:
            return error(400, problem[1], param=problem[0])
    return None


async def create_meter_event_stream(request: web.Request) -> web.Response:
    """Up to 100 events under a session's token; `{}` once they are stored, and each is
    validated afterwards (a known identifier dropped, an unknown customer reported)."""
    await asyncio.sleep(current.latency_seconds)
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return error(400, "The request body must be JSON.")
    with current.lock:
        expires_at = current.meter_event_sessions.get(bearer(request))
        if expires_at is None:
            return error(401, "Invalid meter event session token.", "invalid_request_error")
        if expires_at <= datetime.now(UTC):
            return error(
                401,
                "The meter event session has expired.",
                "temporary_session_expired",
                code="billing_meter_event_session_expired",
            )
        if refusal := rate_limited() or stream_refusal(
            body.get("events") if isinstance(body, dict) else None
        ):
            return refusal
        current.stream_requests += 1
        accepted = [event for event in map(store_stream_event, body["events"]) if event is not None]
    for event in accepted:
        if current.on_meter_event is not None:
            current.on_meter_event(event)
    return web.json_response({})


def store_stream_event(data: dict[str, Any]) -> dict[str, Any] | None:
    """Stripe's later validation of one accepted event (call with the lock held)."""
    now = datetime.now(UTC)
    identifier = data.get("identifier") or f"idmp_{secrets.token_hex(8)}"
    if identifier in current.meter_events:
        current.duplicate_meter_events += 1
        return None
    customer = data["payload"]["stripe_customer_id"]
    if f"customer:{customer}" not in store:
        current.meter_event_errors.append(
            {"code": "meter_event_customer_not_found", "identifier": identifier, "customer": customer}
        )
        return None
    event = {
        "object": "v2.billing.meter_event",
        "created": v2_time(now),
        "event_name": data["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": dict(data["payload"]),
        "timestamp": data.get("timestamp") or v2_time(now),
    }
    current.meter_events[identifier] = event
    return event


async def create_checkout_session(request: web.Request) -> web.Response:
    data = await localstripe_server.get_post_data(request) or {}
    if data.get("mode") not in ("payment", "setup", "subscription") or not data.get("success_url"):
        return error(400, "Missing required param: mode or success_url.")
    session_id = f"cs_test_{secrets.token_hex(12)}"
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": data["mode"],
        "customer": data.get("customer"),
        "client_reference_id": data.get("client_reference_id"),
        "success_url": data["success_url"],
        "cancel_url": data.get("cancel_url"),
        "status": "open",
        "payment_status": "unpaid",
        "subscription": None,
        "url": f"{current.url}/checkout/{session_id}",
        "livemode": False,
        "created": int(time.time()),
    }
    current.checkout_sessions.append({**session, "params": data})
    return web.json_response(session)


def exported_session(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key != "params"}


async def list_checkout_sessions(request: web.Request) -> web.Response:
    query = request.query
    sessions = [
        exported_session(session)
        for session in reversed(current.checkout_sessions)  # newest first, as Stripe lists
        if all(session.get(name) == query[name] for name in ("customer", "status") if name in query)
    ]
    limit = int(query.get("limit") or 10)
    page = {"object": "list", "url": "/v1/checkout/sessions", "data": sessions[:limit]}
    return web.json_response({**page, "has_more": len(sessions) > limit})


async def expire_checkout_session(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    session = next((s for s in current.checkout_sessions if s["id"] == session_id), None)
    if session is None:
        return error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
    if session["status"] != "open":
        return error(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
    session["status"] = "expired"
    return web.json_response(exported_session(session))


async def create_portal_session(request: web.Request) -> web.Response:
    data = await localstripe_server.get_post_data(request) or {}
    if not data.get("customer"):
        return error(400, "Missing required param: customer.")
    session_id = f"bps_{secrets.token_hex(12)}"
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "customer": data["customer"],
        "return_url": data.get("return_url"),
        "url": f"{current.url}/p/session/{session_id}",
        "livemode": False,
        "created": int(time.time()),
    }
    current.portal_sessions.append(session)
    return web.json_response(session)


SUBSCRIPTION_PATH = re.compile(r"^/v1/subscriptions/(sub_\w+)$")
UPDATE_PARAMETERS = frozenset(
    {"items", "proration_behavior", "payment_behavior", "cancel_at_period_end", "metadata", "expand"}
)
PRORATION_BEHAVIORS = frozenset({"always_invoice", "create_prorations", "none"})
PAYMENT_BEHAVIORS = frozenset(
    {"allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"}
)


@web.middleware
async def subscription_updates(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Stripe's subscription update in place of localstripe's (after its auth)."""
    match = SUBSCRIPTION_PATH.match(request.path)
    if request.method != "POST" or match is None:
        return await handler(request)
    return await idempotent(request, lambda: update_subscription(request, match.group(1)))


async def idempotent(request: web.Request, answer: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """Stripe's idempotency: a key's first answer is kept and replayed for the same request."""
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        return await answer()
    digest = hashlib.sha256(await request.read()).hexdigest()
    if key in current.idempotent_answers:
        kept = current.idempotent_answers[key]
        if kept is None:
            return error(
                409, "Another request with this idempotency key is in progress.", "idempotency_error"
            )
        path, body_digest, status, body = kept
        if (path, body_digest) != (request.path, digest):
            message = "Keys for idempotent requests can only be used with the same parameters."
            return error(400, message, "idempotency_error")
        return web.Response(
            body=body, status=status, content_type="application/json", headers={"Idempotent-Replayed": "true"}
        )
    current.idempotent_answers[key] = None
    try:
        response: web.Response = await answer()
    except UserError as refusal:
        response = refusal.to_response()
    except BaseException:
        del current.idempotent_answers[key]  # never answered: not kept
        raise
    body = response.body if isinstance(response.body, bytes) else b""
    current.idempotent_answers[key] = (request.path, digest, response.status, body)
    return response


async def update_subscription(request: web.Request, subscription_id: str) -> web.Response:
    data = await localstripe_server.get_post_data(request) or {}
    unknown = sorted(set(data) - UPDATE_PARAMETERS)
    if unknown:
        return error(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
    expand = data.pop("expand", None)
    subscription = Subscription._api_retrieve(subscription_id)
    if data.get("proration_behavior", "create_prorations") not in PRORATION_BEHAVIORS:
        return error(400, "Invalid proration_behavior.", param="proration_behavior")
    if data.get("payment_behavior", "allow_incomplete") not in PAYMENT_BEHAVIORS:
        return error(400, "Invalid payment_behavior.", param="payment_behavior")
    before = {item.id: item.plan for item in subscription.items._list}
    items = updated_items(subscription, data.get("items") or [])
    if proration_declined(subscription, before, items, data):
        if data.get("payment_behavior") == "error_if_incomplete":
            for item in subscription.items._list:
                item.plan = before[item.id]  # nothing changes
            return error(402, "Your card was declined.", "card_error", code="card_declined")
        subscription.status = "past_due"
    subscription.items._list = items
    if "cancel_at_period_end" in data:
        subscription.cancel_at_period_end = try_convert_to_bool(data["cancel_at_period_end"]) is True
    subscription.metadata = {**(subscription.metadata or {}), **(data.get("metadata") or {})}
    current.subscription_updates.append(
        {
            "subscription": subscription_id,
            "params": data,
            "idempotency_key": request.headers.get("Idempotency-Key"),
        }
    )
    answer = subscription._export(expand=expand)
    if current.on_subscription_update is not None:
        current.on_subscription_update(answer)
    return web.json_response(answer)


def flat_amount(prices: list[Any]) -> int:
    return sum(price.amount for price in prices if price.usage_type != "metered")


def proration_declined(
    subscription: Any, before: dict[str, Any], items: list[Any], data: dict[str, Any]
) -> bool:
    """Whether the invoice an upgrade makes at once (always_invoice) cannot be paid by
    the customer's default card. `before`: the items' prices before the update."""
    if data.get("proration_behavior") != "always_invoice":
        return False
    if flat_amount([item.plan for item in items]) <= flat_amount(list(before.values())):
        return False  # a credit, or nothing: no payment
    card = Customer._api_retrieve(subscription.customer)._get_default_payment_method_or_source()
    return card is None or bool(card._charging_is_declined() or card._requires_authentication())


def updated_items(subscription: Any, changes: Any) -> list[Any]:
    """The subscription's items once `changes` apply; raises UserError (nothing changed) when
    one names an item the subscription lacks, a price that does not exist, or a price twice."""
    if not isinstance(changes, list):
        raise UserError(400, "items must be a list.")
    items = {item.id: item for item in subscription.items._list}
    prices: dict[str, Any] = {item.id: item.plan for item in items.values()}
    added: list[str] = []
    for index, change in enumerate(changes):
        if not isinstance(change, dict):
            raise UserError(400, f"items[{index}] must be an object.")
        price_id = change.get("price") or change.get("plan")
        item_id = change.get("id")
        if item_id is not None and item_id not in items:
            raise UserError(400, f"No such subscription item: '{item_id}'")
        if try_convert_to_bool(change.get("deleted")) is True and item_id is not None:
            prices.pop(item_id)
        elif price_id and item_id is not None:
            prices[item_id] = Plan._api_retrieve(price_id)
        elif price_id:
            Plan._api_retrieve(price_id)
            added.append(price_id)
        else:
            raise UserError(400, f"items[{index}] needs an id or a price.")
    chosen = [plan.id for plan in prices.values()] + added
    if len(set(chosen)) != len(chosen):
        raise UserError(400, "Cannot add multiple subscription items with the same price.")
    if not chosen:
        raise UserError(400, "A subscription needs at least one item.")
    kept = []
    for item_id, plan in prices.items():
        items[item_id].plan = plan
        kept.append(items[item_id])
    return kept + [SubscriptionItem(subscription=subscription.id, plan=price) for price in added]


ADDED_ROUTES: set[int] = set()  # ids of the apps the routes were added to


def add_routes() -> web.Application:
    app: web.Application = localstripe_server.app
    if id(app) not in ADDED_ROUTES:
        app.router.add_post("/v1/billing/meter_events", create_meter_event)
        app.router.add_post("/v2/billing/meter_event_session", create_meter_event_session)
        app.router.add_post("/v1/checkout/sessions", create_checkout_session)
        app.router.add_get("/v1/checkout/sessions", list_checkout_sessions)
        app.router.add_post("/v1/checkout/sessions/{session_id}/expire", expire_checkout_session)
        app.router.add_post("/v1/billing_portal/sessions", create_portal_session)
        app.middlewares.append(subscription_updates)
        ADDED_ROUTES.add(id(app))
    return app


def meter_events_app() -> web.Application:
    """Stripe's meter events host (meter-events.stripe.com): its own address, and
    session tokens instead of secret keys."""
    app = web.Application()
    app.router.add_post("/v2/billing/meter_event_stream", create_meter_event_stream)
    return app


def free_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    return listener


def address(listener: socket.socket) -> str:
    return "http://{}:{}".format(*listener.getsockname())


@contextmanager
def serving_stripe() -> Iterator[StripeStandIn]:
    """Serve the stand-in on two free 127.0.0.1 ports in a thread; yield it (its `url`
    is the STRIPE_API_BASE to use, its `meter_events_url` the
    STRIPE_METER_EVENTS_API_BASE). localstripe keeps its store in memory only."""
    global current
    store.dump_to_disk = lambda: None  # no shared /tmp pickle
    store.clear()
    listeners = [free_listener(), free_listener()]
    current = StripeStandIn(url=address(listeners[0]), meter_events_url=address(listeners[1]))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runners = [
        web.AppRunner(add_routes(), access_log=None),
        web.AppRunner(meter_events_app(), access_log=None),
    ]

    def run() -> None:
        asyncio.set_event_loop(loop)
        for runner, listener in zip(runners, listeners, strict=True):
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, listener).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(STARTUP_TIMEOUT_SECONDS):
        raise RuntimeError("the Stripe stand-in did not start")
    try:
        yield current
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        for listener in listeners:
            listener.close()
