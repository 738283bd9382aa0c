"""WebSocket routes (the protocol: docs/realtime.md)."""

from django.urls import URLPattern, path, re_path

from gateway.transports.websocket import ChatCompletionsConsumer
from realtime.consumers import NotFoundConsumer, StreamsConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/v1/chat/completions", ChatCompletionsConsumer.as_asgi()),
    path("ws/v1/streams/<str:stream_id>", StreamsConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
