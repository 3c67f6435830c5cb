"""Plain data passed along the flow: frozen dataclasses and string enums."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import IntFlag, StrEnum


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
    EDIT = "edit"  # a correction: messages already sent are edited in place or deleted

    @property
    def priority(self) -> int:
        """Lower goes first: a confirmation is one message someone is waiting for; breaking
        alerts overtake the every-post notices, digests and broadcasts already queued."""
        return _PRIORITY[self]


# A correction goes with the breaking alerts: a wrong headline is out there now.
_PRIORITY = {
    Kind.CONFIRM: 0,
    Kind.BREAKING: 1,
    Kind.EDIT: 1,
    Kind.POST: 2,
    Kind.DIGEST: 3,
    Kind.BROADCAST: 4,
}


class ReportKind(StrEnum):
    """What a report on the bounce listener says about one subscriber's address."""

    HARD = "hard"  # the address is gone: bounced at once
    SOFT = "soft"  # it failed for now (mailbox full, policy): bounced after a few in a row
    COMPLAINT = "complaint"  # the reader marked the mail as spam: unsubscribed at once


class OutboxStatus(StrEnum):
    """Where one outbox row is, in the order a row moves through them."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Degrade(IntFlag):
    """Simplifications of a Telegram message that Telegram refused (the row's `plain` column)."""

    NONE = 0
    NO_PHOTO = 1  # the image could not be fetched: send the caption as a text message
    PLAIN = 2  # the HTML was rejected: send it once more as plain text
    NO_DELETE = 4  # too old to delete (Telegram's 48 hours): edit it to say it was withdrawn


@dataclass(frozen=True)
class Post:
    """One published post, as the site shows it."""

    path: str  # relative to the site's _posts/, forward slashes
    slug: str
    title: str
    date: datetime  # timezone-aware
    url: str  # absolute, as the site publishes it
    body: str  # the text after Liquid, in `format`
    excerpt: str  # in `format`
    author: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image: str | None = None  # absolute URL
    published: bool = True
    breaking: bool = False
    label: str | None = None  # e.g. "Breaking" when the title carried the prefix
    format: str = "markdown"  # of body and excerpt: markdown, kramdown (a Jekyll post) or html

    @property
    def fingerprint(self) -> str:
        """Identity that survives a rename of the file: day and title."""
        return f"{self.date.date().isoformat()}|{self.title.strip().casefold()}"


@dataclass(frozen=True, kw_only=True)
class Subscriber:
    id: int
    channel: Channel
    address: str  # Telegram chat id or email address
    breaking: bool
    daily: bool
    every_post: bool
    status: Status
    created_at: datetime | None = None
    # Reader choices (issue 15). Empty topics: everything. None: the site's default.
    topics: tuple[str, ...] = ()  # casefolded topic names
    quiet: str | None = None  # "22:00-07:00": non-breaking messages arrive silently then
    digest_at: str | None = None  # "18:30", local time of this reader's digest
    tz: str | None = None  # IANA zone name, e.g. "Europe/Berlin"


# Methods of a correction's TelegramMessage: each edits (or deletes) one message already sent,
# part k of the correction acting on the k-th message id of the recipient's original row.
EDIT_TEXT = "editMessageText"
EDIT_CAPTION = "editMessageCaption"
EDIT_MEDIA = "editMessageMedia"  # a new image, with the caption in `text`
DELETE = "deleteMessage"  # `text` is the withdrawn notice used if it is too old to delete
KEEP = "keep"  # this part did not change: no call at all
EDIT_METHODS = frozenset({EDIT_TEXT, EDIT_CAPTION, EDIT_MEDIA, DELETE, KEEP})


@dataclass(frozen=True)
class TelegramMessage:
    """One Bot API call: `sendMessage` with `text`, or `sendPhoto` with `photo` + caption."""

    method: str
    text: str  # HTML (parse_mode=HTML); the caption for sendPhoto
    photo: str | None = None
    button_text: str | None = None
    button_url: str | None = None


# Filled per recipient into a rendered EmailMessage (its html and text).
UNSUBSCRIBE_PLACEHOLDER = "{{UNSUBSCRIBE_URL}}"
PREFERENCES_PLACEHOLDER = "{{PREFERENCES_URL}}"


@dataclass(frozen=True)
class EmailMessage:
    """A rendered email; `{{UNSUBSCRIBE_URL}}`-style placeholders are filled per recipient."""

    subject: str
    html: str
    text: str
    preheader: str = ""
    site_title: str = ""  # names the list in List-Id; empty in jobs queued before it was kept


@dataclass(frozen=True)
class Rendered:
    """Everything a post (or digest, broadcast) becomes, per channel."""

    telegram: tuple[TelegramMessage, ...] = ()
    email: EmailMessage | None = None

    def encode(self) -> str:
        """As JSON, stored once per outbox job (not per recipient)."""
        return json.dumps(
            {
                "telegram": [asdict(m) for m in self.telegram],
                "email": asdict(self.email) if self.email else None,
            },
            ensure_ascii=False,
        )

    @classmethod
    def decode(cls, payload: str) -> Rendered:
        data = json.loads(payload)
        email = data.get("email")
        return cls(
            telegram=tuple(TelegramMessage(**m) for m in data.get("telegram") or ()),
            email=EmailMessage(**email) if email else None,
        )


@dataclass(frozen=True)
class OutgoingMail:
    """One email ready for SMTP: envelope sender, one recipient, the message's bytes."""

    mail_from: str
    to: str
    data: bytes


# -- the store's records -------------------------------------------------------------------


class Audience(StrEnum):
    """Which active subscribers a fan-out reaches (`outbox.plan` chooses; the store selects)."""

    EVERY_POST = "every_post"  # a new post: those with every-post on
    BREAKING = "breaking"  # a breaking post: every-post or breaking on (one alert for both)
    DAILY = "daily"  # a digest: those with the digest on
    EVERYONE = "everyone"  # a broadcast


@dataclass(frozen=True, kw_only=True)
class PlannedItem:
    """One outbox row to insert: who gets a job, under which key, how urgently."""

    key: str
    kind: Kind
    channel: Channel
    subscriber_id: int | None
    address: str

    @property
    def priority(self) -> int:
        return self.kind.priority


@dataclass(frozen=True, kw_only=True)
class ClaimedItem:
    """A claimed outbox row, with the subscriber's current address (it may have migrated)."""

    id: int
    job_id: int
    key: str
    kind: Kind
    channel: Channel
    subscriber_id: int | None
    address: str
    attempts: int
    parts_done: int
    plain: Degrade
    # Telegram: the ids of the parts sent so far (for a correction row: the ids to edit).
    message_ids: tuple[int, ...] = ()
    quiet: str | None = None  # the subscriber's quiet hours and zone, read at claim time
    tz: str | None = None


@dataclass(frozen=True, kw_only=True)
class ItemUpdate:
    """The outcome of one attempt at an outbox row, written back in a batch."""

    id: int
    status: OutboxStatus
    attempts: int
    parts_done: int
    plain: Degrade = Degrade.NONE
    next_attempt_at: float = 0.0
    last_error: str | None = None
    address: str | None = None  # a migrated chat's new id
    sent_at: str | None = None
    message_ids: tuple[int, ...] | None = None  # Telegram ids of the parts sent; None: as is
    # The revision of the job's payload the parts went out with (set_payload counts it up);
    # a correction edits only rows sent with an earlier one. None: as is.
    payload_rev: int | None = None


@dataclass(frozen=True, kw_only=True)
class JobProgress:
    """One outbox job and how far its fan-out got."""

    id: int
    key: str
    kind: str
    title: str
    created_at: str
    finished_at: str | None
    counts: dict[OutboxStatus, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, kw_only=True)
class FailedItem:
    """An outbox row parked as failed, with its job's key and the last error."""

    id: int
    job_id: int
    job_key: str
    channel: str
    address: str
    attempts: int
    last_error: str


@dataclass(frozen=True, kw_only=True)
class PreferenceCounts:
    """Active subscribers of one channel, in total and per preference."""

    active: int = 0
    breaking: int = 0
    daily: int = 0
    every_post: int = 0


@dataclass(frozen=True, kw_only=True)
class ReportCounts:
    """Bounce reports and complaints received, summed over the subscribers still on record."""

    hard: int = 0
    soft: int = 0
    complaints: int = 0


@dataclass(frozen=True, kw_only=True)
class Revision:
    """An announced post whose reader-visible content changed (or that was withdrawn) and
    whose correction is not queued yet."""

    post_id: int
    post: Post  # as it is now
    revision: int  # counts up with each change; the correction's job key holds it
    withdrawn: bool


@dataclass(frozen=True, kw_only=True)
class DigestGroup:
    """Readers due for a digest who get the same one: same topics, same window start."""

    topics: tuple[str, ...]  # casefolded; empty: everything
    since: datetime | None  # where their previous digest's window ended; None: never had one
    readers: int


@dataclass(frozen=True, kw_only=True)
class CorrectionCounts:
    """Corrections so far: posts corrected or withdrawn, and the messages edited or deleted."""

    corrected: int = 0
    withdrawn: int = 0
    edited: int = 0  # correction rows sent
    pending: int = 0  # correction rows still queued


@dataclass(frozen=True, kw_only=True)
class StatsReport:
    """What /stats and `herald stats` show, read once from the store."""

    subscribers: dict[tuple[Channel, Status], int]  # how many per channel and status
    preferences: dict[Channel, PreferenceCounts]
    outbox: dict[OutboxStatus, int]  # rows per status over all jobs
    jobs: list[JobProgress]  # the newest
    failed: list[FailedItem]  # the newest parked rows
    reports: ReportCounts = ReportCounts()  # what the bounce listener was told
    corrections: CorrectionCounts = CorrectionCounts()

    def left(self, status: Status) -> int:
        """Subscribers of every channel who are `status` (blocked, bounced, …)."""
        return sum(n for (_, s), n in self.subscribers.items() if s is status)

    @property
    def delivery(self) -> dict[str, int]:
        """Outbox rows per status, plus the subscribers lost to blocks and bounces."""
        figures = {s.value: n for s, n in self.outbox.items()}
        return figures | {s.value: self.left(s) for s in (Status.BLOCKED, Status.BOUNCED)}
