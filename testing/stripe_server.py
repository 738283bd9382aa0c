"""A local Stripe for tests, driven by the real stripe library through STRIPE_API_BASE.

localstripe (PyPI) serves customers, plans, subscriptions, invoices and events,
statefully. What it lacks is added on the same server, following Stripe's
documented request and response shapes:

- POST /v1/billing/meter_events: identifiers are unique; a repeated one gets
  Stripe's 400 ("An event already exists with identifier ..."). A test can make
  the next calls answer 429 with a Retry-After, or run a hook on each accepted
  event (to kill a pusher right after Stripe has counted a row, say).
- POST /v1/checkout/sessions and POST /v1/billing_portal/sessions: sessions
  with a URL, recorded with the parameters they were created with.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from localstripe import server as localstripe_server
from localstripe.resources import store

STARTUP_TIMEOUT_SECONDS = 10.0


@dataclass
class StripeStandIn:
    url: str = ""
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_meter_events: int = 0
    checkout_sessions: list[dict[str, Any]] = field(default_factory=list)
    portal_sessions: list[dict[str, Any]] = field(default_factory=list)
    # Answer the next N meter event calls with 429 and this Retry-After ("" for none).
    rate_limited_calls: int = 0
    retry_after: str = ""
    on_meter_event: Callable[[dict[str, Any]], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


# The one stand-in the server's routes answer for (a test process runs one).
current = StripeStandIn()


def error(status: int, message: str, kind: str = "invalid_request_error", **headers: str) -> web.Response:
    body = {"error": {"message": message, "type": kind}}
    return web.json_response(body, status=status, headers=headers)


async def create_meter_event(request: web.Request) -> web.Response:
    data = await localstripe_server.get_post_data(request) or {}
    payload = data.get("payload") or {}
    if not data.get("event_name") or not payload.get("stripe_customer_id") or "value" not in payload:
        return error(400, "Missing required param: event_name or payload.")
    with current.lock:
        if current.rate_limited_calls > 0:
            current.rate_limited_calls -= 1
            headers = {"Retry-After": current.retry_after} if current.retry_after else {}
            return error(429, "Too many requests.", "rate_limit_error", **headers)
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


ADDED_ROUTES: set[int] = set()  # ids of the apps the routes were added to


def add_routes() -> web.Application:
    app: web.Application = localstripe_server.app
    if id(app) not in ADDED_ROUTES:
        app.router.add_post("/v1/billing/meter_events", create_meter_event)
        app.router.add_post("/v1/checkout/sessions", create_checkout_session)
        app.router.add_post("/v1/billing_portal/sessions", create_portal_session)
        ADDED_ROUTES.add(id(app))
    return app


@contextmanager
def serving_stripe() -> Iterator[StripeStandIn]:
    """Serve the stand-in on a free 127.0.0.1 port in a thread; yield it (its `url`
    is the STRIPE_API_BASE to use). localstripe keeps its store in memory only."""
    global current
    store.dump_to_disk = lambda: None  # no shared /tmp pickle
    store.clear()
    app = add_routes()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    current = StripeStandIn(url="http://{}:{}".format(*listener.getsockname()))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(app, access_log=None)

    def run() -> None:
        asyncio.set_event_loop(loop)
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
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        listener.close()
