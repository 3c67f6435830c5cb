"""A failing mail server is not a failing address: email waits as a whole, nobody bounces."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.delivery.mail import outgoing
from bot.errors import DeliveryError, PermanentError, RelayError, TransientError
from bot.models import Channel, OutboxStatus, OutgoingMail, Status
from bot.transports.smtp import SmtpConfig, SmtpPool, parse_smtp_url
from tests.fakes.smtp_server import SmtpServer
from tests.support.delivery import FAST, make_post, make_settings, running

ADDRESSES = [f"reader{n}@example.org" for n in range(1, 6)]
# How the relay refuses everyone: which fault of the fake server, and its answer.
RELAY_FAULTS = {
    "greeting": ("greeting", "554 5.7.1 fake.smtp.local: our IP is blocked"),
    "mail-from": ("mail_answer", "553 5.7.1 sender address rejected: blocked"),
    "every-rcpt": ("rcpt_answer", "554 5.7.1 <{address}>: client host blocked"),
    "data": ("data_answer", "554 5.7.1 message refused: relay blocked"),
}


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Return once `condition()` holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (state of another server: polled)
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("stage", list(RELAY_FAULTS))
async def test_relay_refusing_everyone_bounces_nobody(
    tmp_path: Path, stage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three posts while the relay refuses everyone bounce no address and spend no attempt;
    an ERROR names the relay, and once it is fixed all five get every post."""
    fault, answer = RELAY_FAULTS[stage]
    async with SmtpServer() as server:
        setattr(server.handler, fault, answer)
        settings = make_settings(tmp_path, smtp_url=server.url + "?pool=2")
        async with running(settings) as rig:
            for address in ADDRESSES:
                await rig.store.subscribers.upsert(Channel.EMAIL, address)
            for n in (1, 2, 3):
                await rig.publisher.announce(make_post(n, breaking=True), post_id=n)
            await until(lambda: server.handler.refused >= 12)  # refused again after pauses
            for address in ADDRESSES:
                reader = await rig.store.subscribers.get(Channel.EMAIL, address)
                assert reader is not None and reader.status is Status.ACTIVE, address
            totals = await rig.store.outbox.totals()
            assert totals[OutboxStatus.FAILED] == totals[OutboxStatus.CANCELLED] == 0
            setattr(server.handler, fault, None)  # the relay is fixed
            await rig.publisher.announce(make_post(4, breaking=True), post_id=4)
            totals = await rig.drained()
        assert totals[OutboxStatus.FAILED] == totals[OutboxStatus.CANCELLED] == 0
        for address in ADDRESSES:
            assert server.handler.to().count(address) == 4, address
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("SMTP server" in r.getMessage() and "5.7.1" in r.getMessage() for r in alerts)


def outgoing_mail(to: str) -> OutgoingMail:
    msg = EmailMessage()
    msg["From"] = "News <news@example.org>"
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg.set_content("body")
    return outgoing(msg)


@pytest.mark.parametrize(
    ("fault", "answer", "error", "deactivate"),
    [
        ("greeting", "554 5.7.1 blocked", RelayError, False),
        ("greeting", "421 4.3.2 try later", RelayError, False),
        ("mail_answer", "553 5.7.1 sender rejected", RelayError, False),
        ("data_answer", "554 5.7.1 blocked", RelayError, False),
        ("data_answer", "451 4.3.0 local error", RelayError, False),
        ("rcpt_answer", "554 5.7.1 <{address}>: client host blocked", RelayError, False),
        ("rcpt_answer", "451 4.7.1 <{address}>: blocked for now", RelayError, False),
        ("one_rcpt", "554 5.7.1 <{address}>: this recipient refuses you", PermanentError, True),
        ("one_rcpt", "550 5.1.1 <{address}>: no such user", PermanentError, True),
        ("one_rcpt", "552 5.2.2 mailbox full", PermanentError, True),
        ("one_rcpt", "450 4.2.1 mailbox busy", TransientError, False),
    ],
)  # fmt: skip
async def test_failures_of_the_server_are_relay_errors(
    fault: str, answer: str, error: type[Exception], deactivate: bool
) -> None:
    """Refusals of the greeting, MAIL FROM, DATA or of every recipient alike are RelayErrors;
    a refusal of one recipient alone is that address's error."""
    async with SmtpServer() as server:
        if fault == "one_rcpt":
            server.handler.faults["a@example.org"].append(answer.format(address="a@example.org"))
        else:
            setattr(server.handler, fault, answer)
        config = SmtpConfig("127.0.0.1", server.port, pool_size=1, start_tls=False)
        async with SmtpPool(config) as pool:
            with pytest.raises(DeliveryError) as info:
                await pool.send(outgoing_mail("a@example.org"))
            assert type(info.value) is error, info.value
            assert getattr(info.value, "deactivate", False) is deactivate
            setattr(server.handler, fault, None)
            await pool.send(outgoing_mail("b@example.org"))  # the pool works on after it
        assert server.handler.to() == ["b@example.org"]
        assert "a@example.org" not in [str(m["To"]) for m in server.handler.messages]


async def test_unreachable_server_is_a_relay_error() -> None:
    """No server listening is the server's failure: a RelayError, retried for all email."""
    async with SmtpServer() as server:
        port = server.port
    config = SmtpConfig("127.0.0.1", port, pool_size=1, start_tls=False, timeout_s=2)
    async with SmtpPool(config) as pool:
        with pytest.raises(RelayError, match="unreachable"):
            await pool.send(outgoing_mail("a@example.org"))


async def test_stop_while_the_server_hangs_puts_the_email_back(tmp_path: Path) -> None:
    """Stopping while the server never answers DATA returns, and every email is queued
    again: none failed, sent, left `sending` or charged an attempt."""
    async with SmtpServer() as server:
        server.handler.hold_data = True
        settings = make_settings(tmp_path, smtp_url=server.url + "?pool=2")
        async with running(settings, replace(FAST, stop_grace_s=0.2)) as rig:
            for address in ADDRESSES:
                await rig.store.subscribers.upsert(Channel.EMAIL, address)
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            await server.handler.data_started.wait()
            rig.stop.set()
            await rig.task
            totals = await rig.store.outbox.totals()
            assert totals[OutboxStatus.QUEUED] == len(ADDRESSES)
            assert totals[OutboxStatus.SENDING] == totals[OutboxStatus.FAILED] == 0
            rows = await rig.store.outbox.claim(
                10, now=time.time() + 86_400, lease_s=60, channel=Channel.EMAIL
            )
            assert sorted((r.address, r.attempts) for r in rows) == [(a, 0) for a in ADDRESSES]
        assert server.handler.messages == []


async def test_a_server_that_stops_answering_is_a_relay_error() -> None:
    """A server that never answers DATA fails the send after the step timeout, as the
    server's failure, and the pool opens a fresh connection for the next message."""
    async with SmtpServer() as server:
        server.handler.hold_data = True
        config = parse_smtp_url(server.url + "?timeout=0.3&pool=1")
        async with SmtpPool(config) as pool:
            with pytest.raises(RelayError, match="did not answer"):
                await pool.send(outgoing_mail("a@example.org"))
            server.handler.hold_data = False
            await pool.send(outgoing_mail("b@example.org"))
        assert server.handler.to() == ["b@example.org"]
        assert server.connections == 2


async def test_a_success_clears_the_hard_failures(tmp_path: Path) -> None:
    """552 on posts 1, 3 and 5 with posts 2 and 4 delivered in between leaves a live reader
    active: a success starts the count of hard failures afresh."""
    reader = "full@example.org"
    async with SmtpServer() as server:
        settings = make_settings(tmp_path, smtp_url=server.url)
        async with running(settings) as rig:
            await rig.store.subscribers.upsert(Channel.EMAIL, reader)
            for n in range(1, 6):
                if n % 2:
                    server.handler.faults[reader].append("552 5.2.2 mailbox full")
                await rig.publisher.announce(make_post(n, breaking=True), post_id=n)
                await rig.drained()
            subscriber = await rig.store.subscribers.get(Channel.EMAIL, reader)
            assert subscriber is not None and subscriber.status is Status.ACTIVE
        assert server.handler.to() == [reader, reader]


async def test_no_password_in_clear_unless_the_url_says_so(tmp_path: Path) -> None:
    """A server offering AUTH without STARTTLS gets no AUTH: the send fails with an error
    naming the fix; with `auth_without_tls=true` the login and the mail go through."""
    async with SmtpServer(auth=True) as server:
        url = f"smtp://news:s3cret@127.0.0.1:{server.port}"
        async with SmtpPool(parse_smtp_url(url)) as pool:
            with pytest.raises(RelayError, match="auth_without_tls=true") as info:
                await pool.send(outgoing_mail("a@example.org"))
            assert "s3cret" not in str(info.value)
        assert server.handler.logins == [] and server.handler.messages == []
        async with SmtpPool(parse_smtp_url(url + "?auth_without_tls=true")) as pool:
            await pool.send(outgoing_mail("a@example.org"))
        assert [login[1:] for login in server.handler.logins] == [("news", "s3cret")]
        assert server.handler.to() == ["a@example.org"]


async def test_password_goes_over_starttls(tmp_path: Path) -> None:
    """With no `starttls` option the pool upgrades to TLS when offered, then logs in."""
    tls = SmtpServer.self_signed(tmp_path)
    if tls is None:
        pytest.skip("needs the openssl command to make a certificate")
    async with SmtpServer(tls=tls) as server:
        url = f"smtp://news:s3cret@127.0.0.1:{server.port}?verify=false"
        async with SmtpPool(parse_smtp_url(url)) as pool:
            await pool.send(outgoing_mail("a@example.org"))
        assert [login[1:] for login in server.handler.logins] == [("news", "s3cret")]
        assert server.handler.to() == ["a@example.org"]
