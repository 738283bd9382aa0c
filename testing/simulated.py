"""Test helpers for the routing app: the simulated provider served for real."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from gateway.simulated.provider import SimulatorConfig, build_server
from testing.servers import serving


@contextmanager
def running_simulated_provider(config: SimulatorConfig | None = None) -> Iterator[str]:
    """Serve the simulated provider on a free 127.0.0.1 port; yield its base URL, ending in /v1."""

    def build(host: str, port: int) -> uvicorn.Server:
        return build_server(config or SimulatorConfig(), host=host, port=port)

    with serving(build, "/v1/models") as root_url:
        yield f"{root_url}/v1"
