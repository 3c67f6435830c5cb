"""The email preferences form: what the page shows, and a submitted form read and checked.

Pure: the route reads the offer and the subscriber, this decides what to save (or which
fields are wrong, in which case nothing is saved).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot import choices
from bot.models import Subscriber

# Zones offered as suggestions beside the text field; any IANA name is accepted.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Mexico_City",
)


@dataclass(frozen=True)
class TopicBox:
    """One topic checkbox: its name as offered (the value sent back) and whether ticked."""

    name: str
    checked: bool


@dataclass(frozen=True)
class PrefsForm:
    """The form's fields as shown: the stored choices, or what was just submitted."""

    breaking: bool
    daily: bool
    every_post: bool
    topics: tuple[TopicBox, ...]
    digest_time: str  # "" = the site's
    timezone: str  # "" = the site's


@dataclass(frozen=True)
class Choices:
    """A submitted form, checked: what to save."""

    breaking: bool
    daily: bool
    every_post: bool
    topics: tuple[str, ...]  # casefolded
    digest_at: str | None
    tz: str | None


def topic_names(offer: Sequence[str], chosen: Collection[str]) -> list[str]:
    """The checkboxes' topics: the offer, then chosen ones it no longer has (to drop them)."""
    offered = {choices.topic_key(name) for name in offer}
    return [*offer, *sorted({choices.topic_key(t) for t in chosen} - offered)]


def boxes(names: Sequence[str], ticked: Collection[str]) -> tuple[TopicBox, ...]:
    keys = {choices.topic_key(t) for t in ticked}
    return tuple(TopicBox(name, choices.topic_key(name) in keys) for name in names)


def shown(sub: Subscriber, offer: Sequence[str]) -> PrefsForm:
    """The form filled with the subscriber's stored choices."""
    return PrefsForm(
        breaking=sub.breaking,
        daily=sub.daily,
        every_post=sub.every_post,
        topics=boxes(topic_names(offer, sub.topics), sub.topics),
        digest_time=sub.digest_at or "",
        timezone=sub.tz or "",
    )


def read(
    fields: Mapping[str, str], ticked: Sequence[str], sub: Subscriber, offer: Sequence[str]
) -> tuple[PrefsForm, Choices | None, tuple[str, ...]]:
    """A submitted form: (the form as sent back, the choices to save or None, the names of
    the fields that are wrong). Topics count only when on offer or already chosen, so a
    forged form cannot store arbitrary names."""
    names = topic_names(offer, sub.topics)
    allowed = {choices.topic_key(name) for name in names}
    keys = tuple(sorted({k for t in ticked if (k := choices.topic_key(t)) in allowed}))
    at_text = fields.get("digest_time", "").strip()
    tz_text = fields.get("timezone", "").strip()
    problems: list[str] = []
    at: str | None = None
    tz: str | None = None
    if at_text:
        try:
            at = choices.parse_time(at_text)
        except ValueError:
            problems.append("digest_time")
    if tz_text:
        try:
            tz = choices.parse_zone(tz_text)
        except ValueError:
            problems.append("timezone")
    form = PrefsForm(
        breaking="breaking" in fields,
        daily="daily" in fields,
        every_post="every_post" in fields,
        topics=boxes(names, keys),
        digest_time=at or at_text,
        timezone=tz or tz_text,
    )
    if problems:
        return form, None, tuple(problems)
    picked = Choices(form.breaking, form.daily, form.every_post, keys, at, tz)
    return form, picked, ()
