from __future__ import annotations

from typing import Any

import pytest
from django.db import connections
from django.test import Client, override_settings

import aiaas.health


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "unknown.example", "10.0.0.7:8000"])
def test_healthz_answers_on_every_host(host: str) -> None:
    response = Client(HTTP_HOST=host).get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_postgres_and_redis_answer(db: None) -> None:
    response = Client(HTTP_HOST="probe.internal").get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


@override_settings(REDIS_URL="unix:///nonexistent/redis.sock")
def test_readyz_names_redis_when_it_is_down(db: None) -> None:
    response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


def test_readyz_names_postgres_when_it_is_down(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_dict: dict[str, Any] = {**connections["default"].settings_dict, "NAME": "no_such_database"}
    broken = connections["default"].__class__(settings_dict, alias="broken")
    monkeypatch.setattr(aiaas.health, "connection", broken)

    response = Client().get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["postgres"].startswith("OperationalError")
    assert checks["redis"] == "ok"
