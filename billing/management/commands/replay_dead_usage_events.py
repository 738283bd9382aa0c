from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.typing import EncodableT, FieldT

from aiaas.redis_clients import sync_client
from billing.usage import dead_stream_of

DEAD_FIELDS = (b"dead_reason", b"dead_source_id")


class Command(BaseCommand):
    help = (
        "Queue dead-lettered usage events (usage:dead: entries the ledger could not store, with "
        "the reason) again, once what refused them is fixed. Storing is idempotent per request id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000, help="At most this many entries.")
        parser.add_argument("--dry-run", action="store_true", help="List them and their reasons only.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        client = sync_client("queues")
        stream = settings.USAGE_STREAM
        dead = dead_stream_of(stream)
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(dead, count=options["limit"]))
        for entry_id, fields in entries:
            reason = fields.get(b"dead_reason", b"").decode(errors="replace")
            request_id = fields.get(b"request_id", b"?").decode(errors="replace")
            self.stdout.write(f"{entry_id.decode()} {request_id}: {reason}")
            if options["dry_run"]:
                continue
            original: dict[FieldT, EncodableT] = {
                key: value for key, value in fields.items() if key not in DEAD_FIELDS
            }
            pipeline = client.pipeline(transaction=True)
            pipeline.xadd(stream, original)
            pipeline.xdel(dead, entry_id)
            pipeline.execute()
        verb = "would queue" if options["dry_run"] else "queued"
        self.stdout.write(f"{verb} {len(entries)} dead-lettered usage events again")
