from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.router.model import GLOBAL_MODEL_PATH
from routing.router.training import DEFAULT_STRONG, DEFAULT_WEAK, DataError, load_outcomes, train


class Command(BaseCommand):
    help = (
        "Train the router's global prior on outcome files (RouteLLM's CSV format) and write "
        "it where the gateway loads it from (routing/router/global_router.npz by default)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--output", type=Path, default=GLOBAL_MODEL_PATH)
        parser.add_argument("--name", default="global-v1")
        parser.add_argument("--weak-col", default=DEFAULT_WEAK)
        parser.add_argument("--strong-col", default=DEFAULT_STRONG)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcomes = load_outcomes(options["paths"], weak=options["weak_col"], strong=options["strong_col"])
            model = train(outcomes, name=options["name"])
        except DataError as error:
            raise CommandError(str(error)) from None
        model.save(options["output"])
        size = options["output"].stat().st_size
        self.stdout.write(
            f"{model.name}: {len(outcomes)} prompts, {size / 1e6:.1f} MB -> {options['output']}"
        )
