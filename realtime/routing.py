"""WebSocket routes. The realtime issue adds the streaming consumers; until
then every WebSocket connection is refused."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
