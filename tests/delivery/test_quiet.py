"""Quiet hours: posts, digests and broadcasts inside a reader's window arrive without a sound
(disable_notification), in the reader's zone; breaking alerts always ring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.quiet import silent
from bot.models import Channel, ClaimedItem, Degrade, Kind
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.delivery import make_post, make_settings, running

BERLIN, TOKYO = ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")


def row(kind: Kind, quiet: str | None, tz: str | None = None) -> ClaimedItem:
    return ClaimedItem(
        id=1,
        job_id=1,
        key="k",
        kind=kind,
        channel=Channel.TELEGRAM,
        subscriber_id=1,
        address="1",
        attempts=0,
        parts_done=0,
        plain=Degrade.NONE,
        quiet=quiet,
        tz=tz,
    )


def at(hh: int, mm: int, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime(2026, 3, 10, hh, mm, tzinfo=tz)


@pytest.mark.parametrize(
    ("kind", "quiet", "tz", "now", "expected"),
    [
        (Kind.POST, "22:00-07:00", None, at(23, 30), True),  # crossing midnight, before it
        (Kind.POST, "22:00-07:00", None, at(3, 0), True),  # after it
        (Kind.POST, "22:00-07:00", None, at(22, 0), True),  # the start is inside
        (Kind.POST, "22:00-07:00", None, at(7, 0), False),  # the end is not
        (Kind.POST, "22:00-07:00", None, at(12, 0), False),
        (Kind.DIGEST, "12:00-14:00", None, at(13, 0), True),  # a window within the day
        (Kind.BROADCAST, "12:00-14:00", None, at(13, 0), True),
        (Kind.DIGEST, "12:00-14:00", None, at(14, 30), False),
        (Kind.BREAKING, "22:00-07:00", None, at(23, 30), False),  # breaking always rings
        (Kind.CONFIRM, "22:00-07:00", None, at(23, 30), False),
        (Kind.EDIT, "22:00-07:00", None, at(23, 30), False),  # an edit makes no sound anyway
        (Kind.POST, None, None, at(23, 30), False),  # no quiet hours
        # 23:30 in Berlin is 07:30 in Tokyo: a Tokyo reader's night is over.
        (Kind.POST, "22:00-07:00", "Asia/Tokyo", at(23, 30), False),
        (Kind.POST, "22:00-07:00", "Asia/Tokyo", at(3, 0, TOKYO), True),
        (Kind.POST, "22:00-07:00", "No/Such_Zone", at(23, 30), True),  # unknown: the site's
    ],
)
def test_which_rows_go_silently(
    kind: Kind, quiet: str | None, tz: str | None, now: datetime, expected: bool
) -> None:
    """Silent exactly for quiet kinds inside the window, local to the reader (or the site)."""
    assert silent(row(kind, quiet, tz), now, BERLIN) is expected


def window(now: datetime, tz: ZoneInfo, start_h: float, end_h: float) -> str:
    """A quiet-hours window from `start_h` to `end_h` hours after `now`, local to `tz`."""
    local = now.astimezone(tz)
    a, b = local + timedelta(hours=start_h), local + timedelta(hours=end_h)
    return f"{a:%H:%M}-{b:%H:%M}"


def tg_settings(tmp_path: Path, fake: FakeBotAPI, **overrides: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        telegram_token=TOKEN,
        telegram_api_url=fake.base_url,
        smtp_url="smtp://127.0.0.1:1",
        **overrides,
    )


async def test_a_post_in_the_window_arrives_silently_outside_it_rings(tmp_path: Path) -> None:
    """Of three every-post readers, the one inside their quiet hours gets it silently; the
    one whose window is later today and the one without quiet hours get it with a sound."""
    now = datetime.now(UTC)
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        subs = rig.store.subscribers
        inside = await subs.upsert(Channel.TELEGRAM, "1", every_post=True)
        later = await subs.upsert(Channel.TELEGRAM, "2", every_post=True)
        await subs.upsert(Channel.TELEGRAM, "3", every_post=True)
        await subs.set_quiet(inside.id, window(now, ZoneInfo("UTC"), -1, 1))
        await subs.set_quiet(later.id, window(now, ZoneInfo("UTC"), 2, 3))
        await rig.publisher.announce(make_post(1), post_id=1)
        await rig.drained()
        assert [s.silent for s in fake.sent_to(1)] == [True]
        assert [s.silent for s in fake.sent_to(2)] == [False]
        assert [s.silent for s in fake.sent_to(3)] == [False]


async def test_breaking_alerts_ring_in_quiet_hours(tmp_path: Path) -> None:
    """A breaking alert reaches a reader in their quiet hours with a sound; a broadcast
    to the same reader then goes silently."""
    now = datetime.now(UTC)
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        sub = await rig.store.subscribers.upsert(Channel.TELEGRAM, "1", every_post=True)
        await rig.store.subscribers.set_quiet(sub.id, window(now, ZoneInfo("UTC"), -1, 1))
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        await rig.drained()
        await rig.publisher.broadcast("<b>Maintenance tonight</b>", admin_id=1)
        await rig.drained()
        sent = fake.sent_to(1)
        assert [("Post number 1" in (s.text or ""), s.silent) for s in sent] == [
            (True, False),
            (False, True),
        ]


async def test_quiet_hours_are_local_to_the_reader_or_the_site(tmp_path: Path) -> None:
    """A window that is now in Tokyo silences the Tokyo reader only; a reader with no zone
    has it in the site's zone (HERALD_TIMEZONE)."""
    now = datetime.now(UTC)
    tokyo_now = window(now, TOKYO, -1, 1)
    async with (
        FakeBotAPI() as fake,
        running(tg_settings(tmp_path, fake, timezone="Asia/Tokyo")) as rig,
    ):
        subs = rig.store.subscribers
        tokyo = await subs.upsert(Channel.TELEGRAM, "1", every_post=True)
        reykjavik = await subs.upsert(Channel.TELEGRAM, "2", every_post=True)
        site = await subs.upsert(Channel.TELEGRAM, "3", every_post=True)
        for sub in (tokyo, reykjavik, site):
            await subs.set_quiet(sub.id, tokyo_now)
        await subs.set_timezone(tokyo.id, "Asia/Tokyo")
        await subs.set_timezone(reykjavik.id, "Atlantic/Reykjavik")  # UTC+0: 9 hours away
        await rig.publisher.announce(make_post(1), post_id=1)
        await rig.drained()
        assert [s.silent for s in fake.sent_to(1)] == [True]
        assert [s.silent for s in fake.sent_to(2)] == [False]
        assert [s.silent for s in fake.sent_to(3)] == [True]
