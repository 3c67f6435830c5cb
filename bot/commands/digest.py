"""`herald digest [--dry-run]`: the digest of the posts since the last one, now."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

from bot.app import install_stop_signals
from bot.delivery.loop import DeliveryConfig
from bot.delivery.mail import fill, preview_links
from bot.delivery.setup import open_delivery, workers_for
from bot.models import OutboxStatus, Post, Rendered
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import open_store

RETRY_LATER_S = 30.0  # `herald digest` leaves retries due later than this to `herald run`


async def digest(settings: Settings, *, dry_run: bool) -> int:
    """`herald digest`: queue the digest of the posts since the last one and deliver it now.

    With `dry_run` it is printed (Telegram HTML, then the email's text part) and nothing is
    queued. Rows that still wait for a retry when this returns go out with `herald run`.
    """
    site = load_site(settings)
    renderer = Renderer(site, public_url=settings.public_base)
    async with open_store(settings.database_url) as store:
        publisher = Publisher(
            store, renderer, stand_ins=settings.stand_in_channels, channel=settings.telegram_channel
        )
        result = await publisher.send_digest(datetime.now(UTC), dry_run=dry_run)
        if dry_run:
            _print_digest(result.name, result.posts, result.rendered, settings.public_base)
            return 0
        if result.job_id is None:
            print(f"digest {result.name}: no new posts, nothing sent")
            return 0
        # Another `herald run` may be delivering from the same outbox: leave its rows alone.
        config = DeliveryConfig(
            telegram_workers=workers_for(settings.telegram_rate), recover_on_start=False
        )
        stop = asyncio.Event()
        install_stop_signals(stop)
        async with open_delivery(store, settings, config=config) as delivery:
            sending = asyncio.create_task(delivery.run(stop))
            while not stop.is_set() and not sending.done():
                (job,) = await store.outbox.progress(job_id=result.job_id)
                due = await store.outbox.next_due()
                # Done, or only retries far ahead are left: those go out with `herald run`.
                later = due is not None and due > time.time() + RETRY_LATER_S
                if job.counts[OutboxStatus.SENDING] == 0 and (
                    job.counts[OutboxStatus.QUEUED] == 0 or later
                ):
                    stop.set()
                else:
                    await asyncio.sleep(0.2)
            stop.set()
            await sending
        (job,) = await store.outbox.progress(job_id=result.job_id)
    counts = ", ".join(f"{n} {status}" for status, n in job.counts.items() if n)
    print(
        f"digest {result.name}: {len(result.posts)} posts to {result.queued} recipients: {counts}"
    )
    return 0


def _print_digest(name: str, posts: tuple[Post, ...], rendered: Rendered, public: str) -> None:
    if not posts:
        print(f"digest {name}: no new posts, nothing would be sent")
        return
    print(f"digest {name}: {len(posts)} posts (dry run, nothing sent)")
    for k, msg in enumerate(rendered.telegram, start=1):
        print(f"==> telegram {k:02d}-{msg.method} <==")
        print(msg.text)
    if rendered.email is not None:
        print(f"==> email: {rendered.email.subject} <==")
        _, text = fill(rendered.email, **preview_links(public))
        print(text)
    sys.stdout.flush()
