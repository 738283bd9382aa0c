"""Real servers for tests: an ASGI app served by uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
# OUTBOUND_DEFAULT_PORTS for tests whose tools or URLs reach these servers: the default
# ports and the ephemeral ones they listen on.
LOOPBACK_SERVER_PORTS = ["80", "443", "1024-65535"]


@contextmanager
def serving(build: Callable[[str, int], uvicorn.Server], ready_path: str) -> Iterator[str]:
    """Serve `build(host, port)` on a free 127.0.0.1 port; yield its root URL.

    The server answers `ready_path` before the URL is yielded, and is stopped
    (and its port freed) on exit. Safe in a session-scoped fixture.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Binding here, not in uvicorn, gives the port before the server starts and no race for it.
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    server = build(host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    root_url = f"http://{host}:{port}"
    try:
        wait_until_answering(root_url + ready_path, thread)
        yield root_url
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        listener.close()
        if thread.is_alive():
            raise RuntimeError(f"The server at {root_url} did not stop.")


def wait_until_answering(url: str, thread: threading.Thread) -> None:
    """Return once GET `url` answers below 500; raise if the server dies or stays silent."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline and thread.is_alive():
            try:
                if client.get(url).status_code < httpx.codes.INTERNAL_SERVER_ERROR:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"The server at {url} did not start.")


@contextmanager
def running_platform() -> Iterator[str]:
    """The platform's own ASGI application (gateway, Django, Channels); yields its root URL."""

    def build(host: str, port: int) -> uvicorn.Server:
        config = uvicorn.Config(
            "aiaas.asgi:application",
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # What the launcher and docker/compose.yaml serve with (slow clients).
            http="aiaas.http_protocol:BoundedHeadersProtocol",
            timeout_keep_alive=5,
            proxy_headers=False,
        )
        return uvicorn.Server(config)

    with serving(build, "/healthz") as url:
        yield url
