"""Emails (signup links, invitations, password resets) reach a real SMTP server named
by the environment alone, as a deployment configures it (EMAIL_HOST, EMAIL_PORT, ...)."""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class SmtpReceiver(socketserver.StreamRequestHandler):
    """Enough of SMTP (RFC 5321) for Django's backend: each message's envelope and data."""

    received: list[tuple[list[str], bytes]]

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        recipients: list[str] = []
        self.reply("220 test ESMTP")
        for line in iter(self.rfile.readline, b""):
            verb = line[:4].upper()
            if verb == b"DATA":
                self.reply("354 go on")
                data = b"".join(iter(lambda: self.rfile.readline(), b".\r\n"))
                self.received.append((recipients, data))
                recipients = []
            elif verb == b"RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            self.reply("250 ok")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[tuple[list[str], bytes]]]]:
    received: list[tuple[list[str], bytes]] = []
    handler = type("Handler", (SmtpReceiver,), {"received": received})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1], received
        server.shutdown()


def test_the_smtp_server_is_named_by_the_environment(
    smtp_server: tuple[int, list[tuple[list[str], bytes]]],
) -> None:
    port, received = smtp_server
    environ = {
        **os.environ,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "sendtestemail", "owner@example.com"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert [recipients for recipients, _ in received] == [["owner@example.com"]]
    assert b"Test email from" in received[0][1]
