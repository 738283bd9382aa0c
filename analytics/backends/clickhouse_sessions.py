"""The few calls the ClickHouse backend makes, on a server or in process.

`ClickHouseSession` is the whole surface: `execute` a statement, `query` rows,
`insert` rows. Both implementations take the same SQL with server-side
parameters (`{name:Type}`), so the backend's statements are never built from
values:

- `HttpSession`: a ClickHouse server through clickhouse-connect (HTTP), the
  production engine (install requirements/clickhouse.txt);
- `ChdbSession`: chdb, ClickHouse's engine inside this process, which the tests
  (and `CLICKHOUSE_URL=chdb:///a/directory` in development) run on.

Times go in as UTC text (`utc_text`): the backend's columns are UTC, and
neither client then converts them. Values come back as the server sends them
(numbers, or strings from chdb's JSON); the backend parses each column itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from django.core.exceptions import ImproperlyConfigured

Parameters = Mapping[str, object]
Row = tuple[Any, ...]


class ClickHouseSession(Protocol):
    def execute(self, sql: str, parameters: Parameters | None = None) -> None: ...

    def query(self, sql: str, parameters: Parameters | None = None) -> list[Row]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None: ...


class HttpSession:
    """A ClickHouse server, e.g. `CLICKHOUSE_URL=https://user:password@host:8443/analytics`."""

    def __init__(self, url: str, timeout_seconds: float = 30.0) -> None:
        clickhouse_connect = importlib.import_module("clickhouse_connect")
        self.client = clickhouse_connect.get_client(
            dsn=url, connect_timeout=timeout_seconds, send_receive_timeout=timeout_seconds
        )

    def execute(self, sql: str, parameters: Parameters | None = None) -> None:
        self.client.command(sql, parameters=dict(parameters or {}))

    def query(self, sql: str, parameters: Parameters | None = None) -> list[Row]:
        return [tuple(row) for row in self.client.query(sql, parameters=dict(parameters or {})).result_rows]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.client.insert(table, [list(row) for row in rows], column_names=list(columns))


class ChdbSession:
    """ClickHouse in this process, its data in `path` (a temporary directory when None)."""

    def __init__(self, path: str | None = None) -> None:
        chdb = importlib.import_module("chdb.session")  # untyped
        self.session = chdb.Session(path) if path else chdb.Session()

    def execute(self, sql: str, parameters: Parameters | None = None) -> None:
        self.session.query(sql, "Null", params=as_text(parameters))

    def query(self, sql: str, parameters: Parameters | None = None) -> list[Row]:
        result = self.session.query(sql, "JSONCompact", params=as_text(parameters))
        body = result.bytes()
        return [tuple(row) for row in orjson.loads(body)["data"]] if body else []

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        lines = (
            orjson.dumps(
                dict(zip(columns, map(json_value, row), strict=True)), option=orjson.OPT_NON_STR_KEYS
            )
            for row in rows
        )
        self.session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n" + b"\n".join(lines).decode(), "Null")


def session_for(url: str) -> ClickHouseSession:
    """`chdb:///path` (or `chdb://` for a temporary one) runs in process; anything else is a server."""
    if not url:
        raise ImproperlyConfigured("ANALYTICS_BACKEND=clickhouse needs CLICKHOUSE_URL")
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return ChdbSession(str(Path(parts.path)) if parts.path else None)
    return HttpSession(url)


def as_text(parameters: Parameters | None) -> dict[str, str]:
    """Parameters in ClickHouse's text format, as its HTTP interface takes them
    (clickhouse-connect does the same for its server-side binding)."""
    return {name: text_of(value, quoted=False) for name, value in (parameters or {}).items()}


def text_of(value: object, *, quoted: bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(text_of(item, quoted=True) for item in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'" if quoted else value
    raise TypeError(f"no ClickHouse text for {type(value).__name__}")


def json_value(value: object) -> object:
    """Decimals as strings (exact), datetimes as ClickHouse reads them."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return utc_text(value)
    return value


def utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("ClickHouse times are UTC: pass an aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
