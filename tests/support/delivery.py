"""Shared builders for the delivery tests: settings, a store, a running Delivery, posts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.delivery.loop import Delivery, DeliveryConfig
from bot.delivery.setup import open_delivery
from bot.models import Post
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store

SITE_DIR = Path(__file__).resolve().parents[2] / "examples" / "site"
FAST = DeliveryConfig(
    telegram_workers=16, mail_workers=4, retry_delay=lambda attempt: 0.05, poll_s=0.1
)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    """Settings for a test: the demo site, a database and outbox in `tmp`, no .env file."""
    values: dict[str, Any] = {
        "site_dir": SITE_DIR,
        "database_url": f"sqlite:///{tmp / 'data' / 'herald.db'}",
        "outbox_dir": tmp / "outbox",
        "secret_key": "test-secret",
        "timezone": "UTC",
        "site_url": "https://news.example.org",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_post(n: int, *, breaking: bool = False, image: str | None = None) -> Post:
    return Post(
        path=f"2026-01-{n:02d}-post-{n}.md",
        slug=f"post-{n}",
        title=f"Post number {n}",
        date=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        url=f"https://news.example.org/2026/01/01/post-{n}.html",
        body="Some **text** here.",
        excerpt="Some **text** here.",
        image=image,
        breaking=breaking,
    )


@dataclass
class Rig:
    settings: Settings
    store: Store
    delivery: Delivery
    publisher: Publisher
    stop: asyncio.Event
    task: asyncio.Task[Any]

    async def drained(self, timeout: float = 20.0) -> dict[str, int]:  # noqa: ASYNC109
        """Wait until nothing is queued or sending; the totals per status."""
        deadline = time.monotonic() + timeout
        while True:
            totals = await self.store.outbox.totals()
            if totals["queued"] == 0 and totals["sending"] == 0:
                return totals
            if time.monotonic() > deadline:
                raise AssertionError(f"outbox not drained: {totals}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    settings: Settings, config: DeliveryConfig = FAST, *, start: bool = True
) -> AsyncIterator[Rig]:
    """An open store, a Publisher and a Delivery running in the background."""
    async with (
        open_store(settings.database_url) as store,
        open_delivery(store, settings, config=config) as delivery,
    ):
        renderer = Renderer(load_site(settings), public_url=settings.public_base)
        publisher = Publisher(
            store,
            renderer,
            stand_ins=settings.stand_in_channels,
            channel=settings.telegram_channel,
            wake=delivery.notify,
        )
        stop = asyncio.Event()
        task = (
            asyncio.create_task(delivery.run(stop)) if start else asyncio.create_task(stop.wait())
        )
        try:
            yield Rig(settings, store, delivery, publisher, stop, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
