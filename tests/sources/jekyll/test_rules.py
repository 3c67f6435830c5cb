"""Jekyll's reading of dates: each form a front matter or file name date takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.errors import PostError
from bot.settings import Site
from bot.sources.jekyll import ruby_time
from bot.sources.jekyll.reader import parse_post

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")


def site_in(tz: str) -> Site:
    """A site in the zone `tz`, without touching the disk."""
    return Site(Path("/nonexistent"), "https://ex.com", ZoneInfo(tz), "date", "T")


def post_date(front: str, tz: str, rel: str = "2026-11-25-a.md") -> datetime:
    return parse_post(rel, f"---\n{front}\n---\n\nBody.\n".encode(), site_in(tz)).date


@pytest.mark.parametrize(
    ("front", "tz", "expected"),
    [
        # An unquoted YAML timestamp without an offset is UTC (Psych makes it a UTC Time).
        ("date: 2026-07-01 10:00:00", "America/Los_Angeles", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 2026-07-01T10:00:00", "Europe/Berlin", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 2026-07-01 23:30:00", "Europe/Berlin", datetime(2026, 7, 1, 23, 30, tzinfo=UTC)),
        # ... and loses its fraction of a second (`Time#to_s`, then `Time.parse`).
        ("date: 2026-07-01T10:00:00.75", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        # The same text quoted is a string: read in the site's zone.
        ("date: '2026-07-01 10:00:00'", "America/Los_Angeles", datetime(2026, 7, 1, 10, tzinfo=LA)),
        ('date: "2026-07-01 10:00"', "Europe/Berlin", datetime(2026, 7, 1, 10, tzinfo=BERLIN)),
        # Unquoted without seconds is no YAML timestamp, so a string too.
        ("date: 2026-07-01 10:00", "Europe/Berlin", datetime(2026, 7, 1, 10, tzinfo=BERLIN)),
        # A date alone is midnight in the site's zone, quoted or not.
        ("date: 2026-07-01", "Asia/Tokyo", datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Tokyo"))),
        ("date: '2026-7-1'", "Europe/Berlin", datetime(2026, 7, 1, tzinfo=BERLIN)),
        # An offset decides, quoted or not, with or without a colon.
        ("date: 2026-07-01 10:00:00 +02:00", "UTC", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 -0500", "UTC", datetime(2026, 7, 1, 15, tzinfo=UTC)),
        ("date: '2026-07-01T10:00:00Z'", "Europe/Berlin", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        # Lenient strings, as Ruby's Time.parse reads them.
        ("date: 2023-01-29 18:30:22 2023 -0800", "UTC",
         datetime(2023, 1, 29, 18, 30, 22, tzinfo=UTC)),
        ("date: 2023-01-29 18:30:22 2023 -0800", "Europe/Berlin",
         datetime(2023, 1, 29, 18, 30, 22, tzinfo=BERLIN)),
        ("date: July 1, 2026", "Europe/Berlin", datetime(2026, 7, 1, tzinfo=BERLIN)),
        ("date: 1 July 2026 10:00", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: Jul 1 2026 10:00 PM", "UTC", datetime(2026, 7, 1, 22, tzinfo=UTC)),
        ("date: Wed, 01 Jul 2026 10:00:00 GMT", "Europe/Berlin",
         datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: Monday, January 5th 2026 at 9:30am", "UTC",
         datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("date: 2026/07/01 10:00:00", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 01.07.2026", "UTC", datetime(2026, 7, 1, tzinfo=UTC)),
        ("date: '20260701T100000'", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 2026-07-01 10h30", "UTC", datetime(2026, 7, 1, 10, 30, tzinfo=UTC)),
        ("date: 10:00 2026-07-01", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        # Zone names: Ruby's table, and the site zone's own abbreviations; others are ignored.
        ("date: 2026-07-01 10:00:00 PST", "UTC", datetime(2026, 7, 1, 18, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 EDT", "UTC", datetime(2026, 7, 1, 14, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 CEST", "Europe/Berlin", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 CEST", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 Europe/Berlin", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: '2026-07-01 10:00:00 +2'", "UTC", datetime(2026, 7, 1, 10, tzinfo=UTC)),
        ("date: 2026-07-01 10:00:00 +2", "UTC", datetime(2026, 7, 1, 8, tzinfo=UTC)),  # YAML's
        # A day past the month's end rolls over, quoted or not, as Ruby's Time does.
        ("date: '2026-02-30 10:00'", "UTC", datetime(2026, 3, 2, 10, tzinfo=UTC)),
        ("date: 2026-02-30 10:00:00", "Europe/Berlin", datetime(2026, 3, 2, 10, tzinfo=UTC)),
        ("date: 2026-02-31", "UTC", datetime(2026, 3, 3, tzinfo=UTC)),
        # No date: the file name's, at midnight in the site's zone.
        ("title: x", "America/Los_Angeles", datetime(2026, 11, 25, tzinfo=LA)),
    ],
)  # fmt: skip
def test_date_forms(front: str, tz: str, expected: datetime) -> None:
    """Each date form means the instant Jekyll 4 gives it, placed in the site's zone."""
    when = post_date(front, tz)
    assert when == expected
    assert when.utcoffset() == expected.astimezone(ZoneInfo(tz)).utcoffset()


def test_file_name_dates_roll_over_too() -> None:
    """A file name day past the month's end is the next month's, as Time.parse makes it."""
    assert post_date("title: x", "UTC", "2026-02-30-a.md") == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("date: next tuesday", "no time information"),
        ("date: 2026-13-01", "mon out of range"),
        ("date: '2026-07-01 25:00'", "hour out of range"),
        ("date: 2026", "out of range"),
        ("date: '2026-01-01 00:00 +99:99'", "utc_offset out of range"),
    ],
)
def test_dates_jekyll_refuses_are_broken_posts(front: str, reason: str) -> None:
    """A date Ruby's Time.parse refuses makes the post broken, with Ruby's reason."""
    with pytest.raises(PostError, match=reason):
        post_date(front, "UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:00", datetime(2026, 3, 15, 10, tzinfo=UTC)),
        ("Jan 29", datetime(2026, 1, 29, tzinfo=UTC)),
        ("29th", datetime(2026, 3, 29, tzinfo=UTC)),
        ("Jan 2026", datetime(2026, 1, 1, tzinfo=UTC)),
        ("1 Jan 99", datetime(1999, 1, 1, tzinfo=UTC)),
        ("1 Jan 68", datetime(2068, 1, 1, tzinfo=UTC)),
        ("2026-182", datetime(2026, 7, 1, tzinfo=UTC)),
        ("2026-07-01 10:00:00 +05:30", datetime(2026, 7, 1, 4, 30, tzinfo=UTC)),
        ("2026-07-01 24:00", datetime(2026, 7, 2, tzinfo=UTC)),
        ("20260701100000 [-5:EST]", datetime(2026, 7, 1, 15, tzinfo=UTC)),
    ],
)
def test_ruby_time_parse_fills_from_now(text: str, expected: datetime) -> None:
    """Fields missing before the first one given come from now; two-digit years are 1969-2068."""
    now = datetime(2026, 3, 15, 12, 34, 56, tzinfo=UTC)
    assert ruby_time.parse(text, UTC, now) == expected


def test_zone_offset_of_the_site_zone_abbreviation() -> None:
    """Time.zone_offset knows the local zone's names: PST in January, PDT in July, there."""
    assert ruby_time.zone_offset("pst", 2026, LA) == -8 * 3600
    assert ruby_time.zone_offset("CET", 2026, BERLIN) == 3600
    assert ruby_time.zone_offset("CET", 2026, UTC) is None
    parsed = ruby_time.parse("2026-01-05 09:00 CET", BERLIN)
    assert parsed == datetime(2026, 1, 5, 9, tzinfo=timezone(timedelta(hours=1)))
