"""Planning the outbox: what a Rendered message becomes for each recipient. Pure functions."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from bot.models import Channel, EmailMessage, Kind, Rendered, Subscriber, TelegramMessage

# Lower goes first. A confirmation is one message someone is waiting for; breaking alerts
# overtake the every-post notices, digests and broadcasts already queued.
PRIORITY: dict[Kind, int] = {
    Kind.CONFIRM: 0,
    Kind.BREAKING: 1,
    Kind.POST: 2,
    Kind.DIGEST: 3,
    Kind.BROADCAST: 4,
}

# In outbox mode (no token / no SMTP URL) this stand-in recipient gets everything, so a new
# post always shows up under outbox/telegram and outbox/email.
OUTBOX_ADDRESS = {Channel.TELEGRAM: "outbox", Channel.EMAIL: "outbox@localhost"}


@dataclass(frozen=True)
class Recipient:
    """Someone a job goes to: a subscriber, or a channel/outbox address (no subscriber id)."""

    channel: Channel
    address: str
    subscriber_id: int | None = None

    @classmethod
    def of(cls, subscriber: Subscriber) -> Recipient:
        return cls(subscriber.channel, subscriber.address, subscriber.id)


@dataclass(frozen=True)
class OutboxItem:
    """One planned outbox row: who gets a job, under which key, how urgently."""

    key: str
    kind: str
    channel: str
    subscriber_id: int | None
    address: str
    priority: int


def wants_post(subscriber: Subscriber, *, breaking: bool) -> bool:
    """Whether a new post reaches this subscriber at once (one alert, however many reasons)."""
    return subscriber.every_post or (breaking and subscriber.breaking)


def post_kind(breaking: bool) -> Kind:
    return Kind.BREAKING if breaking else Kind.POST


def item_key(job_key: str, recipient: Recipient) -> str:
    """The idempotency key: `post:<id>:<channel>:<subscriber id or address>`."""
    who = recipient.subscriber_id if recipient.subscriber_id is not None else recipient.address
    return f"{job_key}:{recipient.channel.value}:{who}"


def plan(
    job_key: str, kind: Kind, rendered: Rendered, recipients: Iterable[Recipient]
) -> Iterator[OutboxItem]:
    """One row per recipient whose channel the job has content for."""
    has = {Channel.TELEGRAM: bool(rendered.telegram), Channel.EMAIL: rendered.email is not None}
    for r in recipients:
        if has[r.channel]:
            yield OutboxItem(
                key=item_key(job_key, r),
                kind=kind.value,
                channel=r.channel.value,
                subscriber_id=r.subscriber_id,
                address=r.address,
                priority=PRIORITY[kind],
            )


def encode(rendered: Rendered) -> str:
    """A job's content as JSON, stored once per job (not per recipient)."""
    return json.dumps(
        {
            "telegram": [asdict(m) for m in rendered.telegram],
            "email": asdict(rendered.email) if rendered.email else None,
            "extra": rendered.extra,
        },
        ensure_ascii=False,
    )


def decode(payload: str) -> Rendered:
    data = json.loads(payload)
    email = data.get("email")
    return Rendered(
        telegram=tuple(TelegramMessage(**m) for m in data.get("telegram") or ()),
        email=EmailMessage(**email) if email else None,
        extra=dict(data.get("extra") or {}),
    )


_TAG = re.compile(r"<[^>]*>")


def plain_text(text_html: str) -> str:
    """Telegram HTML without any markup, escaped again so it is valid with parse_mode=HTML."""
    return html.escape(html.unescape(_TAG.sub("", text_html)), quote=False)


# Simplifications of a Telegram message Telegram refused, as bits of the row's `plain` column.
NO_PHOTO = 1  # the image could not be fetched: send the caption as a text message
PLAIN = 2  # the HTML was rejected: send it once more as plain text


def degrade(message: TelegramMessage, flags: int) -> TelegramMessage:
    """The message as sent after the simplifications in `flags`."""
    if not flags:  # nearly every send: no copy on the fan-out path
        return message
    method, photo, text = message.method, message.photo, message.text
    if flags & NO_PHOTO and method == "sendPhoto":
        method, photo = "sendMessage", None
    if flags & PLAIN:
        text = plain_text(text)
    return TelegramMessage(method, text, photo, message.button_text, message.button_url)
