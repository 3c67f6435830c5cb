"""Each reader's daily digest at their own time: a tick plans every digest slot that is due.

A slot is the (digest time, zone) readers chose; None in either is the site's
HERALD_DIGEST_TIME and zone. The readers' rows hold the state (the local day of their last
digest and where its window ended), so a restart plans the same digests again and none
twice in a local day. Outbox stand-ins follow the site's default slot with every post; the
`digests` log (one row per site digest) is their state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.choices import topics_text, wants, zone
from bot.models import Channel, DigestGroup, Kind, Post, Rendered
from bot.outbox import plan
from bot.outbox.publish import Publisher
from bot.schedule import CATCH_UP, digest_window, due_digest_day, next_wake
from bot.settings import parse_hhmm
from bot.store import Digests, DigestSlot

log = logging.getLogger(__name__)

MAX_SLEEP = timedelta(seconds=60)  # look at least this often: clocks jump, readers choose
# A slot planned for its day is looked at again only this long after (for readers who
# chose it, or subscribed, since): most ticks then ask the database for the slots alone.
RECHECK = timedelta(minutes=15)
# The slots in use are read again this often (a pass over every digest reader): a reader's
# new digest time counts from then on, sent late by at most this if it was just due.
SLOTS_FRESH = timedelta(minutes=5)
MANUAL_SINCE = timedelta(days=1)  # a digest sent by hand to one who never had one
KEY_MAX = 160  # longer job keys (many topics) are hashed
RENDERS_KEPT = 64  # digests kept rendered across ticks

Slot = tuple[time, ZoneInfo]  # a slot as the scheduler reads it: local time and zone


@dataclass(frozen=True)
class DigestRun:
    """One digest for readers who share a slot, topics and window (or, dry, what it would be)."""

    key: str
    day: date  # the readers' local day
    at: time
    tz: ZoneInfo
    topics: tuple[str, ...]
    since: datetime
    until: datetime
    posts: tuple[Post, ...]
    updated: frozenset[str]  # paths of the posts listed as corrected
    rendered: Rendered
    readers: int  # readers of the group; 0 for the stand-ins' digest
    queued: int  # rows queued (subscribers' or stand-ins')
    job_id: int | None = None
    stand_ins: bool = False


@dataclass(frozen=True)
class DigestNow:
    """What `herald digest` did (or, dry, would do): each reader's digest, now."""

    name: str  # the site digest's name: its local day, `@HHMMSS` for an extra one
    site: DigestRun  # every post since the site's last digest: the stand-ins', --dry-run's
    runs: tuple[DigestRun, ...]  # the readers' own

    @property
    def job_ids(self) -> list[int]:
        return [r.job_id for r in (*self.runs, self.site) if r.job_id is not None]

    @property
    def queued(self) -> int:
        return self.site.queued + sum(r.queued for r in self.runs)

    @property
    def readers(self) -> int:
        return sum(r.readers for r in self.runs)


def job_key(
    day: date,
    at: time,
    tz: ZoneInfo,
    topics: Iterable[str],
    since: datetime,
    sent_at: datetime | None = None,
) -> str:
    """`digest:<day>:<at>:<tz>:<topics>:<since>`: the same digest gets the same key after
    a restart; one sent by hand (`sent_at`) gets its own."""
    key = f"digest:{day.isoformat()}:{at:%H:%M}:{tz.key}:{topics_text(topics)}:"
    key += since.astimezone(UTC).isoformat()
    if sent_at is not None:
        key += f":now:{sent_at.astimezone(UTC):%Y%m%dT%H%M%S%f}"
    if len(key) > KEY_MAX:
        key = f"digest:{day.isoformat()}:{hashlib.sha256(key.encode()).hexdigest()[:24]}"
    return key


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DigestScheduler:
    """Sends each reader's digest at their local time once a local day, across restarts;
    `at` and `tz` are the site's default slot."""

    def __init__(
        self,
        publisher: Publisher,
        digests: Digests,
        *,
        at: time | str,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = _utc_now,
        catch_up: timedelta = CATCH_UP,
    ) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.digests = digests
        self.at = time(*parse_hhmm(at)) if isinstance(at, str) else at
        self.tz = tz
        self.clock = clock
        self.catch_up = catch_up
        self.slots: list[Slot] = []  # as of the last tick: when to wake next
        self._planned: dict[DigestSlot, tuple[date, datetime]] = {}  # day, and when
        self._slots: tuple[datetime, dict[Slot, list[DigestSlot]]] | None = None  # read when
        # Many groups share a window (read once a tick), and many windows the same posts
        # (rendered once while they stay the same: neighbouring slots, one zone's day).
        self._windows: dict[tuple[datetime, datetime], tuple[tuple[Post, ...], frozenset[str]]]
        self._renders: OrderedDict[
            tuple[date, tuple[Post, ...], frozenset[str]], tuple[Rendered, str]
        ] = OrderedDict()
        self._fresh()

    def _fresh(self) -> None:
        self._windows, self._woken = {}, False

    def slot_time(self, slot: DigestSlot) -> Slot:
        """A stored slot as local time and zone; unset (or unreadable) parts: the site's."""
        at_text, tz_name = slot
        at = self.at
        if at_text:
            with contextlib.suppress(ValueError):
                at = time(*parse_hhmm(at_text))
        return at, zone(tz_name, self.tz)

    async def _by_time(self, now: datetime | None = None) -> dict[Slot, list[DigestSlot]]:
        """The readers' slots by what they mean ("08:00" and None may be the same); as
        read at most `SLOTS_FRESH` before `now`, or read now."""
        if now is not None and self._slots is not None:
            read_at, known = self._slots
            if timedelta() <= now - read_at < SLOTS_FRESH:
                return known
        out: dict[Slot, list[DigestSlot]] = {}
        for slot in await self.store.subscribers.digest_slots():
            out.setdefault(self.slot_time(slot), []).append(slot)
        self.slots = list(out)
        if now is not None:
            self._slots = now, out
        return out

    # -- the scheduler -------------------------------------------------------------------
    async def tick(self, now: datetime) -> list[DigestRun]:
        """One turn: plan every digest due at `now` that is not done yet."""
        self._fresh()
        runs: list[DigestRun] = []
        # On the site's time, a reader's first digest starts where the site's last one
        # ended: what every reader got before they had their own (no day twice after an
        # upgrade; one who subscribes after the day's digest waits for the next). Read
        # before this tick's site digest moves it, which goes last, so a tick cut short
        # plans the same windows again.
        site_until = await self.digests.last_until()
        for (at, tz), raw in (await self._by_time(now)).items():
            day = due_digest_day(now, at, tz, catch_up=self.catch_up)
            if day is None:
                continue
            due = [slot for slot in raw if self._unplanned(slot, day, now)]
            if due:
                first = site_until if (at, tz) == (self.at, self.tz) else None
                runs += await self._plan(now, day, at, tz, due, first_since=first)
                self._planned.update(dict.fromkeys(due, (day, now)))
        site = await self._site_scheduled(now)
        if site is not None:
            runs.append(site)
        if any(r.queued for r in runs):
            await self.publisher.queued()
        if runs:
            log.info(
                "digest: %d digests for %d readers (%d with no post of their topics): %d rows",
                sum(1 for r in runs if r.job_id is not None),
                sum(r.readers for r in runs),
                sum(r.readers for r in runs if not r.posts),
                sum(r.queued for r in runs),
            )
        return runs

    def _unplanned(self, slot: DigestSlot, day: date, now: datetime) -> bool:
        """Whether `slot` may have readers still due for `day` (not planned lately)."""
        planned = self._planned.get(slot)
        return planned is None or planned[0] != day or not timedelta() <= now - planned[1] < RECHECK

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`, sleeping until the next digest time of any slot (at most a
        minute: readers choose new times, and the clock may jump)."""
        log.info(
            "digest: each reader at their own time; the site's at %s %s",
            self.at.strftime("%H:%M"),
            self.tz.key,
        )
        started, left_over = self.clock(), True
        while not stop.is_set():
            now = self.clock()
            try:
                await self.tick(now)
                if left_over:  # the first tick planned what was still due: the rest is whole
                    await self._plan_left_over(started)
                    left_over = False
            except Exception:  # the next turn tries again; the scheduler never dies
                log.exception("digest: planning the digests failed")
            wake = next_wake(now, [*self.slots, (self.at, self.tz)], longest=MAX_SLEEP)
            wait_s = (wake - self.clock()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.05, wait_s))

    async def _plan_left_over(self, started: datetime) -> None:
        """A stop between a digest's last readers marked and its job marked planned left
        the job open for good (nobody is due for it any more): mark such jobs planned."""
        count = await self.store.outbox.plan_left_over(Kind.DIGEST.value, started)
        if count:
            log.info("digest: %d digest jobs left open by a stop are complete", count)

    # -- by hand: `herald digest` ----------------------------------------------------------
    async def send_now(self, now: datetime, *, dry_run: bool = False) -> DigestNow:
        """A digest now, by hand: every reader with the digest on gets the posts since their
        own previous digest (nothing when there are none for their topics), and their
        window moves on to now, so their scheduled digest holds only what comes after: no
        post twice. The stand-ins get the site digest as ever.

        `dry_run`: planned and rendered, nothing queued or marked.
        """
        self._fresh()
        name, site_since = await self._site_name(now)
        site_until = await self.digests.last_until()  # as in `tick`
        runs: list[DigestRun] = []
        for (at, tz), raw in (await self._by_time()).items():
            day = now.astimezone(tz).date()
            first = site_until if (at, tz) == (self.at, self.tz) else None
            runs += await self._plan(
                now, day, at, tz, raw, by_hand=True, first_since=first, dry_run=dry_run
            )
        site = await self._site(now, name, site_since, now, dry_run=dry_run)
        result = DigestNow(name, site, tuple(runs))
        if result.queued:
            await self.publisher.queued()
        return result

    # -- planning ------------------------------------------------------------------------
    async def _plan(
        self,
        now: datetime,
        day: date,
        at: time,
        tz: ZoneInfo,
        raw: list[DigestSlot],
        *,
        by_hand: bool = False,
        first_since: datetime | None = None,
        dry_run: bool = False,
    ) -> list[DigestRun]:
        """The digests of `day` for the readers of one slot still due for it: one per
        (topics, window start), rendered once, rows queued and readers marked together."""
        merged: dict[tuple[tuple[str, ...], datetime | None], list[tuple[DigestSlot, DigestGroup]]]
        merged = {}
        for slot in raw:
            # By hand every digest reader is due, whatever day their last digest was.
            due = None if by_hand else day.isoformat()
            for group in await self.store.subscribers.digest_groups(slot, due):
                merged.setdefault((group.topics, group.since), []).append((slot, group))
        runs = []
        for (topics, since), members in merged.items():
            start = since if since is not None else first_since
            if by_hand:
                begin = start if start is not None else now - MANUAL_SINCE
                window = (begin, max(now, begin))
            else:
                window = digest_window(day, at, tz, start)
            every, updated = await self._posts(*window)
            posts = tuple(p for p in every if wants(topics, (*p.categories, *p.tags)))
            marked = updated & {p.path for p in posts}
            rendered, payload = self._render(day, posts, marked)
            key = job_key(day, at, tz, topics, window[0], now if by_hand else None)
            readers = sum(g.readers for _, g in members)
            job_id, queued = None, 0
            if not dry_run:
                job_id, queued = await self._fan_out(
                    now, key, day, rendered, payload, members, window[1], by_hand=by_hand
                )
            runs.append(
                DigestRun(
                    key,
                    day,
                    at,
                    tz,
                    topics,
                    *window,
                    posts,
                    marked,
                    rendered,
                    readers,
                    queued,
                    job_id,
                )
            )
        return runs

    async def _fan_out(
        self,
        now: datetime,
        key: str,
        day: date,
        rendered: Rendered,
        payload: str,
        members: list[tuple[DigestSlot, DigestGroup]],
        until: datetime,
        *,
        by_hand: bool = False,
    ) -> tuple[int | None, int]:
        """Queue one group's digest (a job only when it has posts) and mark its readers
        (by hand: only their window moves on, their scheduled digest still comes)."""
        outbox = self.store.outbox
        job_id: int | None = None
        channels: frozenset[Channel] = frozenset(Channel)
        if rendered.telegram or rendered.email is not None:
            job_id, _ = await outbox.create_job(
                key, Kind.DIGEST.value, payload, title=f"digest {day.isoformat()}", now=now
            )
            channels = plan.channels_with_content(rendered)
        queued = 0
        for slot, group in members:
            marked_day = None if by_hand else day.isoformat()
            async for added in outbox.fan_out_digest(
                job_id, key, channels, slot=slot, day=marked_day, group=group, until=until
            ):
                self.publisher.count_queued(Kind.DIGEST, added)
                queued += sum(added.values())
                if queued and not self._woken:  # the first rows go out at once
                    self._woken = True
                    await self.publisher.queued()
        if job_id is not None:
            await outbox.mark_planned(job_id)
        return job_id, queued

    async def _posts(
        self, since: datetime, until: datetime
    ) -> tuple[tuple[Post, ...], frozenset[str]]:
        """The posts announced in the window, then those announced before it and corrected
        in it; and the paths of the corrected ones (listed as updated)."""
        if (since, until) not in self._windows:
            posts = self.store.posts
            announced = await posts.announced_since(since, until)
            corrected = await posts.corrected_since(since, until)
            seen = {p.path for p in announced}
            every = (*announced, *(p for p in corrected if p.path not in seen))
            self._windows[since, until] = every, frozenset(p.path for p in corrected)
        return self._windows[since, until]

    def _render(
        self, day: date, posts: tuple[Post, ...], updated: frozenset[str]
    ) -> tuple[Rendered, str]:
        """The digest rendered (and encoded) once for every group that gets the same."""
        cache = (day, posts, updated)  # the posts as they are: a correction renders anew
        if cache in self._renders:
            self._renders.move_to_end(cache)
        else:
            renderer = self.publisher.renderer
            rendered = Rendered()
            if posts:
                rendered = Rendered(
                    telegram=renderer.digest_messages(posts, day, updated),
                    email=renderer.digest_email(posts, day, updated),
                )
            self._renders[cache] = rendered, rendered.encode()
            if len(self._renders) > RENDERS_KEPT:
                self._renders.popitem(last=False)
        return self._renders[cache]

    # -- the site's digest: the stand-ins', and the log first-time readers start from ----
    async def _site_scheduled(self, now: datetime) -> DigestRun | None:
        day = due_digest_day(now, self.at, self.tz, catch_up=self.catch_up)
        if day is None or await self.digests.done(day.isoformat()):
            return None
        since, until = digest_window(day, self.at, self.tz, await self.digests.last_until())
        return await self._site(now, day.isoformat(), since, until)

    async def _site_name(self, now: datetime) -> tuple[str, datetime]:
        """By hand: today's site digest, or an extra one if today's is out already."""
        name = now.astimezone(self.tz).date().isoformat()
        if await self.digests.done(name):
            name = f"{name}@{now.astimezone(UTC):%H%M%S}"
        return name, await self.digests.last_until() or now - MANUAL_SINCE

    async def _site(
        self, now: datetime, name: str, since: datetime, until: datetime, *, dry_run: bool = False
    ) -> DigestRun:
        """Every post of the window for the stand-ins; recorded in the log either way."""
        day = date.fromisoformat(name[:10])
        until = max(until, since)
        posts, updated = await self._posts(since, until)
        rendered, payload = self._render(day, posts, updated)
        key = f"digest:{name}"
        stand_ins = self.publisher.stand_in_recipients()
        job_id, queued = None, 0
        if not dry_run:
            if posts and stand_ins:
                outbox = self.store.outbox
                job_id, _ = await outbox.create_job(
                    key, Kind.DIGEST.value, payload, title=f"digest {name}", now=now
                )
                items = list(plan.rows_for(key, Kind.DIGEST, rendered, stand_ins))
                queued = await outbox.add_items(job_id, items)
                self.publisher.count_queued(
                    Kind.DIGEST, {c: sum(1 for i in items if i.channel == c) for c in Channel}
                )
                await outbox.mark_planned(job_id)
            await self.digests.record(
                name, since=since, until=until, posts=len(posts), job_id=job_id, now=now
            )
        return DigestRun(
            key,
            day,
            self.at,
            self.tz,
            (),
            since,
            until,
            posts,
            updated,
            rendered,
            0,
            queued,
            job_id,
            stand_ins=True,
        )
