"""Helpers shared by the web tests: settings for a temp dir, a recording publisher, links."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.delivery.mail import outgoing, personalize
from bot.models import Subscriber
from bot.render.renderer import Renderer
from bot.settings import Settings, load_settings
from bot.tokens import Purpose, Tokens
from bot.transports.smtp import SmtpPool, parse_smtp_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-for-web-tests"


def web_settings(
    tmp_path: Path, public_url: str = "http://testserver", **extra: object
) -> Settings:
    """Settings on the demo site with a temp database and outbox, ignoring any `.env`."""
    return load_settings(
        _env_file=None,
        site_dir=ROOT / "examples" / "site",
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        outbox_dir=tmp_path / "outbox",
        public_url=public_url,
        secret_key=SECRET,
        **extra,
    )


@dataclass
class RecordingPublisher:
    """Stands in for Publisher at the web app's seam: keeps every confirmation asked for."""

    confirmations: list[tuple[Subscriber, str]] = field(default_factory=list)

    async def send_confirmation(self, subscriber: Subscriber, token_url: str) -> None:
        self.confirmations.append((subscriber, token_url))


class DirectMailer:
    """Mails the confirmation at once through real SMTP: the web tests' stand-in Publisher."""

    def __init__(self, settings: Settings, renderer: Renderer, tokens: Tokens, smtp_url: str):
        self.settings = settings
        self.renderer = renderer
        self.tokens = tokens
        self.pool = SmtpPool(parse_smtp_url(smtp_url))

    async def send_confirmation(self, subscriber: Subscriber, token_url: str) -> None:
        base = self.settings.public_base
        message = personalize(
            self.renderer.confirm_email(
                token_url, breaking=subscriber.breaking, daily=subscriber.daily
            ),
            to=subscriber.address,
            mail_from=self.settings.mail_from,
            unsubscribe_url=f"{base}/unsubscribe/"
            + self.tokens.make(Purpose.UNSUBSCRIBE, subscriber.id),
            preferences_url=f"{base}/preferences/"
            + self.tokens.make(Purpose.PREFERENCES, subscriber.id),
            now=datetime.now(UTC),
        )
        await self.pool.send(outgoing(message))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def expired_token(purpose: str, subscriber_id: int, age_s: int) -> str:
    """A correctly signed token minted `age_s` seconds ago (as itsdangerous would have)."""

    class _Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(SECRET, salt=f"herald-{purpose}", signer=_Past)
    return str(serializer.dumps(subscriber_id))


def path_of(url: str) -> str:
    """The path of an absolute link (`http://host/confirm/x` → `/confirm/x`)."""
    match = re.match(r"https?://[^/]+(/.*)", url)
    assert match, url
    return match.group(1)


def link_in(message: EmailMessage, route: str) -> str:
    """The first `/route/<token>` link in an email's plain-text part."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    match = re.search(rf"https?://\S+/{route}/[\w.-]+", part.get_content())
    assert match, f"no /{route}/ link in the email"
    return match.group(0)


def visible_text(html: str) -> str:
    """Page text without tags and runs of whitespace, to compare answers."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())
