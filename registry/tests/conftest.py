from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry import cache


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test's entries are rolled back with it: no process copy may outlive them."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
