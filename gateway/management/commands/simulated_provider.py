from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.simulated.provider import SimulatorConfig, build_server


class Command(BaseCommand):
    help = (
        "Serve the simulated OpenAI-compatible provider (sim-small, sim-medium, sim-large): "
        "deterministic answers and fault injection, no real model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--latency-ms", type=float, default=0.0, help="Added before every answer.")
        parser.add_argument("--ttft-ms", type=float, default=0.0, help="Time to first token of sim-small.")
        parser.add_argument(
            "--tokens-per-second",
            type=float,
            default=0.0,
            help="Pace of sim-small; 0 is as fast as possible.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = SimulatorConfig(
                latency_ms=options["latency_ms"],
                ttft_ms=options["ttft_ms"],
                tokens_per_second=options["tokens_per_second"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        host, port = options["host"], options["port"]
        self.stdout.write(f"Simulated provider (no real model) on http://{host}:{port}/v1")
        # uvicorn re-raises the Ctrl-C it handled; the shutdown was clean.
        with contextlib.suppress(KeyboardInterrupt):
            build_server(config, host=host, port=port).run()
