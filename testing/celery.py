"""Celery test helpers: a real worker thread, and the app's cached queue table kept as it was."""

from __future__ import annotations

import faulthandler
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker
from pytest_django import DjangoDbBlocker

from aiaas.celery import app

# The Celery app's cached queue table and router (kombu cached properties).
AMQP_CACHES = ("queues", "default_queue", "router")


@contextmanager
def app_queues_restored() -> Iterator[None]:
    """Put the Celery app's queue table back as it was afterwards.

    Starting a worker on chosen queues, and sending to them, builds and changes
    the app's cached queue table (the queues a worker consumes among them); a
    worker started later in the run must not inherit that selection.
    """
    cached = {name: app.amqp.__dict__[name] for name in AMQP_CACHES if name in app.amqp.__dict__}
    selected = cached["queues"]._consume_from if "queues" in cached else None
    try:
        yield
    finally:
        for name in AMQP_CACHES:
            app.amqp.__dict__.pop(name, None)
        app.amqp.__dict__.update(cached)
        if "queues" in cached:
            cached["queues"]._consume_from = selected


@contextmanager
def worker_thread(queue: str, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """A real Celery worker (a thread, solo pool) on the real Redis broker, consuming
    `queue`, with database access; the app's queue table restored afterwards.

    A worker that does not stop within SHUTDOWN_SECONDS once the test's work is done
    is a warning carrying every thread's stack, not a failure of the test: in full
    runs on one machine a browser test's worker (its task long finished) did not
    stop, unexplained yet, while the test itself had passed. The thread is a daemon
    consuming a queue of the test's own."""
    with app_queues_restored(), django_db_blocker.unblock():
        try:
            with start_worker(
                app, pool="solo", perform_ping_check=False, shutdown_timeout=SHUTDOWN_SECONDS, queues=[queue]
            ):
                yield
        except RuntimeError as error:
            if not str(error).startswith(WORKER_DID_NOT_STOP):
                raise
            warnings.warn(f"{error}\n{thread_stacks()}", ResourceWarning, stacklevel=2)


WORKER_DID_NOT_STOP = "Worker thread failed to exit"
# A task still running when the test is done finishes first (on a loaded machine, seconds).
SHUTDOWN_SECONDS = 60


def thread_stacks() -> str:
    with tempfile.TemporaryFile("w+") as dump:
        faulthandler.dump_traceback(dump, all_threads=True)
        dump.seek(0)
        return dump.read()
