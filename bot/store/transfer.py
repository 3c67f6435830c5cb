"""Copying one database into another (`herald migrate --copy-from`): the records each backend
exports and imports, area by area, streamed.

What is copied is what a move must keep: every subscriber with its state, the post log (so
nothing announced is announced again), the digests done, and the jobs not finished with
their rows (a row that was `sending` is queued again). Each import matches what the target
has already (subscribers by channel and address, posts by path, jobs and rows by key,
digests by day) and skips it, so a second copy adds nothing. Ids are kept where the target
has them free: outbox keys name the post and subscriber ids of the source.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.models import Channel, Kind, OutboxStatus, Status


@dataclass(frozen=True, kw_only=True)
class SubscriberRecord:
    """A subscriber with everything known about it."""

    id: int
    channel: Channel
    address: str
    breaking: bool
    daily: bool
    every_post: bool
    topics: str
    status: Status
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    left_at: datetime | None
    hard_bounces: int
    soft_bounces: int
    soft_bounce_sent_at: datetime | None
    hard_bounce_reports: int
    soft_bounce_reports: int
    complaints: int
    # Reader choices, and where the reader's own digest stands (issue 15).
    quiet: str | None = None
    digest_at: str | None = None
    tz: str | None = None
    digest_day: str | None = None
    digest_until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PostRecord:
    """A row of the post log: `state` is baseline (0), announced (1) or pending (2)."""

    id: int
    path: str
    url: str
    fingerprint: str
    title: str
    published_at: datetime
    breaking: bool
    first_seen_at: datetime
    state: int
    data: str  # the post as JSON
    # Corrections (issue 15): the revision counted, the one whose correction is queued.
    revision: int = 0
    revised: int = 0
    withdrawn: bool = False
    corrected_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """An outbox job not finished yet."""

    id: int
    key: str
    kind: str
    title: str
    payload: str
    created_at: datetime
    planned: bool


@dataclass(frozen=True, kw_only=True)
class ItemRecord:
    """An outbox row of such a job; its job and subscriber named as the target finds them."""

    job_key: str
    key: str
    kind: Kind
    channel: Channel
    subscriber: tuple[Channel, str] | None  # (channel, address) of its subscriber, if any
    address: str
    priority: int
    status: OutboxStatus  # never `sending`: such a row is exported as queued
    attempts: int
    parts_done: int
    plain: int
    next_attempt_at: float
    last_error: str | None
    sent_at: datetime | None
    message_ids: str = ""  # Telegram ids of the parts sent, "1,2": a correction edits them


@dataclass(frozen=True, kw_only=True)
class DigestRecord:
    """A digest day done (sent or found empty)."""

    day: str
    since: datetime
    until: datetime
    posts: int
    job_key: str | None
    created_at: datetime


class Transfer(Protocol):
    """Export from one database, import into another; imports return the rows they added."""

    def export_subscribers(self) -> AsyncIterator[SubscriberRecord]: ...

    async def import_subscribers(self, records: AsyncIterable[SubscriberRecord]) -> int: ...

    def export_posts(self) -> AsyncIterator[PostRecord]: ...

    async def import_posts(self, records: AsyncIterable[PostRecord]) -> int: ...

    async def export_notes(self) -> tuple[dict[str, str], dict[str, str]]:
        """(the post log's notes, e.g. the baseline's, and the file versions of its posts)."""
        ...

    async def import_notes(self, meta: Mapping[str, str], files: Mapping[str, str]) -> int: ...

    def export_jobs(self) -> AsyncIterator[JobRecord]:
        """Jobs with no finish time, oldest first."""
        ...

    async def import_jobs(self, records: AsyncIterable[JobRecord]) -> int: ...

    def export_items(self) -> AsyncIterator[ItemRecord]:
        """Every row of the jobs `export_jobs` gives, whatever its status."""
        ...

    async def import_items(self, records: AsyncIterable[ItemRecord]) -> int:
        """Rows whose job is in the target (and subscriber, if they had one); the rest wait."""
        ...

    async def export_digests(self) -> list[DigestRecord]: ...

    async def import_digests(self, records: Iterable[DigestRecord]) -> int: ...
