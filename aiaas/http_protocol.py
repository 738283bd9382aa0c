"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline and a size cap on request headers.

uvicorn times out idle keep-alive connections but not a request whose headers
trickle in (any byte cancels its keep-alive timer): one client could hold a
connection forever. Here each request's headers must be complete within
REQUEST_HEADERS_TIMEOUT_SECONDS of the connection opening (or of the previous
response) and within MAX_REQUEST_HEADER_BYTES, or the connection is closed.
Bodies have their own deadline (aiaas.request_limits). Served with
`uvicorn --http aiaas.http_protocol:BoundedHeadersProtocol`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
HEADERS_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


class BoundedHeadersProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers_timeout = float(settings.REQUEST_HEADERS_TIMEOUT_SECONDS)
        self.max_header_bytes = int(settings.MAX_REQUEST_HEADER_BYTES)
        self.headers_deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_waiting_for_headers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.headers_deadline is not None:  # still no complete headers after these bytes
            self.header_bytes += len(data)
            if self.header_bytes > self.max_header_bytes:
                self.close_with(HEADERS_TOO_LARGE_RESPONSE)

    def on_headers_complete(self) -> None:
        self.stop_waiting_for_headers()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # self.cycle is the last request parsed: a pipelined one may be under way already.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.await_headers()

    def await_headers(self) -> None:
        self.stop_waiting_for_headers()
        self.header_bytes = 0
        self.headers_deadline = self.loop.call_later(self.headers_timeout, self.headers_timed_out)

    def stop_waiting_for_headers(self) -> None:
        if self.headers_deadline is not None:
            self.headers_deadline.cancel()
            self.headers_deadline = None

    def headers_timed_out(self) -> None:
        self.headers_deadline = None
        self.close_with(REQUEST_TIMEOUT_RESPONSE)

    def close_with(self, response: bytes) -> None:
        self.stop_waiting_for_headers()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()
