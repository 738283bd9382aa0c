"""The control bus carries an announcement to every listening process within a second."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from aiaas import control_bus

LISTENER = """
import sys, threading, django
django.setup()
from aiaas import control_bus
heard = threading.Event()
control_bus.on("test-bus-child", lambda payload: payload == "ping" and heard.set())
assert control_bus.wait_until_listening(5)
print("listening", flush=True)
sys.exit(0 if heard.wait(5) else 1)
"""


def test_an_announcement_reaches_a_handler_in_this_process() -> None:
    received: list[str] = []
    heard = threading.Event()

    def handler(payload: str) -> None:
        if payload:
            received.append(payload)
            heard.set()

    control_bus.on("test-bus-local", handler)
    assert control_bus.wait_until_listening()
    started = time.monotonic()
    control_bus.announce("test-bus-local", "v2")
    assert heard.wait(1.0)
    assert time.monotonic() - started < 1.0
    assert received == ["v2"]


def test_an_announcement_reaches_another_process() -> None:
    child = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "testing.settings"},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "listening"
    control_bus.announce("test-bus-child", "ping")
    assert child.wait(timeout=10) == 0


def test_a_topic_is_one_non_empty_line() -> None:
    with pytest.raises(ValueError, match="control topic"):
        control_bus.announce("two\nlines")
    with pytest.raises(ValueError, match="control topic"):
        control_bus.on("", lambda payload: None)
