"""The whole email path over real sockets: web → outbox → delivery → SMTP (aiosmtpd) → web."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bot.delivery.loop import DeliveryConfig
from bot.delivery.setup import open_delivery
from bot.metrics import Metrics
from bot.models import Channel, Post, Status
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve
from tests.fakes.smtp_sink import SmtpSink
from tests.support.web import SECRET, link_in, path_of, web_settings

READER = "e2e.reader@example.com"
CONTROL = "control@example.com"


def breaking_post(n: int) -> Post:
    return Post(
        path=f"2026-11-2{n}-flood-{n}.md",
        slug=f"flood-{n}",
        title=f"Flood warning {n}",
        date=datetime(2026, 11, 20 + n, 9, 0, tzinfo=UTC),
        url=f"https://news.example.com/2026/11/2{n}/flood-{n}.html",
        body=f"River level {n} rising.",
        excerpt=f"River level {n} rising.",
        breaking=True,
    )


async def test_opt_in_confirm_alert_one_click_unsubscribe_then_silence(tmp_path: Path) -> None:
    """A reader subscribes, confirms by POST, gets a breaking alert with one-click headers,
    unsubscribes with the RFC 8058 POST, and the next alert is not sent to them."""
    listener = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop = asyncio.Event()
    async with SmtpSink() as sink:
        settings = web_settings(tmp_path, public_url=base, smtp_url=sink.url)
        site = load_site(settings)
        metrics = Metrics()
        config = DeliveryConfig(mail_workers=2, telegram_workers=2, poll_s=0.05)
        async with (
            open_store(settings.database_path) as store,
            open_delivery(store, settings, config=config, metrics=metrics) as delivery,
        ):
            renderer = Renderer(site, public_url=settings.public_base)
            publisher = Publisher(
                store,
                renderer,
                stand_ins=settings.stand_in_channels,
                channel=settings.telegram_channel,
                wake=delivery.notify,
                metrics=metrics,
            )
            app = create_app(
                settings=settings,
                site=site,
                store=store,
                tokens=Tokens(SECRET),
                publisher=publisher,
                metrics=metrics,
                renderer=renderer,
            )
            await store.subscribers.upsert(Channel.EMAIL, CONTROL)
            tasks = [
                asyncio.create_task(serve(app, settings, stop, sock=listener)),
                asyncio.create_task(delivery.run(stop)),
            ]
            try:
                async with httpx.AsyncClient(base_url=base) as http:
                    await _walk_through(http, sink, store, publisher)
                    metrics_text = (await http.get("/metrics")).text
                assert 'herald_subscribers{channel="email",status="unsubscribed"} 1.0' in (
                    metrics_text
                )
                assert 'herald_sends_total{channel="email"}' in metrics_text
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def _walk_through(
    http: httpx.AsyncClient, sink: SmtpSink, store: Store, publisher: Publisher
) -> None:
    answer = await http.post("/subscribe", data={"email": READER, "breaking": "on"})
    assert answer.status_code == 200

    confirmation = await sink.wait_for(lambda m: READER in str(m["To"]))
    # Nobody is subscribed yet: the confirmation offers no one-click unsubscribe (SPEC).
    assert "List-Unsubscribe" not in confirmation
    assert "List-Unsubscribe-Post" not in confirmation
    confirm_url = link_in(confirmation, "confirm")
    assert confirm_url.startswith(f"{str(http.base_url).rstrip('/')}/confirm/")

    shown = await http.get(confirm_url)
    assert shown.status_code == 200 and "<button" in shown.text
    pending = await store.subscribers.get(Channel.EMAIL, READER)
    assert pending is not None and pending.status is Status.PENDING
    confirmed = await http.post(confirm_url)
    assert confirmed.status_code == 200
    active = await store.subscribers.get(Channel.EMAIL, READER)
    assert active is not None and active.status is Status.ACTIVE

    await publisher.announce(breaking_post(1))
    alert = await sink.wait_for(lambda m: READER in str(m["To"]) and "Flood" in str(m["Subject"]))
    header = str(alert["List-Unsubscribe"]).strip()  # long URLs get folded
    assert header.startswith(f"<{str(http.base_url).rstrip('/')}/unsubscribe/")
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = header.strip("<>")
    assert link_in(alert, "unsubscribe") == one_click  # the visible link, too
    html_part = alert.get_body(preferencelist=("html",))
    assert html_part is not None and path_of(one_click) in html_part.get_content()

    # What Gmail and Yahoo send: a bare POST, no cookie, this exact body.
    left = await http.post(
        one_click,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert left.status_code == 200 and not left.is_redirect
    gone = await store.subscribers.get(Channel.EMAIL, READER)
    assert gone is not None and gone.status is Status.UNSUBSCRIBED

    before = len(sink.to(READER))
    await publisher.announce(breaking_post(2))
    await sink.wait_for(
        lambda m: CONTROL in str(m["To"]) and "Flood warning 2" in str(m["Subject"])
    )
    await asyncio.sleep(0.3)  # let any wrongly queued mail to the reader arrive too
    assert len(sink.to(READER)) == before
