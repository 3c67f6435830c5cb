"""The composition root: builds every part once and runs them together in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.bounces.listener import BounceHandler, BounceListener
from bot.chat.bot import receive_updates, telegram_bot
from bot.chat.gate import gate_desk
from bot.chat.webhook import secret_token, update_receiver
from bot.delivery.loop import Delivery
from bot.delivery.setup import open_delivery
from bot.errors import ConfigError
from bot.health import Health, database_check, progress_check, task_check
from bot.metrics import Metrics
from bot.models import Post
from bot.outbox.digest import DigestScheduler
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings, Site, secret_key
from bot.sources.feed import FeedPoller, load_feed_site
from bot.sources.gate import PublishGate
from bot.sources.git import SiteClone
from bot.sources.jekyll.site import load_site
from bot.sources.watcher import Watcher
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.hooks import hook_routes
from bot.web.routes import create_app, serve
from bot.web.telegram_hook import telegram_hook_routes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Queued messages due this long while delivery has sent nothing for as long: it is stuck.
DELIVERY_STUCK_S = 300.0


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # RuntimeError also covers platforms without loop signal handlers (its subclass).
        with suppress(RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run(settings: Settings, *, fresh: bool = False) -> int:
    """`herald run`: watcher, bot, delivery, scheduler and web until SIGTERM.

    `fresh`: an empty database where a post log was kept is started afresh on purpose.
    """
    if settings.feed_url is not None and settings.site_git is not None:
        raise ConfigError("HERALD_FEED_URL and HERALD_SITE_GIT: set one source of posts, not both")
    stop = asyncio.Event()
    install_stop_signals(stop)
    clone = SiteClone.from_settings(settings)
    if clone is not None:  # the site is read from the clone: it is made or updated first
        await clone.prepare()
    # With a feed no site folder is needed: the site's title and URL come from the feed.
    site = (
        load_site(settings) if settings.feed_url is None else await load_feed_site(settings, stop)
    )
    if site is None:  # stopped while waiting for the feed
        return 0
    renderer = Renderer(site, public_url=settings.public_base)
    tokens = Tokens(secret_key(settings))
    metrics = Metrics()
    health = Health()
    async with AsyncExitStack() as stack:
        # The only `herald run` on the database: a second one is refused here, at once.
        opening = open_store(settings.database_url, run=True, fresh=fresh)
        store = await _unless_stopped(stop, stack.enter_async_context(opening))
        if store is None:  # stopped while waiting for a locked database
            return 0
        stack.push_async_callback(health.close)
        health.register("database", database_check(store.posts, store.health))
        # The bot comes first (delivery sends through its Bot); the publisher wakes delivery.
        publisher = Publisher(
            store,
            renderer,
            stand_ins=settings.stand_in_channels,
            channel=settings.telegram_channel,
            metrics=metrics,
        )
        bot_app = await stack.enter_async_context(
            telegram_bot(settings, store, renderer, publisher, stop, health=health)
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

        gate = _publish_gate(settings, store, on_post, bot_app)
        posts, hand_on = (gate.post_log(), gate.on_post) if gate else (store.posts, on_post)
        feed = (
            FeedPoller(settings.feed_url, site, posts, hand_on, poll_s=settings.feed_poll_s)
            if settings.feed_url is not None
            else None
        )
        watcher = feed or Watcher(site, posts, hand_on)
        secret = settings.webhook_secret
        hooks = (
            hook_routes(
                secret=secret.get_secret_value() if secret else None,
                request_fetch=clone.request_fetch,
                branch=lambda: clone.branch,
            )
            if clone is not None
            else []
        )
        if bot_app is not None and settings.telegram_webhook_url is not None:
            # Every process takes the updates Telegram posts, whichever one set the webhook.
            hooks += telegram_hook_routes(
                path=urlsplit(settings.telegram_webhook_url).path,
                secret=secret_token(secret_key(settings)),
                on_update=update_receiver(bot_app),
            )
        scheduler = DigestScheduler(publisher, store.digests, at=settings.digest_time, tz=site.tz)
        web = create_app(
            settings=settings,
            site=site,
            store=store,
            tokens=tokens,
            publisher=publisher,
            metrics=metrics,
            renderer=renderer,
            health=health,
            hooks=hooks,
        )
        watching = asyncio.Event()
        serving = asyncio.Event()
        ready = [watching, serving]
        async with asyncio.TaskGroup() as tg:
            # Delivery stops last: it finishes the sends in flight after `stop`.
            delivering = tg.create_task(delivery.run(stop))
            tg.create_task(serve(web, settings, stop, started=serving))
            watch = tg.create_task(watcher.run(stop, watching))
            _watch_health(health, store, site, delivery, delivering, watch, watching, feed)
            tg.create_task(scheduler.run(stop))
            if bot_app is not None:  # polling, or Telegram's webhook
                tg.create_task(receive_updates(bot_app, settings, secret_key(settings), stop))
            if gate is not None:
                tg.create_task(gate.run(stop))
            if clone is not None:
                health.register("git", clone.problem)
                tg.create_task(clone.run(stop, after=watching))
            if (bounces := _bounce_listener(settings, store, tokens, metrics)) is not None:
                ready.append(bouncing := asyncio.Event())
                listen = tg.create_task(bounces.run(stop, bouncing))
                health.register("bounces", task_check(listen, started=bouncing))
            if await _until(stop, *ready):
                log.info(
                    "ready: watching %s; telegram via %s; email via %s; web on http://%s",
                    settings.feed_url or site.posts_dir,
                    "Bot API" if bot_app else f"files in {settings.outbox_dir}/telegram",
                    "SMTP" if settings.smtp_url else f"files in {settings.outbox_dir}/email",
                    settings.web_listen,
                )
            await stop.wait()
            log.info("stopping: finishing sends in flight")
    log.info("stopped")
    return 0


def _watch_health(
    health: Health,
    store: Store,
    site: Site,
    delivery: Delivery,
    delivering: asyncio.Task[None],
    watch: asyncio.Task[None],
    watching: asyncio.Event,
    feed: FeedPoller | None = None,
) -> None:
    """The watcher and delivery parts of /healthz (the database and Telegram joined earlier)."""

    async def posts_folder() -> str | None:
        return None if site.posts_dir.is_dir() else "posts folder missing"

    stuck = progress_check(
        store.outbox.next_due, lambda: delivery.sent_total, stuck_s=DELIVERY_STUCK_S
    )
    then = feed.check if feed is not None else posts_folder
    health.register("watcher", task_check(watch, started=watching, then=then))
    health.register("delivery", task_check(delivering, then=stuck))


def _bounce_listener(
    settings: Settings, store: Store, tokens: Tokens, metrics: Metrics
) -> BounceListener | None:
    """HERALD_BOUNCE_LISTEN: the SMTP listener for bounces and complaints, or None."""
    if settings.bounce_host_port is None:
        return None
    host, port = settings.bounce_host_port
    handler = BounceHandler(store, tokens, settings.return_path_domain, metrics=metrics)
    return BounceListener(handler, host, port)


def _publish_gate(
    settings: Settings, store: Store, announce: Callable[[Post, int], Awaitable[None]], bot_app: Any
) -> PublishGate | None:
    """HERALD_ANNOUNCE_WHEN_LIVE: the gate between the source and the publisher, or None."""
    if not settings.announce_when_live:
        return None
    desk = gate_desk(bot_app) if bot_app is not None and settings.admin_user_ids else None
    gate = PublishGate(store.posts, announce, timeout_s=settings.live_timeout_s, admins=desk)
    if desk is not None:
        desk.gate = gate
    return gate


async def _unless_stopped(stop: asyncio.Event, step: Awaitable[T]) -> T | None:
    """The result of `step`, or None (`step` cancelled) when `stop` comes first."""
    doing = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not doing.done():
        doing.cancel()
        with suppress(asyncio.CancelledError):
            await doing
        return None
    return doing.result()


async def _until(stop: asyncio.Event, *events: asyncio.Event) -> bool:
    """Wait for all `events`; False when `stop` came first."""
    waiters = [asyncio.ensure_future(e.wait()) for e in (*events, stop)]
    pending = set(waiters)
    while not stop.is_set() and not all(e.is_set() for e in events):
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return all(e.is_set() for e in events)
