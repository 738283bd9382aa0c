"""/livez answers without touching anything; /readyz checks each dependency and
says why one failed only to the metrics token's bearer."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings

import aiaas.health
from accounts.models import User
from testing.tenants import TEST_PASSWORD

TOKEN = "metrics-token-for-tests"
DEPENDENCIES = ("postgres", "redis", "redis_limits", "redis_cache", "redis_channels", "celery_broker")
NO_REDIS = "unix:///nonexistent/redis.sock"


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "unknown.example", "10.0.0.7:8000"])
def test_livez_answers_on_every_host(path: str, host: str) -> None:
    response = Client(HTTP_HOST=host).get(path)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@override_settings(REDIS_URL=NO_REDIS, CELERY_BROKER_URL="redis+socket:///nonexistent/redis.sock")
def test_livez_stays_ok_while_every_dependency_is_down(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiaas.health, "connection", broken_database())

    assert Client().get("/readyz").json()["checks"] == {
        "postgres": "failed",
        "redis": "failed",
        "redis_limits": "ok",
        "redis_cache": "ok",
        "redis_channels": "ok",
        "celery_broker": "failed",
    }
    assert Client().get("/livez").status_code == 200


def broken_database() -> Any:
    settings_dict: dict[str, Any] = {**connections["default"].settings_dict, "NAME": "no_such_database"}
    return connections["default"].__class__(settings_dict, alias="broken")


def test_readyz_is_ok_when_every_dependency_answers(db: None) -> None:
    response = Client(HTTP_HOST="probe.internal").get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": dict.fromkeys(DEPENDENCIES, "ok")}


@override_settings(REDIS_URL=NO_REDIS)
def test_readyz_names_the_failed_redis_role_without_its_error_to_anonymous_callers(db: None) -> None:
    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": dict.fromkeys(DEPENDENCIES, "ok") | {"redis": "failed"},
    }
    assert "nonexistent" not in response.content.decode()


@override_settings(REDIS_URL=NO_REDIS, METRICS_TOKEN=TOKEN)
def test_readyz_tells_the_metrics_tokens_bearer_why(db: None) -> None:
    wrong = Client(HTTP_AUTHORIZATION="Bearer nope").get("/readyz")
    right = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/readyz")

    assert "errors" not in wrong.json()
    errors = right.json()["errors"]
    assert list(errors) == ["redis"]
    assert errors["redis"].startswith("ConnectionError")


@override_settings(REDIS_URL=NO_REDIS)
def test_readyz_tells_a_signed_in_staff_member_why_and_no_other_user(db: None) -> None:
    User.objects.create_superuser("readyz-staff@aiaas.example", TEST_PASSWORD)
    User.objects.create_user("readyz-member@aiaas.example", TEST_PASSWORD)
    staff, member = Client(HTTP_HOST=settings.BASE_DOMAIN), Client(HTTP_HOST=settings.BASE_DOMAIN)
    staff.force_login(User.objects.get(email="readyz-staff@aiaas.example"))
    member.force_login(User.objects.get(email="readyz-member@aiaas.example"))

    assert list(staff.get("/readyz").json()["errors"]) == ["redis"]
    assert "errors" not in member.get("/readyz").json()


@override_settings(CELERY_BROKER_URL="redis+socket:///nonexistent/redis.sock")
def test_readyz_checks_the_celery_broker(db: None) -> None:
    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["celery_broker"] == "failed"
    assert response.json()["checks"]["redis"] == "ok"


def test_readyz_names_postgres_when_it_is_down(
    db: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    monkeypatch.setattr(aiaas.health, "connection", broken_database())

    anonymous = Client().get("/readyz")
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/readyz")

    assert anonymous.status_code == 503
    assert anonymous.json()["checks"]["postgres"] == "failed"
    assert "no_such_database" not in anonymous.content.decode()
    assert bearer.json()["errors"]["postgres"].startswith("OperationalError")
