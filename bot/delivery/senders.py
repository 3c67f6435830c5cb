"""Sending one outbox row: Telegram (paced, every failure classified in one place) and email.

Each sender returns the Update to write back; `Outcomes` builds those Updates, logs them
once and counts them in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from bot.delivery.bulkmail import BulkMail
from bot.delivery.mail import personalize
from bot.delivery.pacing import Pacer
from bot.errors import ChatMigratedError, DeliveryError, ImageError, PermanentError
from bot.metrics import Metrics
from bot.models import EmailMessage, Rendered, Status
from bot.outbox import plan
from bot.store import Store
from bot.store.outbox import CANCELLED, FAILED, QUEUED, SENT, Item, Update
from bot.tokens import Purpose, Tokens
from bot.transports import MailTransport, TelegramTransport

log = logging.getLogger("bot.delivery.loop")

# A chat (or the whole sender, after a 429) that is not free within this long is not
# waited for: its row goes back to the queue with that time, and the worker moves on.
HOLD_MAX_S = 2.0
BULK_MAIL_TTL_S = 300.0
BOUNCED = Status.BOUNCED
MAX_MIGRATIONS = 2  # a chat can move once (group → supergroup); twice is a loop


class Outcomes:
    """Builds the Update for each way a send can end; logs and counts it."""

    def __init__(
        self, *, max_attempts: int, retry_delay: Callable[[int], float], metrics: Metrics | None
    ) -> None:
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.metrics = metrics
        self.sent_total = 0

    def sent(self, item: Item, parts: int, address: str) -> Update:
        self.sent_total += 1
        if self.metrics is not None:
            self.metrics.sent(item.channel)
        new_address = address if address != item.address else None
        now = datetime.now(UTC).isoformat()
        return Update(item.id, SENT, item.attempts, parts, 0, 0.0, None, new_address, now)

    def retry(self, item: Item, parts: int, flags: int, error: str) -> Update:
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            return self.fail(item, parts, flags, f"gave up after {attempts} attempts: {error}")
        self.count_failure(item, "transient")
        at = time.time() + self.retry_delay(attempts)
        log.info("delivery: %s failed (%s); retry %d at %.0f", item.key, error, attempts, at)
        return Update(item.id, QUEUED, attempts, parts, flags, at, error)

    def fail(self, item: Item, parts: int, flags: int, error: str) -> Update:
        log.warning("delivery: %s parked as failed: %s", item.key, error)
        self.count_failure(item, "permanent")
        return Update(item.id, FAILED, item.attempts + 1, parts, flags, 0.0, error)

    def count_failure(self, item: Item, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.failed(item.channel, reason)


def release(
    item: Item,
    parts: int | None = None,
    flags: int | None = None,
    address: str | None = None,
    at: float = 0.0,
) -> Update:
    """Back to the queue as it was (not an attempt): stopping, or waiting for a busy chat."""
    return Update(
        item.id,
        QUEUED,
        item.attempts,
        item.parts_done if parts is None else parts,
        item.plain if flags is None else flags,
        at,
        None,
        address if address is not None and address != item.address else None,
    )


async def deactivate(
    store: Store, outcomes: Outcomes, item: Item, flags: int, error: str, status: Status
) -> Update:
    """The recipient is gone for good: mark the subscriber and cancel its queued rows."""
    if item.subscriber_id is None:  # the channel: nobody to mark, report it
        return outcomes.fail(item, item.parts_done, flags, error)
    await store.subscribers.set_status(item.subscriber_id, status)
    cancelled = await store.outbox.cancel_subscriber(item.subscriber_id, status.value)
    log.info(
        "delivery: %s %s is %s (%s); %d queued messages cancelled",
        item.channel,
        item.address,
        status.value,
        error,
        cancelled,
    )
    outcomes.count_failure(item, status.value)
    return Update(item.id, CANCELLED, item.attempts + 1, item.parts_done, flags, 0.0, error)


class TelegramSender:
    """Sends a row's Telegram messages to one chat, paced, classifying every failure."""

    def __init__(
        self,
        store: Store,
        transport: TelegramTransport,
        pacer: Pacer | None,
        outcomes: Outcomes,
        closing: Callable[[], bool],
    ) -> None:
        self.store = store
        self.transport = transport
        self.pacer = pacer  # None: the outbox transport, which needs no pacing
        self.outcomes = outcomes
        self.closing = closing

    async def deliver(self, item: Item, rendered: Rendered) -> Update:
        """Send the row's remaining parts, paced; the Update to write back."""
        parts, flags, address, migrations = item.parts_done, item.plain, item.address, 0
        while parts < len(rendered.telegram):
            message = plan.degrade(rendered.telegram[parts], flags)
            granted, slot_at = await self._pace(address)
            if not granted or self.closing():
                # Busy chat or paused sender: back to the queue until then. Stopping: as is.
                return release(item, parts, flags, address, 0.0 if granted else slot_at)
            try:
                await self.transport.send(address, message)
            except DeliveryError as exc:
                verdict = await self._verdict(item, exc, address, flags, slot_at)
                if isinstance(verdict, Update):
                    return replace(verdict, parts_done=parts, address=address)
                if isinstance(verdict, str):  # migrated: resend to the new chat id
                    migrations += 1
                    if migrations > MAX_MIGRATIONS:
                        return self.outcomes.fail(item, parts, flags, "chat migrated in a loop")
                    address = verdict
                else:  # a simpler form of the same message
                    flags = verdict
                continue
            parts, flags = parts + 1, 0
        return self.outcomes.sent(item, parts, address)

    async def _verdict(
        self, item: Item, exc: DeliveryError, address: str, flags: int, slot_at: float
    ) -> Update | str | int:
        """The one place a failed Telegram send is classified.

        Returns an Update to write back, a new chat id to resend to, or the simplification
        flags to resend with.
        """
        now = time.time()
        if isinstance(exc, ChatMigratedError):
            new_id = str(exc.new_chat_id)
            log.info("delivery: chat %s moved to %s; resending", address, new_id)
            if item.subscriber_id is not None:
                await self.store.subscribers.change_address(item.subscriber_id, new_id)
            return new_id
        if isinstance(exc, PermanentError) and exc.deactivate:
            return await self._gone(item, flags, str(exc))
        if isinstance(exc, ImageError) and not flags & plan.NO_PHOTO:
            log.warning("delivery: image refused for %s (%s); sending text", item.key, exc)
            return flags | plan.NO_PHOTO
        if isinstance(exc, PermanentError) and not flags & plan.PLAIN:
            log.warning(
                "delivery: Telegram rejected %s (%s); resending as plain text", item.key, exc
            )
            return flags | plan.PLAIN
        if isinstance(exc, PermanentError):
            return self.outcomes.fail(item, item.parts_done, flags, str(exc))
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None and self.pacer is not None:
            # Flow control, not a fault: wait as told, without spending an attempt.
            whole = self.pacer.throttled(address, retry_after, now, sent_at=slot_at)
            log.warning(
                "delivery: 429 for %s, pausing %s for %.0fs",
                address,
                "all sends" if whole else "that chat",
                retry_after,
            )
            self.outcomes.count_failure(item, "throttled")
            return release(item, item.parts_done, flags, address, now + retry_after)
        return self.outcomes.retry(item, item.parts_done, flags, str(exc))

    async def _gone(self, item: Item, flags: int, error: str) -> Update:
        return await deactivate(self.store, self.outcomes, item, flags, error, Status.BLOCKED)

    async def _pace(self, chat: str) -> tuple[bool, float]:
        """Wait for a slot for `chat`: (True, its time), or (False, when to try again)."""
        if self.pacer is None:
            return True, time.time()
        while True:
            now = time.time()
            slot = self.pacer.reserve(chat, now)
            if not slot.granted and slot.at - now > HOLD_MAX_S:
                return False, slot.at
            if slot.at > now:
                await asyncio.sleep(slot.at - now)
            if slot.granted:
                while (wait_s := self.pacer.admit(time.time())) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(wait_s)
                return True, slot.at


class MailSender:
    """Sends a row's email: the bulk fast path over SMTP, personalize() otherwise."""

    def __init__(
        self,
        store: Store,
        transport: MailTransport,
        outcomes: Outcomes,
        *,
        tokens: Tokens,
        mail_from: str,
        public_url: str,
        bounce_limit: int,
    ) -> None:
        self.store = store
        self.transport = transport
        self.outcomes = outcomes
        self.tokens = tokens
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        self.bounce_limit = bounce_limit
        self._bulk: dict[int, tuple[float, BulkMail]] = {}

    async def deliver(self, item: Item, rendered: Rendered) -> Update:
        """Personalise and send the row's email; bounces are counted here."""
        assert rendered.email is not None
        sub = item.subscriber_id
        # The outbox stand-in is nobody (id 0): its links have the real shape, the page says so.
        who = 0 if sub is None else sub
        unsubscribe = self.tokens.link(self.public_url, Purpose.UNSUBSCRIBE, who)
        preferences = self.tokens.link(self.public_url, Purpose.PREFERENCES, who)
        try:
            send_raw = getattr(self.transport, "send_raw", None)
            if send_raw is not None and BulkMail.fits(item.address):
                # Fan-out fast path: the job's MIME is built once, links filled per address.
                bulk = self._bulk_mail(item.job_id, rendered.email)
                data = bulk.render(
                    to=item.address, unsubscribe_url=unsubscribe, preferences_url=preferences
                )
                await send_raw(bulk.mail_from, item.address, data)
            else:
                mime = personalize(
                    rendered.email,
                    to=item.address,
                    mail_from=self.mail_from,
                    unsubscribe_url=unsubscribe,
                    preferences_url=preferences,
                    now=datetime.now(UTC),
                )
                await self.transport.send(mime)
        except PermanentError as exc:
            if not exc.deactivate or sub is None:
                return self.outcomes.fail(item, 0, 0, str(exc))
            bounces = await self.store.subscribers.add_hard_bounce(sub)
            if bounces >= self.bounce_limit:
                return await deactivate(self.store, self.outcomes, item, 0, str(exc), BOUNCED)
            return self.outcomes.fail(item, 0, 0, f"{exc} (hard failure {bounces})")
        except DeliveryError as exc:
            return self.outcomes.retry(item, 0, 0, str(exc))
        return self.outcomes.sent(item, 1, item.address)

    def _bulk_mail(self, job_id: int, message: EmailMessage) -> BulkMail:
        now = time.time()
        cached = self._bulk.get(job_id)
        # Rebuilt every few minutes so the Date header stays true for late retries.
        if cached is None or now - cached[0] > BULK_MAIL_TTL_S:
            if len(self._bulk) > 16:
                self._bulk.clear()
            bulk = BulkMail(message, mail_from=self.mail_from, now=datetime.now(UTC))
            cached = self._bulk[job_id] = (now, bulk)
        return cached[1]
