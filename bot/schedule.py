"""Pure time maths: when each reader's daily digest is due, and how long to wait before a retry.

A digest slot is a local time in a zone; every function takes the instant `now` (aware), so
the scheduler and its tests pass time in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A digest missed by less than this (the process was down at digest time) is sent late;
# one missed by more is skipped, and its posts go into the next one.
CATCH_UP = timedelta(hours=12)


def digest_due_at(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) of `day`'s digest at local time `at`, DST-safe.

    A local time that does not exist (the spring-forward gap) is taken as the instant the
    clock would have shown it had it not jumped (02:30 → 03:30); one that happens twice
    (the autumn fold) is taken at its first occurrence.
    """
    # fold=0 picks the offset in force before a transition: in the gap that lands after
    # the jump by the gap's length, in the fold it is the first of the two instants.
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_digest_at(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first digest instant strictly after `now` (aware), in UTC."""
    today = now.astimezone(tz).date()
    for offset in range(0, 3):
        due = digest_due_at(today + timedelta(days=offset), at, tz)
        if due > now:
            return due
    raise AssertionError("a digest is due within three days")  # pragma: no cover


def due_digest_day(
    now: datetime, at: time, tz: ZoneInfo, *, catch_up: timedelta = CATCH_UP
) -> date | None:
    """The local day whose digest should have been sent by `now`, if still worth sending.

    That is the latest day whose digest time has passed, unless it passed more than
    `catch_up` ago (the process was down; that day's posts go into the next digest).
    """
    today = now.astimezone(tz).date()
    for day in (today, today - timedelta(days=1)):
        due = digest_due_at(day, at, tz)
        if due <= now:
            return day if now - due <= catch_up else None
    return None


def digest_to_send(
    now: datetime,
    at: time,
    tz: ZoneInfo,
    last_day: date | None,
    *,
    catch_up: timedelta = CATCH_UP,
) -> date | None:
    """The local day whose digest a reader gets at `now`, given the day of their last one
    (None: never had one): the day due, unless that one is done already."""
    day = due_digest_day(now, at, tz, catch_up=catch_up)
    if day is None or (last_day is not None and day <= last_day):
        return None
    return day


def digest_window(
    day: date, at: time, tz: ZoneInfo, since: datetime | None
) -> tuple[datetime, datetime]:
    """[since, until) of `day`'s digest: until its digest instant, from where the reader's
    previous window ended (None: the previous day's digest instant).

    The same arguments give the same window, so a digest planned again after a restart is
    the same digest. A window that ended later (a digest sent by hand since) stays empty.
    """
    until = digest_due_at(day, at, tz)
    start = since if since is not None else digest_due_at(day - timedelta(days=1), at, tz)
    return start, max(until, start)


def next_wake(
    now: datetime, slots: Iterable[tuple[time, ZoneInfo]], *, longest: timedelta
) -> datetime:
    """When the scheduler should look again: the first digest instant of any slot after
    `now`, and no later than `longest` from now (slots change as readers choose)."""
    wake = now + longest
    for at, tz in set(slots):
        wake = min(wake, next_digest_at(now, at, tz))
    return wake


def backoff(attempt: int, *, base_s: float = 5.0, cap_s: float = 3600.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): doubling, capped."""
    if attempt < 1:
        return 0.0
    return float(min(cap_s, base_s * 2 ** min(attempt - 1, 30)))
