"""DKIM: messages signed once per recipient verify with dkimpy; keys checked; the DNS record."""

from __future__ import annotations

import base64
import email
import email.policy
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import dkim
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.commands.check import check
from bot.delivery.bulkmail import BulkMail
from bot.delivery.dkim import Signer, load_key
from bot.delivery.mail import personalize
from bot.errors import ConfigError
from bot.models import PREFERENCES_PLACEHOLDER as PREFS
from bot.models import UNSUBSCRIBE_PLACEHOLDER as UNSUB
from bot.models import Channel, EmailMessage, Kind
from bot.settings import load_settings
from tests.fakes.smtp_sink import SmtpSink
from tests.support.delivery import make_settings, running

FROM = "The Daily Herald <news@news.example.org>"
NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
LINKS = {
    "unsubscribe_url": "https://herald.example.org/unsubscribe/Mg.abc-_x&y",
    "preferences_url": "https://herald.example.org/preferences/Mg.def",
}
MESSAGE = EmailMessage(
    subject="Ärger über München – Eilmeldung mit einem langen Betreff, der gefaltet wird",
    html=f'<p>Hällo <a href="{UNSUB}">unsubscribe</a> <a href="{PREFS}">p</a></p>\n' * 50,
    text=f"Hallo ü {UNSUB}\n{PREFS}\n" * 20,
    site_title="Die Zeitung – “Herald”",
)


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    openssl("genrsa", "-out", str(path), "2048")
    return path


@pytest.fixture(scope="module")
def signer(key_file: Path) -> Signer:
    return Signer(load_key(key_file, selector="herald", mail_from=FROM))


def dns_for(signer: Signer) -> Callable[..., bytes | None]:
    """dkimpy's DNS lookup answered with our record, for exactly our name."""
    key = signer.key

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        wanted = key.record_name.encode()
        return key.record_value.encode() if name.rstrip(b".") == wanted else None

    return lookup


def tags(signed: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, whitespace removed."""
    msg = email.message_from_bytes(signed, policy=email.policy.compat32)
    value = "".join(str(msg["DKIM-Signature"]).split())
    return dict(part.split("=", 1) for part in value.split(";") if part)


def test_personalized_mail_verifies(signer: Signer) -> None:
    """A message from personalize(), signed, verifies against the published key; the
    signature is relaxed/relaxed RSA-SHA256 for the From domain and selector."""
    mime = personalize(MESSAGE, to="ann@example.org", mail_from=FROM, now=NOW, **LINKS)
    signed = signer.sign(mime.as_bytes(policy=email.policy.SMTP))
    assert dkim.verify(signed, dnsfunc=dns_for(signer))
    t = tags(signed)
    assert (t["a"], t["c"], t["d"], t["s"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        "news.example.org",
        "herald",
    )


def test_bulk_mail_verifies_for_each_recipient(signer: Signer) -> None:
    """The fan-out fast path's bytes, stamped per recipient and signed per recipient, verify."""
    bulk = BulkMail(MESSAGE, mail_from=FROM, now=NOW)
    for n in range(3):
        data = bulk.render(to=f"r{n}@example.org", **LINKS)
        assert dkim.verify(signer.sign(data), dnsfunc=dns_for(signer))


def test_signature_covers_the_list_headers(signer: Signer) -> None:
    """h= names From, To, Subject, Date, Message-ID, the MIME headers, List-Id, Feedback-ID
    and both List-Unsubscribe headers, the unsubscribe ones twice (no copy can be added)."""
    mime = personalize(MESSAGE, to="ann@example.org", mail_from=FROM, now=NOW, **LINKS)
    signed = signer.sign(mime.as_bytes(policy=email.policy.SMTP))
    signed_headers = tags(signed)["h"].split(":")
    for header in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
    ):
        assert header in signed_headers, header
    assert signed_headers.count("list-unsubscribe") == 2
    assert signed_headers.count("from") == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"/unsubscribe/Mg.abc", b"/unsubscribe/Mg.evil"),
        lambda m: m.replace(b"\r\nTo: ", b"\r\nList-Unsubscribe: <https://evil.example/>\r\nTo: "),
        lambda m: m.replace(b"\r\nTo: ", b"\r\nFrom: ceo@example.org\r\nTo: "),
        lambda m: m.replace(b"Hallo", b"Hello", 1),
    ],
)
def test_tampering_breaks_the_signature(signer: Signer, tamper: Callable[[bytes], bytes]) -> None:
    """A changed unsubscribe link, an added List-Unsubscribe or From, or a changed body
    no longer verifies."""
    mime = personalize(MESSAGE, to="ann@example.org", mail_from=FROM, now=NOW, **LINKS)
    signed = signer.sign(mime.as_bytes(policy=email.policy.SMTP))
    changed = tamper(signed)
    assert changed != signed
    assert not dkim.verify(changed, dnsfunc=dns_for(signer))


def test_dns_record_is_the_public_key(signer: Signer, key_file: Path) -> None:
    """The TXT record's p= is the key's public half, as `openssl rsa -pubout` writes it."""
    public = openssl("rsa", "-in", str(key_file), "-pubout", "-outform", "DER")
    key = signer.key
    assert key.record_name == "herald._domainkey.news.example.org"
    assert key.record_value == f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    assert key.bits == 2048


def test_traditional_pem_and_crlf_files_load(tmp_path: Path, key_file: Path) -> None:
    """A PKCS#1 ("BEGIN RSA PRIVATE KEY") file with CRLF line ends is the same key."""
    traditional = openssl("rsa", "-in", str(key_file), "-traditional")
    assert traditional.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    path = tmp_path / "crlf.pem"
    path.write_bytes(traditional.replace(b"\n", b"\r\n"))
    loaded = load_key(path, selector="s1", mail_from=FROM)
    assert loaded.public_der == load_key(key_file, selector="s1", mail_from=FROM).public_der


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "cannot be read"),
        (lambda p: p.write_text("not a key\n"), "no PEM RSA private key"),
        (
            lambda p: p.write_bytes(openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")),
            "no PEM RSA private key",
        ),
        (
            lambda p: p.write_bytes(openssl("genrsa", "-aes128", "-passout", "pass:x", "2048")),
            "encrypted",
        ),
        (lambda p: p.write_bytes(openssl("genrsa", "512")), "512 bits"),
        (
            lambda p: p.write_text(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            "cannot be parsed",
        ),
    ],
)
def test_bad_key_is_refused_naming_the_setting(
    tmp_path: Path, make: Callable[[Path], object], reason: str
) -> None:
    """A missing, non-RSA, encrypted, short or broken key is a ConfigError naming
    HERALD_DKIM_KEY_FILE and what is wrong."""
    path = tmp_path / "key.pem"
    make(path)
    with pytest.raises(ConfigError, match="HERALD_DKIM_KEY_FILE") as refused:
        load_key(path, selector="herald", mail_from=FROM)
    assert reason in str(refused.value)


def test_selector_must_be_a_dns_name() -> None:
    """HERALD_DKIM_SELECTOR with a space or a leading dot is refused as settings load."""
    for bad in ("two words", ".herald", "herald_"):
        with pytest.raises(ConfigError, match="HERALD_DKIM_SELECTOR"):
            load_settings(_env_file=None, dkim_selector=bad)
    assert load_settings(_env_file=None, dkim_selector="s2026-01.eu").dkim_selector


def test_check_prints_the_dns_record(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald check` reads the key and prints the TXT record to publish, name and value."""
    settings = make_settings(
        tmp_path, dkim_key_file=key_file, dkim_selector="mail2026", mail_from=FROM
    )
    assert check(settings, posts=False) == 0
    out = capsys.readouterr().out
    key = load_key(key_file, selector="mail2026", mail_from=FROM)
    assert "mail2026._domainkey.news.example.org" in out
    assert key.record_value in out


def test_check_refuses_a_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`herald check` exits 1 with a problem naming HERALD_DKIM_KEY_FILE for a bad key."""
    bad = tmp_path / "bad.pem"
    bad.write_text("nonsense")
    assert check(make_settings(tmp_path, dkim_key_file=bad), posts=False) == 1
    assert "HERALD_DKIM_KEY_FILE" in capsys.readouterr().err


class RawSink(SmtpSink):
    """The aiosmtpd sink, also keeping each message's bytes as they came over the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content
        assert isinstance(data, bytes)
        self.raw.append(data)
        return await super().handle_DATA(server, session, envelope)


def parsed(data: bytes) -> MimeMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, MimeMessage)
    return msg


async def test_every_email_sent_is_signed(tmp_path: Path, key_file: Path, signer: Signer) -> None:
    """Through delivery and real SMTP, a broadcast to subscribers and an opt-in
    confirmation arrive signed and verify; only the broadcast offers List-Unsubscribe."""
    async with RawSink() as sink:
        settings = make_settings(
            tmp_path, smtp_url=sink.url, dkim_key_file=key_file, mail_from=FROM
        )
        async with running(settings) as rig:
            for n in range(3):
                await rig.store.subscribers.upsert(Channel.EMAIL, f"r{n}@example.org")
            await rig.publisher.broadcast("<b>Hello</b> readers", admin_id=1)
            pending = await rig.store.subscribers.request_email(
                "new@example.org", breaking=True, daily=True
            )
            await rig.publisher.send_confirmation(pending, "http://127.0.0.1:8080/confirm/t")
            await rig.drained()
    assert len(sink.raw) == 4
    for data in sink.raw:
        assert dkim.verify(data, dnsfunc=dns_for(signer))
    by_to = {str(parsed(d)["To"]): parsed(d) for d in sink.raw}
    confirmation = by_to.pop("new@example.org")
    assert "List-Unsubscribe" not in confirmation and "List-Id" not in confirmation
    assert str(confirmation["Feedback-ID"]) == "confirm:news.example.org:herald"
    for msg in by_to.values():
        assert str(msg["List-Unsubscribe"]).startswith("<http://127.0.0.1:8080/unsubscribe/")
        assert str(msg["List-Id"]) == '"The Daily Herald" <list.news.example.org>'
        assert str(msg["Feedback-ID"]) == f"{Kind.BROADCAST.value}:news.example.org:herald"


async def test_outbox_files_are_signed_too(tmp_path: Path, key_file: Path, signer: Signer) -> None:
    """Without SMTP, the .eml files the outbox transport writes carry a valid signature."""
    settings = make_settings(tmp_path, dkim_key_file=key_file, mail_from=FROM)
    async with running(settings) as rig:
        await rig.store.subscribers.upsert(Channel.EMAIL, "r@example.org")
        await rig.publisher.broadcast("news", admin_id=1)
        await rig.drained()
    files = sorted((tmp_path / "outbox" / "email").glob("*.eml"))
    assert files
    for path in files:
        assert dkim.verify(path.read_bytes(), dnsfunc=dns_for(signer))
