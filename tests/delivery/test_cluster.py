"""Delivery across processes on one PostgreSQL database: woken by another's publishing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bot.delivery.loop import Delivery
from bot.models import Channel
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from bot.tokens import Tokens
from tests.fakes.transports import RecordingMail, RecordingTelegram
from tests.support.delivery import FAST, make_post, make_settings

READERS = 2000


async def test_a_post_published_in_one_process_is_sent_by_another_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Rows one process queues wake the delivery of another (NOTIFY), which would otherwise
    look only at its next poll, half a minute later."""
    settings = make_settings(tmp_path, database_url=postgres_url)
    telegram = RecordingTelegram()
    async with open_store(postgres_url) as publishing, open_store(postgres_url) as delivering:
        rows = [(Channel.TELEGRAM, str(20_000 + i), True, False) for i in range(READERS)]
        await publishing.subscribers.import_rows(rows)
        delivery = Delivery(
            delivering,
            telegram=telegram,
            mail=RecordingMail(),
            tokens=Tokens("test-secret"),
            mail_from="News <news@example.org>",
            public_url="https://news.example.org",
            pacer=None,
            config=replace(FAST, poll_s=30.0),
        )
        renderer = Renderer(load_site(settings), public_url=settings.public_base)
        publisher = Publisher(publishing, renderer)  # no delivery of its own
        stop = asyncio.Event()
        async with (
            publishing.cluster.joined(worker=False, on_wake=lambda: None),
            delivering.cluster.joined(worker=True, on_wake=delivery.notify),
        ):
            task = asyncio.create_task(delivery.run(stop))
            try:
                await asyncio.sleep(0.5)  # its first look found nothing: it waits its poll
                started = time.monotonic()
                announcing = asyncio.create_task(publisher.announce(make_post(1, breaking=True)))
                await telegram.wait_for(lambda: bool(telegram.sent), 10)
                first_s = time.monotonic() - started
                await announcing
                queued_s = time.monotonic() - started
                await telegram.wait_for(lambda: len(telegram.sent) == READERS, 60)
            finally:
                stop.set()
                await task
    print(
        f"\npublish → first alert in another process: {first_s * 1000:.0f} ms"
        f" (the fan-out to {READERS} took {queued_s * 1000:.0f} ms to queue)"
    )
    assert sorted(int(to) for to, _ in telegram.sent) == [20_000 + i for i in range(READERS)]
