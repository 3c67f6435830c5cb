"""The feed poller, against a real local HTTP server serving Atom and RSS."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest

from bot.models import Post
from bot.render.markup import to_telegram_html
from bot.settings import Settings, Site
from bot.sources.feed import MAX_BYTES, FeedPoller, feed_site, parse_feed
from bot.sources.jekyll.reader import BreakingRules
from bot.store import Store, open_store
from tests.fakes.site_server import SiteServer

FEED = "/feed.xml"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def atom(*entries: str, title: str = "Test News") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">'
        f'<title>{title}</title><link href="https://news.test/" rel="alternate"/>'
        "<id>https://news.test/feed.xml</id><updated>2026-01-01T00:00:00Z</updated>"
        + "".join(entries)
        + "</feed>\n"
    )


def entry(
    n: int,
    title: str | None = None,
    *,
    content: str | None = None,
    date: str | None = None,
    extra: str = "",
) -> str:
    body = content if content is not None else f"&lt;p&gt;Body of {n}.&lt;/p&gt;"
    return (
        f"<entry><title>{title or f'Story {n}'}</title>"
        f'<link href="https://news.test/2026/01/{n:02d}/story-{n}.html" rel="alternate"/>'
        f"<id>https://news.test/2026/01/{n:02d}/story-{n}</id>"
        f"<published>{date or f'2026-01-{n:02d}T10:00:00Z'}</published>"
        f'<content type="html">{body}</content>{extra}</entry>'
    )


def rss(*items: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Radio News</title>'
        "<link>https://radio.test/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>\n"
    )


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Running:
    server: SiteServer
    poller: FeedPoller
    store: Store
    announced: list[Post] = field(default_factory=list)

    @property
    def titles(self) -> list[str]:
        return [p.title for p in self.announced]

    async def polls(self, count: int = 2) -> None:
        """Wait until the feed was fetched `count` more times and the earlier answers handled."""
        await self.server.wait_for_requests(FEED, len(self.server.seen(FEED)) + count)


@asynccontextmanager
async def polling(
    server: SiteServer, db: Path, *, max_bytes: int = MAX_BYTES
) -> AsyncIterator[Running]:
    """A poller following the server's feed every 50 ms; yields after its first poll."""
    site = Site(root=db.parent, url="https://news.test", tz=UTC, permalink="date", title="T")
    async with open_store(db) as store:
        announced: list[Post] = []

        async def on_post(post: Post, post_id: int) -> None:
            announced.append(post)

        poller = FeedPoller(
            server.url(FEED), site, store.posts, on_post, poll_s=0.05, max_bytes=max_bytes
        )
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(poller.run(stop, ready))
        started = asyncio.ensure_future(ready.wait())
        await asyncio.wait({task, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # it failed to start: say why
        try:
            yield Running(server, poller, store, announced)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def server() -> AsyncIterator[SiteServer]:
    async with SiteServer() as site:
        yield site


async def test_first_poll_is_a_silent_baseline_then_a_new_entry_goes_out_once(
    server: SiteServer, tmp_path: Path
) -> None:
    """Entries in the feed at the first poll are recorded silently; a new one goes out once."""
    server.serve(FEED, atom(entry(1), entry(2)))
    async with polling(server, tmp_path / "h.db") as run:
        await run.polls()
        assert run.announced == []
        assert {p.title for p in await run.store.posts.latest(10)} == {"Story 1", "Story 2"}
        server.serve(FEED, atom(entry(3, "Flood warning"), entry(1), entry(2)))
        await until(lambda: run.announced, "the new entry announced")
        await run.polls()
    assert run.titles == ["Flood warning"]
    post = run.announced[0]
    assert post.url == "https://news.test/2026/01/03/story-3.html"
    assert post.path == "feed:https://news.test/2026/01/03/story-3"
    assert post.date == datetime(2026, 1, 3, 10, 0, tzinfo=UTC)
    assert post.excerpt == "Body of 3."


async def test_second_poll_is_conditional_and_answered_304(
    server: SiteServer, tmp_path: Path
) -> None:
    """After a 200 the next poll sends If-None-Match with the ETag, and the 304 changes nothing."""
    page = server.serve(FEED, atom(entry(1)))
    async with polling(server, tmp_path / "h.db") as run:
        await run.polls()
    first, second = server.seen(FEED)[:2]
    assert "If-None-Match" not in first.headers
    assert second.headers["If-None-Match"] == page.etag
    assert second.status == 304
    assert run.announced == []


async def test_last_modified_is_sent_back_as_if_modified_since(
    server: SiteServer, tmp_path: Path
) -> None:
    """A feed served with Last-Modified and no ETag is asked for with If-Modified-Since."""
    stamp = "Tue, 01 Dec 2026 10:00:00 GMT"
    server.serve(FEED, atom(entry(1)), etag=False, last_modified=stamp)
    async with polling(server, tmp_path / "h.db") as run:
        await run.polls()
    second = server.seen(FEED)[1]
    assert second.headers["If-Modified-Since"] == stamp
    assert second.status == 304


async def test_rss_items_become_posts(server: SiteServer, tmp_path: Path) -> None:
    """An RSS item gives the post's title, link, date, HTML summary, categories and image."""
    old = (
        "<item><title>Old</title><link>https://radio.test/old</link><guid>old</guid>"
        "<pubDate>Mon, 05 Jan 2026 10:00:00 GMT</pubDate><description>old</description></item>"
    )
    new = (
        "<item><title>Breaking: Bridge closed</title><link>https://radio.test/bridge</link>"
        '<guid isPermaLink="false">bridge-1</guid>'
        "<pubDate>Tue, 06 Jan 2026 08:30:00 +0100</pubDate>"
        "<description>&lt;p&gt;The &lt;b&gt;old&lt;/b&gt; bridge is closed &amp;amp; "
        "&lt;a href='/detour'&gt;here&lt;/a&gt; is the detour.&lt;/p&gt;</description>"
        "<category>Traffic</category><category>Breaking</category>"
        '<enclosure url="https://radio.test/bridge.jpg" type="image/jpeg" length="1"/></item>'
    )
    server.serve(FEED, rss(old), content_type="application/rss+xml")
    async with polling(server, tmp_path / "h.db") as run:
        server.serve(FEED, rss(new, old), content_type="application/rss+xml")
        await until(lambda: run.announced, "the new item announced")
    post = run.announced[0]
    assert post.path == "feed:bridge-1"
    assert post.title == "Bridge closed"
    assert post.breaking and post.label == "Breaking"
    assert post.url == "https://radio.test/bridge"
    assert post.date == datetime(2026, 1, 6, 7, 30, tzinfo=UTC)
    assert post.categories == ("Traffic", "Breaking")
    assert post.image == "https://radio.test/bridge.jpg"
    detour = server.url("/detour")  # relative links resolve against the feed's own address
    assert post.excerpt == f"The **old** bridge is closed \\& [here](<{detour}>) is the detour."
    assert to_telegram_html(post.excerpt) == (
        f'The <b>old</b> bridge is closed &amp; <a href="{detour}">here</a> is the detour.'
    )


async def test_an_edited_entry_is_not_announced_again(server: SiteServer, tmp_path: Path) -> None:
    """An entry whose title and content change keeps its one announcement; the log has the edit."""
    server.serve(FEED, atom(entry(1)))
    async with polling(server, tmp_path / "h.db") as run:
        server.serve(FEED, atom(entry(2, "Flood"), entry(1)))
        await until(lambda: run.announced, "the new entry announced")
        edited = entry(2, "Flood: update", content="&lt;p&gt;Water is receding.&lt;/p&gt;")
        server.serve(FEED, atom(edited, entry(1)))
        await run.polls(3)
        latest = await run.store.posts.latest(10)
    assert run.titles == ["Flood"]
    assert "Flood: update" in [p.title for p in latest]


async def test_a_truncated_feed_is_logged_and_retried(
    server: SiteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cut-off document announces nothing and forgets nothing; the whole one is read later."""
    caplog.set_level(logging.WARNING, logger="bot.sources.feed")
    server.serve(FEED, atom(entry(1), entry(2)))
    async with polling(server, tmp_path / "h.db") as run:
        whole = atom(entry(3, "Fresh"), entry(1), entry(2))
        server.serve(FEED, whole[: len(whole) // 2 + 40])
        await run.polls(3)
        assert run.announced == []
        assert "is cut off or broken" in caplog.text
        assert caplog.text.count("is cut off or broken") == 1  # once per spell, not per poll
        server.serve(FEED, whole)
        await until(lambda: run.announced, "the entry announced once the feed is whole")
        await run.polls()
    assert run.titles == ["Fresh"]


async def test_a_connection_cut_mid_body_is_logged_and_retried(
    server: SiteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A body that stops short of its Content-Length is a failed fetch, tried again next poll."""
    caplog.set_level(logging.WARNING, logger="bot.sources.feed")
    server.serve(FEED, atom(entry(1)))
    async with polling(server, tmp_path / "h.db") as run:
        whole = atom(entry(2, "Fresh"), entry(1))
        server.serve(FEED, whole, cut_at=len(whole) // 2)
        await run.polls(2)
        assert run.announced == []
        assert "cannot be fetched" in caplog.text
        server.serve(FEED, whole)
        await until(lambda: run.announced, "the entry announced once the body is whole")
    assert run.titles == ["Fresh"]


async def test_a_feed_over_the_size_cap_is_refused(
    server: SiteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A body larger than the cap is not read to the end nor parsed; the poller says why."""
    caplog.set_level(logging.WARNING, logger="bot.sources.feed")
    padding = "<!--" + "x" * 20_000 + "-->"
    server.serve(FEED, atom(entry(1), padding))
    async with polling(server, tmp_path / "h.db", max_bytes=10_000) as run:
        await run.polls(1)
        assert await run.store.posts.latest(10) == []
    assert "is larger than" in caplog.text


async def test_restart_announces_only_what_is_new(server: SiteServer, tmp_path: Path) -> None:
    """After a restart the entries seen stay seen, and one added while stopped goes out once."""
    db = tmp_path / "h.db"
    server.serve(FEED, atom(entry(1)))
    async with polling(server, db) as run:
        server.serve(FEED, atom(entry(2), entry(1)))
        await until(lambda: run.announced, "the new entry announced")
    server.serve(FEED, atom(entry(3), entry(2), entry(1)))
    async with polling(server, db) as again:
        await until(lambda: again.announced, "the entry added while stopped announced")
        await again.polls()
    assert run.titles == ["Story 2"]
    assert again.titles == ["Story 3"]


async def test_a_future_dated_entry_is_announced_at_its_time(
    server: SiteServer, tmp_path: Path
) -> None:
    """An entry dated a moment ahead is held, then announced once that moment has passed."""
    server.serve(FEED, atom(entry(1)))
    async with polling(server, tmp_path / "h.db") as run:
        at = (datetime.now(UTC) + timedelta(seconds=1.5)).replace(microsecond=0)
        server.serve(FEED, atom(entry(2, "Soon", date=at.isoformat()), entry(1)))
        await until(lambda: run.announced, "the future entry announced")
        await run.polls()
    assert datetime.now(UTC) >= at
    assert run.titles == ["Soon"]


def parse_one(entry_xml: str) -> Post:
    feed = parse_feed(
        atom(entry_xml).encode(),
        url="https://news.test/feed.xml",
        tz=UTC,
        rules=BreakingRules(),
        now=NOW,
        content_type="application/atom+xml",
    )
    assert feed.problem is None and len(feed.entries) == 1, feed
    return feed.entries[0].post


@pytest.mark.parametrize(
    ("extra", "content", "image"),
    [
        (
            '<media:thumbnail url="https://cdn.test/thumb.jpg"/>'
            '<media:content url="https://cdn.test/full.jpg" medium="image"/>',
            "",
            "https://cdn.test/thumb.jpg",
        ),
        (
            '<media:content url="/img/full.jpg" medium="image"/>',
            "",
            "https://news.test/img/full.jpg",
        ),
        ('<media:content url="https://cdn.test/clip.mp4" medium="video"/>', "", None),
        (
            '<link rel="enclosure" href="https://cdn.test/e.png" type="image/png" length="1"/>',
            "",
            "https://cdn.test/e.png",
        ),
        (
            '<link rel="enclosure" href="https://cdn.test/a.mp3" type="audio/mpeg" length="1"/>',
            "&lt;p&gt;x &lt;img src='/a/first.jpg'&gt; &lt;img src='/a/second.jpg'&gt;&lt;/p&gt;",
            "https://news.test/a/first.jpg",
        ),
        ("", "&lt;p&gt;No picture here.&lt;/p&gt;", None),
    ],
    ids=["thumbnail first", "media content", "video is no image", "enclosure", "first img", "none"],
)
def test_image_comes_from_media_enclosure_or_first_img(
    extra: str, content: str, image: str | None
) -> None:
    """The image: media:thumbnail, else media:content, else an image enclosure, else an <img>."""
    post = parse_one(entry(1, content=content or None, extra=extra))
    assert post.image == image


def test_html_content_reaches_readers_as_formatting_not_markup() -> None:
    """Feed HTML (figure, entities, lists, scripts) becomes Markdown that renders without tags."""
    html = escape(
        "<figure><img src='/i.jpg' alt='River'><figcaption>The river</figcaption></figure>"
        "<p>Water&nbsp;is <em>rising</em> &amp; <cite>officials</cite> say *stay*.</p>"
        "<ul><li>Leave<li>Now</ul><script>alert(1)</script>"
    )
    post = parse_one(entry(1, content=html))
    shown = to_telegram_html(post.body)
    assert "<figure" not in shown and "<cite" not in shown and "alert" not in shown
    assert "<i>rising</i> &amp; officials say *stay*." in shown
    assert "• Leave\n• Now" in shown
    assert post.excerpt.startswith("Water")  # the first paragraph, not the picture
    assert post.image == "https://news.test/i.jpg"


def test_an_entry_without_id_is_keyed_by_its_link_and_one_without_link_is_skipped() -> None:
    """Identity falls back from the entry id to its link; one without an http(s) link is skipped."""
    doc = rss(
        "<item><title>A</title><link>https://radio.test/a</link></item>",
        '<item><title>No link</title><guid isPermaLink="false">x</guid></item>',
        "<item><title>Script</title><link>javascript:alert(1)</link>"
        '<guid isPermaLink="false">y</guid></item>',
    )
    feed = parse_feed(
        doc.encode(), url="https://radio.test/rss", tz=UTC, rules=BreakingRules(), now=NOW
    )
    assert [e.post.path for e in feed.entries] == ["feed:https://radio.test/a"]
    assert feed.skipped == (
        "entry 'x' has no link",
        "entry 'y' links to 'javascript:alert(1)', not an http(s) page",
    )
    assert feed.entries[0].post.date == NOW  # no date: first seen


def test_feed_describes_the_site() -> None:
    """With a feed source the site's title and URL come from the feed; HERALD_SITE_URL wins."""
    feed = parse_feed(
        atom(entry(1), title="Valley &amp; Hills News").encode(),
        url="https://news.test/feed.xml",
        tz=UTC,
        rules=BreakingRules(),
        now=NOW,
    )
    settings = Settings(_env_file=None, feed_url="https://news.test/feed.xml")  # type: ignore[call-arg]
    site = feed_site(settings, feed, "https://news.test/feed.xml")
    assert (site.title, site.url) == ("Valley & Hills News", "https://news.test")
    own = Settings(_env_file=None, site_url="https://www.news.test/", timezone="Europe/Berlin")  # type: ignore[call-arg]
    site = feed_site(own, feed, "https://news.test/feed.xml")
    assert (site.url, str(site.tz)) == ("https://www.news.test", "Europe/Berlin")


def test_not_a_feed_is_a_problem() -> None:
    """An HTML page where the feed should be is reported, not read as zero entries."""
    feed = parse_feed(
        b"<html><body><p>Site is building</p></body></html>",
        url="https://news.test/feed.xml",
        tz=UTC,
        rules=BreakingRules(),
        now=NOW,
        content_type="text/html",
    )
    assert feed.problem is not None and "not an Atom or RSS feed" in feed.problem


async def test_a_held_entry_survives_a_restart_with_the_feed_unchanged(
    server: SiteServer, tmp_path: Path
) -> None:
    """An entry held for its date while Herald restarts is still announced at that date."""
    db = tmp_path / "h.db"
    server.serve(FEED, atom(entry(1)), etag=False)  # no validators: every poll is a 200
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    async with polling(server, db) as run:
        server.serve(FEED, atom(entry(2, "Soon", date=at.isoformat()), entry(1)), etag=False)
        await run.polls(3)
    assert run.announced == [] and datetime.now(UTC) < at  # stopped while it was held
    async with polling(server, db) as again:
        await until(lambda: again.announced, "the held entry announced after the restart")
        await again.polls()
    assert again.titles == ["Soon"]
