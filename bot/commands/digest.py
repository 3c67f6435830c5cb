"""`herald digest [--dry-run]`: the digest of the posts since the last one, now."""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime

from bot.app import install_stop_signals
from bot.delivery.loop import DeliveryConfig
from bot.delivery.mail import fill, preview_links
from bot.delivery.setup import open_delivery, workers_for
from bot.models import JobProgress, OutboxStatus, Post, Rendered
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store

RETRY_LATER_S = 30.0  # `herald digest` leaves retries due later than this to `herald run`
POLL_S = 0.2  # how often the job's progress is read
RUNNER_CHECK_S = 2.0  # how often a command waiting on `herald run` checks it is still there
PROGRESS_S = 5.0  # how often a waiting command prints how far the job got


async def digest(settings: Settings, *, dry_run: bool) -> int:
    """`herald digest`: queue the digest of the posts since the last one and deliver it now.

    With `dry_run` it is printed (Telegram HTML, then the email's text part) and nothing is
    queued. A `herald run` on the database delivers it (so that the rate holds for all
    sends together) while this waits and reports; with none, this delivers it. Rows that
    still wait for a retry when this returns go out with `herald run`.
    """
    site = load_site(settings)
    renderer = Renderer(site, public_url=settings.public_base)
    async with open_store(settings.database_url) as store:
        # Queuing wakes a `herald run` on the database (PostgreSQL: NOTIFY; SQLite: it
        # polls its outbox every second anyway).
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
        stop = asyncio.Event()
        install_stop_signals(stop)
        job = await _see_through(store, settings, result.job_id, result.name, stop)
    counts = ", ".join(f"{n} {status}" for status, n in job.counts.items() if n)
    print(
        f"digest {result.name}: {len(result.posts)} posts to {result.queued} recipients: {counts}"
    )
    return 0


async def _see_through(
    store: Store, settings: Settings, job_id: int, name: str, stop: asyncio.Event
) -> JobProgress:
    """Until the job is done (or `stop`): watch a `herald run` deliver it, or deliver it here
    when there is none, or when the one there was goes away meanwhile."""
    said: str | None = None  # the runner last named
    checked = printed = time.monotonic() - RUNNER_CHECK_S
    while not stop.is_set():
        now = time.monotonic()
        if now - checked >= RUNNER_CHECK_S:
            checked = now
            runner = await store.cluster.runner()
            if runner is None:
                if said is not None:
                    print(f"digest {name}: {said} is gone; delivering the rest here", flush=True)
                await _deliver(store, settings, job_id, stop)
                break
            if runner != said:
                print(f"digest {name}: queued; the `herald run` ({runner}) delivers it", flush=True)
                said, printed = runner, now
        job = await _job(store, job_id)
        if await _done(store, job):
            break
        if now - printed >= PROGRESS_S:
            printed = now
            print(f"digest {name}: {job.counts[OutboxStatus.SENT]}/{job.total} sent", flush=True)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    return await _job(store, job_id)


async def _deliver(store: Store, settings: Settings, job_id: int, stop: asyncio.Event) -> None:
    """Deliver from here until the job is done, as one more process on the database."""
    # Another `herald run` may start meanwhile and deliver from the same outbox: leave its
    # rows alone.
    config = DeliveryConfig(
        telegram_workers=workers_for(settings.telegram_rate), recover_on_start=False
    )
    async with AsyncExitStack() as stack:
        delivery = await stack.enter_async_context(open_delivery(store, settings, config=config))
        # Joined (never leading): another process sees these claimed rows as a live one's.
        await stack.enter_async_context(store.cluster.joined(worker=True, on_wake=delivery.notify))
        sending = asyncio.create_task(delivery.run(stop))
        while not stop.is_set() and not sending.done():
            if await _done(store, await _job(store, job_id)):
                stop.set()
            else:
                await asyncio.sleep(POLL_S)
        stop.set()
        await sending


async def _job(store: Store, job_id: int) -> JobProgress:
    (job,) = await store.outbox.progress(job_id=job_id)
    return job


async def _done(store: Store, job: JobProgress) -> bool:
    """Nothing of the job is sending or queued, or only retries far ahead (for `herald run`)."""
    if job.counts[OutboxStatus.SENDING]:
        return False
    if not job.counts[OutboxStatus.QUEUED]:
        return True
    due = await store.outbox.next_due()
    return due is not None and due > time.time() + RETRY_LATER_S


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
