"""One beat sends the schedule at a time: the holder of the leader lease (aiaas/beat.py).
Two schedulers run against the real database and Redis; their Celery app publishes to
kombu's in-memory broker, and every publish is counted."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.signals import before_task_publish
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from pytest_django import Settings

from aiaas.beat import LeaderScheduler, Lease
from aiaas.redis_clients import sync_client

PROBE_TASK = "beat_test.probe"


@pytest.fixture
def lease_key(settings: Settings) -> Iterator[str]:
    key = f"beat:leader:test-{uuid.uuid4().hex}"
    settings.BEAT_LEADER_KEY = key
    yield key
    sync_client("control").delete(key)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-celery-beat recycles the connection before each read, which would close the
    test's transaction under it; a real beat has no such transaction."""
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)


@pytest.fixture
def beat_app() -> Celery:
    app = Celery("beat-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"probe": {"task": PROBE_TASK, "schedule": 3600.0}}
    return app


@pytest.fixture
def sent() -> Iterator[list[str]]:
    names: list[str] = []

    def count(sender: str, **kwargs: Any) -> None:
        if sender == PROBE_TASK:
            names.append(sender)

    before_task_publish.connect(count, weak=False)
    yield names
    before_task_publish.disconnect(count)


def make_due() -> None:
    """The probe last ran two hours ago, as a previous leader saved it: due now."""
    PeriodicTask.objects.filter(name="probe").update(last_run_at=timezone.now() - datetime.timedelta(hours=2))


@pytest.fixture
def schedulers() -> Iterator[list[LeaderScheduler]]:
    """Each test's schedulers, closed (their last runs saved) while its transaction is open."""
    made: list[LeaderScheduler] = []
    yield made
    for each in made:
        each.close()


def scheduler(app: Celery, made: list[LeaderScheduler]) -> LeaderScheduler:
    made.append(LeaderScheduler(app=app))
    return made[-1]


def test_only_the_lease_holder_sends(
    db: None, lease_key: str, beat_app: Celery, sent: list[str], schedulers: list[LeaderScheduler]
) -> None:
    leader, standby = scheduler(beat_app, schedulers), scheduler(beat_app, schedulers)
    make_due()

    leader.tick()
    standby.tick()

    assert sent == [PROBE_TASK]
    assert (leader.leading, standby.leading) == (True, False)
    assert sync_client("control").get(lease_key) == leader.lease.token


def test_a_standby_takes_over_when_the_leader_shuts_down(
    db: None, lease_key: str, beat_app: Celery, sent: list[str], schedulers: list[LeaderScheduler]
) -> None:
    leader, standby = scheduler(beat_app, schedulers), scheduler(beat_app, schedulers)
    make_due()
    leader.tick()
    standby.tick()

    leader.close()
    make_due()
    standby.tick()

    assert sent == [PROBE_TASK, PROBE_TASK]
    assert standby.leading is True


def test_the_new_leader_does_not_resend_what_the_last_one_sent(
    db: None, lease_key: str, beat_app: Celery, sent: list[str], schedulers: list[LeaderScheduler]
) -> None:
    leader = scheduler(beat_app, schedulers)
    make_due()
    standby = scheduler(beat_app, schedulers)  # read the schedule while the probe was due
    leader.tick()
    standby.tick()
    leader.close()  # saves the probe's last run

    standby.tick()

    assert sent == [PROBE_TASK]
    assert standby.leading is True


def test_a_standby_takes_over_a_lapsed_lease_and_the_old_leader_stands_by(
    db: None,
    settings: Settings,
    lease_key: str,
    beat_app: Celery,
    sent: list[str],
    schedulers: list[LeaderScheduler],
) -> None:
    settings.BEAT_LEADER_TTL_SECONDS = 0.2
    leader = scheduler(beat_app, schedulers)
    make_due()
    assert leader.tick() <= 0.2 / 3 + 1e-9  # sleeps short enough to renew in time
    time.sleep(0.3)  # the leader stalled past its lease
    settings.BEAT_LEADER_TTL_SECONDS = 30  # the new leader's lease outlasts the test, however slow
    standby = scheduler(beat_app, schedulers)

    make_due()
    standby.tick()
    make_due()
    leader.tick()

    assert sent == [PROBE_TASK, PROBE_TASK]
    assert (leader.leading, standby.leading) == (False, True)


def test_a_lease_is_released_only_by_its_holder(lease_key: str) -> None:
    client = sync_client("control")
    first, second = Lease(client, lease_key, 30), Lease(client, lease_key, 30)

    assert first.hold() is True
    assert second.hold() is False
    second.release()
    assert client.get(lease_key) == first.token
    assert first.hold() is True  # renewed, still one holder
    assert 20_000 < client.pttl(lease_key) <= 30_000
    first.release()
    assert second.hold() is True


def test_every_tick_touches_the_heartbeat_file_leading_or_not(
    db: None,
    settings: Settings,
    tmp_path: Path,
    lease_key: str,
    beat_app: Celery,
    schedulers: list[LeaderScheduler],
) -> None:
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "beat.heartbeat")
    leader, standby = scheduler(beat_app, schedulers), scheduler(beat_app, schedulers)

    leader.tick()
    first = Path(settings.BEAT_HEARTBEAT_FILE).stat().st_mtime_ns
    Path(settings.BEAT_HEARTBEAT_FILE).unlink()
    standby.tick()

    assert first > 0
    assert Path(settings.BEAT_HEARTBEAT_FILE).exists()
