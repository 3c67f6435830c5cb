"""Transports: one-method seams to the outside world (Telegram, SMTP, files)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from bot.models import OutgoingMail, TelegramMessage


class Lifecycle(Protocol):
    """Opened with `async with` before the first send, closed after the last."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Stateless:
    """The lifecycle of a transport with nothing to open or close."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class TelegramTransport(Lifecycle, Protocol):
    async def send(
        self,
        chat_id: str,
        message: TelegramMessage,
        *,
        message_id: int | None = None,
        silent: bool = False,
    ) -> int | None:
        """Make one Bot API call (`message.method`); raise TransientError, PermanentError,
        ChatMigratedError (or, for a deleteMessage too old to delete, DeleteRefusedError).

        sendMessage/sendPhoto return the new message's id (None where there is none, as in
        the files transport). The edit methods and deleteMessage (`bot.models.EDIT_METHODS`)
        act on `message_id` and return it; an edit that changes nothing ("message is not
        modified") or a message the reader already deleted counts as done.
        `silent`: sent with disable_notification (the reader's quiet hours).
        """


class MailTransport(Lifecycle, Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Hand one complete email to the mail system; raise Transient/PermanentError."""
