"""Email through a real aiosmtpd server: URL parsing, connection reuse, 4xx and 5xx."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.commands.check import check
from bot.delivery.bulkmail import BulkMail
from bot.delivery.mail import outgoing, personalize
from bot.errors import ConfigError, PermanentError, RelayError, TransientError
from bot.models import PREFERENCES_PLACEHOLDER as PREFS
from bot.models import UNSUBSCRIBE_PLACEHOLDER as UNSUB
from bot.models import Channel, OutgoingMail, Status
from bot.models import EmailMessage as RenderedEmail
from bot.settings import load_settings
from bot.transports.smtp import SmtpConfig, SmtpPool, parse_smtp_url
from tests.fakes.smtp_server import SmtpServer
from tests.support.delivery import make_settings, running


def mail(to: str, subject: str = "Hello") -> OutgoingMail:
    msg = EmailMessage()
    msg["From"] = "News <news@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("body")
    return outgoing(msg)


def parse(data: bytes) -> EmailMessage:
    """Bytes back to a message, to compare the fast path with personalize."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password", "use_tls", "start_tls"),
    [
        ("smtp://user:pass@mail.example.org:587?starttls=true", "mail.example.org", 587,
         "user", "pass", False, True),
        ("smtps://u%40x:p%2Fw@mail.example.org", "mail.example.org", 465, "u@x", "p/w",
         True, False),
        ("smtp://localhost:2525", "localhost", 2525, None, None, False, None),
        ("smtp://localhost?starttls=false", "localhost", 25, None, None, False, False),
        ("smtp://localhost?starttls=true", "localhost", 587, None, None, False, True),
    ],
)  # fmt: skip
def test_parse_smtp_url(
    url: str,
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    use_tls: bool,
    start_tls: bool | None,
) -> None:
    """HERALD_SMTP_URL picks host, port, credentials and STARTTLS/SSL as documented."""
    c = parse_smtp_url(url)
    assert (c.host, c.port, c.username, c.password) == (host, port, user, password)
    assert (c.use_tls, c.start_tls) == (use_tls, start_tls)
    assert "pass" not in repr(c) or password is None


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.org", "smtp://", "smtps://h?starttls=true", "smtp://h?starttls=maybe",
     "smtp://h?pool=0", "smtp://h?timeout=0", "smtp://h?timeout=soon",
     "smtp://u:p@h?starttls=false", "smtp://u:p@h?auth_without_tls=maybe"],
)  # fmt: skip
def test_parse_smtp_url_refuses(url: str) -> None:
    """A malformed HERALD_SMTP_URL is a configuration error naming the variable."""
    with pytest.raises(ConfigError, match="HERALD_SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize(
    ("url", "needs_tls", "insecure"),
    [
        ("smtp://u:p@h:587", True, False),
        ("smtp://u:p@h:587?starttls=true", False, False),
        ("smtps://u:p@h", False, False),
        ("smtp://h:25", False, False),
        ("smtp://u:p@h:25?starttls=false&auth_without_tls=true", False, True),
    ],
)
def test_parse_smtp_url_password_protection(url: str, needs_tls: bool, insecure: bool) -> None:
    """A password goes only over TLS unless the URL says auth_without_tls=true outright."""
    c = parse_smtp_url(url)
    assert (c.login_needs_tls, c.auth_without_tls) == (needs_tls, insecure)


def test_check_explains_a_password_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loading the settings (for `herald check` as for `herald run`) refuses starttls=false
    with a password, naming the fixes; check says of a URL without `starttls` that the
    server must offer STARTTLS for the password to go."""
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, smtp_url="smtp://u:p@mail:25?starttls=false")
    err = str(refused.value)
    assert "HERALD_SMTP_URL" in err and "starttls=true" in err and "auth_without_tls=true" in err
    unsaid = make_settings(tmp_path, smtp_url="smtp://u:p@mail:587")
    assert check(unsaid, posts=False) == 0
    assert "must offer STARTTLS" in capsys.readouterr().out


async def test_pool_reuses_connections() -> None:
    """Fifty emails through a pool of three go over at most three SMTP connections."""
    async with SmtpServer() as server:
        config = SmtpConfig("127.0.0.1", server.port, pool_size=3, start_tls=False)
        async with SmtpPool(config) as pool:
            await asyncio.gather(*(pool.send(mail(f"r{i}@example.org")) for i in range(50)))
        assert sorted(server.handler.to()) == sorted(f"r{i}@example.org" for i in range(50))
        assert server.connections <= 3


async def test_4xx_is_transient_and_5xx_permanent() -> None:
    """A 451 answer can be retried later; a 550 marks the address as a hard failure."""
    async with SmtpServer() as server:
        server.handler.faults["soft@example.org"].append("451 4.3.0 try again later")
        server.handler.faults["hard@example.org"].append("550 5.1.1 no such user")
        config = SmtpConfig("127.0.0.1", server.port, pool_size=1, start_tls=False)
        async with SmtpPool(config) as pool:
            with pytest.raises(TransientError, match="451"):
                await pool.send(mail("soft@example.org"))
            with pytest.raises(PermanentError, match="550") as info:
                await pool.send(mail("hard@example.org"))
            assert info.value.deactivate
            await pool.send(mail("soft@example.org"))  # the retry goes through
            await pool.send(mail("ok@example.org"))  # the connection survived both errors
        assert server.handler.to() == ["soft@example.org", "ok@example.org"]
        assert server.connections == 1


async def test_data_5xx_is_the_servers() -> None:
    """A message refused after DATA with 554 is the server's failure, not the address's."""
    async with SmtpServer() as server:
        server.handler.data_faults.append("554 5.7.1 rejected")
        config = SmtpConfig("127.0.0.1", server.port, pool_size=1, start_tls=False)
        async with SmtpPool(config) as pool:
            with pytest.raises(RelayError, match="DATA"):
                await pool.send(mail("a@example.org"))


async def test_unreachable_server_is_transient() -> None:
    """No server listening is a transient failure, so the message is retried later."""
    async with SmtpServer() as server:
        port = server.port
    config = SmtpConfig("127.0.0.1", port, pool_size=1, start_tls=False, timeout_s=2)
    async with SmtpPool(config) as pool:
        with pytest.raises(TransientError):
            await pool.send(mail("a@example.org"))


async def test_email_fan_out_through_delivery(tmp_path: Path) -> None:
    """A broadcast reaches 20 addresses once each over a couple of reused connections."""
    async with SmtpServer() as server:
        settings = make_settings(tmp_path, smtp_url=server.url + "?pool=2")
        async with running(settings) as rig:
            for n in range(20):
                await rig.store.subscribers.upsert(Channel.EMAIL, f"r{n}@example.org")
            await rig.publisher.broadcast("<b>Hello</b> readers", admin_id=1)
            totals = await rig.drained()
        assert totals["sent"] == 21  # and the Telegram outbox stand-in
        assert sorted(server.handler.to()) == sorted(f"r{n}@example.org" for n in range(20))
        assert server.connections <= 2
        first = server.handler.messages[0]
        assert (
            str(first["List-Unsubscribe"]).strip().startswith("<http://127.0.0.1:8080/unsubscribe/")
        )


async def test_4xx_retried_and_5xx_bounces_after_three(tmp_path: Path) -> None:
    """A 451 is retried until it goes through; three 550s mark the address bounced."""
    async with SmtpServer() as server:
        server.handler.faults["soft@example.org"] += ["451 4.7.1 greylisted"] * 2
        server.handler.faults["hard@example.org"] += ["550 5.1.1 unknown user"] * 5
        settings = make_settings(tmp_path, smtp_url=server.url)
        async with running(settings) as rig:
            for address in ("soft@example.org", "hard@example.org"):
                await rig.store.subscribers.upsert(Channel.EMAIL, address)
            for n in range(4):
                await rig.publisher.broadcast(f"news {n}", admin_id=1)
                await rig.drained()
            hard = await rig.store.subscribers.get(Channel.EMAIL, "hard@example.org")
            assert hard is not None and hard.status is Status.BOUNCED
            assert len(server.handler.faults["hard@example.org"]) == 2  # only three tries
            soft = await rig.store.subscribers.get(Channel.EMAIL, "soft@example.org")
            assert soft is not None and soft.status is Status.ACTIVE
        assert server.handler.to().count("soft@example.org") == 4
        assert "hard@example.org" not in server.handler.to()


def test_bulk_mail_equals_personalize() -> None:
    """The fan-out fast path produces the same email as personalize(), links and all."""
    body = f'<p>Hällo {"x" * 300} <a href="{UNSUB}">unsubscribe</a> <a href="{PREFS}">p</a></p>\n'
    message = RenderedEmail(
        subject="Ünïcode news & more",
        html=body * 40,
        text=f"Hallo ü {UNSUB}\n{PREFS}\n" * 30,
        site_title="Ärger über München",
    )
    now = datetime.now(UTC)
    links = {
        "unsubscribe_url": "http://127.0.0.1:8080/unsubscribe/Mg.abc-_x&y",
        "preferences_url": "http://127.0.0.1:8080/preferences/Mg.def",
    }
    bulk = BulkMail(message, mail_from="News <news@example.org>", now=now)
    fast = parse(bulk.render(to="a@example.org", **links))
    slow = parse(
        personalize(
            message, to="a@example.org", mail_from="News <news@example.org>", now=now, **links
        ).as_bytes()
    )
    headers = ("From", "To", "Subject", "Date", "List-Id", "Feedback-ID")
    for header in (*headers, "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert str(fast[header]) == str(slow[header]), header
    assert [k for k, _ in fast.items()] == [k for k, _ in slow.items()]
    assert fast["Message-ID"] != slow["Message-ID"]
    fast_parts, slow_parts = list(fast.iter_parts()), list(slow.iter_parts())
    assert [p.get_content_type() for p in fast_parts] == ["text/plain", "text/html"]
    for a, b in zip(fast_parts, slow_parts, strict=True):
        assert a.get_content() == b.get_content()
    assert not BulkMail.fits("ü@example.org")
