"""The time range a dashboard reads: a preset (the last 24 hours, 7 or 30 days)
or chosen UTC days, and the buckets its charts step through.

A range of up to two days is read by the hour, a longer one by the day. Its
edges fall on bucket edges, so every bucket of a chart is whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from analytics.backends.base import Granularity, GroupBy, Query

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONGEST = timedelta(days=366)
HOURLY_UP_TO = timedelta(days=2)


class Preset(StrEnum):
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def label(self) -> str:
        return {Preset.DAY: "24 hours", Preset.WEEK: "7 days", Preset.MONTH: "30 days"}[self]


def start_of_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class DateRange:
    start: datetime  # inclusive, on a bucket edge
    end: datetime  # exclusive, on a bucket edge
    preset: Preset | None = None

    @classmethod
    def last(cls, preset: Preset, now: datetime) -> DateRange:
        """The preset's span up to and including the current hour (24h) or day."""
        if preset == Preset.DAY:
            end = start_of_hour(now) + HOUR
            return cls(end - DAY, end, preset)
        end = start_of_day(now.astimezone(UTC).date()) + DAY
        return cls(end - DAY * (7 if preset == Preset.WEEK else 30), end, preset)

    @classmethod
    def days(cls, first: date, last: date) -> DateRange:
        """From the start of `first` to the end of `last` (UTC), both included."""
        if last < first:
            raise ValueError("The range ends before it starts.")
        if last - first >= LONGEST:
            raise ValueError(f"A range spans at most {LONGEST.days} days.")
        return cls(start_of_day(first), start_of_day(last) + DAY)

    @property
    def granularity(self) -> Granularity:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    @property
    def step(self) -> timedelta:
        return HOUR if self.granularity == "hour" else DAY

    @property
    def buckets(self) -> list[datetime]:
        count = (self.end - self.start) // self.step
        return [self.start + index * self.step for index in range(count)]

    @property
    def label(self) -> str:
        """The range as people say it: whole days by their dates, hours by their times."""
        if self.granularity == "day":
            return f"{self.start:%b %d} to {self.last_day:%b %d, %Y} (UTC)"
        return f"{self.start:%b %d %H:%M} to {self.end:%b %d %H:%M, %Y} (UTC)"

    @property
    def last_day(self) -> date:
        return (self.end - DAY).date() if self.granularity == "day" else (self.end - HOUR).date()

    def query(self, tenant_id: int, group_by: GroupBy | None = None) -> Query:
        return Query(tenant_id, self.start, self.end, self.granularity, group_by)
