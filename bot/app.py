"""The composition root: builds every part once and runs them together in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack, suppress

from bot.chat.bot import telegram_bot
from bot.delivery.setup import open_delivery
from bot.metrics import Metrics
from bot.models import Post
from bot.outbox.digest import DigestScheduler
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings, load_site, secret_key
from bot.sources.watcher import Watcher
from bot.store import open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve

log = logging.getLogger(__name__)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # RuntimeError also covers platforms without loop signal handlers (its subclass).
        with suppress(RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run(settings: Settings) -> int:
    """`herald run`: watcher, bot, delivery, scheduler and web until SIGTERM."""
    site = load_site(settings)
    renderer = Renderer(site, public_url=settings.public_base)
    tokens = Tokens(secret_key(settings))
    metrics = Metrics()
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(settings.database_path))
        # The bot comes first (delivery sends through its Bot); the publisher wakes delivery.
        publisher = Publisher(
            store,
            renderer,
            stand_ins=settings.stand_in_channels,
            channel=settings.telegram_channel,
            metrics=metrics,
        )
        bot_app = await stack.enter_async_context(
            telegram_bot(settings, store, renderer, publisher, stop)
        )
        if stop.is_set():  # stopped while waiting for the Bot API
            return 0
        delivery = await stack.enter_async_context(
            open_delivery(
                store,
                settings,
                bot=bot_app.bot if bot_app else None,
                metrics=metrics,
                tokens=tokens,
            )
        )
        publisher.wake = delivery.notify

        async def on_post(post: Post, post_id: int) -> None:
            metrics.post_seen()
            await publisher.announce(post, post_id)

        watcher = Watcher(site, store.posts, on_post)
        scheduler = DigestScheduler(publisher, store.digests, at=settings.digest_time, tz=site.tz)
        web = create_app(
            settings=settings,
            site=site,
            store=store,
            tokens=tokens,
            publisher=publisher,
            metrics=metrics,
            renderer=renderer,
        )
        watching = asyncio.Event()
        serving = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            # Delivery stops last: it finishes the sends in flight after `stop`.
            tg.create_task(delivery.run(stop))
            tg.create_task(serve(web, settings, stop, started=serving))
            tg.create_task(watcher.run(stop, watching))
            tg.create_task(scheduler.run(stop))
            if await _until(stop, watching, serving):
                log.info(
                    "ready: watching %s; telegram via %s; email via %s; web on http://%s",
                    site.posts_dir,
                    "Bot API" if bot_app else f"files in {settings.outbox_dir}/telegram",
                    "SMTP" if settings.smtp_url else f"files in {settings.outbox_dir}/email",
                    settings.web_listen,
                )
            await stop.wait()
            log.info("stopping: finishing sends in flight")
    log.info("stopped")
    return 0


async def _until(stop: asyncio.Event, *events: asyncio.Event) -> bool:
    """Wait for all `events`; False when `stop` came first."""
    waiters = [asyncio.ensure_future(e.wait()) for e in (*events, stop)]
    pending = set(waiters)
    while not stop.is_set() and not all(e.is_set() for e in events):
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return all(e.is_set() for e in events)
