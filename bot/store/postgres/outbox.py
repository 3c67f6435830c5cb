"""The durable outbox on PostgreSQL, shared by every `herald run` on the database.

As on SQLite (`bot.store.sqlite.outbox`): a unique key per row makes planning idempotent
and a claimed row is `sending` under a lease. Here several processes claim at once: rows
are taken with `FOR UPDATE SKIP LOCKED` and marked with the claimant's `claimed_by`, so a
dead process's rows can be told from a live one's and given back early.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice

from asyncpg import Record

from bot.models import (
    Audience,
    Channel,
    ClaimedItem,
    Degrade,
    ItemUpdate,
    JobProgress,
    Kind,
    OutboxStatus,
    PlannedItem,
)
from bot.store.postgres.db import CLAIM_LOCK, DB_NOW, Pool, affected, transaction
from bot.store.postgres.digest_fan_out import DigestFanOut
from bot.store.postgres.outbox_stats import OutboxStats
from bot.store.postgres.processes import held_by_the_dead
from bot.store.rules import (
    AUDIENCE_SQL,
    FAN_OUT_BATCH,
    SENT_REV,
    ids_of,
    ids_text,
    topic_patterns,
    topics_sql,
)

# Fan-out batches inserted at once (each on its own pooled connection).
FAN_OUT_PARALLEL = 2

# outbox_items.job_id has no REFERENCES: the check (and the job row's share lock) per row
# inserted costs a third of a fan-out's time, and rows are only ever added for a job just
# created. Keys and addresses compare bytewise (COLLATE "C"): they are ids, not words.
MIGRATIONS = [
    """
    CREATE TABLE outbox_jobs (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        planned BOOLEAN NOT NULL DEFAULT FALSE,
        finished_at TIMESTAMPTZ
    );
    CREATE TABLE outbox_items (
        id BIGSERIAL PRIMARY KEY,
        job_id BIGINT NOT NULL,
        key TEXT COLLATE "C" NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        subscriber_id BIGINT,
        address TEXT COLLATE "C" NOT NULL,
        priority SMALLINT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        parts_done INTEGER NOT NULL DEFAULT 0,
        plain SMALLINT NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        lease_until DOUBLE PRECISION,
        last_error TEXT,
        sent_at TIMESTAMPTZ,
        -- The process that claimed the row (PostgresStore.process_id).
        claimed_by TEXT,
        -- When a part of the row last went out, by the server's clock (epoch seconds):
        -- another process keeps off the chat for Telegram's 1 s per chat.
        sent_epoch DOUBLE PRECISION
    );
    CREATE INDEX outbox_items_ready ON outbox_items(channel, priority, id)
        WHERE status = 'queued';
    -- Only rows waiting for a retry: a fan-out's new rows (due at once) stay out of it.
    CREATE INDEX outbox_items_retry ON outbox_items(next_attempt_at)
        WHERE status = 'queued' AND next_attempt_at > 0;
    CREATE INDEX outbox_items_job ON outbox_items(job_id, status);
    CREATE INDEX outbox_items_subscriber ON outbox_items(subscriber_id, status);
    CREATE INDEX outbox_items_sending ON outbox_items(address) WHERE status = 'sending';
    CREATE INDEX outbox_items_chat_sent ON outbox_items(address, sent_epoch)
        WHERE channel = 'telegram' AND sent_epoch IS NOT NULL
    """,
    # Telegram message ids of the parts sent ("1,2"): a correction edits them in place.
    "ALTER TABLE outbox_items ADD COLUMN message_ids TEXT NOT NULL DEFAULT ''",
    # Revisions of a job's payload, and the one a row's parts went out with: a correction
    # edits the rows sent before it, including those in flight while it was made.
    "ALTER TABLE outbox_jobs ADD COLUMN payload_rev INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE outbox_items ADD COLUMN sent_rev INTEGER NOT NULL DEFAULT 0",
]

INSERT_CHUNK = 10_000  # rows per INSERT … SELECT FROM unnest(…)
CHAT_GAP_S = 1.05  # Telegram's 1 message per second per chat, with a margin

# A batch's columns travel as one text each, split by the server: asyncpg checks every
# element of an array parameter against the collection ABCs, which costs more than the
# insert itself. SEP cannot occur in keys and addresses (ids, chat ids, email addresses);
# a batch where it does goes as arrays.
SEP = "\x1f"
_INSERT_JOINED = (
    "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address, priority)"
    " SELECT $1, k, d, c, NULLIF(s, '')::bigint, a, p::smallint FROM unnest("
    + ", ".join(f"string_to_array(${n}, E'\\x1f')" for n in range(2, 8))
    + ") AS u(k, d, c, s, a, p) ON CONFLICT (key) DO NOTHING"
)
_INSERT_ARRAYS = (
    "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address, priority)"
    " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],"
    " $7::smallint[]) ON CONFLICT (key) DO NOTHING"
)


# The server's clock when the claim's SELECT starts (after the turn lock): stable within it,
# so the index on (address, sent_epoch) finds only the sends of the last CHAT_GAP_S.
_CLAIM_NOW = "extract(epoch from statement_timestamp())"

# A Telegram row waits while another process sends to its chat, or sent to it just now: the
# Pacer spaces one process's own sends to a chat, this spaces the processes' sends.
_CHAT_FREE = (
    "(o.channel != 'telegram' OR NOT (EXISTS (SELECT 1 FROM outbox_items b"
    " WHERE b.status = 'sending' AND b.address = o.address AND b.channel = 'telegram'"
    " AND b.claimed_by IS DISTINCT FROM $1) OR EXISTS (SELECT 1 FROM outbox_items b"
    " WHERE b.channel = 'telegram' AND b.sent_epoch IS NOT NULL AND b.address = o.address"
    f" AND b.sent_epoch > {_CLAIM_NOW} - {CHAT_GAP_S} AND b.claimed_by IS DISTINCT FROM $1)))"
)

_CLAIM = (
    "SELECT o.id, o.job_id, o.key, o.kind, o.channel, o.subscriber_id,"
    " COALESCE(s.address, o.address), o.attempts, o.parts_done, o.plain,"
    " o.subscriber_id IS NOT NULL AND (s.status IS NULL OR s.status NOT IN"
    " ('active', 'pending') OR (s.status = 'pending' AND o.kind != 'confirm')),"
    " o.message_ids, s.quiet, s.tz"
    " FROM outbox_items o LEFT JOIN subscribers s ON s.id = o.subscriber_id"
    " WHERE o.status = 'queued' AND o.next_attempt_at <= $2 AND " + _CHAT_FREE
)


_CHANNEL = {c.value: c for c in Channel}


def _chunks(items: Iterable[PlannedItem]) -> Iterator[list[PlannedItem]]:
    it = iter(items)
    while chunk := list(islice(it, INSERT_CHUNK)):
        yield chunk


def _insert(job_id: int, chunk: list[PlannedItem]) -> tuple[str, list[object]]:
    """The statement and arguments inserting `chunk`."""
    texts = [
        [i.key for i in chunk],
        [i.kind.value for i in chunk],
        [i.channel.value for i in chunk],
        ["" if i.subscriber_id is None else str(i.subscriber_id) for i in chunk],
        [i.address for i in chunk],
        [str(i.priority) for i in chunk],
    ]
    joined = [SEP.join(column) for column in texts]
    if all(j.count(SEP) == len(chunk) - 1 for j in joined):
        return _INSERT_JOINED, [job_id, *joined]
    ids = [i.subscriber_id for i in chunk]
    return _INSERT_ARRAYS, [job_id, *texts[:3], ids, texts[4], [i.priority for i in chunk]]


def _sent_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _claimed(r: Record) -> ClaimedItem:
    return ClaimedItem(
        id=r[0],
        job_id=r[1],
        key=r[2],
        kind=Kind(r[3]),
        channel=Channel(r[4]),
        subscriber_id=r[5],
        address=r[6],
        attempts=r[7],
        parts_done=r[8],
        plain=Degrade(r[9]),
        message_ids=ids_of(r[11]),
        quiet=r[12],
        tz=r[13],
    )


class Outbox(OutboxStats, DigestFanOut):
    """The `outbox_jobs` and `outbox_items` tables: jobs planned, rows claimed and marked."""

    def __init__(self, pool: Pool, process_id: str) -> None:
        super().__init__(pool)
        self.process_id = process_id

    async def create_job(
        self, key: str, kind: str, payload: str, *, title: str, now: datetime
    ) -> tuple[int, bool]:
        """The job with `key`, created if new; (id, created). Insert-or-ignore: never twice."""
        created = await self._pool.fetchval(
            "INSERT INTO outbox_jobs(key, kind, title, payload, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING id",
            key,
            kind,
            title,
            payload,
            now,
        )
        if created is not None:
            return int(created), True
        found = await self._pool.fetchval("SELECT id FROM outbox_jobs WHERE key = $1", key)
        assert found is not None
        return int(found), False

    async def add_items(self, job_id: int, items: Iterable[PlannedItem]) -> int:
        """Insert rows for a job in one transaction, skipping keys already there; count added.

        INSERT_CHUNK rows per statement: a fan-out's batch is one round trip. The commit
        does not wait for the disk: rows a crash loses are planned again, as the job is
        not marked planned (a later commit that waits makes these durable too).
        """
        added = 0
        async with transaction(self._pool) as conn:
            await conn.execute("SET LOCAL synchronous_commit TO OFF")
            for chunk in _chunks(items):
                sql, args = _insert(job_id, chunk)
                added += affected(await conn.execute(sql, *args))
        return added

    async def fan_out(
        self,
        job_id: int,
        job_key: str,
        kind: Kind,
        channels: Collection[Channel],
        audience: Audience,
        *,
        batch: int = FAN_OUT_BATCH,
        topics: Collection[str] | None = None,
    ) -> AsyncIterator[dict[Channel, int]]:
        """Queue a row per active subscriber of `audience` on `channels`, planned in SQL; the
        rows added per channel after each batch of subscribers (see the Protocol)."""
        wanted = sorted(c.value for c in channels)
        if not wanted:
            return
        patterns = None if topics is None else topic_patterns(topics)
        extra: list[object] = [] if patterns is None else [patterns]

        def who(at: int) -> str:
            """The subscribers wanted; `at`: the number of the topic patterns' parameter
            (last: without a topic filter the statements are the same as before it)."""
            sql = f"status = 'active' AND {AUDIENCE_SQL[audience]} AND channel = ANY($2::text[])"
            if patterns is None:
                return sql
            # The backslash is LIKE's escape by default here, as topic_patterns writes it.
            return f"{sql} AND {topics_sql(f'topics LIKE ANY(${at}::text[])')}"

        async def insert(after: int, upto: int) -> dict[Channel, int]:
            async with transaction(self._pool) as conn:
                # As add_items: rows a crash loses are planned again (the job is not planned).
                await conn.execute("SET LOCAL synchronous_commit TO OFF")
                # One pass over the batch for every channel; the rows added, counted per channel.
                counted = await conn.fetch(
                    "WITH added AS (INSERT INTO outbox_items(job_id, key, kind, channel,"
                    " subscriber_id, address, priority) SELECT $3, $4 || channel || ':' || id,"
                    f" $5, channel, id, address, $6 FROM subscribers WHERE id > $1 AND id <= $7"
                    f" AND {who(8)} ORDER BY id ON CONFLICT (key) DO NOTHING RETURNING channel)"
                    " SELECT channel, count(*) FROM added GROUP BY channel",
                    after, wanted, job_id, f"{job_key}:", kind.value, kind.priority, upto,
                    *extra,
                )  # fmt: skip
            added = {channel: 0 for channel in channels}
            added.update({_CHANNEL[r[0]]: int(r[1]) for r in counted})
            return added

        # FAN_OUT_PARALLEL batches at once, each on its own connection: the server inserts on
        # as many cores (a million rows' index work is the whole cost). Yielded in order.
        running: deque[asyncio.Task[dict[Channel, int]]] = deque()
        last = 0
        try:
            while True:
                upto = await self._pool.fetchval(
                    f"SELECT MAX(id) FROM (SELECT id FROM subscribers WHERE id > $1 AND {who(4)}"
                    " ORDER BY id LIMIT $3) AS batch",
                    last,
                    wanted,
                    batch,
                    *extra,
                )
                if upto is None:
                    break
                running.append(asyncio.ensure_future(insert(last, int(upto))))
                last = int(upto)
                if len(running) >= FAN_OUT_PARALLEL:
                    yield await running.popleft()
            while running:
                yield await running.popleft()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def fan_out_edits(
        self,
        job_id: int,
        job_key: str,
        source_job_key: str,
        *,
        below_rev: int | None = None,
        only: Sequence[int] | None = None,
    ) -> int:
        """Queue a correction row for every Telegram row of `source_job_key` sent with
        message ids (and a payload revision below `below_rev`; of the ids `only`), carrying
        them; key `<job_key>:telegram:<subscriber id or address>`."""
        if only is not None and not only:
            return 0
        status = await self._pool.execute(
            "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address,"
            " priority, message_ids) SELECT $1, $2 || COALESCE(i.subscriber_id::text,"
            " i.address), $3, i.channel, i.subscriber_id, i.address, $4, i.message_ids"
            " FROM outbox_items i JOIN outbox_jobs j ON j.id = i.job_id WHERE j.key = $5"
            " AND i.channel = 'telegram' AND i.status = 'sent' AND i.message_ids != ''"
            " AND ($6::integer IS NULL OR i.sent_rev < $6)"
            " AND ($7::bigint[] IS NULL OR i.id = ANY($7))"
            " ORDER BY i.id ON CONFLICT (key) DO NOTHING",
            job_id,
            f"{job_key}:{Channel.TELEGRAM.value}:",
            Kind.EDIT.value,
            Kind.EDIT.priority,
            source_job_key,
            below_rev,
            None if only is None else list(only),
        )
        return affected(status)

    async def send_again(self, job_id: int, channel: Channel) -> int:
        """The job's sent rows on `channel` back in the queue from their first part."""
        async with transaction(self._pool) as conn:
            status = await conn.execute(
                "UPDATE outbox_items SET status = 'queued', parts_done = 0, message_ids = '',"
                " attempts = 0, plain = 0, next_attempt_at = 0, last_error = NULL"
                " WHERE job_id = $1 AND channel = $2 AND status = 'sent'",
                job_id,
                channel.value,
            )
            await conn.execute("UPDATE outbox_jobs SET finished_at = NULL WHERE id = $1", job_id)
        return affected(status)

    async def unsettled(self, job_id: int) -> list[int]:
        """Ids of the job's rows being sent (by any process), or partly sent and queued again."""
        rows = await self._pool.fetch(
            "SELECT id FROM outbox_items WHERE job_id = $1 AND (status = 'sending'"
            " OR status = 'queued' AND parts_done > 0) ORDER BY id",
            job_id,
        )
        return [int(r[0]) for r in rows]

    async def find_job(self, key: str) -> tuple[int, str] | None:
        """(id, payload) of the job with `key`, or None."""
        row = await self._pool.fetchrow("SELECT id, payload FROM outbox_jobs WHERE key = $1", key)
        return None if row is None else (int(row[0]), str(row[1]))

    async def set_payload(self, job_id: int, payload: str) -> int:
        """Replace a job's payload: its rows not sent yet go out with the new content.
        Returns its revision, counted up only when the payload changes (a restart that sets
        the same payload again leaves the rows sent meanwhile as sent with it)."""
        rev = await self._pool.fetchval(
            "UPDATE outbox_jobs SET payload_rev = payload_rev + (payload != $2)::integer,"
            " payload = $2 WHERE id = $1 RETURNING payload_rev",
            job_id,
            payload,
        )
        if rev is None:
            raise LookupError(f"outbox job {job_id} does not exist")
        return int(rev)

    async def mark_planned(self, job_id: int) -> None:
        """Every row of the job is in: it can finish once they are all done."""
        await self._pool.execute("UPDATE outbox_jobs SET planned = TRUE WHERE id = $1", job_id)

    async def plan_left_over(self, kind: str, created_before: datetime) -> int:
        status = await self._pool.execute(
            "UPDATE outbox_jobs SET planned = TRUE WHERE kind = $1 AND NOT planned"
            " AND created_at < $2",
            kind,
            created_before,
        )
        return affected(status)

    async def payload(self, job_id: int) -> tuple[str, int]:
        found = await self._pool.fetchrow(
            "SELECT payload, payload_rev FROM outbox_jobs WHERE id = $1", job_id
        )
        if found is None:
            raise LookupError(f"outbox job {job_id} does not exist")
        return str(found[0]), int(found[1])

    async def recover(self) -> int:
        """At start: rows left `sending` by a crash go back in the queue; returns how many.

        Only rows of this process (an earlier delivery in it) and of dead processes: other
        live processes on the database are sending theirs right now.
        """
        status = await self._pool.execute(
            "UPDATE outbox_items SET status = 'queued', lease_until = NULL, claimed_by = NULL"
            " WHERE status = 'sending' AND (claimed_by IS NOT DISTINCT FROM $1 OR "
            + held_by_the_dead(me="$1", now=DB_NOW)
            + ")",
            self.process_id,
        )
        return affected(status)

    async def release_expired(self, now: float) -> int:
        """Rows whose lease ran out, or whose claimant died, become claimable again.

        A process is dead once its heartbeat in `processes` is 30 s old by the server's
        clock (or it has none): after a SIGKILL its rows come back within a minute, not
        after the whole lease.
        """
        status = await self._pool.execute(
            "UPDATE outbox_items SET status = 'queued', lease_until = NULL, claimed_by = NULL"
            " WHERE status = 'sending' AND (lease_until < $1 OR "
            + held_by_the_dead(me="$2", now=DB_NOW)
            + ")",
            now,
            self.process_id,
        )
        return affected(status)

    async def claim(
        self, limit: int, *, now: float, lease_s: float, channel: Channel | None = None
    ) -> list[ClaimedItem]:
        """Take up to `limit` due rows, most urgent first, and lease them to this process.

        Rows whose subscriber has left are cancelled instead; a pending subscriber gets only
        its confirmation. Telegram claims take turns (an advisory lock), so two processes
        never take rows of one chat at the same moment, and a chat another process is
        sending to, or sent to less than CHAT_GAP_S ago, waits.
        """
        args: list[object] = [self.process_id, now]
        sql = _CLAIM
        if channel is not None:
            args.append(channel.value)
            sql += f" AND o.channel = ${len(args)}"
        args.append(limit)
        sql += f" ORDER BY o.priority, o.id LIMIT ${len(args)} FOR UPDATE OF o SKIP LOCKED"
        async with transaction(self._pool) as conn:
            if channel in (None, Channel.TELEGRAM):
                await conn.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK)
            rows = await conn.fetch(sql, *args)
            items = [_claimed(r) for r in rows if not r[10]]
            if items:
                await conn.execute(
                    "UPDATE outbox_items SET status = 'sending', lease_until = $1,"
                    " claimed_by = $2 WHERE id = ANY($3::bigint[])",
                    now + lease_s,
                    self.process_id,
                    [i.id for i in items],
                )
            gone = [r[0] for r in rows if r[10]]
            if gone:
                await conn.execute(
                    "UPDATE outbox_items SET status = 'cancelled',"
                    " last_error = 'subscriber left' WHERE id = ANY($1::bigint[])",
                    gone,
                )
        return items

    async def next_due(self) -> float | None:
        """When the earliest queued row becomes due (epoch seconds), or None.

        A row never tried is due at 0 and found by the first queued row of the claim
        index; retries have an index of their own.
        """
        due = await self._pool.fetchval(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM outbox_items WHERE status = 'queued'"
            " AND next_attempt_at <= 0) THEN 0 ELSE (SELECT MIN(next_attempt_at)"
            " FROM outbox_items WHERE status = 'queued' AND next_attempt_at > 0) END"
        )
        return None if due is None else float(due)

    async def apply(self, updates: Sequence[ItemUpdate]) -> None:
        """Write a batch of outcomes in one transaction, as one statement.

        A row that got a part out (or was sent) records the server's time in `sent_epoch`
        for the per-chat rule of `claim`; an email that went out ends its address's run of
        hard failures.
        """
        if not updates:
            return
        async with transaction(self._pool) as conn:
            await conn.execute(
                "UPDATE outbox_items o SET status = u.status, attempts = u.attempts,"
                " parts_done = u.parts_done, plain = u.plain, next_attempt_at = u.next_at,"
                " last_error = u.error, address = COALESCE(u.address, o.address),"
                " sent_at = COALESCE(u.sent_at, o.sent_at), lease_until = NULL,"
                " message_ids = COALESCE(u.message_ids, o.message_ids),"
                " sent_rev = "
                + SENT_REV.format(
                    new="u.payload_rev", parts="u.parts_done", old="o.", least="LEAST"
                )
                + ","
                " sent_epoch = CASE WHEN u.status = 'sent' OR u.parts_done > o.parts_done"
                f" THEN {DB_NOW} ELSE o.sent_epoch END"
                " FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[],"
                " $5::smallint[], $6::float8[], $7::text[], $8::text[], $9::timestamptz[],"
                " $10::text[], $11::integer[]) AS u(id, status, attempts, parts_done, plain,"
                " next_at, error, address, sent_at, message_ids, payload_rev) WHERE o.id = u.id",
                [u.id for u in updates],
                [u.status.value for u in updates],
                [u.attempts for u in updates],
                [u.parts_done for u in updates],
                [int(u.plain) for u in updates],
                [u.next_attempt_at for u in updates],
                [u.last_error for u in updates],
                [u.address for u in updates],
                [_sent_at(u.sent_at) for u in updates],
                [None if u.message_ids is None else ids_text(u.message_ids) for u in updates],
                [u.payload_rev for u in updates],
            )
            sent = [u.id for u in updates if u.status is OutboxStatus.SENT]
            if sent:
                await conn.execute(
                    "UPDATE subscribers SET hard_bounces = 0 WHERE hard_bounces > 0 AND id IN"
                    " (SELECT subscriber_id FROM outbox_items WHERE id = ANY($1::bigint[])"
                    " AND channel = 'email')",
                    sent,
                )

    async def cancel_subscriber(self, subscriber_id: int, reason: str) -> int:
        """A subscriber was blocked or bounced: its queued rows will never be sent."""
        status = await self._pool.execute(
            "UPDATE outbox_items SET status = 'cancelled', last_error = $1"
            " WHERE subscriber_id = $2 AND status = 'queued'",
            reason,
            subscriber_id,
        )
        return affected(status)

    async def finish_jobs(self, job_ids: Iterable[int], now: datetime) -> list[JobProgress]:
        """Mark planned jobs with no queued or sending row finished; return those just finished.

        Of several processes finishing a job at once, one does (the row lock decides).
        """
        finished = await self._pool.fetch(
            "UPDATE outbox_jobs j SET finished_at = $1 WHERE j.id = ANY($2::bigint[])"
            " AND j.planned AND j.finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM"
            " outbox_items i WHERE i.job_id = j.id AND i.status IN ('queued', 'sending'))"
            " RETURNING j.id",
            now,
            sorted(set(job_ids)),
        )
        done: list[JobProgress] = []
        for row in sorted(finished, key=lambda r: int(r[0])):
            done.extend(await self.progress(job_id=int(row[0])))
        return done

    async def retry_failed(self, *, now: float, job_id: int | None = None) -> int:
        """Failed rows (of one job, or all) whose recipient is still there go back in the queue.

        Returns how many rows went back.
        """
        job_filter = " AND job_id = $2" if job_id is not None else ""
        args: tuple[object, ...] = (now, job_id) if job_id is not None else (now,)
        # One transaction: a job never shows finished while some of its rows are queued.
        async with transaction(self._pool) as conn:
            rows = await conn.fetch(
                "UPDATE outbox_items SET status = 'queued', attempts = 0, plain = 0,"
                " next_attempt_at = $1, last_error = NULL WHERE status = 'failed'"
                + job_filter
                + " AND (subscriber_id IS NULL OR subscriber_id IN"
                " (SELECT id FROM subscribers WHERE status IN ('active', 'pending')))"
                " RETURNING job_id",
                *args,
            )
            jobs = sorted({int(r[0]) for r in rows})
            if jobs:
                await conn.execute(
                    "UPDATE outbox_jobs SET finished_at = NULL WHERE id = ANY($1::bigint[])", jobs
                )
        return len(rows)
