"""The email preferences page's topics and digest time in a real headless Chromium, on a
phone-sized screen, without JavaScript."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

from bot.metrics import Metrics
from bot.models import Channel, Post
from bot.render.renderer import Renderer
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from bot.tokens import Purpose, Tokens
from bot.web.routes import create_app, serve
from tests.support.web import SECRET, RecordingPublisher, web_settings
from tests.web.test_browser import ARTIFACTS, PHONE

TOPICS = [("World", "Politics"), ("World",), ("Économie et société",), ("Sport",)]


async def test_reader_picks_topics_and_a_digest_time_on_a_phone(
    browser: object, tmp_path: Path
) -> None:
    """On a phone screen without JavaScript a reader ticks two topics, sets a digest time
    and zone, saves, and sees them kept; a wrong zone is named and saves nothing; the page
    is never wider than the screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = web_settings(tmp_path, public_url=base)
    site = load_site(settings)
    stop, started = asyncio.Event(), asyncio.Event()
    async with open_store(settings.database_path) as store:
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
            for i, cats in enumerate(TOPICS)
        ]
        await store.posts.record(posts, announced=True, now=datetime.now(UTC))
        sub = await store.subscribers.upsert(Channel.EMAIL, "phone.reader@example.com")
        tokens = Tokens(SECRET)
        app = create_app(
            settings=settings,
            site=site,
            store=store,
            tokens=tokens,
            publisher=RecordingPublisher(),
            metrics=Metrics(),
            renderer=Renderer(site, public_url=settings.public_base),
        )
        server = asyncio.create_task(serve(app, settings, stop, sock=listener, started=started))
        await asyncio.wait_for(started.wait(), 20)
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport=PHONE, java_script_enabled=False, is_mobile=True
        )
        page = await context.new_page()
        try:
            await page.goto(f"{base}/preferences/{tokens.make(Purpose.PREFERENCES, sub.id)}")
            assert await page.title() == "Email preferences · The Daily Herald"
            await page.screenshot(path=ARTIFACTS / "11-choices-form.png", full_page=True)

            await page.check("input[name=topic][value='World']")
            await page.check("input[name=topic][value='Économie et société']")
            await page.fill("input[name=digest_time]", "18:30")
            await page.fill("input[name=timezone]", "Europe/Berlin")
            await page.click("button:has-text('Save')")
            await page.wait_for_selector("text=Saved.")
            await page.screenshot(path=ARTIFACTS / "12-choices-saved.png", full_page=True)
            assert await page.is_checked("input[name=topic][value='World']")
            assert await page.is_checked("input[name=topic][value='Économie et société']")
            assert not await page.is_checked("input[name=topic][value='Sport']")
            assert await page.input_value("input[name=digest_time]") == "18:30"
            assert await page.input_value("input[name=timezone]") == "Europe/Berlin"
            saved = await store.subscribers.get_by_id(sub.id)
            assert saved is not None
            assert set(saved.topics) == {"world", "économie et société"}
            assert (saved.digest_at, saved.tz) == ("18:30", "Europe/Berlin")

            await page.uncheck("input[name=topic][value='World']")
            await page.fill("input[name=timezone]", "Berlin time")
            await page.click("button:has-text('Save')")
            await page.wait_for_selector("text=Nothing was saved")
            await page.screenshot(path=ARTIFACTS / "13-choices-refused.png", full_page=True)
            assert await page.is_visible("text=“Berlin time” is not a time zone name")
            kept = await store.subscribers.get_by_id(sub.id)
            assert kept is not None and set(kept.topics) == {"world", "économie et société"}

            # Usable on a phone: nothing wider than the screen, the topics side by side.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]
            first = await page.locator("input[name=topic]").nth(0).bounding_box()
            second = await page.locator("input[name=topic]").nth(1).bounding_box()
            assert first is not None and second is not None and first["y"] == second["y"]
        finally:
            await context.close()
            stop.set()
            await asyncio.wait_for(server, 10)
