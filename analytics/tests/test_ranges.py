"""The dashboard's ranges (analytics/ranges.py): whole buckets, by the hour up to two days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from analytics.ranges import DateRange, Preset

NOW = datetime(2026, 12, 7, 8, 41, 5, tzinfo=UTC)


def test_the_last_24_hours_are_24_whole_hours_up_to_the_current_one() -> None:
    last = DateRange.last(Preset.DAY, NOW)

    assert (last.start, last.end, last.granularity) == (
        datetime(2026, 12, 6, 9, tzinfo=UTC),
        datetime(2026, 12, 7, 9, tzinfo=UTC),
        "hour",
    )
    assert len(last.buckets) == 24
    assert last.buckets[-1] == datetime(2026, 12, 7, 8, tzinfo=UTC)


@pytest.mark.parametrize(("preset", "days"), [(Preset.WEEK, 7), (Preset.MONTH, 30)])
def test_the_day_presets_are_whole_days_up_to_today(preset: Preset, days: int) -> None:
    last = DateRange.last(preset, NOW)

    assert last.end == datetime(2026, 12, 8, tzinfo=UTC)
    assert last.granularity == "day"
    assert len(last.buckets) == days
    assert last.last_day == date(2026, 12, 7)


def test_chosen_days_include_both_ends_by_the_hour_up_to_two_days() -> None:
    two = DateRange.days(date(2026, 12, 1), date(2026, 12, 2))
    three = DateRange.days(date(2026, 12, 1), date(2026, 12, 3))

    assert (two.start, two.end, two.granularity, len(two.buckets)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 3, tzinfo=UTC),
        "hour",
        48,
    )
    assert (three.granularity, len(three.buckets)) == ("day", 3)


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (date(2026, 12, 2), date(2026, 12, 1), "The range ends before it starts."),
        (date(2025, 1, 1), date(2026, 1, 2), "A range spans at most 366 days."),
    ],
)
def test_a_range_backwards_or_too_long_is_refused(first: date, last: date, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DateRange.days(first, last)


def test_a_range_of_366_days_is_allowed() -> None:
    assert len(DateRange.days(date(2025, 1, 1), date(2026, 1, 1)).buckets) == 366


def test_a_range_reads_as_days_or_hours() -> None:
    assert DateRange.last(Preset.WEEK, NOW).label == "Dec 01 to Dec 07, 2026 (UTC)"
    assert DateRange.last(Preset.DAY, NOW).label == "Dec 06 09:00 to Dec 07 09:00, 2026 (UTC)"


def test_a_range_asks_for_its_tenant_and_granularity() -> None:
    query = DateRange.last(Preset.WEEK, NOW).query(42, "model")

    assert (query.tenant_id, query.granularity, query.group_by) == (42, "day", "model")
    assert (query.start, query.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC))
