"""The analytics read model's engines, behind one interface (analytics/backends/base.py):
PostgreSQL rollups by default, ClickHouse with `ANALYTICS_BACKEND=clickhouse`."""
