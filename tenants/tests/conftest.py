from __future__ import annotations

import pytest

from accounts.throttling import SIGNUPS, SIGNUPS_PER_IP
from tenants.services import SIGNUP_SCOPE


@pytest.fixture(autouse=True)
def _fresh_signup_throttles() -> None:
    """Signup counts live in Redis, which tests do not roll back: each test starts
    from zero for the platform and the test client's address."""
    SIGNUPS.reset(SIGNUP_SCOPE, "all")
    SIGNUPS_PER_IP.reset(SIGNUP_SCOPE, "127.0.0.1")
