"""Model providers: one OpenAI-compatible client for all of them, and their failure kinds."""

from gateway.providers.client import ProviderClient, UpstreamTiming
from gateway.providers.errors import FailureKind, ProviderError

__all__ = ["FailureKind", "ProviderClient", "ProviderError", "UpstreamTiming"]
