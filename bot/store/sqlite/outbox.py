"""The durable outbox: jobs, and one row per (job, recipient) claimed, sent and marked in batches.

Each row carries a unique idempotency key (`post:<id>:<channel>:<subscriber>`), so planning
the same fan-out twice inserts nothing new. A claimed row is `sending` under a lease; after
a crash the delivery loop puts such rows back in the queue, so only the few sends in flight
at the moment of the crash can go out twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from datetime import datetime

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
from bot.store.rules import (
    AUDIENCE_SQL,
    FAN_OUT_BATCH,
    SENT_REV,
    ids_of,
    ids_text,
    topic_patterns,
    topics_sql,
)
from bot.store.sqlite.db import iso, transaction
from bot.store.sqlite.digest_fan_out import DigestFanOut
from bot.store.sqlite.outbox_stats import OutboxStats

MIGRATIONS = [
    """
    CREATE TABLE outbox_jobs (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        planned INTEGER NOT NULL DEFAULT 0,
        finished_at TEXT
    );
    CREATE TABLE outbox_items (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES outbox_jobs(id),
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        subscriber_id INTEGER,
        address TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        parts_done INTEGER NOT NULL DEFAULT 0,
        plain INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        lease_until REAL,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX outbox_items_ready ON outbox_items(status, priority, id);
    CREATE INDEX outbox_items_job ON outbox_items(job_id, status);
    CREATE INDEX outbox_items_subscriber ON outbox_items(subscriber_id, status)
    """,
    # Telegram message ids of the parts sent ("1,2"): a correction edits them in place.
    "ALTER TABLE outbox_items ADD COLUMN message_ids TEXT NOT NULL DEFAULT ''",
    # Revisions of a job's payload, and the one a row's parts went out with: a correction
    # edits the rows sent before it, including those in flight while it was made.
    "ALTER TABLE outbox_jobs ADD COLUMN payload_rev INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE outbox_items ADD COLUMN sent_rev INTEGER NOT NULL DEFAULT 0",
]


class Outbox(OutboxStats, DigestFanOut):
    """The `outbox_jobs` and `outbox_items` tables: jobs planned, rows claimed and marked."""

    async def _in_transaction(self, sql: str, rows: Iterable[Sequence[object]]) -> int:
        async with transaction(self._conn):
            before = self._conn.total_changes
            await self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    async def create_job(
        self, key: str, kind: str, payload: str, *, title: str, now: datetime
    ) -> tuple[int, bool]:
        """The job with `key`, created if new; (id, created). Insert-or-ignore: never twice."""
        cur = await self._conn.execute(
            "INSERT INTO outbox_jobs(key, kind, title, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
            (key, kind, title, payload, iso(now)),
        )
        created = cur.rowcount > 0
        async with self._conn.execute("SELECT id FROM outbox_jobs WHERE key = ?", (key,)) as c:
            row = await c.fetchone()
        assert row is not None
        return int(row[0]), created

    async def add_items(self, job_id: int, items: Iterable[PlannedItem]) -> int:
        """Insert rows for a job in one transaction, skipping keys already there; count added."""
        return await self._in_transaction(
            "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address,"
            " priority) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
            (
                (
                    job_id,
                    i.key,
                    i.kind.value,
                    i.channel.value,
                    i.subscriber_id,
                    i.address,
                    i.priority,
                )
                for i in items
            ),
        )

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
        who = (
            f"status = 'active' AND {AUDIENCE_SQL[audience]}"
            f" AND channel IN ({', '.join('?' * len(wanted))})"
        )
        who_args: list[str] = list(wanted)
        if topics is not None:
            patterns = topic_patterns(topics)
            likes = " OR ".join(["topics LIKE ? ESCAPE '\\'"] * len(patterns)) or "FALSE"
            who += f" AND {topics_sql(likes)}"
            who_args += patterns
        last = 0
        while True:
            async with self._conn.execute(
                f"SELECT MAX(id) FROM (SELECT id FROM subscribers WHERE id > ? AND {who}"
                " ORDER BY id LIMIT ?)",
                (last, *who_args, batch),
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[0] is None:
                return
            upto = int(row[0])
            added: dict[Channel, int] = {}
            async with transaction(self._conn):
                for channel in channels:
                    cur = await self._conn.execute(
                        "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id,"
                        " address, priority) SELECT ?, ? || id, ?, channel, id, address, ?"
                        f" FROM subscribers WHERE id > ? AND id <= ? AND {who} AND channel = ?"
                        " ON CONFLICT(key) DO NOTHING",
                        (
                            job_id, f"{job_key}:{channel.value}:", kind.value, kind.priority,
                            last, upto, *who_args, channel.value,
                        ),
                    )  # fmt: skip
                    added[channel] = max(0, cur.rowcount)
            yield added
            last = upto

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
        rows = "" if only is None else f" AND i.id IN ({','.join(str(int(i)) for i in only)})"
        cur = await self._conn.execute(
            "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address,"
            " priority, message_ids) SELECT ?, ? || COALESCE(CAST(i.subscriber_id AS TEXT),"
            " i.address), ?, i.channel, i.subscriber_id, i.address, ?, i.message_ids"
            " FROM outbox_items i JOIN outbox_jobs j ON j.id = i.job_id WHERE j.key = ?"
            " AND i.channel = 'telegram' AND i.status = 'sent' AND i.message_ids != ''"
            f" AND (? IS NULL OR i.sent_rev < ?){rows} ORDER BY i.id ON CONFLICT(key) DO NOTHING",
            (
                job_id,
                f"{job_key}:{Channel.TELEGRAM.value}:",
                Kind.EDIT.value,
                Kind.EDIT.priority,
                source_job_key,
                below_rev,
                below_rev,
            ),
        )
        return max(0, cur.rowcount)

    async def send_again(self, job_id: int, channel: Channel) -> int:
        """The job's sent rows on `channel` back in the queue from their first part."""
        async with transaction(self._conn):
            cur = await self._conn.execute(
                "UPDATE outbox_items SET status = 'queued', parts_done = 0, message_ids = '',"
                " attempts = 0, plain = 0, next_attempt_at = 0, last_error = NULL"
                " WHERE job_id = ? AND channel = ? AND status = 'sent'",
                (job_id, channel.value),
            )
            await self._conn.execute(
                "UPDATE outbox_jobs SET finished_at = NULL WHERE id = ?", (job_id,)
            )
        return max(0, cur.rowcount)

    async def unsettled(self, job_id: int) -> list[int]:
        """Ids of the job's rows being sent, or partly sent and queued again."""
        async with self._conn.execute(
            "SELECT id FROM outbox_items WHERE job_id = ? AND (status = 'sending'"
            " OR status = 'queued' AND parts_done > 0) ORDER BY id",
            (job_id,),
        ) as cur:
            return [int(r[0]) for r in await cur.fetchall()]

    async def find_job(self, key: str) -> tuple[int, str] | None:
        """(id, payload) of the job with `key`, or None."""
        async with self._conn.execute(
            "SELECT id, payload FROM outbox_jobs WHERE key = ?", (key,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    async def set_payload(self, job_id: int, payload: str) -> int:
        """Replace a job's payload: its rows not sent yet go out with the new content.
        Returns its revision, counted up only when the payload changes (a restart that sets
        the same payload again leaves the rows sent meanwhile as sent with it)."""
        async with self._conn.execute(
            "UPDATE outbox_jobs SET payload_rev = payload_rev + (payload != ?1), payload = ?1"
            " WHERE id = ?2 RETURNING payload_rev",
            (payload, job_id),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise LookupError(f"outbox job {job_id} does not exist")
        return int(row[0])

    async def mark_planned(self, job_id: int) -> None:
        """Every row of the job is in: it can finish once they are all done."""
        await self._conn.execute("UPDATE outbox_jobs SET planned = 1 WHERE id = ?", (job_id,))

    async def plan_left_over(self, kind: str, created_before: datetime) -> int:
        cur = await self._conn.execute(
            "UPDATE outbox_jobs SET planned = 1 WHERE kind = ? AND planned = 0 AND created_at < ?",
            (kind, iso(created_before)),
        )
        return max(0, cur.rowcount)

    async def payload(self, job_id: int) -> tuple[str, int]:
        async with self._conn.execute(
            "SELECT payload, payload_rev FROM outbox_jobs WHERE id = ?", (job_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise LookupError(f"outbox job {job_id} does not exist")
        return str(row[0]), int(row[1])

    async def recover(self) -> int:
        """At start: rows left `sending` by a crash go back in the queue; returns how many."""
        cur = await self._conn.execute(
            "UPDATE outbox_items SET status = 'queued', lease_until = NULL WHERE status = 'sending'"
        )
        return cur.rowcount

    async def release_expired(self, now: float) -> int:
        """Rows whose lease ran out (their sender vanished) become claimable again."""
        cur = await self._conn.execute(
            "UPDATE outbox_items SET status = 'queued', lease_until = NULL"
            " WHERE status = 'sending' AND lease_until < ?",
            (now,),
        )
        return cur.rowcount

    async def claim(
        self, limit: int, *, now: float, lease_s: float, channel: Channel | None = None
    ) -> list[ClaimedItem]:
        """Take up to `limit` due rows, most urgent first, and lease them.

        Rows whose subscriber has left (blocked, bounced, unsubscribed, removed) are cancelled
        instead; a pending subscriber gets only its confirmation.
        """
        async with transaction(self._conn):
            async with self._conn.execute(
                "SELECT o.id, o.job_id, o.key, o.kind, o.channel, o.subscriber_id,"
                " COALESCE(s.address, o.address), o.attempts, o.parts_done, o.plain,"
                " o.subscriber_id IS NOT NULL AND (s.status IS NULL OR s.status NOT IN"
                " ('active', 'pending') OR (s.status = 'pending' AND o.kind != 'confirm')),"
                " o.message_ids, s.quiet, s.tz"
                " FROM outbox_items o LEFT JOIN subscribers s ON s.id = o.subscriber_id"
                " WHERE o.status = 'queued' AND o.next_attempt_at <= ?"
                + (" AND o.channel = ?" if channel else "")
                + " ORDER BY o.priority, o.id LIMIT ?",
                (now, channel, limit) if channel else (now, limit),
            ) as cur:
                rows = list(await cur.fetchall())
            gone = [(int(r[0]),) for r in rows if r[10]]
            items = [
                ClaimedItem(
                    id=int(r[0]),
                    job_id=int(r[1]),
                    key=str(r[2]),
                    kind=Kind(r[3]),
                    channel=Channel(r[4]),
                    subscriber_id=None if r[5] is None else int(r[5]),
                    address=str(r[6]),
                    attempts=int(r[7]),
                    parts_done=int(r[8]),
                    plain=Degrade(int(r[9])),
                    message_ids=ids_of(r[11]),
                    quiet=None if r[12] is None else str(r[12]),
                    tz=None if r[13] is None else str(r[13]),
                )
                for r in rows
                if not r[10]
            ]
            await self._conn.executemany(
                "UPDATE outbox_items SET status = 'sending', lease_until = ? WHERE id = ?",
                ((now + lease_s, i.id) for i in items),
            )
            await self._conn.executemany(
                "UPDATE outbox_items SET status = 'cancelled',"
                " last_error = 'subscriber left' WHERE id = ?",
                gone,
            )
        return items

    async def next_due(self) -> float | None:
        """When the earliest queued row becomes due (epoch seconds), or None."""
        async with self._conn.execute(
            "SELECT MIN(next_attempt_at) FROM outbox_items WHERE status = 'queued'"
        ) as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def apply(self, updates: Sequence[ItemUpdate]) -> None:
        """Write a batch of outcomes in one transaction.

        An email that went out also ends its address's run of hard failures: done here, for
        the whole batch at once, not as a statement per email sent.
        """
        if not updates:
            return
        sent = [(u.id,) for u in updates if u.status is OutboxStatus.SENT]
        async with transaction(self._conn):
            await self._conn.executemany(
                "UPDATE outbox_items SET status = ?, attempts = ?, parts_done = ?, plain = ?,"
                " next_attempt_at = ?, last_error = ?, address = COALESCE(?, address),"
                " sent_at = COALESCE(?, sent_at), message_ids = COALESCE(?, message_ids),"
                f" sent_rev = {SENT_REV.format(new='?', parts='?', old='', least='MIN')},"
                " lease_until = NULL WHERE id = ?",
                (
                    (
                        u.status.value,
                        u.attempts,
                        u.parts_done,
                        int(u.plain),
                        u.next_attempt_at,
                        u.last_error,
                        u.address,
                        u.sent_at,
                        None if u.message_ids is None else ids_text(u.message_ids),
                        u.payload_rev,
                        u.parts_done,
                        u.payload_rev,
                        u.payload_rev,
                        u.id,
                    )
                    for u in updates
                ),
            )
            await self._conn.executemany(
                "UPDATE subscribers SET hard_bounces = 0 WHERE hard_bounces > 0 AND id ="
                " (SELECT subscriber_id FROM outbox_items WHERE id = ? AND channel = 'email')",
                sent,
            )

    async def cancel_subscriber(self, subscriber_id: int, reason: str) -> int:
        """A subscriber was blocked or bounced: its queued rows will never be sent."""
        cur = await self._conn.execute(
            "UPDATE outbox_items SET status = 'cancelled', last_error = ?"
            " WHERE subscriber_id = ? AND status = 'queued'",
            (reason, subscriber_id),
        )
        return cur.rowcount

    async def finish_jobs(self, job_ids: Iterable[int], now: datetime) -> list[JobProgress]:
        """Mark planned jobs with no queued or sending row finished; return those just finished."""
        done: list[JobProgress] = []
        for job_id in set(job_ids):
            cur = await self._conn.execute(
                "UPDATE outbox_jobs SET finished_at = ? WHERE id = ? AND planned = 1"
                " AND finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_items"
                " WHERE job_id = ? AND status IN ('queued', 'sending'))",
                (iso(now), job_id, job_id),
            )
            if cur.rowcount:
                done.extend(await self.progress(job_id=job_id))
        return done

    async def retry_failed(self, *, now: float, job_id: int | None = None) -> int:
        """Failed rows (of one job, or all) whose recipient is still there go back in the queue.

        Returns how many rows went back.
        """
        job_filter = " AND job_id = ?" if job_id is not None else ""
        args: tuple[object, ...] = (now, job_id) if job_id is not None else (now,)
        # One transaction: a job never shows finished while some of its rows are queued.
        async with transaction(self._conn):
            async with self._conn.execute(
                "UPDATE outbox_items SET status = 'queued', attempts = 0, plain = 0,"
                " next_attempt_at = ?, last_error = NULL WHERE status = 'failed'"
                + job_filter
                + " AND (subscriber_id IS NULL OR subscriber_id IN"
                " (SELECT id FROM subscribers WHERE status IN ('active', 'pending')))"
                " RETURNING job_id",
                args,
            ) as cur:
                rows = list(await cur.fetchall())
            await self._conn.executemany(
                "UPDATE outbox_jobs SET finished_at = NULL WHERE id = ?",
                ((j,) for j in sorted({int(r[0]) for r in rows})),
            )
        return len(rows)
