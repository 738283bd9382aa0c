"""Rollups gain the histogram-only rows (`analytics.models.ANY_STATUS`): the PostgreSQL
engine's rollups are emptied and rebuilt by the worker from ledger id 0. Other
engines' watermarks stay: their data is untouched."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("analytics", "0003_rollup_slices")]

    operations = [
        migrations.RunSQL(
            "TRUNCATE analytics_hourlyrollup, analytics_dailyrollup; "
            "DELETE FROM analytics_rollupwatermark WHERE backend = 'postgres';",
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
