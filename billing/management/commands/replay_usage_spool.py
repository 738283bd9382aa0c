from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand

from aiaas.redis_clients import async_client
from billing.limits import Limiter
from gateway import spool


class Command(BaseCommand):
    help = (
        "Send the usage events and reconciles this machine's gateway spooled while Redis was "
        "down (USAGE_SPOOL_DIR) to Redis now. The gateway does this by itself once Redis answers."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        async def replay() -> tuple[int, int]:
            client = async_client("gateway")
            done = await spool.replay(client, Limiter(client))
            return done, len(spool.pending())

        done, left = asyncio.run(replay())
        self.stdout.write(f"replayed {done}; {left} left in {spool.spool_dir()}")
