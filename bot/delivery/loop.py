"""The delivery loop: claims outbox rows in batches, sends them, and records every outcome.

One claimer per channel keeps a small local queue filled (most urgent first); workers take
rows from it and hand them to the senders (pacing, the transport call; `outcomes.classify`
decides what each result means); a flusher writes the outcomes back in batches. On stop nothing
new is claimed, rows not yet started go back to the queue, and sends in flight get
`stop_grace_s` to finish; those still unanswered then are cut short and queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.delivery.inflight import InFlight
from bot.delivery.outcomes import Outcomes, RetryPolicy, Verdict, classify, release
from bot.delivery.pacing import ChannelPause, Pacer
from bot.delivery.senders import BookSends, MailSender, TelegramSender
from bot.metrics import Metrics
from bot.models import Channel, ClaimedItem, ItemUpdate, OutboxStatus, Rendered
from bot.schedule import backoff
from bot.store import Store
from bot.tokens import Tokens
from bot.transports import MailTransport, TelegramTransport

log = logging.getLogger(__name__)

CUT_AGAIN_S = 0.1  # on stop, how often a send that was cut short but runs on is cut again


@dataclass(frozen=True)
class DeliveryConfig:
    """Tuning; the defaults suit production, tests shorten the waits."""

    telegram_workers: int = 32
    mail_workers: int = 8
    max_attempts: int = 8
    bounce_limit: int = 3  # hard failures before an address counts as bounced
    lease_s: float = 600.0
    # How often rows of vanished senders are given back: a process killed on another host
    # leaves its rows `sending` until then (and until it counts as gone).
    release_every_s: float = 10.0
    poll_s: float = 1.0
    flush_s: float = 0.05
    progress_log_s: float = 10.0
    retry_delay: Callable[[int], float] = field(default=backoff)
    # On stop, how long sends in flight may take to finish before they are cut short (and
    # queued again): well inside systemd's TimeoutStopSec=30 with the rest of shutdown.
    stop_grace_s: float = 10.0
    recover_on_start: bool = True  # False when another process may be delivering too


@dataclass
class _Lane:
    """One channel's local queue of claimed rows and its workers."""

    channel: Channel
    workers: int
    queue: asyncio.PriorityQueue[tuple[float, int, ClaimedItem | None]] = field(
        default_factory=asyncio.PriorityQueue
    )
    held: int = 0  # claimed and not yet written back
    done: int = 0  # finished, waiting to be written back
    room: asyncio.Event = field(default_factory=asyncio.Event)
    pause: ChannelPause = field(default_factory=ChannelPause)  # its server failed: claim nothing

    @property
    def capacity(self) -> int:
        # Enough claimed ahead that workers never starve; few enough to bound what a
        # crash can send twice and what a new breaking alert must wait behind.
        return self.workers + max(1, self.workers // 2)

    @property
    def step(self) -> int:
        # Rows claimed, and outcomes written back, at a time: the extra half claimed ahead.
        # Smaller steps cost a transaction per couple of emails and starve no one sooner.
        return max(1, self.workers // 2)


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
        return_path_domain: str | None = None,
        book_sends: BookSends | None = None,
        site_tz: ZoneInfo | None = None,
    ) -> None:
        """`book_sends`: where a pacer of the shared budget books its windows; `site_tz`:
        the zone of quiet hours for readers who set none (UTC if not given)."""
        self.store = store
        self.config = config = config or DeliveryConfig()
        self.outcomes = Outcomes(metrics=metrics)
        self._inflight = InFlight()
        self.policy = RetryPolicy(max_attempts=config.max_attempts, delay_s=config.retry_delay)
        self._lanes = {
            Channel.TELEGRAM: _Lane(Channel.TELEGRAM, config.telegram_workers),
            Channel.EMAIL: _Lane(Channel.EMAIL, config.mail_workers),
        }
        self.telegram = TelegramSender(
            store,
            telegram,
            pacer,
            self.outcomes,
            policy=self.policy,
            closing=lambda: self._closing,
            inflight=self._inflight,
            book_sends=book_sends,
            site_tz=site_tz,
        )
        self.mail = MailSender(
            store,
            mail,
            self.outcomes,
            policy=self.policy,
            tokens=tokens,
            mail_from=mail_from,
            public_url=public_url,
            bounce_limit=config.bounce_limit,
            pause=self._lanes[Channel.EMAIL].pause,
            inflight=self._inflight,
            return_path_domain=return_path_domain,
        )
        self._wake = asyncio.Event()
        self._closing = False
        self._outcomes: list[tuple[ClaimedItem, ItemUpdate]] = []
        self._flush_now = asyncio.Event()
        self._flusher_done = False
        self._payloads: dict[int, tuple[Rendered, int]] = {}
        self._active_jobs: dict[int, float] = {}  # job id → when we first saw it
        self._unfinished: set[int] = set()  # jobs whose finishing check failed; checked again
        self._last_expire = self._last_progress = 0.0

    @property
    def sent_total(self) -> int:
        return self.outcomes.sent_total

    def notify(self) -> None:
        """Something was queued: claim now instead of at the next poll."""
        self._payloads.clear()  # a correction may have replaced a job's payload (set_payload)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the sends in flight (cutting short those
        that outlast `stop_grace_s`) and return."""
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
            await self._stop_workers(workers)
            # The flusher ends after the write it may be in the middle of (cancelling it there
            # would drop that batch and leave its rows `sending`); then the last write.
            self._flusher_done = True
            self._flush_now.set()
            await asyncio.gather(flusher, return_exceptions=True)
            waker.cancel()
            await self._flush()
            log.info("delivery: stopped, %d sent since start", self.sent_total)

    async def _stop_workers(self, workers: list[asyncio.Task[None]]) -> None:
        if not workers:
            return
        grace_s = self.config.stop_grace_s
        _, busy = await asyncio.wait(workers, timeout=grace_s)
        if busy:
            cut = self._inflight.cut()
            log.warning(
                "delivery: %d sends unanswered after %.0fs; cut short and queued again "
                "(they may arrive twice)",
                cut,
                grace_s,
            )
        while busy:
            _, busy = await asyncio.wait(busy, timeout=CUT_AGAIN_S)
            if busy:
                self._inflight.cut()  # a cancellation lost inside a library: once more
        await asyncio.gather(*workers, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    # -- claiming ------------------------------------------------------------------------
    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.time()
            try:
                full = await self._claim_turn(now)
            except Exception:  # a locked or full database: keep going, rows are safe in it
                log.exception("delivery: claiming failed; trying again shortly")
                await self._sleep(self.config.poll_s)
                continue
            if full:
                await self._wait_room()
                continue
            await self._sleep(await self._next_wait(now))

    async def _claim_turn(self, now: float) -> bool:
        """Fill every lane's local queue; True if some lane got all it asked for."""
        if now - self._last_expire > min(self.config.lease_s / 4, self.config.release_every_s):
            self._last_expire = now
            await self.store.outbox.release_expired(now)
        full = False
        for lane in self._lanes.values():
            free = lane.capacity - lane.held
            if free < lane.step or lane.pause.paused(now):
                continue
            items = await self.store.outbox.claim(
                free, now=now, lease_s=self.config.lease_s, channel=lane.channel
            )
            lane.held += len(items)
            for item in items:
                self._active_jobs.setdefault(item.job_id, now)
                lane.queue.put_nowait((item.kind.priority, item.id, item))
            full = full or len(items) == free
        if now - self._last_progress > self.config.progress_log_s:
            self._last_progress = now
            await self._log_progress()
        return full

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
                update = self._internal_error(item, exc)
            self._outcomes.append((item, update))
            lane.done += 1
            if lane.done >= lane.step:
                # Enough finished to claim another batch: write back now, don't wait the tick.
                self._flush_now.set()

    async def _payload(self, job_id: int) -> tuple[Rendered, int]:
        """The job's messages and the payload revision they are (what the row records)."""
        cached = self._payloads.get(job_id)
        if cached is None:
            text, rev = await self.store.outbox.payload(job_id)
            cached = Rendered.decode(text), rev
            if len(self._payloads) > 64:
                self._payloads.clear()
            self._payloads[job_id] = cached
        return cached

    def _internal_error(self, item: ClaimedItem, exc: Exception) -> ItemUpdate:
        verdict: Verdict = classify(
            exc,
            channel=item.channel,
            attempts=item.attempts,
            flags=item.plain,
            now=time.time(),
            policy=self.policy,
        )
        return self.outcomes.ended(
            item, verdict, parts=item.parts_done, flags=item.plain, address=item.address
        )

    async def _deliver(self, item: ClaimedItem) -> ItemUpdate:
        if self._closing:
            return release(item)
        rendered, rev = await self._payload(item.job_id)
        if item.channel == Channel.EMAIL:
            update = await self.mail.deliver(item, rendered)
        else:
            update = await self.telegram.deliver(item, rendered)
        return replace(update, payload_rev=rev)

    async def _flush_loop(self) -> None:
        while not self._flusher_done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.config.flush_s)
            self._flush_now.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._outcomes = self._outcomes, []
        if not batch and not self._unfinished:
            return
        try:
            await self.store.outbox.apply([u for _, u in batch])
        except Exception:  # keep the outcomes and write them at the next tick
            log.exception("delivery: recording %d outcomes failed; retrying", len(batch))
            self._outcomes = batch + self._outcomes
            return
        # Written back: only now do these rows stop counting as in flight.
        for item, _ in batch:
            lane = self._lanes[item.channel]
            lane.held -= 1
            lane.done -= 1
        for lane in self._lanes.values():
            if lane.held <= lane.capacity - lane.step:
                lane.room.set()
        done_jobs = self._unfinished | {
            i.job_id for i, u in batch if u.status != OutboxStatus.QUEUED
        }
        try:
            finished = await self.store.outbox.finish_jobs(done_jobs, datetime.now(UTC))
        except Exception:  # only bookkeeping: the flusher must live on, or delivery stalls
            log.exception("delivery: marking jobs finished failed; trying again")
            self._unfinished = done_jobs
            return
        self._unfinished = set()
        for job in finished:
            started = self._active_jobs.pop(job.id, None)
            took = f" in {time.time() - started:.1f}s" if started else ""
            log.info(
                "delivery: job %d %s finished%s: %d sent, %d failed, %d cancelled",
                job.id,
                job.key,
                took,
                job.counts[OutboxStatus.SENT],
                job.counts[OutboxStatus.FAILED],
                job.counts[OutboxStatus.CANCELLED],
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
                    job.counts[OutboxStatus.SENT],
                    job.total,
                    job.counts[OutboxStatus.QUEUED],
                    job.counts[OutboxStatus.FAILED],
                )
