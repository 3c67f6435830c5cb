"""The delivery loop over recording transports: what each scripted outcome does to a row."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bot.delivery.loop import Delivery, DeliveryConfig
from bot.delivery.pacing import Pacer
from bot.errors import TimedOutError, TransientError
from bot.models import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    Channel,
    ClaimedItem,
    EmailMessage,
    Kind,
    OutboxStatus,
    Rendered,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.store import Store, open_store
from bot.tokens import Tokens
from tests.fakes.transports import RecordingMail, RecordingTelegram
from tests.support.delivery import FAST

RENDERED = Rendered(
    telegram=(TelegramMessage(method="sendMessage", text="<b>News</b>"),),
    email=EmailMessage(
        subject="News",
        html=f'<p>News <a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a> {PREFERENCES_PLACEHOLDER}</p>',
        text=f"News {UNSUBSCRIBE_PLACEHOLDER} {PREFERENCES_PLACEHOLDER}",
    ),
)


@dataclass
class Loop:
    store: Store
    delivery: Delivery
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def drained(self, timeout_s: float = 20.0) -> dict[OutboxStatus, int]:
        """Wait until nothing is queued or sending; the totals per status."""
        async with asyncio.timeout(timeout_s):
            while True:
                totals = await self.store.outbox.totals()
                if totals[OutboxStatus.QUEUED] == 0 and totals[OutboxStatus.SENDING] == 0:
                    return totals
                await asyncio.sleep(0.02)

    async def queued(self, channel: Channel) -> list[ClaimedItem]:
        """The rows still queued on `channel`, however far off they are due (delivery stopped)."""
        return await self.store.outbox.claim(
            100, now=time.time() + 86_400 * 365, lease_s=1, channel=channel
        )


@asynccontextmanager
async def loop(
    tmp_path: Path,
    telegram: RecordingTelegram,
    mail: RecordingMail,
    config: DeliveryConfig = FAST,
    pacer: Pacer | None = None,
) -> AsyncIterator[Loop]:
    """A store in `tmp_path` and a Delivery over the recording transports, running."""
    async with open_store(tmp_path / "herald.db") as store:
        delivery = Delivery(
            store,
            telegram=telegram,
            mail=mail,
            tokens=Tokens("test-secret"),
            mail_from="News <news@example.org>",
            public_url="https://news.example.org",
            pacer=pacer,
            config=config,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(delivery.run(stop))
        try:
            yield Loop(store, delivery, stop, task)
        finally:
            stop.set()
            await task


async def queue(
    store: Store, key: str, chats: Iterable[str] = (), addresses: Iterable[str] = ()
) -> None:
    """Queue RENDERED for these chats and addresses, as the publisher would."""
    job_id, _ = await store.outbox.create_job(
        key, "broadcast", RENDERED.encode(), title=key, now=datetime.now(UTC)
    )
    recipients = []
    for channel, address in [(Channel.TELEGRAM, c) for c in chats] + [
        (Channel.EMAIL, a) for a in addresses
    ]:
        recipients.append(Recipient.of(await store.subscribers.upsert(channel, address)))
    await store.outbox.add_items(job_id, plan.rows_for(key, Kind.BROADCAST, RENDERED, recipients))
    await store.outbox.mark_planned(job_id)


async def test_transient_failures_are_retried_and_each_recipient_gets_one(tmp_path: Path) -> None:
    """A transient failure on either channel is retried, and each recipient gets one message."""
    telegram, mail = RecordingTelegram(), RecordingMail()
    telegram.errors["2"].append(TransientError("Telegram unreachable"))
    mail.errors["b@example.org"].append(TransientError("SMTP 451 greylisted"))
    async with loop(tmp_path, telegram, mail) as rig:
        await queue(rig.store, "b1", chats=["1", "2"], addresses=["a@example.org", "b@example.org"])
        rig.delivery.notify()
        totals = await rig.drained()
    assert totals[OutboxStatus.SENT] == 4
    assert sorted(to for to, _ in telegram.sent) == ["1", "2"]
    assert sorted(to for to, _ in mail.sent) == ["a@example.org", "b@example.org"]
    assert (telegram.calls_to("2"), mail.calls_to("b@example.org")) == (2, 2)


async def test_stop_cuts_short_a_send_that_never_returns(tmp_path: Path) -> None:
    """On stop, a Telegram send still unanswered after the grace is cut short and its row
    queued again as it was; the email sent meanwhile stays sent."""
    telegram, mail = RecordingTelegram(), RecordingMail()
    telegram.hang = True
    async with loop(tmp_path, telegram, mail, replace(FAST, stop_grace_s=0.1)) as rig:
        await queue(rig.store, "b1", chats=["7"], addresses=["a@example.org"])
        rig.delivery.notify()
        await telegram.wait_for(lambda: telegram.calls_to("7") == 1)
        await mail.wait_for(lambda: len(mail.sent) == 1)
        rig.stop.set()
        await rig.task
        [row] = await rig.queued(Channel.TELEGRAM)
        assert (row.address, row.attempts, row.parts_done) == ("7", 0, 0)
        totals = await rig.store.outbox.totals()
        assert (totals[OutboxStatus.SENT], totals[OutboxStatus.FAILED]) == (1, 0)


async def test_timed_out_send_is_retried_with_an_attempt_spent(tmp_path: Path) -> None:
    """A Telegram send that timed out is a retry after at least the time waited, with an
    attempt spent; it is no 429: the pacer does not pause the other chats."""
    telegram, mail, pacer = RecordingTelegram(), RecordingMail(), Pacer(30.0)
    telegram.errors["5"].append(TimedOutError("Telegram did not answer in time", 30.0))
    async with loop(tmp_path, telegram, mail, pacer=pacer) as rig:
        await queue(rig.store, "b1", chats=["5"])
        rig.delivery.notify()
        await telegram.wait_for(lambda: telegram.calls_to("5") == 1)
        rig.stop.set()
        await rig.task
        [row] = await rig.queued(Channel.TELEGRAM)
        assert (row.address, row.attempts) == ("5", 1)
    assert pacer.reserve("6", time.time()).granted
    assert telegram.sent_to("5") == []
