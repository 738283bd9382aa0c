from __future__ import annotations

from collections.abc import Iterator

import pytest

from flags import cache


@pytest.fixture(autouse=True)
def _fresh_flags() -> Iterator[None]:
    """Each test loads the flags it sees; none leaves a copy of its rolled-back ones to the next."""
    cache.forget()
    yield
    cache.forget()
