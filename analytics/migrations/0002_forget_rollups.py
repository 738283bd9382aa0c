"""Rollups built before slices existed are dropped and rebuilt by the worker from id 0."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "TRUNCATE analytics_hourlyrollup, analytics_dailyrollup; DELETE FROM analytics_rollupwatermark;",
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
