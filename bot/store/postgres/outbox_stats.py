"""What the outbox holds, read for reports: job progress, totals per status, failed rows,
corrections."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import CorrectionCounts, FailedItem, JobProgress, OutboxStatus
from bot.store.postgres.db import Pool


def _iso(when: datetime | None) -> str | None:
    """A time as SQLite shows it too: ISO 8601 in UTC."""
    return None if when is None else when.astimezone(UTC).isoformat()


class OutboxStats:
    """Read-only queries over `outbox_jobs` and `outbox_items`, for /stats and `herald stats`."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def progress(self, limit: int = 10, *, job_id: int | None = None) -> list[JobProgress]:
        """The newest jobs (or one) with row counts per status."""
        where, args = ("WHERE id = $1", (job_id, 1)) if job_id else ("", (limit,))
        rows = await self._pool.fetch(
            "SELECT j.id, j.key, j.kind, j.title, j.created_at, j.finished_at, i.status,"
            " COUNT(i.id) FROM (SELECT * FROM outbox_jobs "
            + where
            + f" ORDER BY id DESC LIMIT ${len(args)}) j"
            " LEFT JOIN outbox_items i ON i.job_id = j.id"
            " GROUP BY j.id, j.key, j.kind, j.title, j.created_at, j.finished_at, i.status"
            " ORDER BY j.id DESC",
            *args,
        )
        jobs: dict[int, JobProgress] = {}
        for r in rows:
            job = jobs.get(int(r[0]))
            if job is None:
                job = JobProgress(
                    id=int(r[0]),
                    key=str(r[1]),
                    kind=str(r[2]),
                    title=str(r[3]),
                    created_at=_iso(r[4]) or "",
                    finished_at=_iso(r[5]),
                    counts=dict.fromkeys(OutboxStatus, 0),
                )
                jobs[job.id] = job
            if r[6] is not None:
                job.counts[OutboxStatus(r[6])] = int(r[7])
        return list(jobs.values())

    async def totals(self) -> dict[OutboxStatus, int]:
        """Rows per status over all jobs."""
        counts = dict.fromkeys(OutboxStatus, 0)
        for r in await self._pool.fetch(
            "SELECT status, COUNT(*) FROM outbox_items GROUP BY status"
        ):
            counts[OutboxStatus(r[0])] = int(r[1])
        return counts

    async def failed(self, limit: int = 20) -> list[FailedItem]:
        """The newest rows parked as failed, for /stats and `herald stats`."""
        rows = await self._pool.fetch(
            "SELECT i.id, i.job_id, j.key, i.channel, i.address, i.attempts,"
            " COALESCE(i.last_error, '') FROM outbox_items i JOIN outbox_jobs j"
            " ON j.id = i.job_id WHERE i.status = 'failed' ORDER BY i.id DESC LIMIT $1",
            limit,
        )
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
            for r in rows
        ]

    async def correction_counts(self) -> CorrectionCounts:
        """Correction jobs (posts corrected / withdrawn) and their rows sent / queued.

        Jobs are keyed `edit:<post>:<revision>` / `withdraw:<post>:<revision>`; their rows
        are read through the job index, not by a scan of every row for its kind.
        """
        row = await self._pool.fetchrow(
            "WITH jobs AS (SELECT id, key LIKE 'withdraw:%' AS gone FROM outbox_jobs"
            " WHERE key LIKE 'edit:%' OR key LIKE 'withdraw:%')"
            " SELECT (SELECT count(*) FROM jobs WHERE NOT gone),"
            " (SELECT count(*) FROM jobs WHERE gone),"
            " count(*) FILTER (WHERE i.status = 'sent'),"
            " count(*) FILTER (WHERE i.status IN ('queued', 'sending'))"
            " FROM outbox_items i WHERE i.job_id IN (SELECT id FROM jobs) AND i.kind = 'edit'"
        )
        assert row is not None
        return CorrectionCounts(
            corrected=int(row[0]), withdrawn=int(row[1]), edited=int(row[2]), pending=int(row[3])
        )
