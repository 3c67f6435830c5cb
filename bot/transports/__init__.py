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
    async def send(self, chat_id: str, message: TelegramMessage) -> None:
        """Make one Bot API call; raise TransientError, PermanentError or ChatMigratedError."""


class MailTransport(Lifecycle, Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Hand one complete email to the mail system; raise Transient/PermanentError."""
