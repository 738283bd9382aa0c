"""The supply chain (docs/deploy.md, "Supply chain"; docs/decisions/0044): hashed locks
that hold every package the code imports and no torch, the advisory audit with its
offline path, test-only GPL code kept out of the image, and the licence report."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("dev.lock", "runtime.lock")
# An import line: `from module import ...` or `import a.b, c as d`.
IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+([A-Za-z_][\w.]*)[ \t]+import\b|import[ \t]+([^\n#;]+))", re.MULTILINE
)
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)
# Direct pins that no module imports, and why each is there.
NOT_IMPORTED = {
    "channels-redis": "Channels' layer, named in settings (CHANNEL_LAYERS)",
    "whitenoise": "static files middleware, named in settings",
    "drf-spectacular-sidecar": "Swagger UI's files, an app named in settings",
    "chdb": "ClickHouse in process, pytest.importorskip('chdb') in analytics/tests",
    "django-storages": "the S3 storage backend, named in settings",
    "boto3": "django-storages' S3 client",
    "lxml-html-clean": "imported by justext (under trafilatura); lxml no longer ships it",
    "pytest-xdist": "pytest -n",
    "ruff": "make lint",
    "mypy": "make typecheck",
    "django-stubs": "mypy's Django plugin",
    "djangorestframework-stubs": "mypy's DRF plugin",
    "types-jsonschema": "jsonschema's types for mypy",
    "uv": "make lock",
    "pip-audit": "make audit",
}
FIRST_PARTY = {path.name for path in ROOT.iterdir() if path.is_dir()} | {"conftest", "manage"}
VULNERABLE_REQUESTS = "2.19.1"
ADVISORY = {
    "schema_version": "1.6.0",
    "id": "PYSEC-2018-28",
    "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
    "summary": "Requests sends the Authorization header to an http redirect target",
    "affected": [
        {
            "package": {"name": "requests", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        }
    ],
}


def script(name: str) -> ModuleType:
    """requirements/<name>.py, a script rather than a package, loaded as a module."""
    spec = importlib.util.spec_from_file_location(f"requirements_{name}", REQUIREMENTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(name: str) -> dict[str, str]:
    return {
        normalised(package): version for package, version in PIN.findall((REQUIREMENTS / name).read_text())
    }


def direct_pins() -> set[str]:
    names = ("base.txt", "embedded.txt", "training.txt", "s3.txt", "dev.txt")
    return {package for name in names for package in pins(name)}


@functools.cache
def imported_modules() -> dict[str, set[str]]:
    """Each third-party top-level module an import line names in the repository, with
    the top-level folders importing it (import lines in scripts run as subprocesses count)."""
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith(".") for part in parts):  # .venv, .data, bench/.venv-litellm
            continue
        for from_module, modules in IMPORT.findall(path.read_text()):
            for name in [from_module] if from_module else modules.split(","):
                found.setdefault(name.split()[0].split(".")[0], set()).add(parts[0])
    ignored = FIRST_PARTY | set(sys.stdlib_module_names) | {"__future__"}
    return {module: folders for module, folders in found.items() if module not in ignored}


def audit(locks: list[Path], osv_url: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PIP_AUDIT_OSV_URL": osv_url, "NO_PROXY": "127.0.0.1"}
    return subprocess.run(  # noqa: S603 - our interpreter and script
        [sys.executable, str(REQUIREMENTS / "audit.py"), *map(str, locks)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


class AdvisoryDatabase(BaseHTTPRequestHandler):
    """OSV's query endpoint over one local advisory (requests before 2.20.0)."""

    queries: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.queries.append(query)
        package, version = query["package"]["name"], Version(query["version"])
        affected = package == "requests" and version < Version("2.20.0")
        body = json.dumps({"vulns": [ADVISORY]} if affected else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def advisory_database() -> Iterator[str]:
    AdvisoryDatabase.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AdvisoryDatabase)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()
    server.server_close()


def hashed_lock(path: Path, package: str, version: str) -> Path:
    # pip-audit reads the pin and never downloads it: any well-formed hash will do.
    path.write_text(f"{package}=={version} \\\n    --hash=sha256:{'0' * 64}\n")
    return path


def test_each_lock_hashes_every_package_and_names_its_regeneration() -> None:
    for name in LOCKS:
        text = (REQUIREMENTS / name).read_text()
        entries = re.split(r"^(?=[A-Za-z0-9])", text, flags=re.MULTILINE)[1:]

        assert "#    make lock\n" in text.split("\n\n")[0]
        assert len(entries) == len(pins(name)) > 100
        assert [entry.split(" ")[0] for entry in entries if "--hash=sha256:" not in entry] == []


def test_the_development_lock_holds_the_whole_tree_and_no_torch() -> None:
    development = pins("dev.lock")
    requirements = [Requirement(text) for package in development for text in metadata.requires(package) or []]
    required = {
        normalised(requirement.name)
        for requirement in requirements
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""})
    }

    assert sorted(direct_pins() - set(development)) == []
    assert sorted(name for name in required - set(development) if name not in {"pip", "setuptools"}) == []
    assert sorted(name for name in development if name == "torch" or name.startswith("nvidia-")) == []
    assert "torch" not in pins("runtime.lock")


def test_the_environment_is_the_development_lock() -> None:
    installed = {normalised(package): metadata.version(package) for package in pins("dev.lock")}

    assert {
        package: version for package, version in installed.items() if package not in {"pip", "setuptools"}
    } == {
        package: version
        for package, version in pins("dev.lock").items()
        if package not in {"pip", "setuptools"}
    }


def test_every_module_the_code_imports_comes_from_the_development_lock() -> None:
    distributions = metadata.packages_distributions()
    locked = set(pins("dev.lock"))

    unlocked = {
        module: sorted(distributions.get(module, ["not installed"]))
        for module in imported_modules()
        if not {normalised(name) for name in distributions.get(module, [])} & locked
    }

    assert unlocked == {}


def test_every_direct_pin_is_imported_or_has_a_stated_use() -> None:
    distributions = metadata.packages_distributions()
    modules = imported_modules()
    imported = {normalised(name) for module in modules for name in distributions.get(module, [])}

    assert sorted(direct_pins() - imported - set(NOT_IMPORTED)) == []
    assert sorted(set(NOT_IMPORTED) - direct_pins()) == []


def test_make_installs_the_development_lock_with_hashes_required() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed: requirements/dev.lock\n")[1].split("\n\n")[0]

    assert (
        "pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock"
        in recipe
    )
    assert "pip check" in recipe
    assert "audit" in re.search(r"^check: (.*)$", makefile, re.MULTILINE)[1].split()  # type: ignore[index]


def test_gpl_localstripe_is_for_tests_only_and_never_in_the_image() -> None:
    licences = script("licences")
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    installs = [line.strip() for line in dockerfile.splitlines() if "pip install" in line]

    assert licences.is_gpl(licences.licence_of(metadata.distribution("localstripe")))
    assert "localstripe" in pins("dev.txt")
    assert [name for name in ("base.txt", "s3.txt", "runtime.lock") if "localstripe" in pins(name)] == []
    assert installs == ["RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/runtime.lock"]
    assert "testing" in (ROOT / ".dockerignore").read_text().splitlines()
    assert imported_modules()["localstripe"] == {"testing"}


def test_the_licence_report_is_current() -> None:
    assert (ROOT / "docs" / "licences.md").read_text() == script("licences").report()


def test_no_runtime_dependency_is_gpl() -> None:
    licences = script("licences")

    assert [(name, licence) for name, _, licence in licences.rows() if licences.is_gpl(licence)] == []


@pytest.mark.parametrize(
    ("licence", "gpl"),
    [
        ("GPL-3.0-only", True),
        ("AGPL-3.0-or-later", True),
        ("GNU Affero General Public License v3", True),
        ("GNU General Public License v3 (GPLv3)", True),
        ("LGPL-3.0-only", False),
        ("GNU Lesser General Public License v3 (LGPLv3)", False),
        ("MPL-1.1 OR GPL-2.0-only OR LGPL-2.1-or-later", False),
        ("MIT", False),
    ],
)
def test_gpl_is_told_from_lgpl_and_from_a_choice_of_licences(licence: str, gpl: bool) -> None:
    assert script("licences").is_gpl(licence) is gpl


def test_an_unreachable_advisory_database_is_one_line_and_no_failure(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    lock = hashed_lock(tmp_path / "vulnerable.lock", "requests", VULNERABLE_REQUESTS)

    result = audit([lock], f"http://127.0.0.1:{closed_port}/v1/query")

    assert result.returncode == 0
    assert result.stdout.startswith("pip-audit: not run, the advisory database http://127.0.0.1:")
    assert result.stdout.count("\n") == 1
    assert "Connection refused" in result.stdout


def test_a_known_vulnerability_fails_the_audit(tmp_path: Path, advisory_database: str) -> None:
    lock = hashed_lock(tmp_path / "vulnerable.lock", "requests", VULNERABLE_REQUESTS)

    result = audit([lock], advisory_database)

    assert result.returncode == 1
    assert re.search(
        rf"requests\s+{re.escape(VULNERABLE_REQUESTS)}\s+PYSEC-2018-28\s+2\.20\.0", result.stdout
    )
    assert {
        "package": {"name": "requests", "ecosystem": "PyPI"},
        "version": "2.19.1",
    } in AdvisoryDatabase.queries


def test_a_lock_without_known_vulnerabilities_passes_the_audit(
    tmp_path: Path, advisory_database: str
) -> None:
    lock = hashed_lock(tmp_path / "fixed.lock", "requests", "2.20.0")

    result = audit([lock], advisory_database)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No known vulnerabilities found" in result.stdout + result.stderr
    assert AdvisoryDatabase.queries[-1]["version"] == "2.20.0"
