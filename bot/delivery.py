"""The delivery loop: claims outbox rows in batches, sends them, and records every outcome.

One claimer per channel keeps a small local queue filled (most urgent first); workers take
rows from it, pace Telegram sends, call the transport and classify what happened in one
place (`_verdict`); a flusher writes the outcomes back in batches. On stop nothing new is
claimed, rows not yet started go back to the queue, and sends in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot import outbox as plan
from bot.errors import ChatMigratedError, DeliveryError, ImageError, PermanentError
from bot.mail import personalize
from bot.metrics import Metrics
from bot.models import Channel, Kind, Rendered, Status
from bot.ratelimit import Pacer, is_paid
from bot.schedule import backoff
from bot.settings import Settings, secret_key
from bot.store import Store
from bot.store.outbox import CANCELLED, FAILED, QUEUED, SENT, Item, Update
from bot.tokens import Purpose, Tokens
from bot.transports import MailTransport, TelegramTransport
from bot.transports.files import FilesMail, FilesTelegram

log = logging.getLogger(__name__)

# A chat (or the whole sender, after a 429) that is not free within this long is not
# waited for: its row goes back to the queue with that time, and the worker moves on.
HOLD_MAX_S = 2.0
MAX_MIGRATIONS = 2  # a chat can move once (group → supergroup); twice is a loop


@dataclass(frozen=True)
class DeliveryConfig:
    """Tuning; the defaults suit production, tests shorten the waits."""

    telegram_workers: int = 32
    mail_workers: int = 8
    max_attempts: int = 8
    bounce_limit: int = 3  # hard failures before an address counts as bounced
    lease_s: float = 600.0
    poll_s: float = 1.0
    flush_s: float = 0.05
    progress_log_s: float = 10.0
    retry_delay: Callable[[int], float] = field(default=backoff)
    recover_on_start: bool = True  # False when another process may be delivering too


@dataclass
class _Lane:
    """One channel's local queue of claimed rows and its workers."""

    channel: Channel
    workers: int
    queue: asyncio.PriorityQueue[tuple[float, int, Item | None]] = field(
        default_factory=asyncio.PriorityQueue
    )
    held: int = 0  # claimed and not yet written back
    room: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def capacity(self) -> int:
        # Enough claimed ahead that workers never starve; few enough to bound what a
        # crash can send twice and what a new breaking alert must wait behind.
        return self.workers + max(1, self.workers // 2)


class Delivery:
    """Runs until stopped: every queued outbox row is sent once, or parked as failed."""

    def __init__(
        self,
        store: Store,
        *,
        telegram: TelegramTransport,
        mail: MailTransport,
        tokens: Tokens,
        mail_from: str,
        public_url: str,
        pacer: Pacer | None,
        config: DeliveryConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.telegram = telegram
        self.mail = mail
        self.tokens = tokens
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        self.pacer = pacer  # None: the outbox transport, which needs no pacing
        self.config = config or DeliveryConfig()
        self.metrics = metrics
        self._lanes = {
            Channel.TELEGRAM: _Lane(Channel.TELEGRAM, self.config.telegram_workers),
            Channel.EMAIL: _Lane(Channel.EMAIL, self.config.mail_workers),
        }
        self._wake = asyncio.Event()
        self._closing = False
        self._outcomes: list[tuple[Item, Update]] = []
        self._flushed = asyncio.Event()
        self._payloads: dict[int, Rendered] = {}
        self._active_jobs: dict[int, float] = {}  # job id → when we first saw it
        self.sent_total = 0

    def notify(self) -> None:
        """Something was queued: claim now instead of at the next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Rows claimed and not yet written back: at most this many can go twice in a crash."""
        return sum(lane.held for lane in self._lanes.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the sends in flight and return."""
        if self.config.recover_on_start:
            recovered = await self.store.outbox.recover()
            if recovered:
                log.info("delivery: %d sends interrupted by a crash are queued again", recovered)
        workers = [
            asyncio.create_task(self._worker(lane), name=f"deliver-{lane.channel}-{n}")
            for lane in self._lanes.values()
            for n in range(lane.workers)
        ]
        flusher = asyncio.create_task(self._flush_loop(), name="deliver-flush")
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            await self._claim_loop(stop)
        finally:
            self._closing = True
            for lane in self._lanes.values():
                for _ in range(lane.workers):
                    lane.queue.put_nowait((float("inf"), 0, None))
            await asyncio.gather(*workers, return_exceptions=True)
            flusher.cancel()
            waker.cancel()
            await self._flush()
            log.info("delivery: stopped, %d sent since start", self.sent_total)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    # -- claiming ------------------------------------------------------------------------
    async def _claim_loop(self, stop: asyncio.Event) -> None:
        last_expire = last_progress = 0.0
        while not stop.is_set():
            now = time.time()
            if now - last_expire > self.config.lease_s / 4:
                last_expire = now
                await self.store.outbox.release_expired(now)
            full = False
            for lane in self._lanes.values():
                free = lane.capacity - lane.held
                if free < max(1, lane.workers // 4):
                    continue
                items = await self.store.outbox.claim(
                    free, now=now, lease_s=self.config.lease_s, channel=lane.channel.value
                )
                lane.held += len(items)
                for item in items:
                    self._active_jobs.setdefault(item.job_id, now)
                    priority = plan.PRIORITY.get(Kind(item.kind), 9)
                    lane.queue.put_nowait((priority, item.id, item))
                full = full or len(items) == free
            if now - last_progress > self.config.progress_log_s:
                last_progress = now
                await self._log_progress()
            if full:
                await self._wait_room()
                continue
            await self._sleep(await self._next_wait(now))

    async def _wait_room(self) -> None:
        self._wake.clear()
        for lane in self._lanes.values():
            lane.room.clear()
        waits = [asyncio.ensure_future(lane.room.wait()) for lane in self._lanes.values()]
        waits.append(asyncio.ensure_future(self._wake.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED, timeout=1)
        for w in pending:
            w.cancel()

    async def _next_wait(self, now: float) -> float:
        due = await self.store.outbox.next_due()
        if due is None:
            return self.config.poll_s
        return min(self.config.poll_s, max(0.01, due - now))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- sending -------------------------------------------------------------------------
    async def _worker(self, lane: _Lane) -> None:
        while True:
            _, _, item = await lane.queue.get()
            if item is None:
                return
            try:
                update = await self._deliver(item)
            except Exception as exc:  # a bug or an unforeseen error: retry, never lose it
                log.exception("delivery: unexpected error sending %s", item.key)
                update = self._retry(item, item.parts_done, item.plain, f"internal: {exc!r}")
            self._outcomes.append((item, update))

    async def _payload(self, job_id: int) -> Rendered:
        rendered = self._payloads.get(job_id)
        if rendered is None:
            rendered = plan.decode(await self.store.outbox.payload(job_id))
            if len(self._payloads) > 64:
                self._payloads.clear()
            self._payloads[job_id] = rendered
        return rendered

    async def _deliver(self, item: Item) -> Update:
        if self._closing:
            return _release(item)
        rendered = await self._payload(item.job_id)
        if item.channel == Channel.EMAIL:
            return await self._deliver_mail(item, rendered)
        return await self._deliver_telegram(item, rendered)

    async def _deliver_telegram(self, item: Item, rendered: Rendered) -> Update:
        parts, flags, address, migrations = item.parts_done, item.plain, item.address, 0
        while parts < len(rendered.telegram):
            message = plan.degrade(rendered.telegram[parts], flags)
            granted, slot_at = await self._pace(address)
            if not granted or self._closing:
                # Busy chat or paused sender: back to the queue until then. Stopping: as is.
                return _release(item, parts, flags, address, 0.0 if granted else slot_at)
            try:
                await self.telegram.send(address, message)
            except DeliveryError as exc:
                verdict = await self._verdict(item, exc, address, flags, slot_at)
                if isinstance(verdict, Update):
                    return replace(verdict, parts_done=parts, address=address)
                if isinstance(verdict, str):  # migrated: resend to the new chat id
                    migrations += 1
                    if migrations > MAX_MIGRATIONS:
                        return self._fail(item, parts, flags, "chat migrated in a loop")
                    address = verdict
                else:  # a simpler form of the same message
                    flags = verdict
                continue
            parts, flags = parts + 1, 0
        return self._sent(item, parts, address)

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
            return await self._deactivate(item, flags, str(exc), Status.BLOCKED)
        if isinstance(exc, ImageError) and not flags & plan.NO_PHOTO:
            log.warning("delivery: image refused for %s (%s); sending text", item.key, exc)
            return flags | plan.NO_PHOTO
        if isinstance(exc, PermanentError) and not flags & plan.PLAIN:
            log.warning(
                "delivery: Telegram rejected %s (%s); resending as plain text", item.key, exc
            )
            return flags | plan.PLAIN
        if isinstance(exc, PermanentError):
            return self._fail(item, item.parts_done, flags, str(exc))
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
            self._count_failure(item, "throttled")
            return _release(item, item.parts_done, flags, address, now + retry_after)
        return self._retry(item, item.parts_done, flags, str(exc))

    async def _deactivate(self, item: Item, flags: int, error: str, status: Status) -> Update:
        if item.subscriber_id is None:  # the channel: nobody to mark, report it
            return self._fail(item, item.parts_done, flags, error)
        await self.store.subscribers.set_status(item.subscriber_id, status)
        cancelled = await self.store.outbox.cancel_subscriber(item.subscriber_id, status.value)
        log.info(
            "delivery: %s %s is %s (%s); %d queued messages cancelled",
            item.channel,
            item.address,
            status.value,
            error,
            cancelled,
        )
        self._count_failure(item, status.value)
        return Update(item.id, CANCELLED, item.attempts + 1, item.parts_done, flags, 0.0, error)

    async def _deliver_mail(self, item: Item, rendered: Rendered) -> Update:
        assert rendered.email is not None
        sub = item.subscriber_id
        # The outbox stand-in is nobody (id 0): its links have the real shape, the page says so.
        who = 0 if sub is None else sub
        unsubscribe = self._link("unsubscribe", Purpose.UNSUBSCRIBE, who)
        preferences = self._link("preferences", Purpose.PREFERENCES, who)
        try:
            mime = personalize(
                rendered.email,
                to=item.address,
                mail_from=self.mail_from,
                unsubscribe_url=unsubscribe,
                preferences_url=preferences,
                now=datetime.now(UTC),
            )
            await self.mail.send(mime)
        except PermanentError as exc:
            if not exc.deactivate or sub is None:
                return self._fail(item, 0, 0, str(exc))
            bounces = await self.store.subscribers.add_hard_bounce(sub)
            if bounces >= self.config.bounce_limit:
                return await self._deactivate(item, 0, str(exc), Status.BOUNCED)
            return self._fail(item, 0, 0, f"{exc} (hard failure {bounces})")
        except DeliveryError as exc:
            return self._retry(item, 0, 0, str(exc))
        return self._sent(item, 1, item.address)

    def _link(self, path: str, purpose: Purpose, subscriber_id: int) -> str:
        return f"{self.public_url}/{path}/{self.tokens.make(purpose, subscriber_id)}"

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
                return True, slot.at

    # -- outcomes ------------------------------------------------------------------------
    def _sent(self, item: Item, parts: int, address: str) -> Update:
        self.sent_total += 1
        if self.metrics is not None:
            self.metrics.sent(item.channel)
        new_address = address if address != item.address else None
        now = datetime.now(UTC).isoformat()
        return Update(item.id, SENT, item.attempts, parts, 0, 0.0, None, new_address, now)

    def _retry(self, item: Item, parts: int, flags: int, error: str) -> Update:
        attempts = item.attempts + 1
        if attempts >= self.config.max_attempts:
            return self._fail(item, parts, flags, f"gave up after {attempts} attempts: {error}")
        self._count_failure(item, "transient")
        at = time.time() + self.config.retry_delay(attempts)
        log.info("delivery: %s failed (%s); retry %d at %.0f", item.key, error, attempts, at)
        return Update(item.id, QUEUED, attempts, parts, flags, at, error)

    def _fail(self, item: Item, parts: int, flags: int, error: str) -> Update:
        log.warning("delivery: %s parked as failed: %s", item.key, error)
        self._count_failure(item, "permanent")
        return Update(item.id, FAILED, item.attempts + 1, parts, flags, 0.0, error)

    def _count_failure(self, item: Item, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.failed(item.channel, reason)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_s)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        await self.store.outbox.apply([u for _, u in batch])
        # Written back: only now do these rows stop counting as in flight.
        for item, _ in batch:
            self._lanes[Channel(item.channel)].held -= 1
        for lane in self._lanes.values():
            if lane.held <= lane.capacity - max(1, lane.workers // 4):
                lane.room.set()
        done_jobs = {i.job_id for i, u in batch if u.status != QUEUED}
        for job in await self.store.outbox.finish_jobs(done_jobs, datetime.now(UTC)):
            started = self._active_jobs.pop(job.id, None)
            took = f" in {time.time() - started:.1f}s" if started else ""
            log.info(
                "delivery: job %d %s finished%s: %d sent, %d failed, %d cancelled",
                job.id,
                job.key,
                took,
                job.counts[SENT],
                job.counts[FAILED],
                job.counts[CANCELLED],
            )

    async def _log_progress(self) -> None:
        for job_id in list(self._active_jobs):
            for job in await self.store.outbox.progress(job_id=job_id):
                if job.finished_at is not None:
                    self._active_jobs.pop(job_id, None)
                    continue
                log.info(
                    "delivery: job %d %s: %d/%d sent, %d queued, %d failed",
                    job.id,
                    job.key,
                    job.counts[SENT],
                    job.total,
                    job.counts[QUEUED],
                    job.counts[FAILED],
                )


def _release(
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


def workers_for(rate_per_s: float) -> int:
    """Concurrent Telegram sends: enough to keep the rate with ~0.25 s answers, within reason."""
    return max(8, min(128, int(rate_per_s / 4)))


@asynccontextmanager
async def open_delivery(
    store: Store,
    settings: Settings,
    *,
    bot: object | None = None,
    config: DeliveryConfig | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Delivery]:
    """A Delivery with the transports `settings` call for; `bot` is an initialised telegram.Bot.

    Without HERALD_TELEGRAM_TOKEN or HERALD_SMTP_URL the files transport stands in.
    """
    async with AsyncExitStack() as stack:
        telegram: TelegramTransport
        mail: MailTransport
        pacer: Pacer | None = None
        if settings.telegram_token is None:
            telegram = FilesTelegram(settings.outbox_dir / "telegram")
        else:
            from bot.transports.telegram import BotTransport, make_bot

            if bot is None:
                bot = await stack.enter_async_context(make_bot(settings))
            telegram = BotTransport(bot, paid=is_paid(settings.telegram_rate))  # type: ignore[arg-type]
            pacer = Pacer(settings.telegram_rate)
        if settings.smtp_url is None:
            mail = FilesMail(settings.outbox_dir / "email")
        else:
            from bot.transports.smtp import SmtpPool, parse_smtp_url

            smtp = parse_smtp_url(settings.smtp_url.get_secret_value())
            mail = await stack.enter_async_context(SmtpPool(smtp))
        if config is None:
            mail_workers = 2 * smtp.pool_size if settings.smtp_url is not None else 4
            config = DeliveryConfig(
                telegram_workers=workers_for(settings.telegram_rate), mail_workers=mail_workers
            )
        yield Delivery(
            store,
            telegram=telegram,
            mail=mail,
            tokens=Tokens(secret_key(settings)),
            mail_from=settings.mail_from,
            public_url=settings.public_base,
            pacer=pacer,
            config=config,
            metrics=metrics,
        )
