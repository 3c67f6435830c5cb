"""The store's typed interface: one Protocol per area, implemented by a backend per database.

Other packages see only these Protocols and the records in `bot.models`; SQL lives in the
backends (`bot.store.sqlite`, `bot.store.postgres`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import NamedTuple, Protocol

from bot.errors import HeraldError
from bot.models import (
    Audience,
    Channel,
    ClaimedItem,
    CorrectionCounts,
    DigestGroup,
    FailedItem,
    ItemUpdate,
    JobProgress,
    Kind,
    OutboxStatus,
    PlannedItem,
    Post,
    PreferenceCounts,
    ReportCounts,
    ReportKind,
    Revision,
    Status,
    Subscriber,
)
from bot.store.transfer import Transfer


class StoreError(HeraldError):
    """The database cannot be used as it is; the one-line message names it and the fix."""


class ImportRow(NamedTuple):
    """One subscriber to import, validated and normalised by the caller. The reader choices
    are optional CSV columns: None leaves a known subscriber's choice as it is (a new one
    gets the default), "" (or () for topics) clears it."""

    channel: Channel
    address: str
    breaking: bool
    daily: bool
    topics: tuple[str, ...] | None = None  # casefolded
    quiet: str | None = None  # "22:00-07:00"
    digest_at: str | None = None  # "18:30"
    tz: str | None = None  # IANA name


# A reader's digest slot: (digest_at, tz) as stored, None for the site's default.
DigestSlot = tuple[str | None, str | None]


class PostLog(Protocol):
    """Which posts Herald has seen and announced, so none is announced twice."""

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]:
        """Remember posts in one transaction; returns (id, post) of those never seen before.

        `moved`: new path → the path a post's file had before a rename (same post).
        """
        ...

    async def mark_announced(self, post_id: int) -> None:
        """The post's messages are queued: it is never announced again."""
        ...

    async def pending(self) -> list[tuple[int, Post]]:
        """Posts recorded as new whose announcement was not queued (a crash in between)."""
        ...

    async def file_versions(self) -> dict[str, str]:
        """Path → file version of every file whose post is recorded."""
        ...

    async def announced_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts announced in [since, until), oldest first: the digest's content."""
        ...

    async def latest(self, limit: int) -> list[Post]:
        """The newest posts by date, newest first (for /latest)."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    # -- corrections (issue 15) --------------------------------------------------------
    # `record` also notices when an announced post's reader-visible content (title,
    # excerpt, image, link: `bot.store.postlog.visible`) changed: it counts up the post's
    # revision and stamps `corrected_at`. A post announced and then withdrawn gets a
    # revision too; one that comes back (published again) gets another.

    async def withdraw(self, path: str, *, now: datetime) -> bool:
        """The announced post recorded from `path` is withdrawn (drafted again, or its file
        deleted and not renamed): a new revision, once; False when there is none to withdraw."""
        ...

    async def revisions(self) -> list[Revision]:
        """Announced posts with a revision whose correction is not queued yet, oldest first."""
        ...

    async def mark_revised(self, post_id: int, revision: int) -> None:
        """The correction for `revision` is queued (an older revision number is ignored)."""
        ...

    async def corrected_since(self, since: datetime, until: datetime) -> list[Post]:
        """Posts (not withdrawn) corrected in [since, until), oldest first: the digest marks
        them as updated, and lists them even when announced before `since`."""
        ...

    async def topic_counts(self, limit: int) -> list[tuple[str, int]]:
        """Categories and tags of the posts seen (not withdrawn), most used first, at most
        `limit`; each as first written, counted case-insensitively."""
        ...


class Subscribers(Protocol):
    """Telegram chats and email addresses, their choices and status."""

    async def get(self, channel: Channel, address: str) -> Subscriber | None: ...

    async def get_by_id(self, subscriber_id: int) -> Subscriber | None: ...

    async def upsert(
        self,
        channel: Channel,
        address: str,
        *,
        breaking: bool = True,
        daily: bool = True,
        every_post: bool = False,
        status: Status = Status.ACTIVE,
    ) -> Subscriber:
        """Add a subscriber or update the preferences and status of a known one."""
        ...

    async def request_email(self, address: str, *, breaking: bool, daily: bool) -> Subscriber:
        """Start double opt-in for `address`: a pending subscriber, or the known one as it is."""
        ...

    async def confirm(self, subscriber_id: int) -> Subscriber | None:
        """Pending → active (confirmed now); an active one stays as it is; None if unknown."""
        ...

    async def set_prefs(
        self, subscriber_id: int, *, breaking: bool, daily: bool, every_post: bool
    ) -> None: ...

    async def set_status(self, subscriber_id: int, status: Status) -> None: ...

    async def set_topics(self, subscriber_id: int, topics: Collection[str]) -> None:
        """The reader's topics (casefolded here); empty: everything."""
        ...

    async def set_quiet(self, subscriber_id: int, quiet: str | None) -> None:
        """Quiet hours as "HH:MM-HH:MM" (validated by the caller), or None: off."""
        ...

    async def set_digest_time(self, subscriber_id: int, at: str | None) -> None:
        """The reader's digest time "HH:MM" (validated by the caller), or None: the site's."""
        ...

    async def set_timezone(self, subscriber_id: int, tz: str | None) -> None:
        """The reader's IANA zone (validated by the caller), or None: the site's."""
        ...

    async def change_address(self, subscriber_id: int, address: str) -> None:
        """A Telegram group became a supergroup: keep the subscriber, store its new chat id."""
        ...

    async def remove(self, channel: Channel, address: str) -> bool:
        """Delete a subscriber and everything known about it; False when there was none."""
        ...

    async def import_rows(self, rows: Iterable[ImportRow]) -> int:
        """Add or update many confirmed subscribers in one transaction; returns rows written."""
        ...

    async def add_hard_bounce(self, subscriber_id: int) -> int:
        """Count one permanent failure; returns the count so far."""
        ...

    async def record_report(
        self,
        subscriber_id: int,
        kind: ReportKind,
        *,
        sent_at: datetime | None,
        now: datetime,
        soft_limit: int,
    ) -> Status | None:
        """Count a bounce report or complaint for an email subscriber; the status it moved
        them to (None: unchanged, or no such email subscriber).

        Hard → bounced; complaint → unsubscribed; soft → bounced at the `soft_limit`-th soft
        bounce in a row, where an email accepted for the address after the last bounced one
        and before this one (`sent_at`, when known) starts the row again. Only active and
        pending subscribers change status.
        """
        ...

    async def report_counts(self) -> ReportCounts:
        """Bounce reports and complaints received, over every subscriber on record."""
        ...

    def recipients(
        self,
        channel: Channel | None = None,
        *,
        breaking: bool | None = None,
        daily: bool | None = None,
        every_post: bool | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Active subscribers matching every given preference, streamed in id order."""
        ...

    def all(
        self, channel: Channel | None = None, status: Status | None = None
    ) -> AsyncIterator[Subscriber]:
        """Every subscriber (optionally of one channel and status), streamed in id order."""
        ...

    async def counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) → number of subscribers."""
        ...

    async def preference_counts(self) -> dict[Channel, PreferenceCounts]:
        """Per channel: active subscribers and how many of them want each kind of message."""
        ...

    # -- own digest times (issue 15) ---------------------------------------------------
    async def digest_slots(self) -> list[DigestSlot]:
        """The distinct (digest_at, tz) of active subscribers with the digest on."""
        ...

    async def digest_groups(self, slot: DigestSlot, day: str | None) -> list[DigestGroup]:
        """Active digest readers of `slot` whose digest for local `day` (ISO) is not done
        yet (their last digest day is before it, or they never had one), grouped by
        (topics, since). `day` None: every digest reader of the slot (a digest by hand)."""
        ...


class Outbox(Protocol):
    """The durable outbox: jobs, and one row per (job, recipient)."""

    async def progress(self, limit: int = 10, *, job_id: int | None = None) -> list[JobProgress]:
        """The newest jobs (or one) with row counts per status."""
        ...

    async def totals(self) -> dict[OutboxStatus, int]:
        """Rows per status over all jobs."""
        ...

    async def failed(self, limit: int = 20) -> list[FailedItem]:
        """The newest rows parked as failed, for /stats and `herald stats`."""
        ...

    async def create_job(
        self, key: str, kind: str, payload: str, *, title: str, now: datetime
    ) -> tuple[int, bool]:
        """The job with `key`, created if new; (id, created). Insert-or-ignore: never twice."""
        ...

    async def add_items(self, job_id: int, items: Iterable[PlannedItem]) -> int:
        """Insert rows for a job in one transaction, skipping keys already there; count added."""
        ...

    def fan_out(
        self,
        job_id: int,
        job_key: str,
        kind: Kind,
        channels: Collection[Channel],
        audience: Audience,
        *,
        batch: int = ...,
        topics: Collection[str] | None = None,
    ) -> AsyncIterator[dict[Channel, int]]:
        """Queue a row per active subscriber of `audience` on `channels`, planned inside the
        database (no subscriber crosses the wire): key `<job_key>:<channel>:<subscriber id>`,
        skipping keys already there. Yields the rows added per channel after each `batch` of
        subscribers (each its own transaction; a backend may insert some side by side), so
        the first go out at once.

        `topics` (casefolded; a post's categories and tags): only subscribers who chose no
        topic or one of these. None: no topic filter (breaking alerts, broadcasts).
        """
        ...

    def fan_out_digest(
        self,
        job_id: int | None,
        job_key: str,
        channels: Collection[Channel],
        *,
        slot: DigestSlot,
        day: str | None,
        group: DigestGroup,
        until: datetime,
        batch: int = ...,
    ) -> AsyncIterator[dict[Channel, int]]:
        """Queue the digest `job_id` for the readers of `group` in `slot` still due for
        local `day`, and in the same transactions mark them done for `day` with their
        window ending at `until` (the next one starts there). `job_id` None: nothing to
        send them (no post for their topics), only marked. Keys as `fan_out`'s.

        `day` None: a digest by hand, for every reader of the group whatever their last
        day; only their window moves on (their scheduled digest still comes, holding what
        was published after `until`)."""
        ...

    async def fan_out_edits(
        self,
        job_id: int,
        job_key: str,
        source_job_key: str,
        *,
        below_rev: int | None = None,
        only: Sequence[int] | None = None,
    ) -> int:
        """Queue a correction row (kind edit, Telegram) for every row of the job
        `source_job_key` that was sent with message ids, carrying those ids, its subscriber
        and address; key `<job_key>:telegram:<subscriber id or address>`. Returns rows added.

        `below_rev`: only rows whose parts went out with a payload revision below it (those
        sent with the corrected payload show it already); `only`: only these row ids."""
        ...

    async def unsettled(self, job_id: int) -> list[int]:
        """Ids of the job's rows on their way: being sent right now (claimed, not written
        back), or with some parts sent and the rest back in the queue."""
        ...

    async def send_again(self, job_id: int, channel: Channel) -> int:
        """The job's rows on `channel` that were sent go back in the queue from their first
        part, with no message ids (a post published again after its withdrawal); the job
        is unfinished again. Returns the rows queued."""
        ...

    async def find_job(self, key: str) -> tuple[int, str] | None:
        """(id, payload) of the job with `key`, or None."""
        ...

    async def set_payload(self, job_id: int, payload: str) -> int:
        """Replace a job's payload: its rows not sent yet go out with the new content.
        Returns the payload's revision, counted up when the payload changes."""
        ...

    async def correction_counts(self) -> CorrectionCounts:
        """Correction jobs (posts corrected / withdrawn) and their rows sent / queued."""
        ...

    async def mark_planned(self, job_id: int) -> None:
        """Every row of the job is in: it can finish once they are all done."""
        ...

    async def plan_left_over(self, kind: str, created_before: datetime) -> int:
        """Jobs of `kind` created before `created_before` and never marked planned (their
        planner stopped after their last rows, before marking them) are marked planned, so
        they can finish. Returns how many."""
        ...

    async def payload(self, job_id: int) -> tuple[str, int]:
        """The job's payload and its revision (what `ItemUpdate.payload_rev` records)."""
        ...

    async def recover(self) -> int:
        """At start: rows left `sending` by a crash go back in the queue; returns how many."""
        ...

    async def release_expired(self, now: float) -> int:
        """Rows whose lease ran out (their sender vanished) become claimable again."""
        ...

    async def claim(
        self, limit: int, *, now: float, lease_s: float, channel: Channel | None = None
    ) -> list[ClaimedItem]:
        """Take up to `limit` due rows, most urgent first, and lease them."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest queued row becomes due (epoch seconds), or None."""
        ...

    async def apply(self, updates: Sequence[ItemUpdate]) -> None:
        """Write a batch of outcomes in one transaction."""
        ...

    async def cancel_subscriber(self, subscriber_id: int, reason: str) -> int:
        """A subscriber was blocked or bounced: its queued rows will never be sent."""
        ...

    async def finish_jobs(self, job_ids: Iterable[int], now: datetime) -> list[JobProgress]:
        """Mark planned jobs with no queued or sending row finished; return those just finished."""
        ...

    async def retry_failed(self, *, now: float, job_id: int | None = None) -> int:
        """Failed rows (of one job, or all) whose recipient is still there go back in the queue."""
        ...


class Digests(Protocol):
    """Digests sent so far: one row per digest day."""

    async def done(self, name: str) -> bool:
        """Whether the digest `name` (a day, `2026-01-15`) was already sent or found empty."""
        ...

    async def record(
        self,
        name: str,
        *,
        since: datetime,
        until: datetime,
        posts: int,
        job_id: int | None,
        now: datetime,
    ) -> bool:
        """Remember that digest `name` went out (or was empty); False if it already had."""
        ...

    async def last_until(self) -> datetime | None:
        """Where the previous digest's window ended: the next one starts there."""
        ...


class Cluster(Protocol):
    """The herald processes on one database: who is there, which one leads, waking each other
    when work is queued, and the Telegram send budget they share.

    SQLite has one `herald run`, always the leader, with a budget of its own; on PostgreSQL
    any number share the database and elect a leader.
    """

    @property
    def shared(self) -> bool:
        """Whether other processes may deliver from this database at the same time."""
        ...

    def joined(
        self, *, worker: bool, on_wake: Callable[[], None]
    ) -> AbstractAsyncContextManager[None]:
        """Be one of the processes while inside (seen alive by the others, its claimed rows
        its own); `on_wake` is called when some process queued work; gone on exit.

        `worker`: a process that only delivers and never leads.
        """
        ...

    async def try_lead(self) -> asyncio.Event | None:
        """Try once to become the one leader (while joined, not as a worker): None when
        another process leads, else an event set the moment this one no longer does (its
        session with the database lost): leader work must then stop at once."""
        ...

    async def resign(self) -> None:
        """Stop leading, so that another process may take over at once."""
        ...

    async def notify(self) -> None:
        """Rows were queued: every process claims now instead of at its next poll."""
        ...

    async def book_sends(self, count: int, rate_per_s: float, *, edits: bool = False) -> float:
        """Book `count` Telegram sends, `1 / rate_per_s` apart, out of the budget every
        process shares; when the first of them may start, by this process's clock
        (`time.time()`). `edits`: out of the free lane paid mode keeps edits to, which
        starts a second after the paid sends booked (Telegram counts those in the 30 a
        second edits may make); paid sends are booked after the edits booked."""
        ...

    async def runner(self) -> str | None:
        """Another `herald run` delivering from this database, described (`pid 42 on web1`),
        or None when there is none."""
        ...


class Store(Protocol):
    """An open database: one object per area."""

    @property
    def posts(self) -> PostLog: ...
    @property
    def subscribers(self) -> Subscribers: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def digests(self) -> Digests: ...
    @property
    def cluster(self) -> Cluster: ...
    @property
    def transfer(self) -> Transfer: ...

    def health(self) -> str | None:
        """None while the database is sound; else what is wrong, in a sentence (for /healthz)."""
        ...

    async def shared_secret(self, adopt: str | None = None) -> str | None:
        """The secret key every process on this database shares (made once, kept in it), or
        None where keys stay in files beside the database (SQLite).

        `adopt`: the key to keep if the database has none yet (a move from SQLite keeps the
        key its links were signed with); the key kept is returned either way.
        """
        ...
