"""The running Telegram bot: PTB's Application embedded in Herald's event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import ApplicationBuilder

from bot.chat import handlers
from bot.chat.deps import BotDeps, BotRenderer, BroadcastPublisher
from bot.errors import ConfigError
from bot.settings import Settings
from bot.store import Store
from bot.transports.telegram import make_bot

log = logging.getLogger(__name__)


async def _connect(application: Any, stop: asyncio.Event) -> bool:
    """Initialize PTB (getMe), waiting out an unreachable Bot API; False when stopped first."""
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
    renderer: BotRenderer,
    publisher: BroadcastPublisher,
    stop: asyncio.Event,
) -> AsyncIterator[Any]:
    """The PTB Application polling for updates, or None without a token (outbox mode)."""
    if settings.telegram_token is None:
        yield None
        return
    application = ApplicationBuilder().bot(make_bot(settings)).build()
    deps = BotDeps(
        store=store,
        renderer=renderer,
        publisher=publisher,
        admin_ids=settings.admin_user_ids,
        digest_time=settings.digest_time,
    )
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
        try:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
        except TelegramError as exc:  # polling had died (401: token revoked); re-raised here
            log.error("telegram: polling had stopped: %s", exc)
        if application.running:
            await application.stop()
        await application.shutdown()
