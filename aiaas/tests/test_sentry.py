"""A Sentry event from an error raised while handling a request carries none of the
request's key, prompt, cookies or query token (Sentry's own client, our
init_sentry and before_send; the envelopes collected by a Transport of ours
instead of sent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sentry_sdk
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from aiaas.sentry import init_sentry

API_KEY = "aiaas_abcdefabcdef_" + "K" * 43
PROVIDER_KEY = "sk-" + "P" * 40
STREAM_TOKEN = "st_" + "T" * 43
SESSION_COOKIE = "C" * 32
PROMPT = "please summarise the merger of Nightingale and Larkspur"


def answer_with_a_failed_provider_call(request: HttpRequest) -> HttpResponse:
    prompt = orjson.loads(request.body)["messages"][0]["content"]
    provider_key = request.headers["x-provider-key"]
    raise RuntimeError(f"the provider refused {provider_key} for a prompt of {len(prompt)} characters")


urlpatterns = [path("api/v1/sentry-probe", answer_with_a_failed_provider_call)]


class CollectingTransport(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


@pytest.fixture
def transport() -> Iterator[CollectingTransport]:
    init_sentry("https://public@sentry.invalid/1", traces_sample_rate=0.0)
    client = sentry_sdk.get_client()
    collecting = CollectingTransport(client.options)
    client.transport = collecting
    try:
        yield collecting
    finally:
        sentry_sdk.init()


@override_settings(API_URLCONF=__name__)
def test_an_event_carries_no_key_prompt_cookie_or_token(transport: CollectingTransport, db: None) -> None:
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = SESSION_COOKIE

    response = client.post(
        f"/api/v1/sentry-probe?token={STREAM_TOKEN}",
        orjson.dumps({"model": "sim-small", "messages": [{"role": "user", "content": PROMPT}]}),
        content_type="application/json",
        headers={"host": "localhost", "authorization": f"Bearer {API_KEY}", "x-provider-key": PROVIDER_KEY},
    )
    sentry_sdk.flush()

    assert response.status_code == 500
    sent = b"".join(envelope.serialize() for envelope in transport.envelopes)
    assert b'"type":"RuntimeError"' in sent
    assert b"the provider refused sk-[redacted] for a prompt of" in sent
    assert b"/api/v1/sentry-probe" in sent
    for secret in (API_KEY, PROVIDER_KEY, STREAM_TOKEN, SESSION_COOKIE, PROMPT, "Nightingale"):
        assert secret.encode() not in sent, secret
