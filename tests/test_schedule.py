"""Digest times and retry backoff, as tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedule import (
    backoff,
    digest_due_at,
    digest_to_send,
    digest_window,
    due_digest_day,
    next_digest_at,
    next_wake,
)

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


# -- each reader's own digest slot ---------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def sends(
    readers: dict[str, tuple[time, ZoneInfo]], start: str, end: str, step_s: int = 60
) -> dict[str, list[str]]:
    """Tick every `step_s` from `start` to `end` (UTC) as the scheduler does, each reader's
    last digest day as the state; when (local `MM-DD HH:MM+offset`) each reader's went out."""
    last: dict[str, date | None] = dict.fromkeys(readers)
    out: dict[str, list[str]] = {name: [] for name in readers}
    now, stop = utc(start), utc(end)
    while now < stop:
        for name, (at, tz) in readers.items():
            day = digest_to_send(now, at, tz, last[name])
            if day is not None:
                last[name] = day
                out[name].append(now.astimezone(tz).strftime("%m-%d %H:%M%z"))
        now += timedelta(seconds=step_s)
    return out


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (  # New York springs forward on 8 March: its 02:30 goes once, at 03:30 EDT
            "2026-03-07T00:00",
            "2026-03-10T00:00",
            {
                "berlin": ["03-07 02:30+0100", "03-08 02:30+0100", "03-09 02:30+0100"],
                "new_york": ["03-07 02:30-0500", "03-08 03:30-0400", "03-09 02:30-0400"],
            },
        ),
        (  # Berlin springs forward on 29 March: 02:30 does not exist, sent at 03:30 CEST
            "2026-03-28T00:00",
            "2026-03-31T00:00",
            {
                "berlin": ["03-28 02:30+0100", "03-29 03:30+0200", "03-30 02:30+0200"],
                "new_york": ["03-28 02:30-0400", "03-29 02:30-0400", "03-30 02:30-0400"],
            },
        ),
        (  # Berlin falls back on 25 October: 02:30 happens twice, the digest goes at the first
            "2026-10-24T00:00",
            "2026-10-27T00:00",
            {
                "berlin": ["10-24 02:30+0200", "10-25 02:30+0200", "10-26 02:30+0100"],
                "new_york": ["10-24 02:30-0400", "10-25 02:30-0400", "10-26 02:30-0400"],
            },
        ),
        (  # New York falls back on 1 November (01:00-02:00 twice); 02:30 happens once
            "2026-10-31T00:00",
            "2026-11-03T00:00",
            {
                "berlin": ["10-31 02:30+0100", "11-01 02:30+0100", "11-02 02:30+0100"],
                "new_york": ["10-31 02:30-0400", "11-01 02:30-0500", "11-02 02:30-0500"],
            },
        ),
    ],
)  # fmt: skip
def test_two_readers_in_two_zones_get_one_digest_a_local_day_across_dst(
    start: str, end: str, expected: dict[str, list[str]]
) -> None:
    """Two readers at 02:30 in Berlin and New York each get one digest per local day at their
    own local time, also on the days either clock springs forward or falls back."""
    readers = {"berlin": (time(2, 30), BERLIN), "new_york": (time(2, 30), NEW_YORK)}
    assert sends(readers, start, end) == expected


def test_a_digest_in_the_autumn_fold_goes_once() -> None:
    """A 01:30 digest in New York on the day 01:30 happens twice goes at the first, only."""
    readers = {"ny": (time(1, 30), NEW_YORK)}
    got = sends(readers, "2026-11-01T04:00", "2026-11-01T08:00")
    assert got == {"ny": ["11-01 01:30-0400"]}


@pytest.mark.parametrize(
    ("ticks", "expected"),
    [
        (["2026-01-15T06:59", "2026-01-15T07:00", "2026-01-15T07:01"], ["2026-01-15"]),
        (["2026-01-15T18:59"], ["2026-01-15"]),  # down at 08:00 Berlin, up 11:59 later: late
        (["2026-01-15T19:01", "2026-01-16T07:00"], ["2026-01-16"]),  # 12:01 late: skipped
        (
            ["2026-01-15T07:00", "2026-01-16T06:59", "2026-01-16T07:00"],
            ["2026-01-15", "2026-01-16"],
        ),
        (["2026-01-16T07:00", "2026-01-15T18:00"], ["2026-01-16"]),  # clock set back: not again
    ],
)
def test_catch_up_limit(ticks: list[str], expected: list[str]) -> None:
    """A digest missed by up to 12 hours goes out late; one missed by more is skipped; a day
    done is never sent again, whatever the clock says next."""
    last: date | None = None
    sent = []
    for tick in ticks:
        day = digest_to_send(utc(tick), time(8, 0), BERLIN, last)
        if day is not None:
            sent.append(day.isoformat())
            last = day
    assert sent == expected


@pytest.mark.parametrize(
    ("now", "at", "tz", "expected"),
    [
        ("2026-01-15T14:29", time(23, 30), TOKYO, None),  # 23:29 in Tokyo: not yet
        ("2026-01-15T14:30", time(23, 30), TOKYO, date(2026, 1, 15)),
        ("2026-01-15T15:10", time(23, 30), TOKYO, date(2026, 1, 15)),  # 00:10 on the 16th
        ("2026-01-15T15:10", time(0, 5), TOKYO, date(2026, 1, 16)),  # UTC still says the 15th
        ("2026-01-16T07:30", time(23, 0), LOS_ANGELES, date(2026, 1, 15)),  # UTC says the 16th
        ("2026-01-16T06:59", time(23, 0), LOS_ANGELES, None),  # 22:59 on the 15th
    ],
)
def test_the_day_due_is_the_readers_local_day(
    now: str, at: time, tz: ZoneInfo, expected: date | None
) -> None:
    """The digest day is the reader's own local day, not the UTC one, on either side of
    local midnight."""
    assert due_digest_day(utc(now), at, tz) == expected


@pytest.mark.parametrize(
    ("day", "at", "since", "expected"),
    [
        (date(2026, 1, 15), time(8, 0), None, ("2026-01-14T07:00", "2026-01-15T07:00")),
        (date(2026, 10, 25), time(8, 0), None, ("2026-10-24T06:00", "2026-10-25T07:00")),  # 25 h
        (date(2026, 3, 29), time(8, 0), None, ("2026-03-28T07:00", "2026-03-29T06:00")),  # 23 h
        (
            date(2026, 1, 15),
            time(8, 0),
            "2026-01-13T19:00",
            ("2026-01-13T19:00", "2026-01-15T07:00"),
        ),
        (
            date(2026, 1, 15),
            time(8, 0),
            "2026-01-15T09:00",
            ("2026-01-15T09:00", "2026-01-15T09:00"),
        ),
    ],
)
def test_digest_window(day: date, at: time, since: str | None, expected: tuple[str, str]) -> None:
    """A digest holds what came since the reader's previous one (first: since the day
    before's digest time, a local day of 23 or 25 hours on a DST day); a window that ended
    later (a digest sent by hand since) stays empty and never moves back."""
    start = utc(since) if since else None
    assert digest_window(day, at, BERLIN, start) == (utc(expected[0]), utc(expected[1]))


def test_next_wake_is_the_first_slot_or_a_minute() -> None:
    """The scheduler sleeps until the earliest slot's digest time, at most a minute."""
    now = utc("2026-01-15T06:58")
    slots = [(time(8, 0), BERLIN), (time(7, 0), ZoneInfo("UTC")), (time(7, 59), BERLIN)]
    assert next_wake(now, slots, longest=timedelta(minutes=10)) == utc("2026-01-15T06:59")
    assert next_wake(now, slots, longest=timedelta(seconds=30)) == utc("2026-01-15T06:58:30")
    assert next_wake(now, [], longest=timedelta(minutes=1)) == utc("2026-01-15T06:59")
