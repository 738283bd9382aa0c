from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.router.evaluation import evaluate
from routing.router.training import DEFAULT_STRONG, DEFAULT_WEAK, DataError, load_outcomes, train


class Command(BaseCommand):
    help = (
        "Train the router's classifier on --train outcome files only, evaluate it on --test "
        "(RouteLLM's CSV format: a `prompt` column and one True/False column per model; a "
        "folder means every CSV in it) and print the figures as one JSON object."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", nargs="+", required=True, metavar="PATH")
        parser.add_argument("--test", nargs="+", required=True, metavar="PATH")
        parser.add_argument("--target", type=float, default=0.95, help="Share of the strong model's quality.")
        parser.add_argument("--weak-col", default=DEFAULT_WEAK)
        parser.add_argument("--strong-col", default=DEFAULT_STRONG)
        parser.add_argument(
            "--json", action="store_true", help="Print only the JSON object (the default output)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["target"] <= 1:
            raise CommandError("--target must be in (0, 1]")
        columns = {"weak": options["weak_col"], "strong": options["strong_col"]}
        try:
            training = load_outcomes(options["train"], **columns)
            testing = load_outcomes(options["test"], **columns)
            overlap = set(training.prompts) & set(testing.prompts)
            if overlap:
                raise DataError(f"{len(overlap)} test prompts are also in the training data")
            model = train(training, name="route_bench")
        except DataError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(evaluate(model, training, testing, options["target"])))
