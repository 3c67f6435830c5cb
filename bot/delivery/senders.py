"""Sending one outbox row: Telegram (paced) and email; `outcomes.classify` decides each result.

Each sender returns the ItemUpdate to write back, built by `Outcomes`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.delivery.bulkmail import BulkMail
from bot.delivery.fallback import degrade
from bot.delivery.inflight import InFlight
from bot.delivery.mail import outgoing, personalize
from bot.delivery.outcomes import Action, Outcomes, RetryPolicy, Verdict, classify, release
from bot.delivery.pacing import ChannelPause, FreeLane, Pacer
from bot.delivery.quiet import silent
from bot.models import (
    KEEP,
    Channel,
    ClaimedItem,
    Degrade,
    EmailMessage,
    ItemUpdate,
    Kind,
    OutgoingMail,
    Rendered,
    Status,
    TelegramMessage,
)
from bot.store import Store
from bot.tokens import Purpose, Tokens
from bot.transports import MailTransport, TelegramTransport

log = logging.getLogger("bot.delivery")

# A chat (or the whole sender, after a 429) that is not free within this long is not
# waited for: its row goes back to the queue with that time, and the worker moves on.
HOLD_MAX_S = 2.0
# The shared send budget cannot be booked (the database is away): rows wait this long.
BUDGET_RETRY_S = 1.0
BULK_MAIL_TTL_S = 300.0
MAX_MIGRATIONS = 2  # a chat can move once (group → supergroup); twice is a loop


class BookSends(Protocol):
    """Books `count` sends at `rate_per_s` out of the budget all processes share (`edits`:
    of the free lane's); returns when the first may start, as time.time() tells it
    (store.cluster.book_sends)."""

    def __call__(
        self, count: int, rate_per_s: float, *, edits: bool = False
    ) -> Awaitable[float]: ...


async def deactivate(
    store: Store,
    outcomes: Outcomes,
    item: ClaimedItem,
    error: str,
    status: Status,
    flags: Degrade,
    message_ids: tuple[int, ...] | None = None,
) -> ItemUpdate:
    """The recipient is gone for good: mark the subscriber and cancel its queued rows."""
    if item.subscriber_id is None:  # the channel: nobody to mark, report it
        return outcomes.fail(
            item,
            error,
            parts=item.parts_done,
            flags=flags,
            address=item.address,
            message_ids=message_ids,
        )
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
    return outcomes.cancelled(item, error, status=status, flags=flags)


class _Turn:
    """One row's progress in this turn: where it is, and the ids of the parts it sent."""

    def __init__(self, item: ClaimedItem) -> None:
        self.item = item
        self.parts, self.flags, self.address = item.parts_done, item.plain, item.address
        self.edit = item.kind is Kind.EDIT
        self.new_ids: list[int] = []

    @property
    def message_ids(self) -> tuple[int, ...] | None:
        """For the ItemUpdate: the ids of every part sent so far; None if none was sent
        now, and always for a correction (its ids are those it edits, kept as they are)."""
        if self.edit or not self.new_ids:
            return None
        return self.item.message_ids + tuple(self.new_ids)

    def target(self, message: TelegramMessage) -> tuple[bool, int | None]:
        """(whether a call is needed, the message id it acts on) for the current part."""
        if not self.edit:
            return True, None
        ids = self.item.message_ids
        # Unchanged parts, and parts the reader never got (no id kept), need nothing.
        if message.method == KEEP or self.parts >= len(ids):
            return False, None
        return True, ids[self.parts]

    def done(self, message_id: int | None) -> None:
        """The current part went out (`message_id`: 0 when the transport has none)."""
        if not self.edit:
            self.new_ids.append(message_id or 0)
        self.parts, self.flags = self.parts + 1, Degrade.NONE

    def release(self, *, at: float = 0.0) -> ItemUpdate:
        return release(
            self.item,
            parts=self.parts,
            flags=self.flags,
            address=self.address,
            at=at,
            message_ids=self.message_ids,
        )


class TelegramSender:
    """Sends a row's Telegram messages to one chat, paced, acting on each verdict.

    A correction row (kind edit) edits or deletes the messages its recipient got instead:
    part k acts on the row's k-th message id, parts marked keep make no call.
    """

    def __init__(
        self,
        store: Store,
        transport: TelegramTransport,
        pacer: Pacer | None,
        outcomes: Outcomes,
        *,
        policy: RetryPolicy,
        closing: Callable[[], bool],
        inflight: InFlight,
        book_sends: BookSends | None = None,
        site_tz: ZoneInfo | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`site_tz`: quiet hours of readers without a zone of their own are in it."""
        self.store = store
        self.transport = transport
        self.pacer = pacer  # None: the outbox transport, which needs no pacing
        self.outcomes = outcomes
        self.policy = policy
        self.closing = closing
        self.inflight = inflight
        self.book_sends = book_sends  # for a pacer of the shared budget
        self._booking = asyncio.Lock()  # one window booked at a time, for all workers
        self._booking_failed = False
        self.site_tz = site_tz or ZoneInfo("UTC")
        self.clock = clock
        # Paid sends do not make edits paid: corrections keep to the free rate besides.
        self._free_lane = (
            FreeLane(shared=pacer.shared is not None) if pacer is not None and pacer.paid else None
        )

    async def deliver(self, item: ClaimedItem, rendered: Rendered) -> ItemUpdate:
        """Send the row's remaining parts, paced; the ItemUpdate to write back."""
        turn, migrations = _Turn(item), 0
        quiet = silent(item, self.clock(), self.site_tz)
        while turn.parts < len(rendered.telegram):
            message = degrade(rendered.telegram[turn.parts], turn.flags)
            needed, message_id = turn.target(message)
            if not needed:  # no call, so no pacing either
                turn.done(message_id)
                continue
            granted, slot_at = await self._pace(turn.address, edit=turn.edit)
            if not granted or self.closing():
                # Busy chat or paused sender: back to the queue until then. Stopping: as is.
                return turn.release(at=0.0 if granted else slot_at)
            error: BaseException | None = None
            answer: list[int | None] = []
            lane = self._free_lane
            if lane is not None:
                lane.opened()  # counted from here: the crowd check of an edit was just now
            try:
                send = partial(self._send, answer, turn.address, message, message_id, quiet)
                answered = await self.inflight.run(send)
            except Exception as exc:  # every failure is classified below, none escapes
                error = exc
            else:
                if not answered:  # cut short on stop: it may still arrive; the row as it was
                    return turn.release()
            finally:
                if lane is not None:
                    lane.closed(time.time())
            now = time.time()
            verdict = classify(
                error,
                channel=Channel.TELEGRAM,
                attempts=item.attempts,
                flags=turn.flags,
                now=now,
                policy=self.policy,
            )
            if verdict.action is Action.SENT:
                turn.done(answer[0] if answer else None)
                continue
            if verdict.action is Action.MIGRATE:
                migrations += 1
                if migrations > MAX_MIGRATIONS:
                    return self.outcomes.fail(
                        item,
                        "chat migrated in a loop",
                        parts=turn.parts,
                        flags=turn.flags,
                        address=turn.address,
                        message_ids=turn.message_ids,
                    )
                assert verdict.address is not None
                log.info("delivery: chat %s moved to %s; resending", turn.address, verdict.address)
                if item.subscriber_id is not None:
                    await self.store.subscribers.change_address(item.subscriber_id, verdict.address)
                turn.address = verdict.address
                continue
            if verdict.action is Action.DEGRADE:
                log.warning(
                    "delivery: Telegram refused %s (%s); %s",
                    item.key,
                    error,
                    _degraded(verdict.flags & ~turn.flags),
                )
                turn.flags = verdict.flags
                continue
            return await self._settle(turn, verdict, slot_at, now)
        return self.outcomes.sent(
            item, parts=turn.parts, address=turn.address, message_ids=turn.message_ids
        )

    async def _send(
        self,
        answer: list[int | None],
        chat: str,
        message: TelegramMessage,
        message_id: int | None,
        quiet: bool,
    ) -> None:
        """One transport call; the message id it answers goes into `answer`."""
        answer.append(await self.transport.send(chat, message, message_id=message_id, silent=quiet))

    async def _settle(
        self, turn: _Turn, verdict: Verdict, slot_at: float, now: float
    ) -> ItemUpdate:
        """The row ends this turn: throttled, retried, parked, or its chat is gone."""
        item, parts, flags, address = turn.item, turn.parts, turn.flags, turn.address
        error = verdict.error or ""
        if verdict.action is Action.THROTTLE and self.pacer is not None:
            wait_s = verdict.retry_at - now
            whole = self.pacer.throttled(address, wait_s, now, sent_at=slot_at)
            log.warning(
                "delivery: 429 for %s, pausing %s for %.0fs",
                address,
                "all sends" if whole else "that chat",
                wait_s,
            )
            self.outcomes.count_failure(item, "throttled")
            return turn.release(at=verdict.retry_at)
        if verdict.action is Action.DEACTIVATE:
            assert verdict.status is not None
            gone = replace(item, parts_done=parts, address=address)
            return await deactivate(
                self.store, self.outcomes, gone, error, verdict.status, flags, turn.message_ids
            )
        return self.outcomes.ended(
            item, verdict, parts=parts, flags=flags, address=address, message_ids=turn.message_ids
        )

    async def _free_turn(self) -> float | None:
        """Wait for an edit's turn at the free rate (paid mode only); None once it is here,
        else when to try again (the row goes back to the queue meanwhile).

        Telegram counts the paid sends of the last second too: a second crowded with them
        is waited out first, then turns are taken one after another from there (waiting
        out the crowd after taking turns would fire them all at once)."""
        lane = self._free_lane
        if lane is None:
            return None
        crowded_s = lane.crowded_for(time.time())
        if crowded_s > HOLD_MAX_S:
            return time.time() + crowded_s
        if crowded_s > 0:
            await asyncio.sleep(crowded_s)
        while True:
            now = time.time()
            turn = lane.reserve(now, HOLD_MAX_S)
            if turn.starved:
                if not await self._book(lane):
                    return now + BUDGET_RETRY_S
                continue
            if not turn.granted:
                return turn.at
            if turn.at > now:
                await asyncio.sleep(turn.at - now)
            if not lane.missed(turn.at, time.time()):
                break
        while (crowded_s := lane.crowded_for(time.time())) > 0:  # sends came meanwhile
            if crowded_s > HOLD_MAX_S:
                return time.time() + crowded_s
            await asyncio.sleep(crowded_s)
        return None

    async def _pace(self, chat: str, *, edit: bool = False) -> tuple[bool, float]:
        """Wait for a slot for `chat`: (True, its time), or (False, when to try again).

        `edit`: an edit or delete, which in paid mode takes no global slot of the pacer
        (only its chat's) but a turn of the free lane once its chat is free (a turn taken
        before a pause would bunch after it)."""
        if self.pacer is None:
            return True, time.time()
        free = edit and self._free_lane is not None  # its global turn is the free lane's
        while True:
            now = time.time()
            slot = self.pacer.reserve(chat, now, slot=not free)
            if slot.starved:
                if not await self._book(self.pacer):
                    return False, now + BUDGET_RETRY_S
                continue
            if not slot.granted and slot.at - now > HOLD_MAX_S:
                return False, slot.at
            if slot.at > now:
                await asyncio.sleep(slot.at - now)
            if slot.granted and self.pacer.missed(chat, slot.at, time.time()):
                continue
            if slot.granted:
                if edit and (free_at := await self._free_turn()) is not None:
                    return False, free_at
                while (wait_s := self.pacer.admit(time.time())) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(wait_s)
                return True, slot.at

    async def _book(self, pacer: Pacer | FreeLane) -> bool:
        """Book the pacer (or the free lane) a window of the shared budget (unless another
        worker just did); False when the database cannot be asked."""
        book = self.book_sends
        assert book is not None, "a shared pacer needs book_sends"
        async with self._booking:
            if not pacer.starved(time.time()):
                return True
            count = pacer.window_size
            try:
                edits = isinstance(pacer, FreeLane)
                start = await book(count, pacer.slot_rate_per_s, edits=edits)
            except Exception as exc:  # the rows go back to the queue and wait a moment
                if not self._booking_failed:
                    log.warning("delivery: cannot book sends from the shared budget: %s", exc)
                self._booking_failed = True
                return False
            if self._booking_failed:
                log.info("delivery: the shared send budget can be booked again")
            self._booking_failed = False
            pacer.supply(start, count)
            return True


def _degraded(flags: Degrade) -> str:
    """What the sender does next, for the log line."""
    if flags & Degrade.NO_DELETE:
        return "editing it to say it was withdrawn"
    if flags & Degrade.NO_PHOTO:
        return "sending text"
    return "sending plain text"


class MailSender:
    """Sends a row's email: MIME built once per job, the recipient's links stamped in."""

    def __init__(
        self,
        store: Store,
        transport: MailTransport,
        outcomes: Outcomes,
        *,
        policy: RetryPolicy,
        tokens: Tokens,
        mail_from: str,
        public_url: str,
        bounce_limit: int,
        pause: ChannelPause,
        inflight: InFlight,
        return_path_domain: str | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.outcomes = outcomes
        self.policy = policy
        self.pause = pause  # shared with the loop, which claims no email while it lasts
        self.inflight = inflight
        self.tokens = tokens
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        self.bounce_limit = bounce_limit
        # VERP: with a bounce listener, each reader's email has its own signed return path.
        self.return_path_domain = return_path_domain
        self._bulk: dict[int, tuple[float, BulkMail]] = {}

    def _mail(self, item: ClaimedItem, message: EmailMessage) -> OutgoingMail:
        sub = item.subscriber_id
        # The outbox stand-in is nobody (id 0): its links have the real shape, the page says so.
        who = 0 if sub is None else sub
        unsubscribe = self.tokens.link(self.public_url, Purpose.UNSUBSCRIBE, who)
        preferences = self.tokens.link(self.public_url, Purpose.PREFERENCES, who)
        domain = self.return_path_domain
        verp = self.tokens.return_path(sub, domain) if domain and sub is not None else None
        if BulkMail.fits(item.address):
            # Fan-out fast path: the job's MIME is built once, links filled per address.
            bulk = self._bulk_mail(item, message)
            data = bulk.render(
                to=item.address, unsubscribe_url=unsubscribe, preferences_url=preferences
            )
            return OutgoingMail(mail_from=verp or bulk.mail_from, to=item.address, data=data)
        mime = personalize(
            message,
            to=item.address,
            mail_from=self.mail_from,
            unsubscribe_url=unsubscribe,
            preferences_url=preferences,
            now=datetime.now(UTC),
            kind=item.kind,
        )
        mail = outgoing(mime)
        return mail if verp is None else replace(mail, mail_from=verp)

    async def deliver(self, item: ClaimedItem, rendered: Rendered) -> ItemUpdate:
        """Personalise and send the row's email; hard failures in a row are counted per
        address, and a success clears the count."""
        assert rendered.email is not None
        if self.pause.paused(time.time()):  # claimed just before the pause began
            return release(item, at=self.pause.until, error=self.pause.reason)
        error: BaseException | None = None
        try:
            mail = self._mail(item, rendered.email)
            answered = await self.inflight.run(partial(self.transport.send, mail))
        except Exception as exc:  # every failure is classified below, none escapes
            error = exc
        else:
            if not answered:  # cut short on stop: it may still arrive; the row as it was
                return release(item)
        now = time.time()
        verdict = classify(
            error,
            channel=Channel.EMAIL,
            attempts=item.attempts,
            flags=Degrade.NONE,
            now=now,
            policy=self.policy,
            pauses=self.pause.pauses,
        )
        if verdict.action is Action.SENT:
            if self.pause.resume():
                log.warning("delivery: the mail server takes email again; email resumed")
            return self.outcomes.sent(item, parts=1, address=item.address)
        if verdict.action is Action.PAUSE:
            return self._paused(item, verdict, now)
        if verdict.action is Action.BOUNCE and item.subscriber_id is not None:
            bounces = await self.store.subscribers.add_hard_bounce(item.subscriber_id)
            error_text = verdict.error or ""
            if bounces >= self.bounce_limit:
                return await deactivate(
                    self.store, self.outcomes, item, error_text, Status.BOUNCED, Degrade.NONE
                )
            verdict = replace(verdict, error=f"{error_text} (hard failure {bounces})")
        return self.outcomes.ended(item, verdict, parts=0, flags=Degrade.NONE, address=item.address)

    def _paused(self, item: ClaimedItem, verdict: Verdict, now: float) -> ItemUpdate:
        """The mail server failed: all email waits, this row back in the queue uncharged."""
        error = verdict.error or "the mail server failed"
        if self.pause.pause(verdict.retry_at, now, error):
            # The operator's alert: one line per pause, not one per queued email.
            log.error(
                "delivery: %s; no address is to blame: all email waits %.0fs "
                "(pause %d in a row) and stays queued",
                error,
                verdict.retry_at - now,
                self.pause.pauses,
            )
        self.outcomes.count_failure(item, "paused")
        return release(item, at=self.pause.until, error=error)

    def _bulk_mail(self, item: ClaimedItem, message: EmailMessage) -> BulkMail:
        now = time.time()
        cached = self._bulk.get(item.job_id)
        # Rebuilt every few minutes so the Date header stays true for late retries.
        if cached is None or now - cached[0] > BULK_MAIL_TTL_S:
            if len(self._bulk) > 16:
                self._bulk.clear()
            bulk = BulkMail(
                message, mail_from=self.mail_from, now=datetime.now(UTC), kind=item.kind
            )
            cached = self._bulk[item.job_id] = (now, bulk)
        return cached[1]
