from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from capacity import services
from capacity.levels import LEVELS, Level
from capacity.selectors import degrade_state


class Command(BaseCommand):
    help = (
        "Set the platform's degrade level (docs/degrade.md). degraded or critical holds it "
        "there until changed; normal returns it to automatic control, which then follows "
        "the signals. Without --level, print the level."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--level", choices=[level.value for level in LEVELS])
        parser.add_argument("--reason", default="", help="Why (kept in the audit log).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["level"] is not None:
            change = services.set_by_staff(
                Level(options["level"]), reason=options["reason"], set_by=f"manage.py:{getpass.getuser()}"
            )
            if change is None:
                self.stdout.write("unchanged")
        state = degrade_state()
        self.stdout.write(f"{state.level} ({state.source}) since {state.since.isoformat()}: {state.reason}")
