"""The running Telegram bot: PTB's Application embedded in Herald's event loop."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import ApplicationBuilder

from bot.chat import handlers
from bot.chat.deps import BotDeps, BotRenderer, BroadcastPublisher
from bot.chat.pacing import ChatOrder, ReplyPacer
from bot.chat.webhook import set_webhook
from bot.errors import ConfigError
from bot.health import Health
from bot.settings import Settings
from bot.store import Store
from bot.transports.telegram import TokenRejected, make_bot

log = logging.getLogger(__name__)

# Each Application's receiving health, for receive_updates (PTB's Application has no room).
_receivers: weakref.WeakKeyDictionary[Any, Polling] = weakref.WeakKeyDictionary()

# A healthy long poll answers at least every poll timeout (10 s); PTB's backoff between
# failures grows to 30 s. Longer than this without a good getUpdates: polling is down.
POLL_SILENCE_S = 90.0


class Polling:
    """Receiving updates as health sees it: the token's last verdict, the last good getUpdates.

    Failures are logged once per spell (PTB would log a traceback per retry), and once
    again when polling works again. Only a process that receives updates by polling is
    judged by its polls: one that does not receive (another process does) or that has
    Telegram post them to the webhook is not.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.token_rejected = False
        self.failing: str | None = None  # what the current spell of failures is about
        self.last_ok_s = clock()
        self.mode: str | None = None  # "polling" or "webhook" while receive_updates runs
        self.running: Callable[[], bool] = lambda: True

    def polling(self, running: Callable[[], bool]) -> None:
        """Polling starts now: the silence is counted from here."""
        self.mode, self.running, self.last_ok_s = "polling", running, self.clock()

    def on_token(self, ok: bool) -> None:
        """The Bot's verdict after each getUpdates."""
        if not ok:
            self.token_rejected = True
            return
        self.last_ok_s = self.clock()
        if self.failing is not None:
            log.info("telegram: polling for updates works again")
        self.token_rejected, self.failing = False, None

    def on_error(self, exc: TelegramError) -> None:
        """PTB's error_callback for polling: it retries after each of these."""
        kind = "token" if isinstance(exc, TokenRejected) else "network"
        if kind == self.failing:
            return
        self.failing = kind
        if kind == "token":
            log.error(
                "telegram: Telegram rejects HERALD_TELEGRAM_TOKEN (revoked, or replaced in "
                "@BotFather?); no updates are read until it works again; polling keeps retrying"
            )
        else:
            log.warning("telegram: polling for updates failed (%s); retrying", exc)

    async def check(self) -> str | None:
        """The health check of the Telegram part."""
        if self.token_rejected:
            return "Telegram rejects HERALD_TELEGRAM_TOKEN"
        if self.mode != "polling":
            return None
        if not self.running():
            return "polling stopped"
        silent_s = self.clock() - self.last_ok_s
        if silent_s > POLL_SILENCE_S:
            return f"no answer to getUpdates for {silent_s:.0f} s"
        return None


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
    *,
    health: Health | None = None,
) -> AsyncIterator[Any]:
    """The started PTB Application, or None without a token (outbox mode).

    It sends, and answers every update handed to it; updates reach it once
    `receive_updates` runs (in one process of several). With `health`, the part
    `telegram` reports the token and, while this process polls, the polling.
    """
    if settings.telegram_token is None:
        yield None
        return
    polling = Polling()
    pacer = ReplyPacer()
    application = (
        ApplicationBuilder()
        .bot(make_bot(settings, on_token=polling.on_token))
        # One chat's updates in order, other chats meanwhile: a paced reply holds up no one else.
        .concurrent_updates(ChatOrder(pacer))
        .build()
    )
    deps = BotDeps(
        store=store,
        renderer=renderer,
        publisher=publisher,
        admin_ids=settings.admin_user_ids,
        digest_time=settings.digest_time,
        pacer=pacer,
    )
    handlers.register(application, deps)
    if not await _connect(application, stop):
        yield None
        return
    try:
        await handlers.set_commands(application.bot, deps)
        await application.start()
        _receivers[application] = polling
        if health is not None:
            health.register("telegram", polling.check)
        log.info("telegram: started as @%s", application.bot.username)
        yield application
    finally:
        await _stop_polling(application)
        if application.running:
            await application.stop()
        await application.shutdown()


async def receive_updates(
    application: Any, settings: Settings, secret_key: str, stop: asyncio.Event
) -> None:
    """Take updates until `stop` is set or this is cancelled: long polling, or the webhook.

    Without HERALD_TELEGRAM_WEBHOOK_URL it long-polls (PTB deletes a webhook set earlier
    first); with it, `setWebhook` with the secret token derived from `secret_key`, and
    the web endpoint hands each update to `application`. On the way out polling stops
    cleanly (the updates taken are confirmed to Telegram); a webhook stays set, since
    another process may have set it again by then.
    """
    polling = _receivers[application]
    url = settings.telegram_webhook_url
    try:
        if url is None:
            updater = application.updater
            assert updater is not None

            async def start() -> None:
                await updater.start_polling(
                    drop_pending_updates=False, error_callback=polling.on_error
                )
                polling.polling(lambda: updater.running)

            if await _retrying(start, "deleteWebhook", stop, polling):
                log.info("telegram: polling as @%s", application.bot.username)
        else:

            async def hook() -> None:
                await set_webhook(application.bot, url, secret_key)
                polling.mode = "webhook"

            if await _retrying(hook, "setWebhook", stop, polling):
                log.info("telegram: updates come to the webhook as @%s", application.bot.username)
        await stop.wait()
    finally:
        polling.mode = None
        await _stop_polling(application)


async def _retrying(
    step: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event, polling: Polling
) -> bool:
    """Run `step`, waiting out an unreachable Bot API or a rejected token; False when stopped."""
    delay_s = 1.0
    while not stop.is_set():
        try:
            await step()
            return True
        except BadRequest:
            raise  # Telegram refused what we asked: retrying cannot help
        except NetworkError as exc:
            log.warning("telegram: %s failed (%s); retrying in %.0fs", what, exc, delay_s)
        except InvalidToken:  # as polling does: retried until the token works again
            polling.on_token(False)
            polling.on_error(TokenRejected(f"{what}: Telegram rejected HERALD_TELEGRAM_TOKEN"))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)
        delay_s = min(delay_s * 2, 30.0)
    return False


async def _stop_polling(application: Any) -> None:
    """Stop PTB's polling if it runs; a polling that had died is logged, not raised."""
    updater = application.updater
    try:
        if updater is not None and updater.running:
            await updater.stop()
    except TelegramError as exc:  # polling had died (401: token revoked); re-raised here
        log.error("telegram: polling had stopped: %s", exc)
