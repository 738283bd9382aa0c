"""No SECRET_KEY in the repository: with DEBUG on and none set, each data folder
makes a random one and keeps it; with DEBUG off, none set refuses to start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from aiaas.secret_keys import development_secret_key

PRINT_KEY = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"


def key_of_a_debug_process(data_dir: Path) -> str:
    unset = {"SECRET_KEY", "AIAAS_PROFILE", "DEBUG"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", PRINT_KEY],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "aiaas.settings",
            "DEBUG": "true",
            "AIAAS_DATA_DIR": str(data_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_debug_without_a_key_makes_a_random_one_per_data_folder_and_keeps_it(tmp_path: Path) -> None:
    first = key_of_a_debug_process(tmp_path / "one")
    again = key_of_a_debug_process(tmp_path / "one")
    elsewhere = key_of_a_debug_process(tmp_path / "two")

    assert first == again == (tmp_path / "one" / "secret_key").read_text()
    assert len(first) >= 50
    assert elsewhere != first
    assert stat.S_IMODE((tmp_path / "one" / "secret_key").stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: development_secret_key(tmp_path), range(32)))

    assert len(keys) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret_key"]


def test_the_kept_key_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".data/secret_key"],  # noqa: S607 - git from PATH
        cwd=settings.BASE_DIR,
        check=False,
    )

    assert ignored.returncode == 0
