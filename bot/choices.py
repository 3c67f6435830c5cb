"""Readers' own choices, as text and back: topics, quiet hours, digest time, time zone. Pure.

Chat commands, the preferences page, CSV import and delivery all read them through here, so a
choice is spelled and checked the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.settings import parse_hhmm

QUIET_FORMAT = "HH:MM-HH:MM"
_ZONES: frozenset[str] | None = None


def topic_key(name: str) -> str:
    """How a topic is compared and stored: whitespace collapsed, casefolded."""
    return " ".join(name.split()).casefold()


def topics_text(topics: Iterable[str]) -> str:
    """Stored form of a set of topics: `;a;b;` (sorted, casefolded), or "" for none."""
    keys = sorted({topic_key(t) for t in topics if topic_key(t)})
    return f";{';'.join(keys)};" if keys else ""


def topics_of(text: str | None) -> tuple[str, ...]:
    """The topics in their stored form `;a;b;` (or `a;b` as a CSV column has them)."""
    return tuple(sorted({topic_key(t) for t in (text or "").split(";") if topic_key(t)}))


def wants(reader_topics: Iterable[str], post_topics: Iterable[str]) -> bool:
    """Whether a reader with these topics (none: everything) gets a post with these."""
    chosen = {topic_key(t) for t in reader_topics}
    return not chosen or bool(chosen & {topic_key(t) for t in post_topics})


def parse_time(text: str) -> str:
    """ "7:5" or "07:05" → "07:05"; ValueError naming the form otherwise."""
    hh, mm = parse_hhmm(text)
    return f"{hh:02d}:{mm:02d}"


def parse_quiet(text: str) -> str:
    """ "22:00-07:00" → "22:00-07:00" (normalised); ValueError naming the form otherwise.

    The window may cross midnight; a window that starts where it ends is refused (it would
    be all day or nothing).
    """
    start, sep, end = text.strip().replace("–", "-").partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not a quiet-hours window; use {QUIET_FORMAT}")
    try:
        a, b = parse_time(start), parse_time(end)
    except ValueError:
        raise ValueError(f"{text!r} is not a quiet-hours window; use {QUIET_FORMAT}") from None
    if a == b:
        raise ValueError(f"{text!r} starts where it ends; use {QUIET_FORMAT} such as 22:00-07:00")
    return f"{a}-{b}"


def quiet_bounds(quiet: str) -> tuple[time, time]:
    start, _, end = quiet.partition("-")
    return time(*parse_hhmm(start)), time(*parse_hhmm(end))


def in_quiet(now: datetime, quiet: str | None, tz: ZoneInfo) -> bool:
    """Whether aware `now` falls in the quiet window (local to `tz`); start inclusive."""
    if not quiet:
        return False
    start, end = quiet_bounds(quiet)
    local = now.astimezone(tz).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window crosses midnight


def parse_zone(text: str) -> str:
    """An IANA zone name as given ("Europe/Berlin", any case) → its canonical spelling;
    ValueError otherwise (abbreviations such as "CET" or offsets are not zone names)."""
    global _ZONES
    name = text.strip()
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    by_fold = {z.casefold(): z for z in _ZONES} if name not in _ZONES else {}
    found = name if name in _ZONES else by_fold.get(name.casefold())
    problem = f"{text!r} is not a time zone name; use one such as Europe/Berlin"
    if found is None or ("/" not in found and found != "UTC"):
        raise ValueError(problem)
    try:
        ZoneInfo(found)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(problem) from None
    return found


def zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """A stored zone name as a ZoneInfo, or `default` (the site's) when unset or unknown."""
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default
