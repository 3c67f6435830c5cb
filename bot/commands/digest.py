"""`herald digest [--dry-run]`: today's digest, now, for every reader who has not had it."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.app import install_stop_signals
from bot.delivery.loop import DeliveryConfig
from bot.delivery.mail import fill, preview_links
from bot.delivery.setup import open_delivery, workers_for
from bot.models import OutboxStatus
from bot.outbox.digest import DigestNow, DigestScheduler
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store

RETRY_LATER_S = 30.0  # `herald digest` leaves retries due later than this to `herald run`
POLL_S = 0.2  # how often the jobs' progress is read
RUNNER_CHECK_S = 2.0  # how often a command waiting on `herald run` checks it is still there
PROGRESS_S = 5.0  # how often a waiting command prints how far the jobs got
SHOWN_RUNS = 20  # --dry-run lists this many of the readers' digests


async def digest(settings: Settings, *, dry_run: bool) -> int:
    """`herald digest`: a digest now, queued and delivered.

    Every reader with the digest on gets the posts since their own previous digest,
    filtered by their topics (nothing when there are none); their window moves on to now,
    so their scheduled digest later holds only what comes after. The outbox stand-ins get
    the site's digest of every post since the last.

    With `dry_run` the site's digest is printed (Telegram HTML, then the email's text part)
    with who would get what, and nothing is queued. A `herald run` on the database delivers
    it (so that the rate holds for all sends together) while this waits and reports; with
    none, this delivers it. Rows that still wait for a retry when this returns go out with
    `herald run`.
    """
    site = load_site(settings)
    renderer = Renderer(site, public_url=settings.public_base)
    async with open_store(settings.database_url) as store:
        # Queuing wakes a `herald run` on the database (PostgreSQL: NOTIFY; SQLite: it
        # polls its outbox every second anyway).
        publisher = Publisher(
            store, renderer, stand_ins=settings.stand_in_channels, channel=settings.telegram_channel
        )
        scheduler = DigestScheduler(publisher, store.digests, at=settings.digest_time, tz=site.tz)
        result = await scheduler.send_now(datetime.now(UTC), dry_run=dry_run)
        if dry_run:
            _print_digest(result, settings.public_base)
            return 0
        if not result.job_ids:
            print(f"digest {result.name}: no new posts, nothing sent")
            return 0
        stop = asyncio.Event()
        install_stop_signals(stop)
        counts = await _see_through(store, settings, site.tz, result.job_ids, result.name, stop)
    shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(
        f"digest {result.name}: {_post_count(result)} posts to {result.queued} recipients: {shown}"
    )
    return 0


def _post_count(result: DigestNow) -> int:
    return len({p.path for r in (result.site, *result.runs) for p in r.posts})


async def _see_through(
    store: Store,
    settings: Settings,
    site_tz: ZoneInfo,
    job_ids: list[int],
    name: str,
    stop: asyncio.Event,
) -> Counter[OutboxStatus]:
    """Until the jobs are done (or `stop`): watch a `herald run` deliver them, or deliver
    them here when there is none, or when the one there was goes away meanwhile."""
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
                await _deliver(store, settings, site_tz, job_ids, stop)
                break
            if runner != said:
                print(f"digest {name}: queued; the `herald run` ({runner}) delivers it", flush=True)
                said, printed = runner, now
        counts = await _counts(store, job_ids)
        if await _done(store, counts):
            break
        if now - printed >= PROGRESS_S:
            printed = now
            total = sum(counts.values())
            print(f"digest {name}: {counts[OutboxStatus.SENT]}/{total} sent", flush=True)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    return await _counts(store, job_ids)


async def _deliver(
    store: Store, settings: Settings, site_tz: ZoneInfo, job_ids: list[int], stop: asyncio.Event
) -> None:
    """Deliver from here until the jobs are done, as one more process on the database."""
    # Another `herald run` may start meanwhile and deliver from the same outbox: leave its
    # rows alone.
    config = DeliveryConfig(
        telegram_workers=workers_for(settings.telegram_rate), recover_on_start=False
    )
    async with AsyncExitStack() as stack:
        delivery = await stack.enter_async_context(
            open_delivery(store, settings, config=config, site_tz=site_tz)
        )
        # Joined (never leading): another process sees these claimed rows as a live one's.
        await stack.enter_async_context(store.cluster.joined(worker=True, on_wake=delivery.notify))
        sending = asyncio.create_task(delivery.run(stop))
        while not stop.is_set() and not sending.done():
            if await _done(store, await _counts(store, job_ids)):
                stop.set()
            else:
                await asyncio.sleep(POLL_S)
        stop.set()
        await sending


async def _counts(store: Store, job_ids: list[int]) -> Counter[OutboxStatus]:
    """The jobs' rows per status, summed."""
    counts: Counter[OutboxStatus] = Counter({status: 0 for status in OutboxStatus})
    for job_id in job_ids:
        for job in await store.outbox.progress(job_id=job_id):
            counts.update(job.counts)
    return counts


async def _done(store: Store, counts: Counter[OutboxStatus]) -> bool:
    """Nothing of the jobs is sending or queued, or only retries far ahead (for `herald run`)."""
    if counts[OutboxStatus.SENDING]:
        return False
    if not counts[OutboxStatus.QUEUED]:
        return True
    due = await store.outbox.next_due()
    return due is not None and due > time.time() + RETRY_LATER_S


def _print_digest(result: DigestNow, public: str) -> None:
    name, site = result.name, result.site
    if not site.posts:
        print(f"digest {name}: no new posts, nothing would be sent")
    else:
        print(f"digest {name}: {len(site.posts)} posts (dry run, nothing sent)")
        for k, msg in enumerate(site.rendered.telegram, start=1):
            print(f"==> telegram {k:02d}-{msg.method} <==")
            print(msg.text)
        if site.rendered.email is not None:
            print(f"==> email: {site.rendered.email.subject} <==")
            _, text = fill(site.rendered.email, **preview_links(public))
            print(text)
    runs = sorted(result.runs, key=lambda r: -r.readers)
    if runs:
        print(f"==> readers: {result.readers} <==")
    for r in runs[:SHOWN_RUNS]:
        topics = ", ".join(r.topics) or "every topic"
        print(
            f"{r.readers} readers at {r.at:%H:%M} {r.tz.key} ({topics}):"
            f" {len(r.posts)} posts since {r.since.astimezone(r.tz):%Y-%m-%d %H:%M}"
        )
    if len(runs) > SHOWN_RUNS:
        print(f"…and {len(runs) - SHOWN_RUNS} more groups of readers")
    sys.stdout.flush()
