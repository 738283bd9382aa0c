"""Audit hashed lock files with pip-audit against the OSV advisory database
(`make audit`, part of `make test`; docs/deploy.md, "Supply chain").

Promises:
- When the database answers, every package pinned in the locks is checked and a
  known vulnerability fails (pip-audit's exit status and table).
- When it cannot be reached (no network, a proxy refusing, DNS failing), one
  line says the audit did not run and the exit status is 0: an offline machine
  can still run the rest of `make test`. pip-audit alone would end in a traceback.
- Nothing is installed or resolved: the locks pin every package with its hashes,
  so pip-audit reads them as they are (`--disable-pip --no-deps`).

PIP_AUDIT_OSV_URL names another OSV-compatible endpoint (a mirror, or the tests'
local advisory server); pip-audit reads the same variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_OSV_URL = "https://api.osv.dev/v1/query"
PROBE_TIMEOUT_SECONDS = 10
# An OSV query for a package that exists; any well-formed answer means the database is up.
PROBE_QUERY = {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "23.2.1"}


def osv_url() -> str:
    return os.environ.get("PIP_AUDIT_OSV_URL", DEFAULT_OSV_URL)


def unreachable_reason(url: str) -> str | None:
    """Why the advisory database at `url` cannot be queried, or None when it answers."""
    request = urllib.request.Request(  # noqa: S310 - https, or PIP_AUDIT_OSV_URL
        url,
        data=json.dumps(PROBE_QUERY).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as response:  # noqa: S310
            json.load(response)
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return str(getattr(error, "reason", error)) or type(error).__name__
    return None


def pip_audit_command(locks: list[str], url: str) -> list[str]:
    requirements = [argument for lock in locks for argument in ("-r", lock)]
    return [
        str(Path(sys.executable).with_name("pip-audit")),
        "--vulnerability-service",
        "osv",
        "--osv-url",
        url,
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--desc",
        "off",
        *requirements,
    ]


def main(locks: list[str]) -> int:
    url = osv_url()
    reason = unreachable_reason(url)
    if reason is not None:
        print(f"pip-audit: not run, the advisory database {url} cannot be reached ({reason})")
        return 0
    return subprocess.run(pip_audit_command(locks, url), check=False).returncode  # noqa: S603


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} LOCK [LOCK ...]")
    sys.exit(main(sys.argv[1:]))
