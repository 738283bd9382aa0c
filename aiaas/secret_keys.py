"""The development SECRET_KEY: random, made once per data folder, never in the repository.

A constant development key would be public, and anything signed with it
(sessions, login links, sealed idempotency bodies) forgeable wherever someone
runs with DEBUG on by mistake. So the launcher, manage.py and the settings
(DEBUG on, SECRET_KEY unset) use a key made at random under the data folder
(.data/secret_key, ignored by git) and kept, so sessions survive a restart.
With DEBUG off, SECRET_KEY is required (aiaas/settings.py).

This module must not import Django: the launcher reads it before settings load.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_FILE = "secret_key"
KEY_BYTES = 50


def development_secret_key(data_dir: Path) -> str:
    """The key kept under `data_dir`, made on first use. Several processes may
    start at once: the file appears whole (linked from a finished temporary
    file) and the first one made wins."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{KEY_FILE}.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(KEY_BYTES))
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    return path.read_text().strip()
