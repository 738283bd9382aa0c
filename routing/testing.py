"""Test helpers for the routing app: the simulated provider served for real."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from routing.simulated_provider import SimulatorConfig, build_server

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


@contextmanager
def running_simulated_provider(config: SimulatorConfig | None = None) -> Iterator[str]:
    """Serve the simulated provider on a free 127.0.0.1 port; yield its base URL, ending in /v1.

    The server runs in a background thread, answers before the URL is yielded and
    is stopped (and its port freed) on exit. Safe in a session-scoped fixture.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Binding here, not in uvicorn, gives the port before the server starts and no race for it.
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    server = build_server(config or SimulatorConfig(), host=host, port=port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="simulated-provider", daemon=True
    )
    thread.start()
    root_url = f"http://{host}:{port}"
    try:
        wait_until_answering(root_url, thread)
        yield f"{root_url}/v1"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        listener.close()
        if thread.is_alive():
            raise RuntimeError("The simulated provider did not stop.")


def wait_until_answering(root_url: str, thread: threading.Thread) -> None:
    """Return once GET /v1/models answers 200; raise if the server dies or stays silent."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with httpx.Client(base_url=root_url, timeout=1.0) as client:
        while time.monotonic() < deadline and thread.is_alive():
            try:
                if client.get("/v1/models").status_code == httpx.codes.OK:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"The simulated provider at {root_url} did not start.")
