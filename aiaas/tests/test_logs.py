"""Log lines carry their request's (or task's) context and never a secret or a
prompt; one access line per HTTP request, without its query string (the real
platform, its real log filter and formatter)."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from django_tenants.utils import tenant_context
from pytest_django import DjangoDbBlocker

from aiaas import logs
from aiaas.celery import app, tenant_task
from aiaas.logs import ContextFilter, JsonFormatter, TextFormatter
from aiaas.redaction import redact
from testing.celery import worker_thread
from testing.tenants import TenantFixture

PROMPT = "my confidential prompt about project nightingale"
STREAM_TOKEN = "st_" + "T" * 43
LINE_WAIT_SECONDS = 5.0
task_logger = logging.getLogger("tests.logs")

Lines = Callable[[], list[dict[str, Any]]]


class Collected(logging.Handler):
    """The lines production's filter and formatter write, kept in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = io.StringIO()
        self.lock_ = threading.Lock()
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self.lock_:
            self.stream.write(line + "\n")

    def text(self) -> str:
        with self.lock_:
            return self.stream.getvalue()


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _empty_log_context_afterwards() -> Iterator[None]:
    yield
    logs.begin()


def lines_of(handler: Collected) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in handler.text().splitlines()]


def wait_for_line(handler: Collected, **fields: Any) -> dict[str, Any]:
    """The one line with `fields` (it may be written just after the response ends)."""
    deadline = time.monotonic() + LINE_WAIT_SECONDS
    while True:
        found = [line for line in lines_of(handler) if fields.items() <= line.items()]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, lines_of(handler)
            return found[0]
        time.sleep(0.02)


def key_prefix(key: str) -> str:
    return key.split("_")[1]


def test_a_gateway_request_logs_one_access_line_with_its_context(
    gateway: str, serving_tenant: TenantFixture, collected: Collected
) -> None:
    key = serving_tenant.admin_key
    response = httpx.post(
        f"{gateway}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": PROMPT}]},
        timeout=10,
    )

    assert response.status_code == 200
    line = wait_for_line(collected, logger="aiaas.access", request_id=response.headers["x-request-id"])
    assert line["method"] == "POST"
    assert line["route"] == "/v1/chat/completions"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["tenant_schema"] == serving_tenant.tenant.schema_name
    assert line["key_prefix"] == key_prefix(key)
    assert line["level"] == "INFO"
    assert key not in collected.text()
    assert PROMPT not in collected.text()


def test_a_stream_token_in_the_query_never_reaches_the_access_log(
    gateway: str, serving_tenant: TenantFixture, collected: Collected
) -> None:
    response = httpx.get(
        f"{gateway}/models/sim-small?token={STREAM_TOKEN}",
        headers={"authorization": f"Bearer {serving_tenant.admin_key}"},
        timeout=10,
    )

    assert response.status_code == 200
    line = wait_for_line(collected, logger="aiaas.access", request_id=response.headers["x-request-id"])
    assert line["route"] == "/v1/models/{model_id:path}"
    assert line["message"] == f"GET /v1/models/{{model_id:path}} 200 {line['duration_ms']:.2f}ms"
    assert STREAM_TOKEN not in collected.text()


def test_a_django_request_logs_its_id_route_and_tenant(
    platform_url: str, serving_tenant: TenantFixture, collected: Collected
) -> None:
    key = serving_tenant.admin_key
    response = httpx.get(
        f"{platform_url}/api/v1/tenant/settings",
        headers={"host": "localhost", "authorization": f"Bearer {key}"},
        timeout=10,
    )

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    line = wait_for_line(collected, logger="aiaas.access", request_id=request_id)
    assert line["route"] == "/api/v1/tenant/settings/"  # the metrics' label, not DRF's regex
    assert line["status"] == 200
    assert line["tenant_schema"] == serving_tenant.tenant.schema_name
    assert line["key_prefix"] == key_prefix(key)
    assert key not in collected.text()


def test_an_unknown_path_is_logged_as_its_path_without_the_query(
    platform_url: str, collected: Collected
) -> None:
    response = httpx.get(f"{platform_url}/v1/nowhere?token={STREAM_TOKEN}", timeout=10)

    assert response.status_code == 404
    line = wait_for_line(collected, logger="aiaas.access", request_id=response.headers["x-request-id"])
    assert line["route"] == "/v1/{path:path}"
    assert STREAM_TOKEN not in collected.text()


def test_secrets_anywhere_in_a_line_are_redacted(collected: Collected) -> None:
    api_key = "aiaas_abcdefabcdef_" + "s" * 43
    logs.begin(request_id="req_redaction")
    logger = logging.getLogger("tests.redaction")
    logger.warning('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/v1/chat?token={STREAM_TOKEN}")
    logger.warning("upstream said: Authorization: Bearer %s", "sk-" + "p" * 40)
    try:
        raise ValueError(f"bad key {api_key}")
    except ValueError:
        logger.exception("failed")

    text = collected.text()
    assert STREAM_TOKEN not in text
    assert "p" * 40 not in text
    assert "s" * 43 not in text
    messages = [line["message"] for line in lines_of(collected)]
    assert messages == [
        '127.0.0.1:5000 - "WebSocket /ws/v1/chat?token=[redacted]" [accepted]',
        "upstream said: Authorization: Bearer [redacted]",
        "failed",
    ]
    assert "aiaas_abcdefabcdef_[redacted]" in lines_of(collected)[2]["exc_info"]
    assert {line["request_id"] for line in lines_of(collected)} == {"req_redaction"}


def test_text_lines_end_with_their_context() -> None:
    logs.begin(request_id="req_text", route="/v1/models")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("abc",), None)
    ContextFilter().filter(record)

    line = TextFormatter().format(record)
    assert line.endswith("INFO x token=[redacted] [request_id=req_text route=/v1/models]")


@tenant_task(name="tests.logs_a_line")
def logs_a_line() -> None:
    task_logger.info("working")


@pytest.fixture(scope="module")
def celery_worker(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """A real worker thread on this run's own default queue (testing/settings.py)."""
    with worker_thread(app.conf.task_default_queue, django_db_blocker):
        yield


def test_a_tasks_lines_carry_the_sending_request_and_its_tenant(
    celery_worker: None, tenant: TenantFixture, collected: Collected
) -> None:
    logs.begin(request_id="req_sender")
    with tenant_context(tenant.tenant):
        result = logs_a_line.delay()
    result.get(timeout=20)

    line = wait_for_line(collected, logger="tests.logs", message="working")
    assert line["request_id"] == "req_sender"
    assert line["tenant_schema"] == tenant.tenant.schema_name
    assert line["route"] == "task:tests.logs_a_line"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer aiaas_abcdefabcdef_" + "s" * 43, "Authorization: Bearer [redacted]"),
        ("key aiaas_abcdefabcdef_" + "s" * 43, "key aiaas_abcdefabcdef_[redacted]"),
        ("upstream key sk-" + "p" * 40, "upstream key sk-[redacted]"),
        (f"GET /ws/v1/streams?token={STREAM_TOKEN}&after=3", "GET /ws/v1/streams?token=[redacted]&after=3"),
        (f"opened with {STREAM_TOKEN}", "opened with st_[redacted]"),
        ('{"message":"x?api_key=abc\\"y"}', '{"message":"x?api_key=[redacted]\\"y"}'),
        ("flask-sqlalchemy and ask-abcdefghijklmn", "flask-sqlalchemy and ask-abcdefghijklmn"),
        ("request_" + "a" * 32 + " max_tokens=5", "request_" + "a" * 32 + " max_tokens=5"),
    ],
)
def test_redaction_takes_secrets_and_keeps_words_that_look_like_them(text: str, redacted: str) -> None:
    assert redact(text) == redacted
