"""Digest times and retry backoff, as tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedule import backoff, digest_due_at, due_digest_day, next_digest_at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "at", "tz", "expected"),
    [
        (date(2026, 1, 15), time(8, 0), BERLIN, "2026-01-15T07:00"),  # winter, UTC+1
        (date(2026, 7, 15), time(8, 0), BERLIN, "2026-07-15T06:00"),  # summer, UTC+2
        (date(2026, 3, 29), time(2, 30), BERLIN, "2026-03-29T01:30"),  # gap: 03:30 CEST
        (date(2026, 10, 25), time(2, 30), BERLIN, "2026-10-25T00:30"),  # fold: first 02:30
        (date(2026, 3, 8), time(2, 30), NEW_YORK, "2026-03-08T07:30"),  # gap: 03:30 EDT
        (date(2026, 1, 15), time(8, 0), ZoneInfo("UTC"), "2026-01-15T08:00"),
    ],
)
def test_digest_due_at(day: date, at: time, tz: ZoneInfo, expected: str) -> None:
    """The digest goes out at the local digest time, also on days the clocks change."""
    assert digest_due_at(day, at, tz) == utc(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-01-15T06:59", "2026-01-15T07:00"),  # before today's
        ("2026-01-15T07:00", "2026-01-16T07:00"),  # exactly at: the next one
        ("2026-01-15T23:30", "2026-01-16T07:00"),  # after local midnight (00:30 Berlin)
        ("2026-03-28T12:00", "2026-03-29T06:00"),  # across the spring change
        ("2026-10-24T12:00", "2026-10-25T07:00"),  # across the autumn change
    ],
)
def test_next_digest_at(now: str, expected: str) -> None:
    """The next digest instant is the first one after now, in the site's time zone."""
    assert next_digest_at(utc(now), time(8, 0), BERLIN) == utc(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-01-15T06:59", None),  # yesterday's passed more than 12 h ago
        ("2026-01-15T07:00", date(2026, 1, 15)),
        ("2026-01-15T18:00", date(2026, 1, 15)),  # down at 08:00, up at 19:00: sent late
        ("2026-01-15T19:01", None),  # more than 12 h late: skipped
        ("2026-01-15T23:30", None),
    ],
)
def test_due_digest_day(now: str, expected: date | None) -> None:
    """A digest due in the last 12 hours is sent (late if need be); an older one is not."""
    assert due_digest_day(utc(now), time(8, 0), BERLIN) == expected


def test_due_digest_day_just_after_midnight() -> None:
    """At 00:30 with a 23:00 digest, yesterday's is still the one due."""
    now = utc("2026-01-15T23:30")  # 00:30 on the 16th in Berlin
    assert due_digest_day(now, time(23, 0), BERLIN) == date(2026, 1, 15)
    assert due_digest_day(now, time(23, 0), BERLIN, catch_up=timedelta(minutes=10)) is None


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0), (10, 2560.0), (11, 3600.0), (500, 3600.0)],
)
def test_backoff(attempt: int, expected: float) -> None:
    """Retries wait longer each time, doubling from 5 s up to an hour."""
    assert backoff(attempt) == expected
