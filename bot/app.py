"""The composition root: builds every part once and runs them together in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress

from bot.models import Post
from bot.settings import Settings, load_site
from bot.store import open_store
from bot.watcher import Watcher

log = logging.getLogger(__name__)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C set `stop`; every task then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run(settings: Settings) -> int:
    """`herald run`: watcher, bot, delivery, scheduler and web until SIGTERM."""
    site = load_site(settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with open_store(settings.database_path) as store:

        async def on_post(post: Post) -> None:
            log.info("would announce %s", post.url)

        watcher = Watcher(site, store.posts, on_post)
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(watcher.run(stop, ready))
            await _wait_ready(ready, stop)
            log.info("ready: watching %s", site.posts_dir)
            await stop.wait()
    log.info("stopped")
    return 0


async def _wait_ready(ready: asyncio.Event, stop: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
