"""Replies within Telegram's per-chat limit: a small burst, then 1 a second; the newest wins.

A chat that sends 200 commands in a second must not get 200 replies (Telegram refuses all
but a few with 429, and each refusal used to cost a traceback). Updates of one chat are
processed in order and apart from other chats (`ChatOrder`), so a reply that has to wait
delays only its own chat; and a reply that would have to wait while newer updates of the
same chat are queued behind it is skipped: the newest one answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLY_RATE_PER_S = 1.0
REPLY_BURST = 3
# A reply that cannot go within this long (a long 429 wait) is skipped, not held.
MAX_REPLY_WAIT_S = 5.0
MAX_CONCURRENT_UPDATES = 256
_PRUNE_AT = 10_000  # chats remembered before the idle ones are forgotten


class ReplyPacer:
    """Per-chat token buckets for replies, and how many updates of each chat are in hand."""

    def __init__(
        self,
        *,
        rate_per_s: float = REPLY_RATE_PER_S,
        burst: int = REPLY_BURST,
        max_wait_s: float = MAX_REPLY_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # chat → (tokens, at)
        self._blocked: dict[int, float] = {}  # chat → until when Telegram said to wait
        self._in_hand: Counter[int] = Counter()  # chat → its updates being processed or queued
        self._skipped: Counter[int] = Counter()

    def arrived(self, chat_id: int) -> None:
        """An update of the chat is queued for processing."""
        self._in_hand[chat_id] += 1

    def done(self, chat_id: int) -> None:
        """An update of the chat was processed."""
        self._in_hand[chat_id] -= 1
        if self._in_hand[chat_id] <= 0:
            del self._in_hand[chat_id]

    async def send(self, chat_id: int, send: Callable[[], Awaitable[T]]) -> T | None:
        """`send()` when the chat's pace allows; None when skipped for a newer update's reply."""
        for _ in range(2):  # a 429 despite the pacing (a fan-out reached the chat): once more
            wait_s = self._wait_s(chat_id)
            if wait_s > 0:
                if self._newer_queued(chat_id) or wait_s > self.max_wait_s:
                    self._skipped[chat_id] += 1
                    return None
                await asyncio.sleep(wait_s)
                if self._newer_queued(chat_id):
                    self._skipped[chat_id] += 1
                    return None
            self._take(chat_id)
            try:
                result = await send()
            except RetryAfter as exc:
                retry_s = _seconds(exc.retry_after)
                self._blocked[chat_id] = self.clock() + retry_s
                log.warning(
                    "bot: Telegram asks to wait %gs before replying in chat %s", retry_s, chat_id
                )
                continue
            skipped = self._skipped.pop(chat_id, 0)
            if skipped:
                log.info(
                    "bot: chat %s wrote faster than replies may go; %d replies skipped for newer",
                    chat_id,
                    skipped,
                )
            return result
        self._skipped[chat_id] += 1
        return None

    def _newer_queued(self, chat_id: int) -> bool:
        return self._in_hand[chat_id] > 1  # this update and at least one after it

    def _tokens(self, chat_id: int, now: float) -> float:
        tokens, at = self._buckets.get(chat_id, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate_per_s)

    def _wait_s(self, chat_id: int) -> float:
        now = self.clock()
        blocked_s = self._blocked.get(chat_id, now) - now
        tokens = self._tokens(chat_id, now)
        refill_s = (1.0 - tokens) / self.rate_per_s if tokens < 1.0 else 0.0
        return max(blocked_s, refill_s, 0.0)

    def _take(self, chat_id: int) -> None:
        now = self.clock()
        self._buckets[chat_id] = (self._tokens(chat_id, now) - 1.0, now)
        self._blocked.pop(chat_id, None)
        if len(self._buckets) > _PRUNE_AT:
            full = [c for c in self._buckets if self._tokens(c, now) >= self.burst]
            for chat in full:
                del self._buckets[chat]


def _seconds(wait: int | dt.timedelta) -> float:
    return wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)


def chat_of(update: object) -> int | None:
    """The chat an update belongs to (None for updates without one)."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


class ChatOrder(BaseUpdateProcessor):
    """PTB's update processor: one chat's updates in order, different chats side by side.

    It tells the pacer how many updates of each chat are in hand, so a reply can give way
    to a newer one.
    """

    def __init__(
        self, pacer: ReplyPacer, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES
    ) -> None:
        super().__init__(max_concurrent_updates)
        self.pacer = pacer
        self._locks: dict[int | None, asyncio.Lock] = {}
        self._users: Counter[int | None] = Counter()  # updates holding or awaiting each lock

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = chat_of(update)
        lock = self._locks.setdefault(chat, asyncio.Lock())
        self._users[chat] += 1
        if chat is not None:
            self.pacer.arrived(chat)
        started = False
        try:
            async with lock:
                started = True
                await coroutine
        finally:
            if not started and inspect.iscoroutine(coroutine):
                coroutine.close()  # cancelled while queued: it never ran
            if chat is not None:
                self.pacer.done(chat)
            self._users[chat] -= 1
            if self._users[chat] <= 0:
                del self._users[chat]
                del self._locks[chat]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
