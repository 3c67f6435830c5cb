"""The outbox transport: writes each message as a file instead of sending it."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

from bot.models import KEEP, OutgoingMail, TelegramMessage
from bot.transports import Stateless

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_counter = itertools.count(1)


def _stamp() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{next(_counter):04d}"


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name)[:80] or "_"


def _write(path: Path, data: bytes) -> None:
    # Write a hidden file then rename, so a reader of the folder (`ls`, a glob, a
    # script) never sees half a message, nor a name that is not a message.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)


class FilesTelegram(Stateless):
    """`outbox/telegram/<time>-<chat>-<method>.html`: the exact HTML text or caption.

    An edit is a file named after its method too (`…-editMessageText.html`, with the new
    text; `…-deleteMessage.html` with the withdrawn notice); a part left as it was (keep)
    writes nothing. No message has an id here, so none is returned.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(
        self,
        chat_id: str,
        message: TelegramMessage,
        *,
        message_id: int | None = None,
        silent: bool = False,
    ) -> int | None:
        if message.method == KEEP:
            return message_id
        path = self.folder / f"{_stamp()}-{_safe(chat_id)}-{message.method}.html"
        await asyncio.to_thread(_write, path, message.text.encode("utf-8"))
        return None


class FilesMail(Stateless):
    """`outbox/email/<time>-<recipient>.eml`, openable in a mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, mail: OutgoingMail) -> None:
        path = self.folder / f"{_stamp()}-{_safe(mail.to or 'unknown')}.eml"
        await asyncio.to_thread(_write, path, mail.data)
