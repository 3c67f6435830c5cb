"""The composition root: builds every part once and runs them together in one TaskGroup.

Every process delivers and serves the web; the leader (on SQLite the one `herald run`, on
PostgreSQL the one elected) also watches the source, schedules digests and takes Telegram
updates, in terms that start when it is elected and end, at once, when it is not.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.bounces.listener import BounceHandler, BounceListener
from bot.chat.bot import receive_updates, telegram_bot
from bot.chat.gate import gate_desk
from bot.chat.webhook import secret_token, update_receiver
from bot.delivery.loop import Delivery
from bot.delivery.setup import open_delivery
from bot.errors import ConfigError
from bot.health import Check, Health, Note, database_check, progress_check, task_check
from bot.metrics import Metrics
from bot.models import Post
from bot.outbox.corrections import Corrector
from bot.outbox.digest import DigestScheduler
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings, Site
from bot.sources.feed import FeedPoller, load_feed_site
from bot.sources.gate import PublishGate
from bot.sources.git import SiteClone
from bot.sources.jekyll.site import load_site
from bot.sources.seen import NoticingLog, SeenPosts
from bot.sources.watcher import Watcher
from bot.store import Store, open_store, secret_for
from bot.tokens import Tokens
from bot.web.hooks import hook_routes
from bot.web.routes import create_app, serve
from bot.web.telegram_hook import telegram_hook_routes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Queued messages due this long while delivery has sent nothing for as long: it is stuck.
DELIVERY_STUCK_S = 300.0
# How often a process on standby asks to lead (a dead leader's lock is free at once; a
# vanished one's after the cluster's STALE_LEADER_S): well within the SPEC's 15 s.
LEAD_TRY_S = 2.0
STANDBY = Note("standby: another process leads")


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # RuntimeError also covers platforms without loop signal handlers (its subclass).
        with suppress(RuntimeError):
            loop.add_signal_handler(sig, stop.set)


@dataclass
class _Term:
    """One term as the leader: its watcher task, and whether its first scan is done."""

    watching: asyncio.Event = field(default_factory=asyncio.Event)
    watch: asyncio.Task[None] | None = None
    check: Check | None = None  # the source's own health check (a feed's)


class _Leadership:
    """The leader's work, run in a term of its own each time this process is elected."""

    def __init__(self, store: Store, work: Callable[[asyncio.Event, _Term], Awaitable[None]]):
        self.cluster = store.cluster
        self.work = work  # runs one term until the event is set
        self.term: _Term | None = None  # while leading

    async def run(self, stop: asyncio.Event, lost: asyncio.Event | None) -> None:
        """Lead whenever elected, until `stop`; `lost` is the first term's when already elected."""
        while not stop.is_set():
            lost = lost or await self.cluster.try_lead()
            if lost is not None:
                await self._serve(stop, lost)
                lost = None
            with suppress(TimeoutError):  # after a term too: a term never follows at once
                await asyncio.wait_for(stop.wait(), LEAD_TRY_S)

    async def _serve(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        term = self.term = self.term or _Term()
        work = asyncio.ensure_future(self.work(stop, term))
        losing = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({work, losing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            losing.cancel()
            work.cancel()  # leadership lost: its work stops now, not after a graceful end
            await asyncio.wait({work})
            self.term = None
            await self.cluster.resign()
        if not work.cancelled() and (error := work.exception()) is not None:
            raise error
        if not stop.is_set():
            log.warning("leader: no longer leading; watcher, digests and updates stop here")


async def run(settings: Settings, *, fresh: bool = False, worker: bool = False) -> int:
    """`herald run`: watcher, bot, delivery, scheduler and web until SIGTERM.

    `fresh`: an empty database where a post log was kept is started afresh on purpose.
    `worker`: only deliver (and serve the web), never lead; for a PostgreSQL database.
    """
    if settings.feed_url is not None and settings.site_git is not None:
        raise ConfigError("HERALD_FEED_URL and HERALD_SITE_GIT: set one source of posts, not both")
    if worker and settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "herald run --worker needs a PostgreSQL database (HERALD_DATABASE_URL=postgresql://"
            "…) shared with a `herald run` that leads: on SQLite one `herald run` does it all"
        )
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
    metrics = Metrics()
    health = Health()
    async with AsyncExitStack() as stack:
        # SQLite: the only `herald run` on the database; a second is refused here, at once.
        opening = open_store(settings.database_url, run=True, fresh=fresh)
        store = await _unless_stopped(stop, stack.enter_async_context(opening))
        if store is None:  # stopped while waiting for a locked database
            return 0
        signing_key = await secret_for(settings, store)
        tokens = Tokens(signing_key)
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
                site_tz=site.tz,  # readers' quiet hours without a zone of their own
            )
        )
        publisher.wake = delivery.notify

        async def on_post(post: Post, post_id: int) -> None:
            metrics.post_seen()
            await publisher.announce(post, post_id)

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
                secret=secret_token(signing_key),
                on_update=update_receiver(bot_app),
            )
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

        async def lead_term(stop: asyncio.Event, term: _Term) -> None:
            """The leader's parts, afresh for each term: source, publish gate, digests,
            corrections, Telegram updates and the git clone's poller."""
            # The corrector looks at the revisions at start and after each record/withdraw.
            corrector = Corrector(publisher)
            noticed = NoticingLog(store.posts, corrector.wake)
            gate = _publish_gate(settings, noticed, on_post, bot_app)
            posts, hand_on = (gate.post_log(), gate.on_post) if gate else (noticed, on_post)
            feed = (
                FeedPoller(settings.feed_url, site, posts, hand_on, poll_s=settings.feed_poll_s)
                if settings.feed_url is not None
                else None
            )
            watcher = feed or Watcher(site, posts, hand_on)
            term.check = feed.check if feed is not None else None
            scheduler = DigestScheduler(
                publisher, store.digests, at=settings.digest_time, tz=site.tz
            )
            async with asyncio.TaskGroup() as tg:
                term.watch = tg.create_task(watcher.run(stop, term.watching))
                tg.create_task(scheduler.run(stop))
                tg.create_task(corrector.run(stop))
                if bot_app is not None:  # polling, or Telegram's webhook
                    tg.create_task(receive_updates(bot_app, settings, signing_key, stop))
                if gate is not None:
                    tg.create_task(gate.run(stop))
                if clone is not None:
                    tg.create_task(clone.run(stop, after=term.watching))

        leadership = _Leadership(store, lead_term)
        # Joined before delivery claims (rows of a process not in the cluster count as a
        # dead one's), left after its last outcome is written.
        cluster = store.cluster
        await stack.enter_async_context(cluster.joined(worker=worker, on_wake=delivery.notify))
        lost = None if worker else await cluster.try_lead()
        serving = asyncio.Event()
        ready = [serving]
        if lost is not None:  # leading from the start: ready once the first scan is done
            leadership.term = _Term()
            ready.append(leadership.term.watching)
        async with asyncio.TaskGroup() as tg:
            # Delivery stops last: it finishes the sends in flight after `stop`.
            delivering = tg.create_task(delivery.run(stop))
            tg.create_task(serve(web, settings, stop, started=serving))
            if not worker:
                tg.create_task(leadership.run(stop, lost))
            _watch_health(health, store, site, delivery, delivering, leadership)
            if clone is not None:
                health.register("git", clone.problem)
            if (bounces := _bounce_listener(settings, store, tokens, metrics)) is not None:
                ready.append(bouncing := asyncio.Event())
                listen = tg.create_task(bounces.run(stop, bouncing))
                health.register("bounces", task_check(listen, started=bouncing))
            if await _until(stop, *ready):
                source = settings.feed_url or site.posts_dir
                log.info(
                    "ready: %s; telegram via %s; email via %s; web on http://%s",
                    f"watching {source}"
                    if lost is not None
                    else "a worker: delivering only"
                    if worker
                    else f"on standby to watch {source} (another process leads)",
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
    leadership: _Leadership,
) -> None:
    """The watcher and delivery parts of /healthz (the database and Telegram joined earlier).

    The watcher is the current term's; a process that does not lead is on standby (up).
    """

    async def posts_folder() -> str | None:
        return None if site.posts_dir.is_dir() else "posts folder missing"

    async def watcher() -> str | None:
        term = leadership.term
        if term is None:
            return STANDBY
        if term.watch is None:
            return "starting"
        return await task_check(
            term.watch, started=term.watching, then=term.check or posts_folder
        )()

    stuck = progress_check(
        store.outbox.next_due, lambda: delivery.sent_total, stuck_s=DELIVERY_STUCK_S
    )
    health.register("watcher", watcher)
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
    settings: Settings,
    posts: SeenPosts,
    announce: Callable[[Post, int], Awaitable[None]],
    bot_app: Any,
) -> PublishGate | None:
    """HERALD_ANNOUNCE_WHEN_LIVE: the gate between the source and the publisher, or None."""
    if not settings.announce_when_live:
        return None
    desk = gate_desk(bot_app) if bot_app is not None and settings.admin_user_ids else None
    gate = PublishGate(posts, announce, timeout_s=settings.live_timeout_s, admins=desk)
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
