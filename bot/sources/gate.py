"""The publish gate (HERALD_ANNOUNCE_WHEN_LIVE): a new post is announced once its URL answers
200, not before; the site is often still building when the post's file lands.

The gate sits between a source's `on_post` and the publisher. A held post stays *pending*
in the post log (the log the source sees is wrapped by `post_log`, whose `mark_announced`
leaves held posts alone), so after a restart the source hands it on again and the gate
holds it again, with the time it has waited kept in the log's meta table. Its URL is
checked with HEAD (GET where HEAD is refused: 405, 501) with backoff from a few seconds up.
After `timeout_s` each admin is asked, with Announce / Skip buttons (`Admins`); with no
admins the post is announced with a warning in the log. A future-dated post is released
at its time and then gated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import aiohttp

from bot.models import Post
from bot.sources.feed import http_session
from bot.sources.seen import ForwardingLog, SeenPosts

log = logging.getLogger(__name__)

Announce = Callable[[Post, int], Awaitable[object]]  # (post, its id): queue its messages
Probe = Callable[[str], Awaitable[int | str]]  # a URL's HTTP status, or why there is none
Clock = Callable[[], datetime]
Outcome = Literal[
    "announced", "skipped", "already announced", "already skipped", "unknown", "failed"
]

STATE_KEY = "gate.state"
FIRST_CHECK_S = 5.0
MAX_CHECK_S = 300.0
PROBE_TIMEOUT_S = 15.0
SETTLED_KEPT = 200  # decided posts remembered, so a late press on an old message is answered
# Ask past caches: a CDN may keep the 404 it served while the site was building.
NO_CACHE = {"Cache-Control": "no-cache", "Pragma": "no-cache"}


class Admins(Protocol):
    """Who is asked about a post that does not go live (the chat's `GateDesk` is one)."""

    async def ask(self, post_id: int, post: Post, *, waited_s: float, answer: str) -> int:
        """Ask each admin to Announce or Skip; returns how many were reached."""
        ...

    async def settled(self, post_id: int, outcome: str) -> None:
        """The post was decided without a press (it went live): update the questions."""
        ...


def check_delay_s(
    attempt: int, first_s: float = FIRST_CHECK_S, max_s: float = MAX_CHECK_S
) -> float:
    """Seconds before check number `attempt + 1`: doubling from `first_s`, at most `max_s`."""
    return float(min(first_s * 2 ** max(attempt - 1, 0), max_s))


async def probe_url(session: aiohttp.ClientSession, url: str) -> int | str:
    """The status `url` answers: HEAD, then GET when HEAD is refused (405, 501)."""
    try:
        async with session.head(url, allow_redirects=True, headers=NO_CACHE) as resp:
            status = resp.status
        if status in (405, 501):
            async with session.get(url, allow_redirects=True, headers=NO_CACHE) as resp:
                status = resp.status  # the body is never read
        return status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return f"no answer ({str(exc) or type(exc).__name__})"


@dataclass
class Held:
    """A post waiting for its URL to answer 200."""

    post_id: int
    post: Post
    since: datetime  # when it was first held (kept across restarts)
    next_at: datetime
    asked: bool = False
    attempt: int = 0
    answer: str = "nothing yet"


class HoldingLog(ForwardingLog):
    """A source's post log, except that held posts are not marked announced."""

    def __init__(self, inner: SeenPosts, gate: PublishGate) -> None:
        super().__init__(inner)
        self._gate = gate

    async def mark_announced(self, post_id: int) -> None:
        if not self._gate.withholds(post_id):
            await self._inner.mark_announced(post_id)


class PublishGate:
    """Holds new posts until they are live, then hands them to `announce`, once."""

    def __init__(
        self,
        posts: SeenPosts,
        announce: Announce,
        *,
        timeout_s: float,
        admins: Admins | None = None,
        probe: Probe | None = None,
        clock: Clock | None = None,
        first_check_s: float = FIRST_CHECK_S,
        max_check_s: float = MAX_CHECK_S,
    ) -> None:
        self._posts = posts
        self._announce = announce
        self.timeout_s = timeout_s
        self.admins = admins
        self._probe = probe
        self._clock = clock or (lambda: datetime.now(UTC))
        self._first_s = first_check_s
        self._max_s = max_check_s
        self._held: dict[int, Held] = {}
        self._skipped: set[int] = set()
        self._settled: dict[int, Outcome] = {}  # post id → how it was decided
        self._saved: dict[int, tuple[str, bool]] = {}  # held post id → (since, asked), as kept
        self._loaded = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def post_log(self) -> HoldingLog:
        """The post log to give the source: held posts stay pending in it."""
        return HoldingLog(self._posts, self)

    def withholds(self, post_id: int) -> bool:
        """True while the gate holds the post (or an admin skipped it): it stays pending."""
        return post_id in self._held or post_id in self._skipped

    @property
    def held(self) -> list[Post]:
        """The posts waiting now, oldest first."""
        return [h.post for h in sorted(self._held.values(), key=lambda h: h.post_id)]

    # -- state kept in the post log's meta table ------------------------------------------

    async def _load(self) -> None:
        async with self._lock:
            if self._loaded:
                return
            text = await self._posts.get_meta(STATE_KEY)
            data = json.loads(text) if text else {}
            self._saved = {
                int(k): (str(v["since"]), bool(v.get("asked")))
                for k, v in data.get("held", {}).items()
            }
            self._skipped = {int(i) for i in data.get("skipped", [])}
            settled = data.get("settled", {})
            self._settled = {int(k): v for k, v in settled.items() if v in ("announced", "skipped")}
            self._loaded = True

    async def _save(self) -> None:
        while len(self._settled) > SETTLED_KEPT:
            del self._settled[next(iter(self._settled))]
        data = {
            "held": {str(k): {"since": s, "asked": a} for k, (s, a) in self._saved.items()},
            "skipped": sorted(self._skipped),
            "settled": {str(k): v for k, v in self._settled.items()},
        }
        await self._posts.set_meta(STATE_KEY, json.dumps(data))

    # -- what sources and admins call -----------------------------------------------------

    async def on_post(self, post: Post, post_id: int) -> None:
        """A new post from a source: hold it until its URL answers 200."""
        await self._load()
        if post_id in self._skipped:
            log.debug("post %s was skipped by an admin; not announced", post.path)
            return
        if post_id in self._held:
            self._held[post_id].post = post
            return
        now = self._clock()
        saved = self._saved.get(post_id)
        since = datetime.fromisoformat(saved[0]) if saved else now
        self._held[post_id] = Held(
            post_id, post, since, next_at=max(now, post.date), asked=bool(saved and saved[1])
        )
        if saved is None:
            self._saved[post_id] = (since.isoformat(), False)
            await self._save()
            log.info("post %s held until %s answers 200", post.path, post.url)
        else:
            log.info("post %s still held (since %s) until its URL answers 200", post.path, saved[0])
        self._wake.set()

    async def decide(self, post_id: int, *, announce: bool, admin_id: int) -> Outcome:
        """An admin pressed Announce or Skip on a held post; the first press decides."""
        await self._load()
        held = self._held.get(post_id)
        if held is None:
            before = self._settled.get(post_id)
            if post_id in self._skipped or before == "skipped":
                return "already skipped"
            return "already announced" if before == "announced" else "unknown"
        if announce:
            if await self._release(held, f"admin {admin_id} pressed Announce", pressed=True):
                return "announced"
            return "failed" if post_id in self._held else "already announced"
        del self._held[post_id]
        self._skipped.add(post_id)
        self._settled[post_id] = "skipped"
        self._saved.pop(post_id, None)
        await self._save()
        log.info("post %s skipped by admin %d: it is never announced", held.post.path, admin_id)
        return "skipped"

    # -- the checking loop ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Check held posts when due until `stop`."""
        relay = asyncio.ensure_future(stop.wait())
        relay.add_done_callback(lambda _: self._wake.set())
        try:
            if self._probe is not None:
                await self._loop(stop, self._probe)
                return
            async with http_session(PROBE_TIMEOUT_S) as session:

                async def probe(url: str) -> int | str:
                    return await probe_url(session, url)

                await self._loop(stop, probe)
        finally:
            relay.cancel()

    async def _loop(self, stop: asyncio.Event, probe: Probe) -> None:
        await self._load()
        while not stop.is_set():
            self._wake.clear()
            now = self._clock()
            due = [h for h in self._held.values() if h.next_at <= now]
            if due:
                await asyncio.gather(*(self._check_safely(h, probe) for h in due))
                continue
            delays = [(h.next_at - now).total_seconds() for h in self._held.values()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(min([*delays, 3600.0]), 0.01))

    async def _check_safely(self, held: Held, probe: Probe) -> None:
        """`_check`, with a failure logged and the post checked again later: the gate goes on."""
        try:
            await self._check(held, probe)
        except Exception:
            log.exception("checking post %s failed; trying again", held.post.path)
            delay_s = check_delay_s(held.attempt + 1, self._first_s, self._max_s)
            held.next_at = self._clock() + timedelta(seconds=delay_s)

    async def _check(self, held: Held, probe: Probe) -> None:
        """Look at one held post: future → wait; live → announce; too long → ask."""
        if self._clock() < held.post.date:
            held.next_at = held.post.date  # released at its time, then gated
            return
        answer = await probe(held.post.url)
        if self._held.get(held.post_id) is not held:
            return  # an admin decided meanwhile
        if answer == 200:
            await self._release(held, f"{held.post.url} answers 200")
            return
        held.attempt += 1
        held.answer = f"HTTP {answer}" if isinstance(answer, int) else answer
        if held.attempt == 1:
            log.info(
                "post %s not live yet (%s: %s); checking again with backoff",
                held.post.path,
                held.post.url,
                held.answer,
            )
        now = self._clock()
        waited_s = (now - held.since).total_seconds()
        if waited_s >= self.timeout_s and not held.asked and await self._timed_out(held, waited_s):
            return
        next_at = now + timedelta(seconds=check_delay_s(held.attempt, self._first_s, self._max_s))
        if not held.asked:
            next_at = min(next_at, held.since + timedelta(seconds=self.timeout_s))
        held.next_at = max(next_at, now)

    async def _timed_out(self, held: Held, waited_s: float) -> bool:
        """Ask the admins; with none to ask, announce. True when the post was released."""
        reached = 0
        if self.admins is not None:
            try:
                reached = await self.admins.ask(
                    held.post_id, held.post, waited_s=waited_s, answer=held.answer
                )
            except Exception:
                log.exception("asking the admins about post %s failed", held.post.path)
        if reached:
            held.asked = True
            self._saved[held.post_id] = (held.since.isoformat(), True)
            await self._save()
            log.info(
                "post %s not live after %.0f s (last: %s); asked %d admin(s): announce or skip",
                held.post.path,
                waited_s,
                held.answer,
                reached,
            )
            return False
        log.warning(
            "post %s not live after %.0f s (last: %s); announcing it anyway: %s",
            held.post.path,
            waited_s,
            held.answer,
            "no admin could be asked" if self.admins is not None else "no admins to ask",
        )
        return await self._release(held, "the wait for it to go live timed out")

    async def _release(self, held: Held, why: str, *, pressed: bool = False) -> bool:
        """Announce a held post once; False when it was already released (or failed: then it
        stays held and is tried again)."""
        if self._held.get(held.post_id) is not held:
            return False
        # Claimed before the first await: a press or check meanwhile finds it settled.
        del self._held[held.post_id]
        self._settled[held.post_id] = "announced"
        try:
            await self._announce(held.post, held.post_id)
            await self._posts.mark_announced(held.post_id)
        except Exception:
            log.exception("post %s could not be queued; trying again", held.post.path)
            self._settled.pop(held.post_id, None)
            delay_s = check_delay_s(held.attempt + 1, self._first_s, self._max_s)
            held.next_at = self._clock() + timedelta(seconds=delay_s)
            self._held[held.post_id] = held
            self._wake.set()
            return False
        self._saved.pop(held.post_id, None)
        await self._save()
        log.info("post %s announced: %s", held.post.path, why)
        if held.asked and self.admins is not None and not pressed:
            try:
                await self.admins.settled(held.post_id, "live")
            except Exception:
                log.exception("updating the admins' question about post %s failed", held.post.path)
        return True
