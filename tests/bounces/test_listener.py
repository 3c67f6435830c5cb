"""The bounce listener over real SMTP (smtplib) on 127.0.0.1, writing to a real SQLite store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bounces.listener import BounceHandler, BounceListener
from bot.metrics import Metrics
from bot.models import Channel, Kind, PlannedItem, ReportCounts, Status, Subscriber
from bot.store import Store, open_store
from bot.tokens import Purpose, Tokens
from tests.fakes.mail_reports import post, sample

DOMAIN = "bounces.example.org"
SECRET = "test-secret"
HARD = ["postfix-hard", "exim-hard", "gmail-hard"]
SOFT = ["postfix-soft", "exim-soft", "gmail-soft"]


@dataclass
class Listening:
    """A running listener, the store behind it and its metrics."""

    store: Store
    tokens: Tokens
    metrics: Metrics
    listener: BounceListener

    @property
    def port(self) -> int:
        return self.listener.port

    async def reader(self, address: str = "reader@example.com") -> Subscriber:
        return await self.store.subscribers.upsert(Channel.EMAIL, address)

    def verp(self, sub: Subscriber) -> str:
        return self.tokens.return_path(sub.id, DOMAIN)

    def unsubscribe_url(self, sub: Subscriber) -> str:
        return self.tokens.link("https://news.example.org", Purpose.UNSUBSCRIBE, sub.id)

    async def status(self, sub: Subscriber) -> Status:
        found = await self.store.subscribers.get_by_id(sub.id)
        assert found is not None
        return found.status

    def counted(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value("herald_mail_reports_total", {"kind": kind})
        return value or 0.0

    def dropped(self) -> float:
        return self.metrics.registry.get_sample_value("herald_mail_reports_dropped_total") or 0.0


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once `condition()` holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the server's state: polled)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def listening(tmp: Path, **options: int) -> AsyncIterator[Listening]:
    """A store in `tmp` and a listener for DOMAIN on 127.0.0.1:0, stopped on exit."""
    async with open_store(tmp / "herald.db") as store:
        tokens, metrics = Tokens(SECRET), Metrics()
        handler = BounceHandler(store, tokens, DOMAIN, metrics=metrics)
        listener = BounceListener(handler, "127.0.0.1", 0, **options)
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(listener.run(stop, started))
        await asyncio.wait_for(started.wait(), 10)
        try:
            yield Listening(store, tokens, metrics, listener)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Listening]:
    async with listening(tmp_path) as running:
        yield running


@pytest.mark.parametrize("name", HARD)
async def test_a_hard_bounce_marks_the_subscriber_bounced_at_once(
    rig: Listening, name: str
) -> None:
    """A Postfix, Exim or Gmail hard bounce to the VERP address: that reader is bounced."""
    sub, other = await rig.reader(), await rig.reader("other@example.com")
    answer = await post(rig.port, sample(name, return_path=rig.verp(sub)), rig.verp(sub))
    assert answer.code == 250
    assert await rig.status(sub) is Status.BOUNCED
    assert await rig.status(other) is Status.ACTIVE
    assert rig.counted("hard") == 1
    assert await rig.store.subscribers.report_counts() == ReportCounts(hard=1)


@pytest.mark.parametrize("name", SOFT)
async def test_three_soft_bounces_mark_the_subscriber_bounced(rig: Listening, name: str) -> None:
    """Two soft bounces leave the reader active; the third in a row marks them bounced."""
    sub = await rig.reader()
    for expected in (Status.ACTIVE, Status.ACTIVE, Status.BOUNCED):
        verp = rig.verp(sub)
        assert (await post(rig.port, sample(name, return_path=verp), verp)).code == 250
        assert await rig.status(sub) is expected
    assert rig.counted("soft") == 3


async def test_a_bounce_cancels_the_readers_queued_messages(rig: Listening) -> None:
    """Once bounced, the reader's rows still in the outbox are cancelled, not sent."""
    sub = await rig.reader()
    job_id, _ = await rig.store.outbox.create_job(
        "post:1", "post", "{}", title="t", now=datetime.now(UTC)
    )
    item = PlannedItem(
        key=f"post:1:email:{sub.id}",
        kind=Kind.POST,
        channel=Channel.EMAIL,
        subscriber_id=sub.id,
        address=sub.address,
    )
    await rig.store.outbox.add_items(job_id, [item])
    await post(rig.port, sample("postfix-hard"), rig.verp(sub))
    assert (await rig.store.outbox.totals())["cancelled"] == 1


async def test_a_yahoo_complaint_unsubscribes_the_reader(rig: Listening) -> None:
    """ARF sent to the feedback address: the Original-Mail-From token names the reader."""
    sub = await rig.reader("reader@yahoo.com")
    raw = sample("yahoo-complaint", return_path=rig.verp(sub), recipient=sub.address)
    assert (await post(rig.port, raw, f"fbl@{DOMAIN}")).code == 250
    assert await rig.status(sub) is Status.UNSUBSCRIBED
    assert rig.counted("complaint") == 1


async def test_a_redacted_aol_complaint_is_traced_by_its_unsubscribe_link(rig: Listening) -> None:
    """AOL hides the address; the signed unsubscribe link in the returned email names them."""
    sub = await rig.reader("reader@aol.com")
    raw = sample("aol-complaint-redacted", unsubscribe_url=rig.unsubscribe_url(sub))
    assert (await post(rig.port, raw, f"fbl@{DOMAIN}")).code == 250
    assert await rig.status(sub) is Status.UNSUBSCRIBED


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("out-of-office", "an auto-reply"),
        ("plain-reply", "neither a delivery report nor a complaint"),
        ("gmail-delay", "no failure"),
    ],
)
async def test_anything_else_changes_nothing_and_is_logged(
    rig: Listening, caplog: pytest.LogCaptureFixture, name: str, reason: str
) -> None:
    """An auto-reply, a reader's reply or a delay warning is accepted, dropped and logged once."""
    sub = await rig.reader()
    with caplog.at_level(logging.INFO, logger="bot.bounces"):
        answer = await post(rig.port, sample(name, return_path=rig.verp(sub)), rig.verp(sub))
    assert answer.code == 250
    assert await rig.status(sub) is Status.ACTIVE
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.bounces")]
    assert len(lines) == 1 and "dropped" in lines[0] and reason in lines[0]
    assert rig.dropped() == 1
    assert await rig.store.subscribers.report_counts() == ReportCounts()


async def test_mail_for_another_domain_is_refused_at_rcpt(rig: Listening) -> None:
    """The listener is no relay: a foreign recipient gets 550, and its mail is never taken."""
    sub = await rig.reader()
    answer = await post(rig.port, sample("postfix-hard"), "victim@example.net")
    assert answer.code == 550
    assert b"Relaying denied" in answer.refused["victim@example.net"][1]
    lookalike = f"bounce+x@{DOMAIN}.evil.example"
    assert (await post(rig.port, sample("postfix-hard"), lookalike)).code == 550
    assert await rig.status(sub) is Status.ACTIVE
    assert rig.dropped() == 0 and rig.counted("hard") == 0


async def test_only_the_foreign_recipient_is_refused_when_mixed(rig: Listening) -> None:
    """With one foreign and one own recipient, only the own one is taken (domain in any case)."""
    sub = await rig.reader()
    own = rig.verp(sub).replace(DOMAIN, DOMAIN.upper())
    answer = await post(rig.port, sample("exim-hard"), ["someone@example.net", own])
    assert answer.code == 250 and list(answer.refused) == ["someone@example.net"]
    assert await rig.status(sub) is Status.BOUNCED


async def test_a_forged_token_is_ignored_and_the_named_subscriber_used(rig: Listening) -> None:
    """A token signed with another key names nobody; Final-Recipient, a subscriber, is used."""
    victim, named = await rig.reader("victim@example.com"), await rig.reader()
    forged = Tokens("not-our-secret").return_path(victim.id, DOMAIN)
    answer = await post(rig.port, sample("postfix-hard", return_path=forged), forged)
    assert answer.code == 250
    assert await rig.status(victim) is Status.ACTIVE
    assert await rig.status(named) is Status.BOUNCED


async def test_a_forged_token_for_an_unknown_address_changes_nothing(
    rig: Listening, caplog: pytest.LogCaptureFixture
) -> None:
    """Forged token, and Final-Recipient is nobody's address: dropped with a log line."""
    victim = await rig.reader("victim@example.com")
    forged = Tokens("not-our-secret").return_path(victim.id, DOMAIN)
    raw = sample("postfix-hard", return_path=forged, recipient="stranger@example.com")
    with caplog.at_level(logging.INFO, logger="bot.bounces"):
        assert (await post(rig.port, raw, forged)).code == 250
    assert await rig.status(victim) is Status.ACTIVE
    assert any("names no subscriber" in r.getMessage() for r in caplog.records)
    assert await rig.store.subscribers.report_counts() == ReportCounts()


async def test_a_report_without_a_token_falls_back_to_a_known_recipient(rig: Listening) -> None:
    """Sent to a plain address at the domain: Final-Recipient, a subscriber's, is marked."""
    sub = await rig.reader()
    raw = sample("gmail-hard", return_path=f"news@{DOMAIN}")
    assert (await post(rig.port, raw, f"postmaster@{DOMAIN}")).code == 250
    assert await rig.status(sub) is Status.BOUNCED


async def test_an_oversize_message_is_refused(rig: Listening) -> None:
    """Over the 1 MB cap the message is refused with 552 and nothing is recorded."""
    sub = await rig.reader()
    padding = b"".join(b"x" * 76 + b"\r\n" for _ in range(14_000))  # about 1.1 MB
    raw = sample("postfix-hard") + padding
    answer = await post(rig.port, raw, rig.verp(sub))
    assert answer.code == 552
    assert await rig.status(sub) is Status.ACTIVE


async def test_connections_over_the_limit_are_told_to_come_back(tmp_path: Path) -> None:
    """With two sessions open, a third connection gets 421 and is closed."""
    async with listening(tmp_path, max_connections=2) as rig:
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
            assert (await reader.readline()).startswith(b"220")
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        assert (await reader.readline()).startswith(b"421")
        assert await reader.read() == b""
        writer.close()
        for w in held:
            w.close()
            await w.wait_closed()
        # Once they are gone, a new session is served again.
        await until(lambda: rig.listener.sessions == 0)
        sub = await rig.reader()
        assert (await post(rig.port, sample("postfix-hard"), rig.verp(sub))).code == 250
        assert await rig.status(sub) is Status.BOUNCED
