"""Plain data passed along the flow: frozen dataclasses and string enums."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BLOCKED = "blocked"
    BOUNCED = "bounced"


class Kind(StrEnum):
    """Why a message is sent; also its delivery priority (lower goes first)."""

    BREAKING = "breaking"
    POST = "post"
    DIGEST = "digest"
    BROADCAST = "broadcast"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class Post:
    """One published post, as the site shows it."""

    path: str  # relative to the site's _posts/, forward slashes
    slug: str
    title: str
    date: datetime  # timezone-aware
    url: str  # absolute, as the site publishes it
    body: str  # Markdown after Liquid
    excerpt: str  # Markdown
    author: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image: str | None = None  # absolute URL
    published: bool = True
    breaking: bool = False
    label: str | None = None  # e.g. "Breaking" when the title carried the prefix

    @property
    def fingerprint(self) -> str:
        """Identity that survives a rename of the file: day and title."""
        return f"{self.date.date().isoformat()}|{self.title.strip().casefold()}"


@dataclass(frozen=True)
class Subscriber:
    id: int
    channel: Channel
    address: str  # Telegram chat id or email address
    breaking: bool
    daily: bool
    every_post: bool
    status: Status
    created_at: datetime | None = None


@dataclass(frozen=True)
class TelegramMessage:
    """One Bot API call: `sendMessage` with `text`, or `sendPhoto` with `photo` + caption."""

    method: str
    text: str  # HTML (parse_mode=HTML); the caption for sendPhoto
    photo: str | None = None
    button_text: str | None = None
    button_url: str | None = None


@dataclass(frozen=True)
class EmailMessage:
    """A rendered email; `{{UNSUBSCRIBE_URL}}`-style placeholders are filled per recipient."""

    subject: str
    html: str
    text: str
    preheader: str = ""


@dataclass(frozen=True)
class Rendered:
    """Everything a post (or digest, broadcast) becomes, per channel."""

    telegram: tuple[TelegramMessage, ...] = ()
    email: EmailMessage | None = None
    extra: dict[str, str] = field(default_factory=dict)
