"""The email preferences page's topics, digest time and time zone, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.metrics import Metrics
from bot.models import Channel, Post, Subscriber
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Purpose, Tokens
from bot.web.routes import create_app
from tests.support.web import SECRET, RecordingPublisher, visible_text, web_settings


@dataclass
class Page:
    store: Store
    client: httpx.AsyncClient
    sub: Subscriber
    path: str

    async def saved(self) -> Subscriber:
        found = await self.store.subscribers.get_by_id(self.sub.id)
        assert found is not None
        return found


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """The web app over a store with posts in World, Sport and Économie, and one reader."""
    settings = web_settings(tmp_path)
    async with open_store(settings.database_path) as store:
        tokens = Tokens(SECRET)
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=tokens,
            publisher=RecordingPublisher(),
            metrics=Metrics(),
        )
        posts = [
            Post(
                path=f"2026-01-0{i + 1}-p.md",
                slug=f"p{i}",
                title=f"Post {i}",
                date=datetime(2026, 1, i + 1, tzinfo=UTC),
                url=f"https://news.example.com/p{i}.html",
                body="",
                excerpt="",
                categories=cats,
            )
            for i, cats in enumerate([("World", "Sport"), ("World",), ("Économie",)])
        ]
        await store.posts.record(posts, announced=True, now=datetime.now(UTC))
        sub = await store.subscribers.upsert(Channel.EMAIL, "p@example.com")
        path = f"/preferences/{tokens.make(Purpose.PREFERENCES, sub.id)}"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Page(store, client, sub, path)


BASE = {"breaking": "on", "daily": "on"}


async def test_page_offers_topics_digest_time_and_zone(page: Page) -> None:
    """The page shows a checkbox per topic on offer, a time field and a zone field, with
    the site's defaults named; nothing is ticked for a reader who chose no topic."""
    response = await page.client.get(page.path)
    assert response.status_code == 200
    for name in ("World", "Sport", "Économie"):
        assert f'name="topic" value="{name}">' in response.text
    assert 'type="time" id="digest_time" name="digest_time" value=""' in response.text
    text = visible_text(response.text)
    assert "Empty: 08:00, the site's time." in text
    assert "Empty: Europe/London, the site's." in text


async def test_saving_topics_time_and_zone(page: Page) -> None:
    """Ticked topics, a digest time and a zone are saved and shown ticked and filled."""
    data = BASE | {"topic": ["World", "Économie"], "digest_time": "7:05", "timezone": "asia/tokyo"}
    response = await page.client.post(page.path, data=data)
    assert response.status_code == 200 and "Saved." in response.text
    sub = await page.saved()
    assert set(sub.topics) == {"world", "économie"}
    assert (sub.digest_at, sub.tz, sub.breaking, sub.daily, sub.every_post) == (
        "07:05",
        "Asia/Tokyo",
        True,
        True,
        False,
    )
    shown = await page.client.get(page.path)
    assert 'value="World" checked' in shown.text and 'value="Économie" checked' in shown.text
    assert 'value="Sport">' in shown.text
    assert 'name="digest_time" value="07:05"' in shown.text
    assert 'name="timezone" value="Asia/Tokyo"' in shown.text

    cleared = await page.client.post(page.path, data=BASE | {"digest_time": "", "timezone": ""})
    assert cleared.status_code == 200
    sub = await page.saved()
    assert (sub.topics, sub.digest_at, sub.tz) == ((), None, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"digest_time": "25:00"}, "“25:00” is not a time of day"),
        ({"digest_time": "7pm"}, "“7pm” is not a time of day"),
        ({"timezone": "CET"}, "“CET” is not a time zone name"),
        ({"timezone": "Mars/Base"}, "“Mars/Base” is not a time zone name"),
    ],
)
async def test_bad_time_or_zone_is_refused_and_nothing_saved(
    page: Page, fields: dict[str, str], message: str
) -> None:
    """A bad digest time or zone shows the page again with the problem named, the other
    fields as submitted, and saves nothing at all."""
    data = {"daily": "on", "every_post": "on", "topic": "Sport"} | fields
    response = await page.client.post(page.path, data=data)
    assert response.status_code == 400
    text = visible_text(response.text)
    assert "Nothing was saved" in text and message in text
    assert 'value="Sport" checked' in response.text
    assert 'name="breaking" value="on">' in response.text  # unticked, as submitted
    sub = await page.saved()
    assert (sub.breaking, sub.every_post, sub.topics, sub.digest_at, sub.tz) == (
        True,
        False,
        (),
        None,
        None,
    )


async def test_get_changes_nothing_and_forged_topics_are_ignored(page: Page) -> None:
    """GET (and HEAD) with form-like query parameters saves nothing; a POST naming a topic
    that is not on offer stores only the offered ones."""
    query = "?breaking=&daily=&topic=World&digest_time=18:30&timezone=UTC"
    assert (await page.client.get(page.path + query)).status_code == 200
    assert (await page.client.head(page.path + query)).status_code == 200
    sub = await page.saved()
    assert (sub.breaking, sub.daily, sub.topics, sub.digest_at, sub.tz) == (
        True,
        True,
        (),
        None,
        None,
    )
    forged = BASE | {"topic": ["World", "<script>", "Not offered"]}
    assert (await page.client.post(page.path, data=forged)).status_code == 200
    assert (await page.saved()).topics == ("world",)


async def test_a_chosen_topic_gone_from_the_offer_can_be_dropped(page: Page) -> None:
    """A topic chosen before (e.g. in Telegram or an import) that is no longer offered
    still shows, ticked, so the reader can untick it."""
    await page.store.subscribers.set_topics(page.sub.id, ["Old news"])
    shown = await page.client.get(page.path)
    assert 'value="old news" checked' in shown.text
    await page.client.post(page.path, data=BASE | {"topic": "World"})
    assert (await page.saved()).topics == ("world",)
