"""What the outbox holds, read for reports: job progress, totals per status, failed rows."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

# Every status an outbox row can have, in the order a row moves through them.
STATUSES = ("queued", "sending", "sent", "failed", "cancelled")


@dataclass(frozen=True)
class JobProgress:
    """One job and how far its fan-out got."""

    id: int
    key: str
    kind: str
    title: str
    created_at: str
    finished_at: str | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class FailedItem:
    """A row parked as failed, with its job's key and the last error."""

    id: int
    job_id: int
    job_key: str
    channel: str
    address: str
    attempts: int
    last_error: str


class OutboxStats:
    """Read-only queries over `outbox_jobs` and `outbox_items`, for /stats and `herald stats`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def progress(self, limit: int = 10, *, job_id: int | None = None) -> list[JobProgress]:
        """The newest jobs (or one) with row counts per status."""
        where, args = ("WHERE id = ?", (job_id, 1)) if job_id else ("", (limit,))
        sql = (
            "SELECT j.id, j.key, j.kind, j.title, j.created_at, j.finished_at, i.status,"
            " COUNT(i.id) FROM (SELECT * FROM outbox_jobs " + where + " ORDER BY id DESC LIMIT ?) j"
            " LEFT JOIN outbox_items i ON i.job_id = j.id GROUP BY j.id, i.status"
            " ORDER BY j.id DESC"
        )
        jobs: dict[int, JobProgress] = {}
        async with self._conn.execute(sql, args) as cur:
            for r in await cur.fetchall():
                job = jobs.get(int(r[0]))
                if job is None:
                    job = JobProgress(
                        int(r[0]),
                        str(r[1]),
                        str(r[2]),
                        str(r[3]),
                        str(r[4]),
                        None if r[5] is None else str(r[5]),
                        {s: 0 for s in STATUSES},
                    )
                    jobs[job.id] = job
                if r[6] is not None:
                    job.counts[str(r[6])] = int(r[7])
        return list(jobs.values())

    async def totals(self) -> dict[str, int]:
        """Rows per status over all jobs."""
        counts = {s: 0 for s in STATUSES}
        async with self._conn.execute(
            "SELECT status, COUNT(*) FROM outbox_items GROUP BY status"
        ) as cur:
            for r in await cur.fetchall():
                counts[str(r[0])] = int(r[1])
        return counts

    async def failed(self, limit: int = 20) -> list[FailedItem]:
        """The newest rows parked as failed, for /stats and `herald stats`."""
        async with self._conn.execute(
            "SELECT i.id, i.job_id, j.key, i.channel, i.address, i.attempts,"
            " COALESCE(i.last_error, '') FROM outbox_items i JOIN outbox_jobs j"
            " ON j.id = i.job_id WHERE i.status = 'failed' ORDER BY i.id DESC LIMIT ?",
            (limit,),
        ) as cur:
            return [
                FailedItem(
                    int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), str(r[6])
                )
                for r in await cur.fetchall()
            ]
