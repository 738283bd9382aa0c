"""Start the platform, or run a command, with embedded services when unconfigured.

    python -m aiaas.launcher run            # what `make run` does
    python -m aiaas.launcher exec -- CMD    # CMD with DATABASE_URL/REDIS_URL set
    python -m aiaas.launcher clean          # what `make clean` does

`run` migrates, seeds the demo tenant and serves uvicorn, two Celery workers
(tenant workloads; billing) and Celery beat as children in one foreground
process group, their metrics in one folder they share (PROMETHEUS_MULTIPROC_DIR,
emptied at start; docs/observability.md). Ctrl-C (SIGINT to the group), closing
the terminal (SIGHUP) or SIGTERM to this process stops all of them, then the
embedded services unless another process still uses them (aiaas/embedded.py).
`clean` deletes the data folder, stopping the servers a killed process left
running; it refuses while a live process uses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from aiaas import embedded, queues
from aiaas.secret_keys import development_secret_key

SHUTDOWN_GRACE_SECONDS = 10.0
# Ctrl-C reaches the whole process group; give children this long to exit on it.
SIGNAL_PROPAGATION_SECONDS = 3.0
# prometheus_client's multiprocess folder (aiaas/observability/exposition.py).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Set in a process's environment when it runs on the embedded services.
EMBEDDED_MARKER = "AIAAS_EMBEDDED_SERVICES"


def worker_command(python: str, name: str, queue_names: Sequence[str], concurrency: str) -> list[str]:
    return [
        python,
        "-m",
        "celery",
        "-A",
        "aiaas",
        "worker",
        "--hostname",
        f"{name}@%h",
        "--queues",
        ",".join(queue_names),
        "--concurrency",
        concurrency,
        "--loglevel",
        "INFO",
    ]


def child_commands(python: str) -> dict[str, list[str]]:
    """The children `run` serves. Two workers: platform work (the usage flush, meter
    pushes, webhooks) apart from tenant workloads, so runs cannot starve the ledger;
    their queues come from aiaas/queues.py, shared with the settings (this process
    starts the embedded services before any settings could be read). Beat's
    scheduler is read from the settings (CELERY_BEAT_SCHEDULER)."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    return {
        "web": [
            python,
            "-m",
            "uvicorn",
            "aiaas.asgi:application",
            "--host",
            host,
            "--port",
            port,
            # Slow clients: headers must arrive within REQUEST_HEADERS_TIMEOUT_SECONDS
            # (aiaas/http_protocol.py), idle keep-alive connections close after 5 s.
            "--http",
            "aiaas.http_protocol:BoundedHeadersProtocol",
            "--timeout-keep-alive",
            "5",
            # Ours (aiaas/access_log.py, ACCESS_LOG) replaces uvicorn's, which logs query strings.
            "--no-access-log",
            # Forwarded headers are aiaas/proxies.py's (TRUSTED_PROXIES); uvicorn's believes 127.0.0.1.
            "--no-proxy-headers",
        ],
        "worker": worker_command(
            python, "tenant", queues.tenant_queues(os.environ), os.environ.get("CELERY_CONCURRENCY", "2")
        ),
        "billing-worker": worker_command(
            python, "billing", queues.PLATFORM_QUEUES, os.environ.get("CELERY_BILLING_CONCURRENCY", "1")
        ),
        "provider": [
            python,
            "manage.py",
            "simulated_provider",
            "--host",
            "127.0.0.1",
            "--port",
            os.environ.get("SIMULATED_PROVIDER_PORT", "8001"),
            "--ttft-ms",
            os.environ.get("SIMULATED_TTFT_MS", "150"),
            "--tokens-per-second",
            os.environ.get("SIMULATED_TOKENS_PER_SECOND", "40"),
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "aiaas",
            "beat",
            "--loglevel",
            "INFO",
        ],
    }


def stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Let children that got the terminal's Ctrl-C finish, then SIGTERM, then SIGKILL."""
    for signum, grace in ((None, SIGNAL_PROPAGATION_SECONDS), (signal.SIGTERM, SHUTDOWN_GRACE_SECONDS)):
        running = [process for process in children.values() if process.poll() is None]
        for process in running:
            if signum is not None:
                process.send_signal(signum)
        deadline = time.monotonic() + grace
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in children.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def fresh_metrics_dir(path: Path) -> str:
    """An empty folder for the children's metrics: values of an earlier run's processes must not add up."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def serve(environ: dict[str, str]) -> int:
    python = sys.executable
    subprocess.run([python, "manage.py", "bootstrap", "--demo"], env=environ, check=True)
    children = {
        name: subprocess.Popen(command, env=environ) for name, command in child_commands(python).items()
    }
    print(
        f"aiaas: serving http://localhost:{environ.get('PORT', '8000')} (Ctrl-C stops everything)", flush=True
    )
    try:
        while True:
            for name, process in children.items():
                if process.poll() is not None:
                    print(f"aiaas: {name} exited with {process.returncode}; stopping", flush=True)
                    return process.returncode
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        stop_children(children)


def run_to_completion(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process`; on Ctrl-C or SIGTERM, pass it on and let it clean up first."""
    try:
        return process.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=SHUTDOWN_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


@contextlib.contextmanager
def development_environment(*, always_keep_secret_key: bool = False) -> Iterator[dict[str, str]]:
    """This process's environment plus the embedded services (started, or joined
    when running) for whatever of DATABASE_URL / REDIS_URL is unset, and the
    development SECRET_KEY kept under the data folder when it runs on them (or
    always, for `make run` / `make test`). The services are left on exit; the
    last process to leave stops them."""
    services = embedded.start()
    environ = {**os.environ, **services.environ}
    if services.environ:
        environ[EMBEDDED_MARKER] = "1"
    if services.environ or always_keep_secret_key:
        environ.setdefault("SECRET_KEY", development_secret_key(services.data_dir))
    try:
        yield environ
    finally:
        services.stop()


def clean() -> int:
    try:
        embedded.reset()
    except embedded.ServicesInUseError as error:
        print(f"aiaas: {error}", file=sys.stderr)
        return 1
    return 0


def raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in {"run", "exec", "clean"}:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "clean":
        return clean()
    # SIGINT explicitly too: a shell starting us in the background ignores it. SIGHUP (the
    # terminal closed) would otherwise end us before the embedded servers are stopped.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_keyboard_interrupt)
    try:
        with development_environment(always_keep_secret_key=True) as environ:
            environ.setdefault("AIAAS_PROFILE", "development")  # aiaas/profiles.py
            if argv[0] == "run":
                environ.setdefault(
                    METRICS_DIR_VARIABLE, fresh_metrics_dir(embedded.default_data_dir() / "prometheus")
                )
                return serve(environ)
            command = list(argv[2:] if argv[1:2] == ["--"] else argv[1:])
            return run_to_completion(subprocess.Popen(command, env=environ))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
