"""Request bodies and slow clients, through the real server (testing/platform.py):
a body over the limit is a 413 before anything spools it, chunked bodies reach
/api, and connections that trickle headers or bodies are closed."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from django.conf import settings
from starlette.types import Message, Receive, Scope, Send
from uvicorn.importer import import_from_string

import aiaas.asgi
from aiaas.http_protocol import BoundedHeadersProtocol
from aiaas.launcher import child_commands
from aiaas.request_limits import BodyLimits, BoundedBodyMiddleware
from testing.tenants import TenantFixture

HUNDRED_MB = 100 * 1024 * 1024


class SpoolSpy:
    """Counts the temporary files Django's ASGI handler spools request bodies into."""

    def __init__(self) -> None:
        self.created: list[tempfile.SpooledTemporaryFile[bytes]] = []


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SpoolSpy]:
    spy = SpoolSpy()
    real = tempfile.SpooledTemporaryFile

    def spooled_file(*args: Any, **kwargs: Any) -> tempfile.SpooledTemporaryFile[bytes]:
        created = real(*args, **kwargs)
        spy.created.append(created)
        return created

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", spooled_file)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # anything written to disk lands here
    yield spy
    assert list(tmp_path.iterdir()) == []


def open_socket(platform_url: str) -> socket.socket:
    parts = urlsplit(platform_url)
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the one response on `sock`, read until the server closes it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", ["/api/v1/keys", "/v1/chat/completions"])
def test_a_100_mb_body_is_refused_with_413_before_anything_reads_it(
    platform_url: str, spooled: SpoolSpy, path: str, tenant: TenantFixture
) -> None:
    with open_socket(platform_url) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {tenant.admin_key}\r\n"
            f"Content-Length: {HUNDRED_MB}\r\n\r\n".encode()
        )
        status, headers, body = read_response(sock)

    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body) == {
        "error": {
            "message": "The request body exceeds 2097152 bytes.",
            "type": "invalid_request_error",
            "code": "request_too_large",
            "param": None,
        }
    }
    assert spooled.created == []


def test_a_chunked_body_over_the_limit_is_refused_with_413_before_django_sees_it(
    platform_url: str, spooled: SpoolSpy
) -> None:
    chunk = b"x" * 65536
    with open_socket(platform_url) as sock:
        sock.sendall(
            b"POST /api/v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(2 * 1024 * 1024 // len(chunk)):  # exactly the limit
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        # One byte more. (A client still sending when the server closes may see a reset
        # instead of the 413, as with any server that does not read what it refuses.)
        sock.sendall(b"1\r\nx\r\n0\r\n\r\n")
        status, _, body = read_response(sock)

    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert spooled.created == []


def test_a_body_within_the_limit_reaches_django_in_memory(platform_url: str, spooled: SpoolSpy) -> None:
    response = httpx.post(
        f"{platform_url}/api/v1/keys",
        json={"name": "n" * 1_500_000},
        headers={"Host": "localhost", "Authorization": f"Bearer aiaas_000000000000_{'x' * 40}"},
        timeout=10,
    )

    assert response.status_code == 401
    assert len(spooled.created) == 1
    assert spooled.created[0]._rolled is False  # type: ignore[attr-defined]


def test_a_chunked_json_post_to_the_keys_api_creates_the_key(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    name = f"chunked-{time.monotonic_ns()}"
    payload = json.dumps({"name": name, "scopes": ["read"]}).encode()

    def chunks() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    response = httpx.post(
        f"{platform_url}/api/v1/keys",
        content=chunks(),
        headers={
            "Host": "localhost",
            "Authorization": f"Bearer {serving_tenant.admin_key}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name
    assert response.json()["scopes"] == ["read"]


@pytest.fixture
def one_second_body_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    middleware = aiaas.asgi.bounded_django
    monkeypatch.setattr(middleware, "limits", BodyLimits(middleware.limits.max_bytes, 1.0))


def trickle_until_answered(sock: socket.socket, trickle: bytes, limit_seconds: float) -> tuple[bytes, float]:
    """Send `trickle` every 0.2 s until the server answers or closes; what it said and when."""
    started = time.monotonic()
    sock.settimeout(0.2)
    answered = b""
    try:
        while time.monotonic() - started < limit_seconds:
            sock.sendall(trickle)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            answered += chunk
            break  # answered, or closed
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            answered += chunk
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed: what matters is when
    return answered, time.monotonic() - started


@pytest.mark.usefixtures("one_second_body_deadline")
def test_a_trickled_body_is_answered_408_and_closed_within_the_deadline(platform_url: str) -> None:
    with open_socket(platform_url) as sock:
        sock.sendall(
            b"POST /api/v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        answered, closed_after = trickle_until_answered(sock, b" ", limit_seconds=5)

    assert answered.startswith(b"HTTP/1.1 408 ")
    assert json.loads(answered.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    # The server's clock starts when the headers arrive, a moment before this one does.
    assert 0.9 <= closed_after < 2.5


def test_a_trickled_body_on_v1_is_answered_408_by_the_gateway_with_its_headers(
    platform_url: str, tenant: TenantFixture, settings: Any
) -> None:
    settings.REQUEST_BODY_TIMEOUT_SECONDS = 1.0
    with open_socket(platform_url) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {tenant.admin_key}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        answered, took = trickle_until_answered(sock, b" ", limit_seconds=5)

    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"x-request-id: req_" in head
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert 1.0 <= took < 2.5


def test_trickled_headers_are_closed_within_the_deadline(platform_url: str, settings: Any) -> None:
    settings.REQUEST_HEADERS_TIMEOUT_SECONDS = 1.0
    with open_socket(platform_url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        answered, closed_after = trickle_until_answered(sock, b"X-Slow: 1\r\n", limit_seconds=5)

    assert answered.startswith(b"HTTP/1.1 408 ")
    # The deadline runs from the connection, a moment before the trickle's clock starts.
    assert 0.9 <= closed_after < 2.5


def test_headers_over_the_size_cap_are_refused(platform_url: str) -> None:
    with open_socket(platform_url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"y" * 70_000 + b"\r\n")
        answered = sock.recv(65536)

    assert answered.startswith(b"HTTP/1.1 431 ")


def test_a_keep_alive_connection_serves_requests_within_the_header_deadline(
    platform_url: str, settings: Any
) -> None:
    settings.REQUEST_HEADERS_TIMEOUT_SECONDS = 1.0
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with open_socket(platform_url) as sock:
        answers = []
        for _ in range(3):
            sock.sendall(request)
            answers.append(sock.recv(65536))
            time.sleep(0.6)  # 1.8 s on one connection, each request's headers on time

    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 200 OK"] * 3


def test_every_uvicorn_we_start_serves_with_the_header_deadline() -> None:
    web = child_commands("python")["web"]
    compose = yaml.safe_load((Path(settings.BASE_DIR) / "docker" / "compose.yaml").read_text())

    assert web[web.index("--http") + 1] == "aiaas.http_protocol:BoundedHeadersProtocol"
    assert web[web.index("--timeout-keep-alive") + 1] == "5"
    assert "--http=aiaas.http_protocol:BoundedHeadersProtocol" in compose["services"]["web"]["command"]
    assert "--timeout-keep-alive=5" in compose["services"]["web"]["command"]
    assert import_from_string("aiaas.http_protocol:BoundedHeadersProtocol") is BoundedHeadersProtocol


def test_the_application_gets_the_whole_body_with_its_length_then_the_disconnect() -> None:
    arriving: list[Message] = [
        {"type": "http.request", "body": b'{"a"', "more_body": True},
        {"type": "http.request", "body": b": 1}", "more_body": False},
        {"type": "http.disconnect"},
    ]
    seen: list[Any] = []

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        seen.append(await receive())
        seen.append(await receive())

    async def receive() -> Message:
        return arriving.pop(0)

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing is answered here: {message}")

    scope = {"type": "http", "headers": [(b"host", b"localhost"), (b"transfer-encoding", b"chunked")]}
    asyncio.run(BoundedBodyMiddleware(application, BodyLimits(100, 1.0))(scope, receive, send))

    assert seen == [
        [(b"host", b"localhost"), (b"content-length", b"8")],
        {"type": "http.request", "body": b'{"a": 1}', "more_body": False},
        {"type": "http.disconnect"},
    ]
