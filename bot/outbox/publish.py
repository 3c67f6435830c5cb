"""Publishing: turns a post or a broadcast into one durable outbox job and its rows (the
readers' digests are planned by `bot.outbox.digest` through this Publisher)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bot.metrics import Metrics
from bot.models import Audience, Channel, EmailMessage, Kind, Post, Rendered, Status, Subscriber
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.render.renderer import Renderer
from bot.store import Store

log = logging.getLogger(__name__)


class Publisher:
    """Queues messages in the outbox; `wake` tells this process's delivery loop to look at
    once, and the store's cluster tells every other process on the database."""

    def __init__(
        self,
        store: Store,
        renderer: Renderer,
        *,
        stand_ins: tuple[Channel, ...] = (),
        channel: str | None = None,
        wake: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.renderer = renderer
        # Channels sent through the files transport: a virtual recipient per channel gets
        # every message, so a new post always shows up under outbox/.
        self.outbox_channels = stand_ins
        self.channel = channel  # HERALD_TELEGRAM_CHANNEL: gets every new post
        self.wake = wake
        self.metrics = metrics

    def _virtual(self, *, channel_post: bool) -> list[Recipient]:
        out = [Recipient(channel=c, address=plan.OUTBOX_ADDRESS[c]) for c in self.outbox_channels]
        if channel_post and self.channel:
            out.append(Recipient(channel=Channel.TELEGRAM, address=self.channel))
        return out

    def stand_in_recipients(self) -> list[Recipient]:
        """The outbox-mode virtual recipients of digests and broadcasts (not the channel)."""
        return self._virtual(channel_post=False)

    async def _fan_out(
        self,
        key: str,
        kind: Kind,
        rendered: Rendered,
        title: str,
        audience: Audience,
        extra: list[Recipient],
        now: datetime,
        topics: tuple[str, ...] | None = None,
    ) -> tuple[int, int, int]:
        """Create the job (once) and its rows (once each): subscribers planned inside the
        database (a million never cross the wire), then the stand-ins in `extra`.

        Returns (job id, rows added for subscribers, rows added for the stand-ins in `extra`).
        """
        outbox = self.store.outbox
        job_id, created = await outbox.create_job(
            key, kind.value, rendered.encode(), title=title, now=now
        )
        if not created:
            log.info("publish: job %s exists; adding only missing recipients", key)
        to_subscribers = 0
        channels = plan.channels_with_content(rendered)
        async for added in outbox.fan_out(job_id, key, kind, channels, audience, topics=topics):
            self.count_queued(kind, added)
            if not to_subscribers and any(added.values()):  # the first rows go out at once
                await self.queued()
            to_subscribers += sum(added.values())
        # The stand-ins go in last, on their own, so what the admin sees counts people only.
        to_stand_ins = 0
        if extra:
            items = list(plan.rows_for(key, kind, rendered, extra))
            to_stand_ins = await outbox.add_items(job_id, items)
            self.count_queued(kind, {c: sum(1 for i in items if i.channel == c) for c in Channel})
        await outbox.mark_planned(job_id)
        log.info(
            "publish: job %d %s queued for %d subscribers (+%d stand-ins)",
            job_id,
            key,
            to_subscribers,
            to_stand_ins,
        )
        await self.queued()
        return job_id, to_subscribers, to_stand_ins

    def count_queued(self, kind: Kind, added: dict[Channel, int]) -> None:
        """Rows queued, per channel, in the metrics."""
        if self.metrics is not None:
            for channel, n in added.items():
                if n:
                    self.metrics.job_queued(channel.value, kind.value, n)

    async def queued(self) -> None:
        """Rows were queued: delivery here and in every other process claims them now."""
        self.wake()
        try:
            await self.store.cluster.notify()
        except Exception as exc:  # the rows are safe; other processes find them at their poll
            log.warning("publish: could not wake the other processes (%s)", exc)

    async def announce(self, post: Post, post_id: int | None = None) -> int:
        """A new post: breaking alert or every-post notice, plus the channel; rows queued."""
        kind = plan.post_kind(post.breaking)
        rendered = self.renderer.post(post, kind)
        ident = str(post_id) if post_id is not None else _digest_of(post.fingerprint)
        _, to_subscribers, to_stand_ins = await self._fan_out(
            f"post:{ident}",
            kind,
            rendered,
            post.title,
            plan.post_audience(post.breaking),
            self._virtual(channel_post=True),
            datetime.now(UTC),
            plan.post_topics(post),
        )
        return to_subscribers + to_stand_ins

    async def count_broadcast_recipients(self) -> int:
        """How many subscribers a broadcast would reach now (as `broadcast` will count them)."""
        counts = await self.store.subscribers.counts()
        return sum(n for (_, status), n in counts.items() if status == Status.ACTIVE.value)

    async def broadcast(self, html: str, *, admin_id: int) -> int:
        """An admin's confirmed broadcast to every active subscriber; returns subscribers queued.

        Outbox-mode stand-ins get it too but are not counted: the admin was promised the
        number `count_broadcast_recipients` gave, which counts people.
        """
        now = datetime.now(UTC)
        rendered = Rendered(
            telegram=self.renderer.broadcast_messages(html),
            email=self.renderer.broadcast_email(html),
        )
        key = f"broadcast:{admin_id}:{now:%Y%m%dT%H%M%S%f}"
        _, to_subscribers, _ = await self._fan_out(
            key,
            Kind.BROADCAST,
            rendered,
            "broadcast",
            Audience.EVERYONE,
            self._virtual(channel_post=False),
            now,
        )
        return to_subscribers

    async def send_confirmation(self, subscriber: Subscriber, token_url: str) -> None:
        """The double opt-in email for a pending subscriber, sent ahead of everything else."""
        now = datetime.now(UTC)
        email: EmailMessage = self.renderer.confirm_email(
            token_url, breaking=subscriber.breaking, daily=subscriber.daily
        )
        key = f"confirm:{subscriber.id}:{now:%Y%m%dT%H%M%S%f}"
        rendered = Rendered(email=email)
        job_id, _ = await self.store.outbox.create_job(
            key, Kind.CONFIRM.value, rendered.encode(), title="confirm", now=now
        )
        await self.store.outbox.add_items(
            job_id, plan.rows_for(key, Kind.CONFIRM, rendered, [Recipient.of(subscriber)])
        )
        await self.store.outbox.mark_planned(job_id)
        await self.queued()

    async def retry_failed(self, job_id: int | None = None) -> int:
        """Resend to those who missed it: failed rows (of one job, or all) are queued again."""
        count = await self.store.outbox.retry_failed(
            now=datetime.now(UTC).timestamp(), job_id=job_id
        )
        log.info("publish: %d failed sends queued again", count)
        await self.queued()
        return count


def _digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
