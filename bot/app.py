"""The composition root: builds every part once and runs them together in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from bot.delivery.loop import DeliveryConfig
from bot.delivery.mail import fill, preview_links
from bot.delivery.setup import open_delivery, workers_for
from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.models import Post, Rendered
from bot.outbox.digest import DigestScheduler
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings, load_site, secret_key
from bot.sources.watcher import Watcher
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve

log = logging.getLogger(__name__)

RETRY_LATER_S = 30.0  # `herald digest` leaves retries due later than this to `herald run`


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # RuntimeError also covers platforms without loop signal handlers (its subclass).
        with suppress(RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _connect(application: Any, stop: asyncio.Event) -> bool:
    """Initialize PTB (getMe), waiting out an unreachable Bot API; False when stopped first."""
    from telegram.error import InvalidToken, NetworkError

    delay_s = 1.0
    while True:
        try:
            await application.initialize()
            return True
        except InvalidToken:
            await application.bot.shutdown()
            # PTB's own message quotes the token: say it without, and drop the chain.
            raise ConfigError(
                "HERALD_TELEGRAM_TOKEN: the Bot API rejected this token; "
                "copy it again from @BotFather"
            ) from None
        except NetworkError as exc:  # also TimedOut: network not up yet, API down
            log.warning("telegram: Bot API unreachable (%s); retrying in %.0fs", exc, delay_s)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)
        if stop.is_set():
            await application.bot.shutdown()
            return False
        delay_s = min(delay_s * 2, 30.0)


@asynccontextmanager
async def telegram_bot(
    settings: Settings,
    store: Store,
    renderer: Renderer,
    publisher: Publisher,
    stop: asyncio.Event,
) -> AsyncIterator[Any]:
    """The PTB Application polling for updates, or None without a token (outbox mode)."""
    if settings.telegram_token is None:
        yield None
        return
    from telegram.ext import ApplicationBuilder

    from bot.chat import handlers
    from bot.transports.telegram import make_bot

    application = ApplicationBuilder().bot(make_bot(settings)).build()
    deps = handlers.BotDeps(store=store, renderer=renderer, settings=settings, publisher=publisher)
    handlers.register(application, deps)
    if not await _connect(application, stop):
        yield None
        return
    try:
        await handlers.set_commands(application.bot, deps)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(drop_pending_updates=False)
        log.info("telegram: polling as @%s", application.bot.username)
        yield application
    finally:
        from telegram.error import TelegramError

        try:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
        except TelegramError as exc:  # polling had died (401: token revoked); re-raised here
            log.error("telegram: polling had stopped: %s", exc)
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
        # The bot comes first (delivery sends through its Bot); the publisher wakes delivery.
        publisher = Publisher(store, renderer, settings, metrics=metrics)
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


async def digest(settings: Settings, *, dry_run: bool) -> int:
    """`herald digest`: queue the digest of the posts since the last one and deliver it now.

    With `dry_run` it is printed (Telegram HTML, then the email's text part) and nothing is
    queued. Rows that still wait for a retry when this returns go out with `herald run`.
    """
    site = load_site(settings)
    renderer = Renderer(site, settings)
    async with open_store(settings.database_path) as store:
        publisher = Publisher(store, renderer, settings)
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
                if job.counts["sending"] == 0 and (job.counts["queued"] == 0 or later):
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
