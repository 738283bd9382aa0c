"""The embedded servers stop with the last process using them, through the real launcher
in a data folder of the test's own: Ctrl-C on `run`; a launcher killed with SIGKILL
leaves them running, and the next one reuses them and stops them on Ctrl-C; a hangup
stops them; `make clean` refuses while they are used and stops what a killed process left.

The other tests hold the servers with `exec` (a process that sleeps) rather than `run`:
both go through `development_environment`, the same start and stop; `run` adds its
children, covered by the Ctrl-C test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs in the lock file
import pytest

from aiaas import embedded

ROOT = Path(__file__).resolve().parents[2]
# What the tests' own process has that a fresh shell would not.
INHERITED = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")
HOLDING = ["exec", "--", sys.executable, "-c", "print('holding', flush=True); import time; time.sleep(600)"]
# Ctrl-C: children get 3 s, then SIGTERM and up to 10 s (aiaas/launcher.py), then the servers stop.
STOP_SECONDS = 30.0
RUN_START_SECONDS = 180.0


class Launcher:
    def __init__(self, argv: list[str], data_dir: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our launcher
                [sys.executable, "-m", "aiaas.launcher", *argv],
                cwd=ROOT,
                env=launcher_environment(data_dir),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def group(self) -> list[psutil.Process]:
        """What is left of its process group (the servers run in sessions of their own)."""
        return [process for process in alive(psutil.process_iter()) if group_of(process) == self.process.pid]


def launcher_environment(data_dir: Path) -> dict[str, str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in INHERITED and not name.startswith(("AIAAS_", "PYTEST_"))
    }
    return {
        **environ,
        "AIAAS_DATA_DIR": str(data_dir),
        "PORT": str(free_port()),
        "SIMULATED_PROVIDER_PORT": str(free_port()),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def alive(processes: Iterator[psutil.Process]) -> list[psutil.Process]:
    found = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def processes_using(data_dir: Path) -> list[str]:
    """Every live process naming the folder on its command line: the postmaster, redis-server."""
    found = []
    for process in alive(psutil.process_iter()):
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if str(data_dir) in command:
            found.append(command)
    return found


def server_pids(data_dir: Path) -> list[int]:
    return sorted(server.process.pid for server in embedded.server_processes(data_dir))


def make_clean(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our Makefile
        ["make", "--no-print-directory", "-C", str(ROOT), "clean"],  # noqa: S607 - make from PATH, as a user runs it
        env=launcher_environment(data_dir),
        capture_output=True,
        text=True,
        timeout=STOP_SECONDS + 30,
        check=False,
    )


@pytest.fixture(scope="module")
def initialized_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder the launcher initialized (initdb) and left with its servers stopped."""
    folder = tmp_path_factory.mktemp("initialized") / "data"
    subprocess.run(
        [sys.executable, "-m", "aiaas.launcher", "exec", "--", "true"],
        cwd=ROOT,
        env=launcher_environment(folder),
        check=True,
        timeout=RUN_START_SECONDS,
    )
    assert processes_using(folder) == []
    return folder


@pytest.fixture
def data_dir(initialized_data_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the initialized folder (initdb costs seconds); what a failed test left running is stopped."""
    folder = tmp_path / "data"
    # cp -a keeps the owner: as root, PostgreSQL runs as pgserver's own user.
    subprocess.run(["cp", "-a", str(initialized_data_dir), str(folder)], check=True)  # noqa: S603, S607
    yield folder
    embedded.stop_servers(folder)


@pytest.fixture
def launch(data_dir: Path) -> Iterator[Callable[[list[str]], Launcher]]:
    """Start the launcher on the test's data folder; each one's process group is killed after the test."""
    launched: list[Launcher] = []

    def start(argv: list[str]) -> Launcher:
        launched.append(Launcher(argv, data_dir, data_dir.parent / f"launcher-{len(launched)}.log"))
        return launched[-1]

    yield start
    for launcher in launched:
        with contextlib.suppress(ProcessLookupError):
            launcher.signal_group(signal.SIGKILL)
        launcher.process.wait()


def test_ctrl_c_on_run_stops_its_children_and_the_embedded_servers(
    data_dir: Path, launch: Callable[[list[str]], Launcher]
) -> None:
    run = launch(["run"])
    run.wait_for("(Ctrl-C stops everything)", RUN_START_SECONDS)
    assert len(server_pids(data_dir)) == 2
    assert len(run.group()) > 5  # the launcher, uvicorn, two workers and their pools, beat, the provider

    run.signal_group(signal.SIGINT)

    assert run.process.wait(timeout=STOP_SECONDS) == 0
    assert run.group() == []
    assert processes_using(data_dir) == []


def test_servers_a_killed_launcher_left_are_reused_and_stopped_by_the_next_one(
    data_dir: Path, launch: Callable[[list[str]], Launcher]
) -> None:
    killed = launch(HOLDING)
    killed.wait_for("holding", STOP_SECONDS)
    servers = server_pids(data_dir)
    killed.signal_group(signal.SIGKILL)
    killed.process.wait(timeout=STOP_SECONDS)
    assert server_pids(data_dir) == servers

    next_one = launch(HOLDING)
    next_one.wait_for("holding", STOP_SECONDS)
    assert "reusing the embedded servers" in next_one.output()
    assert server_pids(data_dir) == servers
    next_one.signal_group(signal.SIGINT)

    next_one.process.wait(timeout=STOP_SECONDS)
    assert next_one.group() == []
    assert processes_using(data_dir) == []


def test_a_closed_terminal_stops_the_servers(data_dir: Path, launch: Callable[[list[str]], Launcher]) -> None:
    holder = launch(HOLDING)
    holder.wait_for("holding", STOP_SECONDS)

    holder.signal_group(signal.SIGHUP)

    holder.process.wait(timeout=STOP_SECONDS)
    assert processes_using(data_dir) == []


def test_make_clean_refuses_while_the_servers_are_used_and_stops_what_a_killed_process_left(
    data_dir: Path, launch: Callable[[list[str]], Launcher]
) -> None:
    holder = launch(HOLDING)
    holder.wait_for("holding", STOP_SECONDS)

    refused = make_clean(data_dir)

    assert refused.returncode != 0
    assert f"in use under {data_dir} (pid {holder.process.pid})" in refused.stderr
    assert len(server_pids(data_dir)) == 2
    assert (data_dir / "postgres" / "PG_VERSION").exists()

    holder.signal_group(signal.SIGKILL)
    holder.process.wait(timeout=STOP_SECONDS)
    cleaned = make_clean(data_dir)

    assert cleaned.returncode == 0, cleaned.stderr
    assert not data_dir.exists()
    assert processes_using(data_dir) == []


def test_only_the_process_that_joined_holds_the_servers(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked copy of a holder (a pool worker) leaving does not stop the servers; a holder
    whose pid now belongs to another process (its start time differs) holds nothing."""
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("REDIS_URL")
    services = embedded.start(data_dir)
    servers = server_pids(data_dir)

    child = os.fork()
    if child == 0:
        services.stop()
        os._exit(0)
    os.waitpid(child, 0)

    assert server_pids(data_dir) == servers
    with (data_dir / embedded.HOLDERS).open("a") as holders:
        holders.write(f"{os.getppid()} 1.0\n")
    services.stop()

    assert processes_using(data_dir) == []


def test_a_grown_append_only_file_is_rewritten_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each short-lived server appended to one file that Redis never rewrote (it does so
    only when the file doubles within one server's life): it reached 562 MB for 2 MB
    of data. A start over the size rewrites it to the data it holds."""
    import redis

    redis_dir = tmp_path / "redis"
    url = embedded.start_redis(redis_dir)
    socket_path, aof = url.removeprefix("unix://"), redis_dir / "appendonly.aof"
    try:
        client = redis.Redis(unix_socket_path=socket_path)
        for _ in range(2_000):
            client.set("counter", "x" * 100)
        client.close()
        embedded.stop_servers(tmp_path)
        grown = aof.stat().st_size
        monkeypatch.setattr(embedded, "AOF_REWRITE_BYTES", grown // 2)

        embedded.start_redis(redis_dir)

        client = redis.Redis(unix_socket_path=socket_path)
        deadline = time.monotonic() + 10
        while aof.stat().st_size >= grown // 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert aof.stat().st_size < grown // 10
        assert client.get("counter") == b"x" * 100
    finally:
        embedded.stop_servers(tmp_path)
