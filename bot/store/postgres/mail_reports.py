"""Bounce reports and complaints counted on the `subscribers` table (PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from bot.models import ReportCounts, ReportKind, Status
from bot.store.postgres.db import Pool, transaction
from bot.store.rules import SAME_SEND


class MailReports:
    """What the bounce listener writes: soft bounces in a row, report counts, the status."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def record_report(
        self,
        subscriber_id: int,
        kind: ReportKind,
        *,
        sent_at: datetime | None,
        now: datetime,
        soft_limit: int,
    ) -> Status | None:
        """Count a bounce report or complaint; the status it moved the subscriber to, if any.

        The rules are SQLite's (`bot.store.sqlite.mail_reports`): soft bounces count in a
        row that an email sent between the last bounced one and this one starts again.
        """
        async with transaction(self._pool) as conn:
            row = await conn.fetchrow(
                "SELECT status, soft_bounces, soft_bounce_sent_at FROM subscribers"
                " WHERE id = $1 AND channel = 'email' FOR UPDATE",
                subscriber_id,
            )
            if row is None:
                return None
            status, streak, last = Status(row[0]), int(row[1]), row[2]
            moved: Status | None = None
            if kind is ReportKind.SOFT:
                if sent_at is not None and last is not None:
                    reached = await conn.fetchval(
                        "SELECT EXISTS(SELECT 1 FROM outbox_items WHERE subscriber_id = $1"
                        " AND channel = 'email' AND status = 'sent' AND sent_at > $2"
                        " AND sent_at < $3)",
                        subscriber_id,
                        last + SAME_SEND,
                        sent_at,
                    )
                    if reached:
                        streak = 0
                streak += 1
                when = sent_at or now
                last = max(last, when) if last else when
                moved = Status.BOUNCED if streak >= soft_limit else None
                await conn.execute(
                    "UPDATE subscribers SET soft_bounces = $1, soft_bounce_sent_at = $2,"
                    " soft_bounce_reports = soft_bounce_reports + 1 WHERE id = $3",
                    streak,
                    last,
                    subscriber_id,
                )
            else:
                column = "hard_bounce_reports" if kind is ReportKind.HARD else "complaints"
                moved = Status.BOUNCED if kind is ReportKind.HARD else Status.UNSUBSCRIBED
                await conn.execute(
                    f"UPDATE subscribers SET {column} = {column} + 1 WHERE id = $1",
                    subscriber_id,
                )
            if moved is None or status not in (Status.ACTIVE, Status.PENDING):
                return None
            await conn.execute(
                "UPDATE subscribers SET status = $1, updated_at = $2, left_at = $2 WHERE id = $3",
                moved.value,
                now,
                subscriber_id,
            )
            return moved

    async def report_counts(self) -> ReportCounts:
        """Bounce reports and complaints received, over every subscriber on record."""
        row = await self._pool.fetchrow(
            "SELECT SUM(hard_bounce_reports), SUM(soft_bounce_reports), SUM(complaints)"
            " FROM subscribers WHERE channel = 'email'"
        )
        hard, soft, complaints = (int(v or 0) for v in (row or (0, 0, 0)))
        return ReportCounts(hard=hard, soft=soft, complaints=complaints)
