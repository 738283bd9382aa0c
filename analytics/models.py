"""The analytics read model (public schema): rollups of the usage ledger per tenant.

A rollup row holds the requests of one tenant in one UTC hour (or day) that
share a model, key, tier, status class and error type (or, in the coarser
slices, all models or all keys; `Slice`): their counts, token and
cost sums, and latency and TTFT histograms (analytics/sketch.py) as two
parallel arrays, bucket indexes and counts, sorted by bucket. Arrays, not
jsonb: a range's percentiles come from `unnest` of a few thousand rows in
SQL, which PostgreSQL sums without parsing JSON.

Rows carry plain ids, no foreign keys: the read model is derived data,
rebuildable from the ledger (`manage.py analytics_rebuild`), and a query over
it has no join path to anything but its own tenant's rows. The rollup worker
(analytics/rollups.py) is the only writer; the API reads through the read-only
`analytics` database alias (analytics/routers.py).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

DIMENSIONS = (
    "tenant_id",
    "slice",
    "bucket_start",
    "model",
    "api_key_id",
    "tier",
    "status_class",
    "error_type",
)


# A row of this status class holds only histograms: those of every tier, status class
# and error type of its slice, bucket, model and key, so that a query filtering on
# none of those merges one row per point instead of one per combination (a tenant's
# month of day rows: about 30 instead of hundreds). Its counts are zero.
ANY_STATUS = "*"


class Slice(models.TextChoices):
    """Which dimensions a rollup row keeps besides tier, status class and error type
    (what every set of figures reports). A query reads the coarsest slice that has
    the dimensions it filters or groups by: a tenant's month of day rows is a few
    hundred rows in `tenant`, tens of thousands in `all`."""

    ALL = "all"  # model and key
    MODEL = "model"  # key is null
    KEY = "key"  # model is ""
    TENANT = "tenant"  # model "" and key null


class Rollup(models.Model):
    tenant_id = models.BigIntegerField()
    slice = models.CharField(max_length=6, choices=Slice.choices)
    bucket_start = models.DateTimeField(help_text="The UTC hour or day the requests were served in.")
    model = models.CharField(max_length=200)
    api_key_id = models.BigIntegerField(null=True)
    tier = models.SmallIntegerField(null=True)
    status_class = models.CharField(max_length=3)
    error_type = models.CharField(max_length=100)
    requests = models.BigIntegerField()
    succeeded = models.BigIntegerField()
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    cost_usd = models.DecimalField(max_digits=24, decimal_places=8)
    estimated = models.BigIntegerField()
    latency_buckets = ArrayField(models.IntegerField())
    latency_counts = ArrayField(models.BigIntegerField())
    ttft_buckets = ArrayField(models.IntegerField())
    ttft_counts = ArrayField(models.BigIntegerField())

    class Meta:
        abstract = True


class HourlyRollup(Rollup):  # noqa: DJ008 - rows are figures, never shown one by one
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=list(DIMENSIONS), name="analytics_hourly_dimensions", nulls_distinct=False
            )
        ]


class DailyRollup(Rollup):  # noqa: DJ008 - as HourlyRollup
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=list(DIMENSIONS), name="analytics_daily_dimensions", nulls_distinct=False
            )
        ]


class RollupWatermark(models.Model):
    """The last ledger id an engine applied; moved in the transaction that applies the
    rows up to it (PostgreSQL), so a batch counts once or not at all."""

    backend = models.CharField(max_length=20, primary_key=True)
    ledger_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.backend} at ledger id {self.ledger_id}"
