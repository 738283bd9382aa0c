"""Announcements that control-plane state changed, to every process within a second.

Feature flags, the degrade level and registry promotions live in PostgreSQL
and are read from a copy cached in each process. Whoever changes one calls
`announce(topic)` after the commit; every process that registered
`on(topic, handler)` runs the handler, which drops or reloads its copy.

One daemon thread per process listens on a single Redis pub/sub channel, so
sync workers and event-loop servers are served alike and no request waits on
it. Pub/sub delivers nothing that was sent while a listener was away: after
losing Redis the listener calls every handler (the state may have changed
unseen) before it listens again. Handlers run on the listener thread: they
must be quick and thread-safe (swap a reference, bump a version). A forked
child (Celery's prefork pool) starts its own listener on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from aiaas.redis_clients import sync_client

logger = logging.getLogger(__name__)

CHANNEL = "aiaas:control"
RECONNECT_SECONDS = 1.0

Handler = Callable[[str], None]

_lock = threading.Lock()
_handlers: dict[str, list[Handler]] = {}
_listener: tuple[int, threading.Thread] | None = None
_subscribed = threading.Event()


def on(topic: str, handler: Handler) -> None:
    """Call `handler(payload)` in this process whenever `topic` is announced, and
    once after every reconnection (with an empty payload)."""
    _check_topic(topic)
    with _lock:
        _handlers.setdefault(topic, []).append(handler)
    _ensure_listening()


def announce(topic: str, payload: str = "") -> None:
    """Tell every listening process that `topic` changed. Call it after the commit
    that changed it (`transaction.on_commit`), or a process may reload the old state."""
    _check_topic(topic)
    sync_client("control").publish(CHANNEL, f"{topic}\n{payload}".encode())


def wait_until_listening(timeout: float = 5.0) -> bool:
    """Whether this process's listener is subscribed (for tests and startup checks)."""
    _ensure_listening()
    return _subscribed.wait(timeout)


def _check_topic(topic: str) -> None:
    if not topic or "\n" in topic:
        raise ValueError(f"a control topic is a non-empty line, got {topic!r}")


def _ensure_listening() -> None:
    global _listener
    with _lock:
        pid = os.getpid()
        if _listener is not None and _listener[0] == pid and _listener[1].is_alive():
            return
        _subscribed.clear()
        thread = threading.Thread(target=_listen, name="control-bus", daemon=True)
        _listener = (pid, thread)
        thread.start()


def _listen() -> None:
    while True:
        try:
            pubsub = sync_client("control").pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(CHANNEL)
                while not pubsub.subscribed:  # Redis confirmed: nothing announced from now on is missed
                    pubsub.get_message(timeout=RECONNECT_SECONDS)
                _subscribed.set()
                _dispatch_all()
                while True:
                    message = pubsub.get_message(timeout=RECONNECT_SECONDS)
                    if message is not None and message.get("type") == "message":
                        _dispatch(message["data"])
            finally:
                _subscribed.clear()
                pubsub.close()
        except (redis.RedisError, OSError) as error:
            logger.warning("control bus lost Redis: %s", error)
            time.sleep(RECONNECT_SECONDS)


def _dispatch(data: bytes) -> None:
    topic, _, payload = data.decode(errors="replace").partition("\n")
    with _lock:
        handlers = list(_handlers.get(topic, ()))
    for handler in handlers:
        _call(handler, payload)


def _dispatch_all() -> None:
    with _lock:
        handlers = [handler for topic_handlers in _handlers.values() for handler in topic_handlers]
    for handler in handlers:
        _call(handler, "")


def _call(handler: Handler, payload: str) -> None:
    try:
        handler(payload)
    except Exception:  # one broken handler must not silence the others or the listener
        logger.exception("control bus handler %r failed", handler)
