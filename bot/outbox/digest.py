"""The daily digest scheduler: a row per digest day makes it survive restarts, never twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.outbox.publish import DigestResult
from bot.schedule import due_digest_day, next_digest_at
from bot.settings import parse_hhmm
from bot.store import Digests

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0  # wake at least this often: the wall clock may jump (suspend, NTP)


class DigestSender(Protocol):
    async def send_digest(
        self, now: datetime, *, day: date | None = None, dry_run: bool = False
    ) -> DigestResult: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DigestScheduler:
    """Sends each day's digest at `at` local time in `tz`, once, even across restarts."""

    def __init__(
        self,
        publisher: DigestSender,
        digests: Digests,
        *,
        at: time | str,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.publisher = publisher
        self.digests = digests
        self.at = time(*parse_hhmm(at)) if isinstance(at, str) else at
        self.tz = tz
        self.clock = clock

    async def tick(self, now: datetime) -> DigestResult | None:
        """One turn: send the digest that is due, unless it went out already."""
        day = due_digest_day(now, self.at, self.tz)
        if day is None or await self.digests.done(day.isoformat()):
            return None
        result = await self.publisher.send_digest(now, day=day)
        log.info(
            "digest: %s with %d posts queued for %d recipients",
            result.name,
            len(result.posts),
            result.queued,
        )
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`, sleeping until the next digest time (at most a minute)."""
        log.info(
            "digest: daily at %s %s; next at %s",
            self.at.strftime("%H:%M"),
            self.tz.key,
            next_digest_at(self.clock(), self.at, self.tz).astimezone(self.tz).isoformat(),
        )
        while not stop.is_set():
            now = self.clock()
            try:
                await self.tick(now)
            except Exception:  # the next turn tries again; the scheduler never dies
                log.exception("digest: sending the digest failed")
            wait_s = (next_digest_at(now, self.at, self.tz) - self.clock()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.05, min(MAX_SLEEP_S, wait_s)))
