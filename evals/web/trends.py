"""Each dataset's pass rate by day, as a line chart (aiaas/charts.py): one series per
dataset, a day's value the mean pass rate of the experiments that finished on it,
a gap on days without one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiaas.charts import Chart, ChartKind, Series, Unit
from evals.models import Experiment

DAY = timedelta(days=1)
MAX_SERIES = 8


def days_ending(today: datetime, count: int) -> tuple[datetime, ...]:
    midnight = today.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return tuple(midnight - DAY * offset for offset in reversed(range(count)))


def pass_rate_chart(experiments: Iterable[Experiment], today: datetime, days: int) -> Chart:
    """Finished experiments of the last `days` days with a pass rate; the datasets
    with the most experiments first when there are more than the chart can tell apart."""
    axis = days_ending(today, days)
    rates: dict[str, dict[datetime, list[float]]] = defaultdict(lambda: defaultdict(list))
    for experiment in experiments:
        pass_rate = (experiment.aggregates or {}).get("pass_rate")
        if pass_rate is None or experiment.finished_at is None:
            continue
        day = days_ending(experiment.finished_at, 1)[0]
        if day >= axis[0]:
            rates[experiment.version.dataset.name][day].append(float(pass_rate))
    busiest = sorted(rates, key=lambda name: (-sum(map(len, rates[name].values())), name))[:MAX_SERIES]
    series = tuple(
        Series(label=name, values=tuple(mean(rates[name].get(day)) for day in axis))
        for name in sorted(busiest)
    )
    return Chart(
        id="pass-rate-trend",
        title="Pass rate by dataset, per day",
        kind=ChartKind.LINE,
        unit=Unit.SHARE,
        axis=axis,
        step_seconds=int(DAY.total_seconds()),
        series=series,
    )


def mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None
