"""The subscription pages in a real headless Chromium, on a phone-sized screen, without JS."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bot.metrics import Metrics
from bot.models import Channel, Status
from bot.render.renderer import Renderer
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve
from tests.fakes.smtp_sink import SmtpSink
from tests.support.web import SECRET, DirectMailer, link_in, web_settings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "web"
PHONE = {"width": 390, "height": 844}


async def test_reader_subscribes_confirms_changes_preferences_and_leaves_in_a_browser(
    browser: object, tmp_path: Path
) -> None:
    """On a phone screen without JavaScript a reader subscribes, confirms from the email,
    changes preferences and unsubscribes; each step is saved as a screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = web_settings(tmp_path, public_url=base)
    site = load_site(settings)
    stop = asyncio.Event()
    async with SmtpSink() as sink, open_store(settings.database_path) as store:
        renderer = Renderer(site, public_url=settings.public_base)
        tokens = Tokens(SECRET)
        mailer = DirectMailer(settings, renderer, tokens, sink.url)
        app = create_app(
            settings=settings,
            site=site,
            store=store,
            tokens=tokens,
            publisher=mailer,
            metrics=Metrics(),
            renderer=renderer,
        )
        server = asyncio.create_task(serve(app, settings, stop, sock=listener))
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport=PHONE, java_script_enabled=False, is_mobile=True
        )
        page = await context.new_page()
        try:
            await page.goto(f"{base}/")
            assert await page.title() == "Subscribe · The Daily Herald"
            await page.screenshot(path=ARTIFACTS / "01-form.png", full_page=True)

            await page.fill("input[name=email]", "phone.reader@example.com")
            await page.uncheck("input[name=daily]")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=Check your inbox")
            await page.screenshot(path=ARTIFACTS / "02-check-inbox.png", full_page=True)

            mail = await sink.wait_for(lambda m: "phone.reader@example.com" in str(m["To"]))
            confirm_url = link_in(mail, "confirm")
            await page.goto(confirm_url)
            await page.wait_for_selector("button:has-text('Confirm')")
            await page.screenshot(path=ARTIFACTS / "03-confirm.png", full_page=True)
            pending = await store.subscribers.get(Channel.EMAIL, "phone.reader@example.com")
            assert pending is not None and pending.status is Status.PENDING

            await page.click("button:has-text('Confirm')")
            await page.wait_for_selector("text=You're subscribed")
            await page.screenshot(path=ARTIFACTS / "04-confirmed.png", full_page=True)
            active = await store.subscribers.get_by_id(pending.id)
            assert active is not None and active.status is Status.ACTIVE
            assert (active.breaking, active.daily) == (True, False)

            await page.click("text=Change what you receive")
            await page.check("input[name=daily]")
            await page.check("input[name=every_post]")
            await page.click("button:has-text('Save')")
            await page.wait_for_selector("text=Saved.")
            await page.screenshot(path=ARTIFACTS / "05-preferences-saved.png", full_page=True)
            saved = await store.subscribers.get_by_id(pending.id)
            assert saved is not None and (saved.daily, saved.every_post) == (True, True)

            await page.click("text=Unsubscribe from everything")
            await page.wait_for_selector("button:has-text('Unsubscribe')")
            await page.screenshot(path=ARTIFACTS / "06-unsubscribe.png", full_page=True)
            await page.click("button:has-text('Unsubscribe')")
            await page.wait_for_selector("text=You're unsubscribed")
            await page.screenshot(path=ARTIFACTS / "07-unsubscribed.png", full_page=True)
            gone = await store.subscribers.get_by_id(pending.id)
            assert gone is not None and gone.status is Status.UNSUBSCRIBED

            # Usable on a phone: nothing wider than the screen.
            await page.goto(f"{base}/")
            width = await page.locator("main").bounding_box()
            assert width is not None and width["width"] <= PHONE["width"]
        finally:
            await context.close()
            stop.set()
            await asyncio.wait_for(server, 10)
            await mailer.pool.close()
