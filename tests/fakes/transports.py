"""Recording fakes of the transport protocols: what was sent, and errors raised on cue.

`RecordingTelegram` and `RecordingMail` implement `bot.transports.TelegramTransport` and
`MailTransport`. Every call is kept in `.calls`, every accepted one in `.sent`; errors
scripted per address in `.errors[address]` are raised one per call, in order, and
`.always` (while set) is raised for every call. While `.hang` is set, calls never return
(as against a server that stopped answering) until they are cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Generic, TypeVar

from bot.models import EDIT_METHODS, OutgoingMail, TelegramMessage

T = TypeVar("T")


class _Recorder(Generic[T]):
    def __init__(self) -> None:
        self.calls: list[tuple[str, T]] = []
        self.sent: list[tuple[str, T]] = []
        self.errors: dict[str, list[BaseException]] = defaultdict(list)
        self.always: BaseException | None = None
        self.hang = False
        self._changed = asyncio.Condition()

    async def _record(self, address: str, item: T) -> None:
        async with self._changed:
            self.calls.append((address, item))
            self._changed.notify_all()
        await asyncio.sleep(0)  # a real transport yields; so does the fake
        if self.hang:
            await asyncio.Event().wait()
        queue = self.errors.get(address)
        error = self.always or (queue.pop(0) if queue else None)
        if error is not None:
            raise error
        async with self._changed:
            self.sent.append((address, item))
            self._changed.notify_all()

    def sent_to(self, address: str) -> list[T]:
        """Everything accepted for `address`, in order."""
        return [item for to, item in self.sent if to == address]

    def calls_to(self, address: str) -> int:
        """How many sends to `address` were attempted, failed ones included."""
        return sum(1 for to, _ in self.calls if to == address)

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Return once `condition()` holds, checked after every call."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(condition)


class RecordingTelegram(_Recorder[TelegramMessage]):
    """A TelegramTransport that records each Bot API call instead of making it.

    A send returns a new message id (counting up from 1 over all chats), an edit the id it
    acted on; `.acted_on` has the message id each call was given, `.silent` whether it was
    sent without a sound, both in `.calls` order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.acted_on: list[int | None] = []
        self.silent: list[bool] = []
        self._ids = itertools.count(1)

    async def send(
        self,
        chat_id: str,
        message: TelegramMessage,
        *,
        message_id: int | None = None,
        silent: bool = False,
    ) -> int | None:
        self.acted_on.append(message_id)
        self.silent.append(silent)
        await self._record(chat_id, message)
        return message_id if message.method in EDIT_METHODS else next(self._ids)


class RecordingMail(_Recorder[OutgoingMail]):
    """A MailTransport that records each email (by its envelope recipient)."""

    async def send(self, mail: OutgoingMail) -> None:
        await self._record(mail.to, mail)
