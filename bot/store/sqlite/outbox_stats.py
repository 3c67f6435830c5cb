"""What the outbox holds, read for reports: job progress, totals per status, failed rows,
corrections."""

from __future__ import annotations

import aiosqlite

from bot.models import CorrectionCounts, FailedItem, JobProgress, OutboxStatus


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
                        id=int(r[0]),
                        key=str(r[1]),
                        kind=str(r[2]),
                        title=str(r[3]),
                        created_at=str(r[4]),
                        finished_at=None if r[5] is None else str(r[5]),
                        counts=dict.fromkeys(OutboxStatus, 0),
                    )
                    jobs[job.id] = job
                if r[6] is not None:
                    job.counts[OutboxStatus(r[6])] = int(r[7])
        return list(jobs.values())

    async def totals(self) -> dict[OutboxStatus, int]:
        """Rows per status over all jobs."""
        counts = dict.fromkeys(OutboxStatus, 0)
        async with self._conn.execute(
            "SELECT status, COUNT(*) FROM outbox_items GROUP BY status"
        ) as cur:
            for r in await cur.fetchall():
                counts[OutboxStatus(r[0])] = int(r[1])
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
                    id=int(r[0]),
                    job_id=int(r[1]),
                    job_key=str(r[2]),
                    channel=str(r[3]),
                    address=str(r[4]),
                    attempts=int(r[5]),
                    last_error=str(r[6]),
                )
                for r in await cur.fetchall()
            ]

    async def correction_counts(self) -> CorrectionCounts:
        """Correction jobs (posts corrected / withdrawn) and their rows sent / queued."""
        async with self._conn.execute(CORRECTIONS_SQL) as cur:
            row = await cur.fetchone()
        assert row is not None
        return CorrectionCounts(
            corrected=int(row[0] or 0),
            withdrawn=int(row[1] or 0),
            edited=int(row[2] or 0),
            pending=int(row[3] or 0),
        )


# Correction jobs are keyed `edit:<post>:<revision>` / `withdraw:<post>:<revision>`; their
# rows are read through the job index, not by a scan of every row for its kind.
CORRECTIONS_SQL = (
    "WITH jobs AS (SELECT id, key LIKE 'withdraw:%' AS gone FROM outbox_jobs"
    " WHERE key LIKE 'edit:%' OR key LIKE 'withdraw:%')"
    " SELECT (SELECT COUNT(*) FROM jobs WHERE NOT gone), (SELECT COUNT(*) FROM jobs WHERE gone),"
    " (SELECT COUNT(*) FROM outbox_items WHERE job_id IN (SELECT id FROM jobs)"
    " AND kind = 'edit' AND status = 'sent'),"
    " (SELECT COUNT(*) FROM outbox_items WHERE job_id IN (SELECT id FROM jobs)"
    " AND kind = 'edit' AND status IN ('queued', 'sending'))"
)
