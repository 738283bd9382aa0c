"""Stream tokens travel in WebSocket URLs (`?token=`); the web process's log never
holds one. The web server is started exactly as the launcher starts it, and its
real output is read: uvicorn's handshake lines and our access lines alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from aiaas.launcher import METRICS_DIR_VARIABLE, child_commands
from aiaas.tests.test_metrics_multiprocess import database_url_of_this_run, free_port, wait_until_live
from realtime import streams
from realtime.tests.clients import open_socket, read_all
from realtime.tests.test_stream_socket import mint, refusal, stream_url
from testing.tenants import TenantFixture


@contextmanager
def launched_web_process(log: Path, metrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The launcher's `web` command (uvicorn, its options and our logging), its output to `log`."""
    port = free_port()
    monkeypatch.setenv("HOST", "127.0.0.1")  # read by the launcher's command
    monkeypatch.setenv("PORT", str(port))
    command = child_commands(sys.executable)["web"]
    environ = {**os.environ, "DATABASE_URL": database_url_of_this_run()}
    environ[METRICS_DIR_VARIABLE] = str(metrics_dir)
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the launcher's own command
            command,
            cwd=settings.BASE_DIR,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_live(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_stream_token_in_a_socket_url_never_reaches_the_web_processs_log(
    gateway: str, serving_tenant: TenantFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream_id = streams.new_stream_id("job")
    streams.publish(serving_tenant.tenant.schema_name, stream_id, {"type": "progress"}, final=True)
    log = tmp_path / "web.log"

    with launched_web_process(log, tmp_path, monkeypatch) as url:
        v1 = f"{url}/v1"
        token = mint(v1, serving_tenant.admin_key, purpose="streams", stream_id=stream_id).json()["token"]

        async def read() -> int:
            async with open_socket(stream_url(v1, stream_id, f"token={token}&after=0")) as connection:
                return len(await read_all(connection))

        assert asyncio.run(asyncio.wait_for(read(), 30)) == 1  # accepted
        assert refusal(stream_url(v1, stream_id, f"token={token}")) == (401, "invalid_stream_token")  # used
        unused = mint(v1, serving_tenant.admin_key, purpose="chat.completions").json()["token"]
        assert httpx.get(f"{url}/livez?token={unused}", timeout=10).status_code == 200

    text = log.read_text()
    assert token not in text
    assert unused not in text
    assert token.removeprefix("st_") not in text
    handshakes = [line for line in text.splitlines() if f"/ws/v1/streams/{stream_id}" in line]
    assert len(handshakes) == 2, text
    assert all("token=[redacted]" in line for line in handshakes), handshakes
    assert "/livez" in text  # the access line of the HTTP request was written, without its token
