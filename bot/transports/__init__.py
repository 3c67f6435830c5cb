"""Transports: one-method seams to the outside world (Telegram, SMTP, files)."""

from __future__ import annotations

from typing import Protocol

from bot.models import OutgoingMail, TelegramMessage


class TelegramTransport(Protocol):
    async def send(self, chat_id: str, message: TelegramMessage) -> None:
        """Make one Bot API call; raise TransientError, PermanentError or ChatMigratedError."""


class MailTransport(Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Hand one complete email to the mail system; raise Transient/PermanentError."""
