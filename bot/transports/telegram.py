"""Telegram transport: one Bot API call per message, PTB errors translated into Herald's."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import telegram
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.errors import (
    ChatMigratedError,
    ConfigError,
    DeleteRefusedError,
    DeliveryError,
    ImageError,
    PermanentError,
    TimedOutError,
    TransientError,
)
from bot.models import (
    DELETE,
    EDIT_CAPTION,
    EDIT_MEDIA,
    EDIT_METHODS,
    EDIT_TEXT,
    KEEP,
    TelegramMessage,
)
from bot.settings import Settings
from bot.transports import Stateless
from bot.transports.aiohttp_request import AiohttpRequest, UnreadableAnswer

log = logging.getLogger(__name__)

# Fan-out keeps many sends in flight; each needs its own keep-alive connection.
SEND_POOL_SIZE = 128
# Telegram answers a send in well under a second, but under load (or while it fetches a
# photo URL) it can take tens of seconds. A send that stops waiting is resent later and may
# then arrive twice, so sends wait long for the answer; a connection that cannot even be
# opened fails fast, since then nothing reached Telegram.
SEND_READ_TIMEOUT_S = 60.0
SEND_WRITE_TIMEOUT_S = 30.0
SEND_CONNECT_TIMEOUT_S = 5.0
# Answers Telegram gives when the *image* of a sendPhoto is at fault, not the chat or text.
IMAGE_FAULTS = (
    "wrong file identifier",
    "failed to get http url content",
    "wrong type of the web page content",
    "image_process_failed",
    "photo_invalid_dimensions",
    "photo_invalid",
    "wrong remote file",
)
# Answers that mean the chat is gone for good, although Telegram sends them as 400.
GONE_FAULTS = ("chat not found", "peer_id_invalid", "user not found")
# Answers to an edit or delete that mean it is done already: the message shows this
# content (a resend after a timeout, a part that did not change), or the reader deleted it.
ALREADY_DONE = (
    "message is not modified",
    "message to edit not found",
    "message to delete not found",
)
# An edit of a caption or image that finds a text message (its image had failed, so it went
# out as text): edit the text instead.
NO_PHOTO_FAULTS = ("there is no caption in the message", "there is no media in the message")
DELETE_REFUSED = "message can't be deleted"
# What PTB's default request backends raise (a bare TelegramError) for a body that is not JSON.
PTB_UNREADABLE = "Invalid server response"


class TokenRejected(NetworkError):
    """getUpdates got 401/404: the token was revoked or is wrong; polling keeps retrying."""


def _ignore(ok: bool) -> None:
    pass


class PollingBot(telegram.Bot):
    """A Bot whose polling outlives a rejected token and reports each getUpdates verdict.

    PTB's polling loop gives up for good on InvalidToken, leaving a process that looks
    alive and never reads an update again. As a NetworkError PTB backs off and retries, so
    polling resumes by itself once the token works (restored, or the revocation undone).
    `on_token(ok)` hears after every getUpdates whether Telegram accepted the token.
    """

    __slots__ = ("_on_token",)

    def __init__(
        self, *args: Any, on_token: Callable[[bool], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_token = on_token or _ignore

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[telegram.Update, ...]:
        try:
            updates = await super().get_updates(*args, **kwargs)
        except InvalidToken:
            self._on_token(False)
            # PTB's message would quote the token: none of it, and no chain.
            raise TokenRejected(
                "Telegram rejected HERALD_TELEGRAM_TOKEN (401); still retrying"
            ) from None
        self._on_token(True)
        return updates


def make_bot(settings: Settings, *, on_token: Callable[[bool], None] | None = None) -> telegram.Bot:
    """A Bot for `settings`: fast pooled requests for sends, a separate one for long polling.

    `on_token` hears whether each getUpdates found the token accepted (see PollingBot).
    """
    if settings.telegram_token is None:
        raise ConfigError("HERALD_TELEGRAM_TOKEN is not set; get a token from @BotFather")
    api_url = settings.telegram_api_url.rstrip("/")
    file_url = api_url[: -len("/bot")] + "/file/bot" if api_url.endswith("/bot") else None
    return PollingBot(
        settings.telegram_token.get_secret_value(),
        base_url=api_url,
        base_file_url=file_url or "https://api.telegram.org/file/bot",
        request=AiohttpRequest(connection_pool_size=SEND_POOL_SIZE),
        # getUpdates holds its connection for the whole poll; PTB adds the poll time to this.
        get_updates_request=AiohttpRequest(connection_pool_size=2, read_timeout=10.0),
        on_token=on_token,
    )


class BotTransport(Stateless):
    """Sends TelegramMessages through a Bot; raises only bot.errors (the Bot is opened by
    whoever made it).

    Sends wait `read_timeout_s` for Telegram's answer, whatever the Bot's own defaults.
    """

    def __init__(
        self, bot: telegram.Bot, *, paid: bool = False, read_timeout_s: float = SEND_READ_TIMEOUT_S
    ) -> None:
        self._bot = bot
        self._paid = paid
        self._read_timeout_s = read_timeout_s

    async def send(
        self,
        chat_id: str,
        message: TelegramMessage,
        *,
        message_id: int | None = None,
        silent: bool = False,
    ) -> int | None:
        """Make one Bot API call with parse_mode=HTML: a send (the new message's id), or an
        edit or delete of `message_id` (returned; already done counts as done)."""
        if message.method in EDIT_METHODS:
            return await self._edit(chat_id, message, message_id)
        photo = message.method == "sendPhoto" and bool(message.photo)
        try:
            if photo:
                sent = await self._bot.send_photo(
                    chat_id,
                    str(message.photo),
                    caption=message.text or None,
                    parse_mode=ParseMode.HTML,
                    reply_markup=_markup(message),
                    disable_notification=silent or None,
                    allow_paid_broadcast=self._paid or None,
                    read_timeout=self._read_timeout_s,
                    write_timeout=SEND_WRITE_TIMEOUT_S,
                    connect_timeout=SEND_CONNECT_TIMEOUT_S,
                )
            else:
                sent = await self._bot.send_message(
                    chat_id,
                    message.text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=_markup(message),
                    link_preview_options=_preview(message),
                    disable_notification=silent or None,
                    allow_paid_broadcast=self._paid or None,
                    read_timeout=self._read_timeout_s,
                    write_timeout=SEND_WRITE_TIMEOUT_S,
                    connect_timeout=SEND_CONNECT_TIMEOUT_S,
                )
        except TelegramError as exc:
            raise translate(exc, photo=photo, timeout_s=self._read_timeout_s) from exc
        return sent.message_id

    async def _edit(self, chat_id: str, message: TelegramMessage, message_id: int | None) -> int:
        """Edit or delete one message already sent; `message_id` back once done."""
        method = message.method
        if message_id is None:
            raise PermanentError(f"{method} needs the id of the message it acts on")
        if method == KEEP or message_id == 0:
            # Unchanged, or sent where it got no id (the outbox folder): nothing to act on.
            return message_id
        try:
            await self._act(chat_id, message, method, message_id)
        except TelegramError as exc:
            if method in (EDIT_CAPTION, EDIT_MEDIA) and _faults(exc, NO_PHOTO_FAULTS):
                # Its image had failed when it was sent, so it went out as text: edit that.
                return await self._edit(chat_id, replace(message, method=EDIT_TEXT), message_id)
            error = self._edit_error(exc, method)
            if error is not None:
                raise error from exc
        return message_id

    def _edit_error(self, exc: TelegramError, method: str) -> DeliveryError | None:
        """Herald's error for a failed edit or delete; None if it counts as done."""
        if _faults(exc, ALREADY_DONE):
            return None
        if method == DELETE and _faults(exc, (DELETE_REFUSED,)):
            return DeleteRefusedError(f"Telegram: {exc.message}")
        return translate(exc, photo=method == EDIT_MEDIA, timeout_s=self._read_timeout_s)

    async def _act(
        self, chat_id: str, message: TelegramMessage, method: str, message_id: int
    ) -> None:
        """One edit or delete call; edits keep the button (without reply_markup, Telegram
        would take it away)."""
        timeouts: dict[str, Any] = {
            "read_timeout": self._read_timeout_s,
            "write_timeout": SEND_WRITE_TIMEOUT_S,
            "connect_timeout": SEND_CONNECT_TIMEOUT_S,
        }
        markup = _markup(message)
        if method == DELETE:
            await self._bot.delete_message(chat_id, message_id, **timeouts)
        elif method == EDIT_TEXT:
            await self._bot.edit_message_text(
                message.text,
                chat_id,
                message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=_preview(message),
                **timeouts,
            )
        elif method == EDIT_CAPTION or not message.photo:
            await self._bot.edit_message_caption(
                chat_id,
                message_id,
                caption=message.text or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                **timeouts,
            )
        else:
            media = telegram.InputMediaPhoto(
                message.photo, caption=message.text or None, parse_mode=ParseMode.HTML
            )
            await self._bot.edit_message_media(
                media, chat_id, message_id, reply_markup=markup, **timeouts
            )


def _faults(exc: TelegramError, answers: tuple[str, ...]) -> bool:
    """Whether Telegram answered 400 with one of `answers` (PTB capitalises them)."""
    return isinstance(exc, BadRequest) and any(a in exc.message.lower() for a in answers)


def _markup(message: TelegramMessage) -> telegram.InlineKeyboardMarkup | None:
    if not message.button_url:
        return None
    button = telegram.InlineKeyboardButton(
        message.button_text or message.button_url, url=message.button_url
    )
    return telegram.InlineKeyboardMarkup([[button]])


def _preview(message: TelegramMessage) -> telegram.LinkPreviewOptions:
    # A notice about a post previews the post itself; anything else (digests list many
    # links, whose first one would be an arbitrary preview) goes without one.
    if message.button_url:
        return telegram.LinkPreviewOptions(url=message.button_url, prefer_large_media=True)
    return telegram.LinkPreviewOptions(is_disabled=True)


def translate(
    exc: TelegramError, *, photo: bool = False, timeout_s: float = SEND_READ_TIMEOUT_S
) -> DeliveryError:
    """Herald's error for a PTB error; the order matters, see the comments.

    `timeout_s` is the read timeout of the call that failed.
    """
    # A body that is not Bot API JSON (cut off on the way, a proxy's page) is no verdict of
    # Telegram's whatever its HTTP status: not a malformed message, not a blocked chat.
    if _unreadable(exc):
        return TransientError("Telegram's answer was not a Bot API answer (cut off or a proxy's)")
    # Decided by the answer's parameters, not its text, so these come first.
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
        return TransientError(f"Telegram flood control: retry after {seconds:g}s", seconds)
    if isinstance(exc, ChatMigrated):
        return ChatMigratedError(
            f"group moved to supergroup {exc.new_chat_id}", new_chat_id=int(exc.new_chat_id)
        )
    if isinstance(exc, Forbidden):  # blocked, deactivated, kicked
        return PermanentError(f"Telegram refused: {exc.message}", deactivate=True)
    if isinstance(exc, InvalidToken):
        # Every send fails until the token is fixed; keep the messages queued meanwhile.
        return TransientError("Telegram rejected HERALD_TELEGRAM_TOKEN (check the token)")
    # BadRequest and TimedOut both subclass NetworkError: BadRequest must be tested first.
    if isinstance(exc, BadRequest):
        text = exc.message.lower()
        if any(fault in text for fault in GONE_FAULTS):
            return PermanentError(f"Telegram: {exc.message}", deactivate=True)
        if photo and any(fault in text for fault in IMAGE_FAULTS):
            return ImageError(f"Telegram could not use the image: {exc.message}")
        return PermanentError(f"Telegram: {exc.message}", deactivate=False)
    if isinstance(exc, TimedOut):
        # Telegram may still deliver it: an early resend only adds a duplicate, and against a
        # slow API a loop of them. Wait at least as long again before the next try.
        return TimedOutError(
            f"Telegram did not answer in time ({exc.message}); the message may still arrive",
            timeout_s,
        )
    if isinstance(exc, NetworkError):  # connection errors, 5xx
        return TransientError(f"Telegram unreachable: {exc.message}")
    return PermanentError(f"Telegram: {exc.message}", deactivate=False)


def _unreadable(exc: TelegramError) -> bool:
    # PTB raises the parse error itself for a 2xx, and chains it as the cause otherwise.
    for error in (exc, exc.__cause__):
        if isinstance(error, UnreadableAnswer):
            return True
        if type(error) is TelegramError and error.message == PTB_UNREADABLE:
            return True
    return False
