"""Promotion moves an entry draft -> staging -> production; rollback makes the
previous production version current again; every change is audited and announced."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection, connections, transaction

from agents.tools.manifests import load_registry
from aiaas import control_bus
from registry import selectors, services
from registry.models import AuditEvent, Entry, Kind, State
from registry.tests.factories import create_tool, tool_manifest, trusted
from routing.catalog import Catalog, CatalogCache
from testing.database import committed

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings: Any, key: Ed25519PrivateKey) -> Callable[[str], Entry]:
    """Make a signed version of tool `lookup` with that endpoint and promote it to production."""
    trusted(settings, staff=key)
    settings.AIAAS_PROFILE = "production"

    def make(endpoint: str) -> Entry:
        entry = create_tool(tool_manifest("lookup", endpoint), key)
        return services.promote(services.promote(entry, actor="ops@example.com"), actor="ops@example.com")

    return make


def states() -> list[tuple[int, str]]:
    return list(
        Entry.objects.filter(kind=Kind.TOOL, name="lookup")
        .order_by("version")
        .values_list("version", "state")
    )


def test_an_entry_moves_one_state_at_a_time(key: Ed25519PrivateKey, settings: Any) -> None:
    trusted(settings, staff=key)
    entry = create_tool(tool_manifest(), key)

    staged = services.promote(entry, actor="ops@example.com")
    live = services.promote(staged, actor="ops@example.com")

    assert (staged.state, live.state) == (State.STAGING, State.PRODUCTION)
    assert live.promoted_at is not None
    with pytest.raises(services.RegistryError, match="cannot be promoted"):
        services.promote(live, actor="ops@example.com")
    events = AuditEvent.objects.filter(entry=entry).order_by("id")
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in events] == [
        ("created", "", "draft", "test"),
        ("promoted", "draft", "staging", "ops@example.com"),
        ("promoted", "staging", "production", "ops@example.com"),
    ]


def test_promoting_a_version_supersedes_the_current_one(production: Callable[[str], Entry]) -> None:
    production("https://tools.example/v1")
    production("https://tools.example/v2")

    assert states() == [(1, "superseded"), (2, "production")]
    assert load_registry()["lookup"].endpoint == "https://tools.example/v2"


def test_rollback_makes_the_previous_production_version_current(production: Callable[[str], Entry]) -> None:
    for version in ("v1", "v2", "v3"):
        production(f"https://tools.example/{version}")

    back = services.rollback(Kind.TOOL, "lookup", actor="ops@example.com")

    assert back.version == 2
    assert states() == [(1, "superseded"), (2, "production"), (3, "rolled_back")]
    assert load_registry()["lookup"].endpoint == "https://tools.example/v2"
    assert services.rollback(Kind.TOOL, "lookup", actor="ops@example.com").version == 1  # never back to v3
    with pytest.raises(services.RegistryError, match="no earlier production version"):
        services.rollback(Kind.TOOL, "lookup", actor="ops@example.com")
    audit = AuditEvent.objects.filter(action="rolled_back").order_by("id")
    assert [(e.entry.version, e.from_state, e.to_state) for e in audit[:2]] == [
        (3, "production", "rolled_back"),
        (2, "superseded", "production"),
    ]
    assert [e.note for e in audit[:2]] == ["back to v2", "instead of v3"]


def test_a_rolled_back_version_no_longer_runs_even_pinned(production: Callable[[str], Entry]) -> None:
    production("https://tools.example/v1")
    bad = production("https://tools.example/v2")
    services.rollback(Kind.TOOL, "lookup", actor="ops@example.com")

    with pytest.raises(Exception, match="only promoted entries run"):
        selectors.resolve(Kind.TOOL, "lookup", bad.version)
    assert selectors.resolve(Kind.TOOL, "lookup", 1).version == 1  # a superseded version may be pinned


def test_a_promotion_is_announced_to_every_process_after_its_commit(
    production: Callable[[str], Entry], django_capture_on_commit_callbacks: Any
) -> None:
    heard: list[str] = []
    announced = threading.Event()

    def handler(payload: str) -> None:
        if payload.endswith(":tool:lookup"):
            heard.append(payload)
            announced.set()

    control_bus.on("registry", handler)
    assert control_bus.wait_until_listening()
    load_registry()  # this process's copy, empty so far
    with django_capture_on_commit_callbacks(execute=True):
        production("https://tools.example/v1")

    assert announced.wait(1.0)
    assert heard[-1] == "public:tool:lookup"
    assert load_registry()["lookup"].endpoint == "https://tools.example/v1"


def test_an_announcement_from_another_process_drops_this_process_copy(
    settings: Any, key: Ed25519PrivateKey
) -> None:
    trusted(settings, staff=key)
    assert control_bus.wait_until_listening()
    assert "lookup" not in load_registry()
    create_tool(tool_manifest("lookup"), key)  # committed nowhere else: this process was not told

    assert "lookup" not in load_registry()
    control_bus.announce("registry", "public:tool:lookup")  # as another process does after its commit
    deadline = time.monotonic() + 1.0
    while "lookup" not in load_registry() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "lookup" in load_registry()


def test_a_model_change_marks_every_catalog_of_the_process_stale_at_once(db: None) -> None:
    catalog = CatalogCache(ttl_seconds=3600)
    assert control_bus.wait_until_listening()

    async def reloads_after_the_announcement() -> bool:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))  # the catalog loads on it
        try:
            return await reloads(await catalog.get())
        finally:
            await loop.run_in_executor(None, connections.close_all)

    async def reloads(first: Catalog) -> bool:
        control_bus.announce("registry", "public:prompt:greet")  # not a model: the snapshot stays
        await asyncio.sleep(0.2)
        if await catalog.get() is not first:
            return False
        control_bus.announce("registry", "public:model:sim-small")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if await catalog.get() is not first:
                return True
            await asyncio.sleep(0.01)
        return False

    assert asyncio.run(reloads_after_the_announcement())


def blocked_on_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction sees its first snapshot
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def test_two_versions_sent_to_production_at_once_one_wins_and_the_other_is_refused(
    key: Ed25519PrivateKey, settings: Any
) -> None:
    """Real transactions on their own connections: the second promotion waits on the
    partial unique index until the first commits, then is refused, not a 500."""
    trusted(settings, staff=key)
    name = f"race-{uuid.uuid4().hex[:8]}"
    first, second = committed(
        lambda: [services.promote(create_tool(tool_manifest(name), key), actor="ops") for _ in range(2)]
    )
    holding, release = threading.Event(), threading.Event()

    def promote_and_hold() -> None:
        try:
            with transaction.atomic():
                services.promote(first, actor="first@example.com")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def promote_meanwhile() -> services.RegistryError | None:
        try:
            holding.wait(10)
            services.promote(second, actor="second@example.com")
        except services.RegistryError as error:
            return error
        finally:
            connection.close()
        return None

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            held = pool.submit(promote_and_hold)
            meanwhile = pool.submit(promote_meanwhile)
            deadline = time.monotonic() + 10
            while not blocked_on_a_lock() and time.monotonic() < deadline:
                time.sleep(0.02)
            was_blocked = blocked_on_a_lock()
            release.set()
            held.result(timeout=10)
            refused = meanwhile.result(timeout=10)
        final = committed(
            lambda: list(
                Entry.objects.filter(kind=Kind.TOOL, name=name).order_by("version").values_list("state")
            )
        )
    finally:
        release.set()
        committed(lambda: Entry.objects.filter(kind=Kind.TOOL, name=name).delete())

    assert was_blocked
    assert refused is not None
    assert "another version reached production at the same time" in str(refused)
    assert final == [(State.PRODUCTION,), (State.STAGING,)]
