"""The publish gate, against a real local site server, a real store and the fake Bot API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.chat.gate import gate_desk
from bot.models import Post
from bot.settings import Site
from bot.sources.feed import FeedPoller
from bot.sources.gate import PublishGate, check_delay_s
from bot.store import Store, open_store
from tests.fakes.bot_api import FakeBotAPI, Sent
from tests.fakes.site_server import SiteServer
from tests.sources.test_feed import atom, entry
from tests.support.bot import ADMIN, OTHER_ADMIN, USER, bot_env, buttons

PAGE = "/2026/12/01/flood.html"
PAGE_2 = "/2026/01/02/story-2.html"


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def make_post(url: str, *, date: datetime | None = None, title: str = "Flood warning") -> Post:
    return Post(
        path=f"feed:{url}",
        slug="flood",
        title=title,
        date=date or datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        url=url,
        body="Rivers are rising.",
        excerpt="Rivers are rising.",
    )


@dataclass
class Gated:
    gate: PublishGate
    store: Store
    announced: list[tuple[Post, float]] = field(default_factory=list)

    @property
    def titles(self) -> list[str]:
        return [p.title for p, _ in self.announced]

    async def add(self, post: Post) -> int:
        """What a source does with a new post: record it, hand it on, mark it announced."""
        [(post_id, _)] = await self.store.posts.record([post], announced=True, now=post.date)
        await self.gate.on_post(post, post_id)
        await self.gate.post_log().mark_announced(post_id)
        return post_id


@asynccontextmanager
async def gating(
    store: Store,
    *,
    timeout_s: float = 60.0,
    admins: object = None,
    before: Callable[[], object] = lambda: None,
) -> AsyncIterator[Gated]:
    """A running gate over `store` checking from 20 ms up; `before` runs at each announcement."""
    announced: list[tuple[Post, float]] = []

    async def announce(post: Post, post_id: int) -> None:
        before()
        announced.append((post, time.time()))

    gate = PublishGate(
        store.posts,
        announce,
        timeout_s=timeout_s,
        admins=admins,  # type: ignore[arg-type]
        first_check_s=0.02,
        max_check_s=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gate.run(stop))
    try:
        yield Gated(gate, store, announced)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server() -> AsyncIterator[SiteServer]:
    async with SiteServer() as site:
        yield site


@pytest.mark.parametrize(
    ("attempt", "delay_s"),
    [(0, 5.0), (1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (30, 300.0)],
)
def test_checks_back_off_from_a_few_seconds_up(attempt: int, delay_s: float) -> None:
    """The wait between checks doubles from 5 s and stays at 5 minutes."""
    assert check_delay_s(attempt) == delay_s


async def test_a_post_is_announced_only_once_its_url_answers_200(
    server: SiteServer, tmp_path: Path
) -> None:
    """A URL that answers 404 twice holds the post; the 200 after them announces it, once."""
    server.serve(PAGE, "<html>flood</html>", content_type="text/html", statuses=[404, 404])
    answers_at_announce: list[list[int]] = []
    async with open_store(tmp_path / "h.db") as store:

        def before() -> None:
            answers_at_announce.append([r.status for r in server.seen(PAGE)])

        async with gating(store, before=before) as g:
            post_id = await g.add(make_post(server.url(PAGE)))
            assert g.gate.withholds(post_id)
            await until(lambda: g.announced, "the post announced")
            await server.wait_for_requests(PAGE, 3)
        assert g.titles == ["Flood warning"]
        assert answers_at_announce == [[404, 404, 200]]
        assert await store.posts.pending() == []


@pytest.mark.parametrize("refusal", [405, 501])
async def test_head_refused_is_asked_again_with_get(
    server: SiteServer, tmp_path: Path, refusal: int
) -> None:
    """Where HEAD is refused (405, 501) the URL is asked with GET, and its 200 counts."""
    server.serve(PAGE, "<html>flood</html>", content_type="text/html", head_status=refusal)
    async with open_store(tmp_path / "h.db") as store, gating(store) as g:
        await g.add(make_post(server.url(PAGE)))
        await until(lambda: g.announced, "the post announced")
    assert [(r.method, r.status) for r in server.seen(PAGE)] == [("HEAD", refusal), ("GET", 200)]
    assert g.titles == ["Flood warning"]


async def test_without_admins_a_post_that_never_goes_live_is_announced_with_a_warning(
    server: SiteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After the timeout, with no admin to ask, the post is announced and the log says why."""
    caplog.set_level(logging.WARNING, logger="bot.sources.gate")
    async with open_store(tmp_path / "h.db") as store, gating(store, timeout_s=0.2) as g:
        post = make_post(server.url("/never.html"))
        await g.add(post)
        await until(lambda: g.announced, "the post announced after the timeout")
    assert g.titles == ["Flood warning"]
    assert "not live after" in caplog.text and "no admins to ask" in caplog.text
    assert all(r.status == 404 for r in server.seen("/never.html"))


async def test_a_future_dated_post_is_released_at_its_time_then_gated(
    server: SiteServer, tmp_path: Path
) -> None:
    """A post dated ahead is not even checked before its time; then its 200 announces it."""
    server.serve(PAGE, "<html>flood</html>", content_type="text/html")
    at = datetime.now(UTC) + timedelta(seconds=0.4)
    async with open_store(tmp_path / "h.db") as store, gating(store) as g:
        await g.add(make_post(server.url(PAGE), date=at))
        await until(lambda: g.announced, "the post announced")
    first_check = server.seen(PAGE)[0]
    assert first_check.status == 200
    assert g.announced[0][1] >= at.timestamp()


async def test_timeout_asks_each_admin_and_only_an_admins_first_press_counts(
    server: SiteServer, tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """Each admin is asked (Announce / Skip); a non-admin is refused; one press announces once."""
    async with bot_env(tmp_path, fake_bot_api) as env:
        desk = gate_desk(env.app)
        async with gating(env.store, timeout_s=0.2, admins=desk) as g:
            desk.gate = g.gate
            post_id = await g.add(make_post(server.url("/never.html")))

            def questions() -> list[Sent]:
                return [
                    s for s in fake_bot_api.sent if s.method == "sendMessage" and s.reply_markup
                ]

            await until(lambda: len(questions()) == 2, "both admins asked")
            by_chat = {s.chat_id: s for s in questions()}
            assert set(by_chat) == {ADMIN, OTHER_ADMIN}
            question = by_chat[ADMIN]
            assert "Flood warning" in (question.text or "")
            assert buttons(question) == [
                ("📣 Announce", f"gate:announce:{post_id}"),
                ("✖️ Skip", f"gate:skip:{post_id}"),
            ]
            assert g.announced == []

            refused = await env.press(USER, USER, f"gate:announce:{post_id}", 1)
            assert refused["show_alert"] in (True, "true") and "administrators" in refused["text"]
            assert g.announced == [] and g.gate.withholds(post_id)

            done = await env.press(ADMIN, ADMIN, f"gate:announce:{post_id}", question.message_id)
            assert done["text"] == "Announced."
            again = await env.press(
                OTHER_ADMIN,
                OTHER_ADMIN,
                f"gate:announce:{post_id}",
                by_chat[OTHER_ADMIN].message_id,
            )
            assert "already been announced" in again["text"]
        assert g.titles == ["Flood warning"]
        assert await env.store.posts.pending() == []
        edited = [s for s in fake_bot_api.sent if s.method == "editMessageText"]
        assert {s.chat_id for s in edited} == {ADMIN, OTHER_ADMIN}
        assert all("announced by" in (s.text or "") for s in edited)


async def test_skip_keeps_the_post_unannounced_across_a_restart(
    server: SiteServer, tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """An admin's Skip means never: the post stays out of the digest and a restart keeps it out."""
    async with bot_env(tmp_path, fake_bot_api) as env:
        desk = gate_desk(env.app)
        async with gating(env.store, timeout_s=0.1, admins=desk) as g:
            desk.gate = g.gate
            post_id = await g.add(make_post(server.url("/never.html")))
            await until(lambda: fake_bot_api.sent_to(ADMIN), "the admin asked")
            message_id = fake_bot_api.sent_to(ADMIN)[0].message_id
            answer = await env.press(ADMIN, ADMIN, f"gate:skip:{post_id}", message_id)
            assert answer["text"].startswith("Skipped")
        async with gating(env.store, timeout_s=0.1) as again:
            for pending_id, post in await env.store.posts.pending():
                await again.gate.on_post(post, pending_id)
                await again.gate.post_log().mark_announced(pending_id)
            assert again.gate.withholds(post_id)
        assert g.announced == [] and again.announced == []


async def test_a_post_held_over_a_restart_is_still_held_then_announced_once(
    server: SiteServer, tmp_path: Path
) -> None:
    """A held post stays pending over a restart, is handed on again, and goes out once."""
    db = tmp_path / "h.db"
    site = Site(root=tmp_path, url=server.base_url, tz=UTC, permalink="date", title="T")
    link = server.url(PAGE_2)
    story = entry(2).replace("https://news.test/2026/01/02/story-2.html", link)
    server.serve("/feed.xml", atom(entry(1)))

    async def run_once(until_: str) -> list[str]:
        async with open_store(db) as store, gating(store) as g:
            poller = FeedPoller(
                server.url("/feed.xml"), site, g.gate.post_log(), g.gate.on_post, poll_s=0.05
            )
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(poller.run(stop, ready))
            await asyncio.wait_for(ready.wait(), 10)
            server.serve("/feed.xml", atom(story, entry(1)))
            if until_ == "held":
                await until(lambda: g.gate.held, "the post held")
                await server.wait_for_requests(PAGE_2, 3)  # checked, and still a 404
            elif until_ == "announced":
                server.serve(PAGE_2, "<html>2</html>", content_type="text/html")
                await until(lambda: g.announced, "the post announced")
            else:
                await server.wait_for_requests("/feed.xml", len(server.seen("/feed.xml")) + 2)
                assert g.gate.held == []
            stop.set()
            await asyncio.wait_for(task, 10)
            return g.titles

    assert await run_once("held") == []
    async with open_store(db) as store:
        assert [p.title for _, p in await store.posts.pending()] == ["Story 2"]
    assert await run_once("announced") == ["Story 2"]
    async with open_store(db) as store:
        assert await store.posts.pending() == []
    assert await run_once("quiet") == []
