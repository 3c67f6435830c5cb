"""The composition root: builds every part once and runs them together in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

from bot.delivery import open_delivery
from bot.digest import DigestScheduler
from bot.metrics import Metrics
from bot.models import Post
from bot.publish import Publisher
from bot.render import Renderer
from bot.settings import Settings, load_site, secret_key
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.watcher import Watcher
from bot.web import create_app, serve

log = logging.getLogger(__name__)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


@asynccontextmanager
async def telegram_bot(
    settings: Settings, store: Store, renderer: Renderer, publisher: Publisher
) -> AsyncIterator[Any]:
    """The PTB Application polling for updates, or None without a token (outbox mode)."""
    if settings.telegram_token is None:
        yield None
        return
    from telegram.ext import ApplicationBuilder

    from bot import handlers
    from bot.transports.telegram import make_bot

    application = ApplicationBuilder().bot(make_bot(settings)).build()
    deps = handlers.BotDeps(store=store, renderer=renderer, settings=settings, publisher=publisher)
    handlers.register(application, deps)
    await application.initialize()
    try:
        await handlers.set_commands(application.bot, deps)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(drop_pending_updates=False)
        log.info("telegram: polling as @%s", application.bot.username)
        yield application
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()


async def run(settings: Settings) -> int:
    """`herald run`: watcher, bot, delivery, scheduler and web until SIGTERM."""
    site = load_site(settings)
    renderer = Renderer(site, settings)
    tokens = Tokens(secret_key(settings))
    metrics = Metrics()
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(settings.database_path))
        # Delivery first: the publisher wakes it; the bot is built on top of both.
        publisher = Publisher(store, renderer, settings, metrics=metrics)
        bot_app = await stack.enter_async_context(
            telegram_bot(settings, store, renderer, publisher)
        )
        delivery = await stack.enter_async_context(
            open_delivery(store, settings, bot=bot_app.bot if bot_app else None, metrics=metrics)
        )
        publisher.wake = delivery.notify

        async def on_post(post: Post, post_id: int) -> None:
            metrics.posts_seen.inc()
            await publisher.announce(post, post_id)

        watcher = Watcher(site, store.posts, on_post)
        scheduler = DigestScheduler(publisher, store.outbox, at=settings.digest_time, tz=site.tz)
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
