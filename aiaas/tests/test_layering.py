"""The import rules the layout rests on (docs/decisions/0011), checked on the
source: a rule broken anywhere fails here, naming the module and the import.

- aiaas/ is shared infrastructure: it imports no domain app (only its
  composition roots, the settings, URLConfs and ASGI entry, wire them).
- Domain code never imports a transport: an app's api/ (DRF), web/
  (dashboard pages) or openai/ (OpenAI-shaped /v1 routes), or the gateway's
  HTTP and WebSocket transports, except the composition roots and other
  transports. (The in-process client,
  gateway.transports.inprocess, is how agents and other platform work call
  the gateway.)
- routing/ is the router only: it never imports the gateway.
- Production code never imports the `testing` package, and images do not ship
  it (nor tests and benches).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_APPS = (
    "accounts",
    "agents",
    "analytics",
    "batches",
    "conversations",
    "billing",
    "flags",
    "gateway",
    "ingestion",
    "realtime",
    "request_logs",
    "routing",
    "tenants",
)
# Modules whose job is to wire everything together.
COMPOSITION_ROOTS = {"aiaas/asgi.py", "aiaas/urls_api.py", "aiaas/urls_public.py", "aiaas/urls_tenant.py"}
# An app's HTTP layers: api/ (DRF), web/ (pages), openai/ (OpenAI-shaped routes, ingestion).
TRANSPORT_PACKAGES = ("api", "web", "openai")


# Test-only code: helpers, app tests, benchmarks and the pytest root configuration.
TEST_ONLY_DIRECTORIES = frozenset({"tests", "testing", "bench"})
TEST_ONLY_FILES = frozenset({"conftest.py"})


def production_modules(directory: Path = ROOT) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_symlink() or path.name == "migrations":
            continue
        if path.is_dir() and path.name not in TEST_ONLY_DIRECTORIES:
            yield from production_modules(path)
        elif path.suffix == ".py" and path.name not in TEST_ONLY_FILES:
            yield path


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def is_transport(module: str) -> bool:
    parts = module.split(".")
    if parts[0] == "gateway":
        # The in-process client is how the platform's own work calls the gateway.
        return parts[1:2] == ["transports"] and parts[2:3] not in ([], ["inprocess"])
    return parts[0] in DOMAIN_APPS and len(parts) > 1 and parts[1] in TRANSPORT_PACKAGES


def is_transport_file(relative: str) -> bool:
    parts = relative.split("/")
    return (
        relative.startswith("gateway/transports/")
        or (len(parts) > 2 and parts[1] in TRANSPORT_PACKAGES)
        or (parts[-1] in {"urls.py", "routing.py"} and parts[0] == "realtime")
    )


def violations() -> Iterator[str]:
    for path in production_modules():
        relative = path.relative_to(ROOT).as_posix()
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "testing":
                yield f"{relative} imports {module}: test helpers are not shipped"
            if relative.startswith("aiaas/") and relative not in COMPOSITION_ROOTS and top in DOMAIN_APPS:
                yield f"{relative} imports {module}: aiaas/ imports no domain app"
            if relative.startswith("routing/") and top == "gateway":
                yield f"{relative} imports {module}: the router does not know the gateway"
            if is_transport(module) and not is_transport_file(relative) and relative not in COMPOSITION_ROOTS:
                yield f"{relative} imports {module}: domain code never imports a transport"


def test_the_layers_import_only_downward() -> None:
    modules = list(production_modules())

    assert ROOT / "manage.py" in modules  # the walk reaches the code
    assert ROOT / "gateway" / "service.py" in modules
    assert sorted(set(violations())) == []


def test_the_image_leaves_the_test_only_code_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert {"testing", "bench", "conftest.py", "**/tests"} <= ignored


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("gateway.transports.http", True),
        ("gateway.transports.websocket", True),
        ("gateway.transports.inprocess", False),
        ("gateway.service", False),
        ("billing.api.views", True),
        ("billing.web", True),
        ("billing.webhooks", False),
        ("tenants.models", False),
    ],
)
def test_transports_are_recognised(module: str, expected: bool) -> None:
    assert is_transport(module) is expected
