"""Helpers for the gateway's tests; the servers themselves are fixtures of
testing/platform.py, shared by every app's tests."""

from __future__ import annotations

import httpx


def simulator_stats(simulator_url: str) -> dict[str, dict[str, int]]:
    response = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5)
    return dict(response.json())
