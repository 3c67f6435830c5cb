"""Planning the outbox: what a Rendered message becomes for each recipient. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.choices import topic_key
from bot.models import Audience, Channel, Kind, PlannedItem, Post, Rendered, Subscriber

# In outbox mode (no token / no SMTP URL) this stand-in recipient gets everything, so a new
# post always shows up under outbox/telegram and outbox/email.
OUTBOX_ADDRESS = {Channel.TELEGRAM: "outbox", Channel.EMAIL: "outbox@localhost"}


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """Someone a job goes to: a subscriber, or a channel/outbox address (no subscriber id)."""

    channel: Channel
    address: str
    subscriber_id: int | None = None

    @classmethod
    def of(cls, subscriber: Subscriber) -> Recipient:
        return cls(
            channel=subscriber.channel, address=subscriber.address, subscriber_id=subscriber.id
        )


def post_audience(breaking: bool) -> Audience:
    """Who a new post reaches at once: every-post readers, and for a breaking post those
    with breaking on too (one alert, however many reasons)."""
    return Audience.BREAKING if breaking else Audience.EVERY_POST


def post_topics(post: Post) -> tuple[str, ...] | None:
    """The topic filter of a new post's fan-out: its categories and tags (readers who chose
    topics get it only if it has one of theirs), or None for a breaking post, which goes
    to every reader whatever their topics."""
    if post.breaking:
        return None
    return tuple(sorted({topic_key(t) for t in (*post.categories, *post.tags)} - {""}))


def channels_with_content(rendered: Rendered) -> frozenset[Channel]:
    """The channels a job has something to send on."""
    has = {Channel.TELEGRAM: bool(rendered.telegram), Channel.EMAIL: rendered.email is not None}
    return frozenset(c for c, yes in has.items() if yes)


def post_kind(breaking: bool) -> Kind:
    return Kind.BREAKING if breaking else Kind.POST


def item_key(job_key: str, recipient: Recipient) -> str:
    """The idempotency key: `post:<id>:<channel>:<subscriber id or address>`."""
    who = recipient.subscriber_id if recipient.subscriber_id is not None else recipient.address
    return f"{job_key}:{recipient.channel.value}:{who}"


def rows_for(
    job_key: str, kind: Kind, rendered: Rendered, recipients: Iterable[Recipient]
) -> Iterator[PlannedItem]:
    """One row per recipient whose channel the job has content for."""
    channels = channels_with_content(rendered)
    for r in recipients:
        if r.channel in channels:
            yield PlannedItem(
                key=item_key(job_key, r),
                kind=kind,
                channel=r.channel,
                subscriber_id=r.subscriber_id,
                address=r.address,
            )
