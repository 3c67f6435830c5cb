"""Herald mails a post with each reader's VERP return path; the reports for it come back.

One test runs the real `herald run` (subprocess) against an aiosmtpd sink; one runs the
delivery engine in-process with the listener, for soft bounces around a delivered post.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx

from bot.bounces.listener import BounceHandler, BounceListener
from bot.models import Channel, ReportCounts, Status
from bot.store import Store
from bot.tokens import Purpose, Tokens, return_path_token
from tests.fakes.mail_reports import post, sample
from tests.fakes.smtp_sink import SmtpSink
from tests.support.acceptance import Herald, free_port, post_text, recent
from tests.support.delivery import make_post, make_settings, running

DOMAIN = "bounces.example.org"
ARRIVAL_S = 10.0  # watcher debounce plus delivery, on busy cores
READERS = (
    "channel,address,breaking,daily\nemail,gone@example.com,1,1\nemail,stays@example.com,1,1\n"
)


async def test_a_bounce_for_a_sent_post_stops_the_next_one(tmp_path: Path) -> None:
    """herald run mails a post from bounce+<token>@domain; the DSN for it marks that reader
    bounced (counted in /metrics, the listener up in /healthz) and the next post skips them."""
    herald = Herald(tmp_path)
    source = tmp_path / "readers.csv"
    source.write_text(READERS, encoding="utf-8")
    code, _, err = await herald.cli("subscribers", "import", str(source))
    assert code == 0, err
    bounce_port = free_port()
    env = {
        "HERALD_BOUNCE_LISTEN": f"127.0.0.1:{bounce_port}",
        "HERALD_BOUNCE_DOMAIN": DOMAIN,
        "HERALD_MAIL_FROM": "News <news@example.org>",
    }
    async with SmtpSink() as sink, herald.run(HERALD_SMTP_URL=sink.url, **env) as run:
        herald.write_post(
            f"{recent():%Y-%m-%d}-storm.md",
            post_text("Breaking: Storm warning", "Stay inside.", recent()),
        )
        await sink.wait_for(lambda m: "gone@" in str(m["To"]), ARRIVAL_S)
        await sink.wait_for(lambda m: "stays@" in str(m["To"]), ARRIVAL_S)
        senders = {rcpt[0]: sender for sender, rcpt in sink.envelopes}
        verp = senders["gone@example.com"]
        assert verp.startswith("bounce+") and verp.endswith(f"@{DOMAIN}")
        assert return_path_token(verp, DOMAIN) is not None
        assert senders["stays@example.com"] != verp  # one return path per reader
        mail = sink.to("gone@example.com")[0]
        link = str(mail["List-Unsubscribe"]).strip("<>")
        dsn = sample(
            "postfix-hard", return_path=verp, recipient="gone@example.com", unsubscribe_url=link
        )
        assert (await post(bounce_port, dsn, verp)).code == 250
        await run.wait_line(lambda line: "hard bounce" in line and "gone@example.com" in line)
        async with httpx.AsyncClient(base_url=herald.public_url) as client:
            health = (await client.get("/healthz")).text
            metrics = (await client.get("/metrics")).text
        assert "bounces: up" in health
        assert 'herald_up{part="bounces"} 1.0' in metrics
        assert 'herald_mail_reports_total{kind="hard"} 1.0' in metrics

        count = len(sink.messages)
        herald.write_post(
            f"{recent():%Y-%m-%d}-storm-over.md",
            post_text("Breaking: Storm over", "All clear.", recent(0.5)),
        )
        await sink.wait_for(lambda m: "Storm over" in str(m["Subject"]), ARRIVAL_S)
        assert await run.stop() == 0
    assert [str(m["To"]) for m in sink.messages[count:]] == ["stays@example.com"]
    code, listed, _ = await herald.cli("subscribers", "list", "--status", "bounced")
    assert "gone@example.com" in listed and "stays@" not in listed


@asynccontextmanager
async def listener_on(store: Store, tokens: Tokens) -> AsyncIterator[int]:
    listener = BounceListener(BounceHandler(store, tokens, DOMAIN), "127.0.0.1", 0)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(listener.run(stop, started))
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield listener.port
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def arrived(raw: bytes, when: datetime) -> bytes:
    """The Postfix soft bounce with its Arrival-Date (when the relay took the email) set."""
    old = b"Arrival-Date: Mon, 12 Jan 2026 09:00:03 +0000 (UTC)"
    assert old in raw
    return raw.replace(old, b"Arrival-Date: " + format_datetime(when).encode())


async def test_a_post_delivered_between_soft_bounces_keeps_the_reader(tmp_path: Path) -> None:
    """Two soft bounces for older emails, then a post the relay takes and nothing bounces:
    the next soft bounce starts a new row, and the reader stays subscribed."""
    async with SmtpSink() as sink:
        settings = make_settings(tmp_path, smtp_url=sink.url, mail_from="News <news@example.org>")
        async with running(settings) as rig, listener_on(rig.store, Tokens("test-secret")) as port:
            sub = await rig.store.subscribers.upsert(Channel.EMAIL, "reader@example.com")
            now = datetime.now(UTC)
            for days in (3, 2):  # reports without a token: Final-Recipient names the reader
                raw = arrived(sample("postfix-soft"), now - timedelta(days=days))
                assert (await post(port, raw, f"postmaster@{DOMAIN}")).code == 250
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            await rig.drained()
            assert len(sink.to("reader@example.com")) == 1
            later = datetime.now(UTC) + timedelta(seconds=1)  # an email sent after the post
            raw = arrived(sample("postfix-soft"), later)
            assert (await post(port, raw, f"postmaster@{DOMAIN}")).code == 250
            found = await rig.store.subscribers.get_by_id(sub.id)
            assert found is not None and found.status is Status.ACTIVE
            assert await rig.store.subscribers.report_counts() == ReportCounts(soft=3)


async def test_each_reader_gets_a_return_path_naming_them_on_both_mail_paths(
    tmp_path: Path,
) -> None:
    """With a listener, the fan-out and the full personalize path (a quoted local part) both
    send from bounce+<token>@domain, each token reading back as its reader's id."""
    tokens = Tokens("test-secret")
    async with SmtpSink() as sink:
        settings = make_settings(
            tmp_path,
            smtp_url=sink.url,
            mail_from="News <news@example.org>",
            bounce_listen="127.0.0.1:0",
            bounce_domain=DOMAIN,
        )
        async with running(settings) as rig:
            subs = [
                await rig.store.subscribers.upsert(Channel.EMAIL, address)
                for address in ("ascii@example.com", '"john doe"@example.com')
            ]
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            await rig.drained()
    senders = {rcpt[0]: sender for sender, rcpt in sink.envelopes}
    for sub in subs:
        token = return_path_token(senders[sub.address], DOMAIN)
        assert token is not None
        assert tokens.read(Purpose.BOUNCE, token) == sub.id


async def test_without_a_listener_the_return_path_is_the_from_address(tmp_path: Path) -> None:
    """No HERALD_BOUNCE_LISTEN: nobody would read the reports, so mail goes out as before."""
    async with SmtpSink() as sink:
        settings = make_settings(tmp_path, smtp_url=sink.url, mail_from="News <news@example.org>")
        async with running(settings) as rig:
            await rig.store.subscribers.upsert(Channel.EMAIL, "reader@example.com")
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            await rig.drained()
    assert sink.envelopes == [("news@example.org", ["reader@example.com"])]
