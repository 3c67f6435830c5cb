"""Bounces and complaints as the admins see them: /stats, `herald stats` and GET /metrics."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bot.bounces.listener import BounceHandler, BounceListener
from bot.commands.stats import stats
from bot.metrics import Metrics
from bot.models import Channel
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.mail_reports import post, sample
from tests.support.bot import ADMIN, bot_env
from tests.support.web import SECRET, RecordingPublisher, web_settings

DOMAIN = "bounces.example.org"


@asynccontextmanager
async def listener_on(store: Store, tokens: Tokens, metrics: Metrics) -> AsyncIterator[int]:
    """A bounce listener writing to `store`; yields its port."""
    listener = BounceListener(BounceHandler(store, tokens, DOMAIN, metrics=metrics), "127.0.0.1", 0)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(listener.run(stop, started))
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield listener.port
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def report_three(store: Store, tokens: Tokens, port: int) -> None:
    """A hard bounce, a soft bounce and a complaint, each for its own reader."""
    hard, soft, complained = [
        await store.subscribers.upsert(Channel.EMAIL, f"{name}@example.com")
        for name in ("hard", "soft", "complained")
    ]
    for sub, name in ((hard, "postfix-hard"), (soft, "gmail-soft")):
        verp = tokens.return_path(sub.id, DOMAIN)
        assert (await post(port, sample(name, recipient=sub.address), verp)).code == 250
    raw = sample(
        "yahoo-complaint",
        return_path=tokens.return_path(complained.id, DOMAIN),
        recipient=complained.address,
    )
    assert (await post(port, raw, f"fbl@{DOMAIN}")).code == 250


async def test_stats_shows_bounces_and_complaints(tmp_path: Path, fake_bot_api: FakeBotAPI) -> None:
    """/stats and `herald stats` count the hard and soft bounces and complaints received."""
    async with bot_env(tmp_path, fake_bot_api) as env:
        tokens = Tokens("test-secret")  # the rig's HERALD_SECRET_KEY
        async with listener_on(env.store, tokens, Metrics()) as port:
            await report_three(env.store, tokens, port)
        (reply,) = await env.command(ADMIN, ADMIN, "/stats")
        text = reply.text or ""
        assert "bounce reports: hard 1 · soft 1 · complaints 1" in text
        assert "bounced 1" in text and "unsubscribed 1" in text
        out = io.StringIO()
        assert await stats(env.settings, out) == 0
    assert "bounces      hard 1  soft 1  complaints 1" in out.getvalue()


async def test_metrics_count_bounces_complaints_and_dropped_mail(tmp_path: Path) -> None:
    """GET /metrics shows herald_mail_reports by kind and the mail the listener dropped."""
    settings = web_settings(tmp_path)
    sock = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    metrics, tokens = Metrics(), Tokens(SECRET)
    async with open_store(settings.database_path) as store:
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=tokens,
            publisher=RecordingPublisher(),
            metrics=metrics,
        )
        stop, started = asyncio.Event(), asyncio.Event()
        web = asyncio.create_task(serve(app, settings, stop, sock=sock, started=started))
        try:
            await asyncio.wait_for(started.wait(), 20)
            async with listener_on(store, tokens, metrics) as port:
                await report_three(store, tokens, port)
                assert (await post(port, sample("out-of-office"), f"x@{DOMAIN}")).code == 250
            async with httpx.AsyncClient(base_url=base) as client:
                text = (await client.get("/metrics")).text
        finally:
            stop.set()
            await asyncio.wait_for(web, 20)
    assert 'herald_mail_reports_total{kind="hard"} 1.0' in text
    assert 'herald_mail_reports_total{kind="soft"} 1.0' in text
    assert 'herald_mail_reports_total{kind="complaint"} 1.0' in text
    assert "herald_mail_reports_dropped_total 1.0" in text
