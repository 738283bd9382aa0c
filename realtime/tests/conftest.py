"""The platform served for real (uvicorn in a thread, the simulated provider behind it)."""

from routing.tests.conftest import gateway, platform_url, registry, simulator_url

__all__ = ["gateway", "platform_url", "registry", "simulator_url"]
