"""The one place a send's outcome is decided: what the transport returned or raised → a Verdict.

`classify` is a pure function of the error, the row's state and `now`; the senders carry the
verdict out (mark a subscriber, pause a chat, resend simpler) and `Outcomes` turns it into
the `ItemUpdate` written back, logging and counting it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bot.errors import (
    ChatMigratedError,
    DeleteRefusedError,
    ImageError,
    PermanentError,
    RelayError,
    TimedOutError,
    TransientError,
)
from bot.metrics import Metrics
from bot.models import Channel, ClaimedItem, Degrade, ItemUpdate, OutboxStatus, Status

log = logging.getLogger("bot.delivery")


class Action(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # try again at `retry_at`, spending an attempt
    THROTTLE = "throttle"  # the far side asked us to wait `retry_at`: no attempt spent
    PAUSE = "pause"  # the channel's server failed: the whole channel waits until `retry_at`
    DEGRADE = "degrade"  # resend at once in the simpler form `flags`
    MIGRATE = "migrate"  # resend at once to `address`
    DEACTIVATE = "deactivate"  # the recipient is gone for good: mark it `status`
    BOUNCE = "bounce"  # a hard failure about this email address: count it
    FAIL = "fail"  # park the row as failed


@dataclass(frozen=True, kw_only=True)
class Verdict:
    action: Action
    error: str | None = None
    retry_at: float = 0.0
    flags: Degrade = Degrade.NONE
    address: str | None = None
    status: Status | None = None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int
    delay_s: Callable[[int], float]  # attempt number (1 = first retry) → seconds


def classify(
    exc: BaseException | None,
    *,
    channel: Channel,
    attempts: int,
    flags: Degrade,
    now: float,
    policy: RetryPolicy,
    pauses: int = 0,
) -> Verdict:
    """Decide what a send that returned (exc None) or raised `exc` means for its row.

    `pauses` is how many times in a row the row's channel has already been paused.
    """
    if exc is None:
        return Verdict(action=Action.SENT)
    error = str(exc) or type(exc).__name__
    if isinstance(exc, RelayError):
        # The server's fault, not the row's: every row of the channel waits, none is charged.
        return Verdict(action=Action.PAUSE, retry_at=now + policy.delay_s(pauses + 1), error=error)
    if isinstance(exc, ChatMigratedError):
        return Verdict(action=Action.MIGRATE, address=str(exc.new_chat_id), error=error)
    if isinstance(exc, PermanentError):
        if exc.deactivate:
            if channel is Channel.EMAIL:
                return Verdict(action=Action.BOUNCE, error=error)
            return Verdict(action=Action.DEACTIVATE, status=Status.BLOCKED, error=error)
        if channel is Channel.TELEGRAM:
            if isinstance(exc, DeleteRefusedError):
                # Too old to delete: edit it to say it was withdrawn (once; then it is parked).
                if flags & Degrade.NO_DELETE:
                    return Verdict(action=Action.FAIL, error=error)
                return Verdict(action=Action.DEGRADE, flags=flags | Degrade.NO_DELETE, error=error)
            if isinstance(exc, ImageError) and not flags & Degrade.NO_PHOTO:
                return Verdict(action=Action.DEGRADE, flags=flags | Degrade.NO_PHOTO, error=error)
            if not isinstance(exc, ImageError) and not flags & Degrade.PLAIN:
                return Verdict(action=Action.DEGRADE, flags=flags | Degrade.PLAIN, error=error)
        return Verdict(action=Action.FAIL, error=error)
    floor_s = 0.0
    if isinstance(exc, TimedOutError):
        # A fault, not flow control: an attempt is spent, and no resend comes sooner than
        # the time already waited (the message may still arrive; an early resend duplicates).
        floor_s = exc.retry_after_s or 0.0
    elif isinstance(exc, TransientError) and exc.retry_after_s is not None:
        # Flow control, not a fault: wait as told, without spending an attempt.
        return Verdict(action=Action.THROTTLE, retry_at=now + exc.retry_after_s, error=error)
    if not isinstance(exc, TransientError):
        error = f"internal: {exc!r}"  # a bug or an unforeseen error: retried, never lost
    attempt = attempts + 1
    if attempt >= policy.max_attempts:
        return Verdict(action=Action.FAIL, error=f"gave up after {attempt} attempts: {error}")
    delay_s = max(floor_s, policy.delay_s(attempt))
    return Verdict(action=Action.RETRY, retry_at=now + delay_s, error=error)


class Outcomes:
    """Turns verdicts into the ItemUpdate to write back; logs and counts each once."""

    def __init__(self, *, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.sent_total = 0

    def sent(
        self,
        item: ClaimedItem,
        *,
        parts: int,
        address: str,
        message_ids: tuple[int, ...] | None = None,
    ) -> ItemUpdate:
        """`message_ids`: the Telegram ids of every part sent so far (None: as they were)."""
        self.sent_total += 1
        if self.metrics is not None:
            self.metrics.sent(item.channel)
        return ItemUpdate(
            id=item.id,
            status=OutboxStatus.SENT,
            attempts=item.attempts,
            parts_done=parts,
            address=address if address != item.address else None,
            sent_at=datetime.now(UTC).isoformat(),
            message_ids=message_ids,
        )

    def ended(
        self,
        item: ClaimedItem,
        verdict: Verdict,
        *,
        parts: int,
        flags: Degrade,
        address: str,
        message_ids: tuple[int, ...] | None = None,
    ) -> ItemUpdate:
        """A verdict that needs nothing more of the sender: the row is retried or parked."""
        ids = message_ids
        if verdict.action is Action.PAUSE:
            self.count_failure(item, "paused")
            at = verdict.retry_at
            return release(
                item,
                parts=parts,
                flags=flags,
                address=address,
                at=at,
                error=verdict.error,
                message_ids=ids,
            )
        if verdict.action in (Action.RETRY, Action.THROTTLE):
            return self.retry(
                item, verdict, parts=parts, flags=flags, address=address, message_ids=ids
            )
        return self.fail(
            item, verdict.error or "", parts=parts, flags=flags, address=address, message_ids=ids
        )

    def retry(
        self,
        item: ClaimedItem,
        verdict: Verdict,
        *,
        parts: int,
        flags: Degrade,
        address: str,
        message_ids: tuple[int, ...] | None = None,
    ) -> ItemUpdate:
        attempts = item.attempts + 1
        self.count_failure(item, "transient")
        log.info(
            "delivery: %s failed (%s); retry %d at %.0f",
            item.key,
            verdict.error,
            attempts,
            verdict.retry_at,
        )
        return ItemUpdate(
            id=item.id,
            status=OutboxStatus.QUEUED,
            attempts=attempts,
            parts_done=parts,
            plain=flags,
            next_attempt_at=verdict.retry_at,
            last_error=verdict.error,
            address=address if address != item.address else None,
            message_ids=message_ids,
        )

    def fail(
        self,
        item: ClaimedItem,
        error: str,
        *,
        parts: int,
        flags: Degrade,
        address: str,
        message_ids: tuple[int, ...] | None = None,
    ) -> ItemUpdate:
        log.warning("delivery: %s parked as failed: %s", item.key, error)
        self.count_failure(item, "permanent")
        return ItemUpdate(
            id=item.id,
            status=OutboxStatus.FAILED,
            attempts=item.attempts + 1,
            parts_done=parts,
            plain=flags,
            last_error=error,
            address=address if address != item.address else None,
            message_ids=message_ids,
        )

    def cancelled(
        self, item: ClaimedItem, error: str, *, status: Status, flags: Degrade
    ) -> ItemUpdate:
        self.count_failure(item, status.value)
        return ItemUpdate(
            id=item.id,
            status=OutboxStatus.CANCELLED,
            attempts=item.attempts + 1,
            parts_done=item.parts_done,
            plain=flags,
            last_error=error,
        )

    def count_failure(self, item: ClaimedItem, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.failed(item.channel, reason)


def release(
    item: ClaimedItem,
    *,
    parts: int | None = None,
    flags: Degrade | None = None,
    address: str | None = None,
    at: float = 0.0,
    error: str | None = None,
    message_ids: tuple[int, ...] | None = None,
) -> ItemUpdate:
    """Back to the queue as it was (not an attempt): stopping, waiting for a busy chat, or
    for a paused channel (`error` says why). `message_ids`: of the parts sent so far."""
    return ItemUpdate(
        id=item.id,
        status=OutboxStatus.QUEUED,
        attempts=item.attempts,
        parts_done=item.parts_done if parts is None else parts,
        plain=item.plain if flags is None else flags,
        next_attempt_at=at,
        last_error=error,
        address=address if address is not None and address != item.address else None,
        message_ids=message_ids,
    )
