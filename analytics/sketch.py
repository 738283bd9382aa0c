"""Mergeable latency histograms with a stated error bound (DDSketch's log-scale buckets).

A value v > 0 falls in bucket i = ceil(log(v) / log(GAMMA)), which holds the
values in (GAMMA^(i-1), GAMMA^i]. Reporting a bucket by 2 * GAMMA^i / (GAMMA + 1)
is within RELATIVE_ERROR of every value it holds, so a percentile read from
the histogram is within RELATIVE_ERROR (1%) of the exact percentile of the
same values, whatever their distribution and however many histograms were
merged. Zero (a request answered before a millisecond elapsed) has its own
bucket, ZERO_BUCKET, reported as 0.

Histograms are sparse {bucket: count} maps: latencies of one model in one hour
cover a few dozen buckets out of some nine hundred between 1 ms and a day.
Merging is adding counts, so rollups of any range merge exactly (Masson et
al., "DDSketch", VLDB 2019).

Percentiles follow PostgreSQL's `percentile_disc`: the p-th percentile of n
values is the k-th smallest, k = ceil(p * n) (at least 1), which lets tests
compare against the raw ledger in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
ZERO_BUCKET = -(2**15)  # below every real bucket (values under a microsecond never occur)

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def bucket_of(value: float) -> int:
    if value <= 0:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def value_of(bucket: int) -> float:
    """The value reported for a bucket: within RELATIVE_ERROR of all it holds."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


class Histogram:
    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: dict[int, int] = dict(counts or {})

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        histogram = cls()
        for value in values:
            histogram.add(value)
        return histogram

    def add(self, value: float, count: int = 1) -> None:
        bucket = bucket_of(value)
        self.counts[bucket] = self.counts.get(bucket, 0) + count

    def merge(self, other: Histogram | Mapping[int, int]) -> None:
        counts = other.counts if isinstance(other, Histogram) else other
        for bucket, count in counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The q-th quantile (0 < q <= 1) within RELATIVE_ERROR, or None when empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return value_of(bucket)
        raise AssertionError("unreachable: rank <= total")

    def percentiles(self) -> dict[str, float | None]:
        """{"p50", "p90", "p95", "p99"}, in milliseconds when the values were."""
        return {name: _round(self.quantile(q)) for name, q in PERCENTILES}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"Histogram({self.counts!r})"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
