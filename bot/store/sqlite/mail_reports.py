"""Bounce reports and complaints counted on the `subscribers` table, for the bounce listener."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite

from bot.models import ReportCounts, ReportKind, Status
from bot.store.rules import SAME_SEND
from bot.store.sqlite.db import transaction


def _stamp(when: datetime) -> str:
    # Always with microseconds, so stored times compare in order as text.
    return when.astimezone(UTC).isoformat(timespec="microseconds")


class MailReports:
    """What the bounce listener writes: soft bounces in a row, report counts, the status."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

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

        Soft bounces count in a row: an email to the address marked sent after the last
        bounced one was sent and before this one was (when `sent_at` is known) reached it,
        so the row starts again. An accepted email is not proof of delivery (a relay
        accepts at once and reports days later), which is why the send times are compared
        rather than every accepted email clearing the count.
        """
        async with transaction(self._conn):
            async with self._conn.execute(
                "SELECT status, soft_bounces, soft_bounce_sent_at FROM subscribers"
                " WHERE id = ? AND channel = 'email'",
                (subscriber_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            status, streak, last = Status(row[0]), int(row[1]), row[2]
            moved: Status | None = None
            if kind is ReportKind.SOFT:
                if sent_at is not None and last is not None:
                    since = datetime.fromisoformat(last) + SAME_SEND
                    if await self._sent_between(subscriber_id, since, sent_at):
                        streak = 0
                streak += 1
                when = sent_at or now
                last = max(last, _stamp(when)) if last else _stamp(when)
                moved = Status.BOUNCED if streak >= soft_limit else None
                await self._conn.execute(
                    "UPDATE subscribers SET soft_bounces = ?, soft_bounce_sent_at = ?,"
                    " soft_bounce_reports = soft_bounce_reports + 1 WHERE id = ?",
                    (streak, last, subscriber_id),
                )
            else:
                column = "hard_bounce_reports" if kind is ReportKind.HARD else "complaints"
                moved = Status.BOUNCED if kind is ReportKind.HARD else Status.UNSUBSCRIBED
                await self._conn.execute(
                    f"UPDATE subscribers SET {column} = {column} + 1 WHERE id = ?",
                    (subscriber_id,),
                )
            if moved is None or status not in (Status.ACTIVE, Status.PENDING):
                return None
            stamp = _stamp(now)
            await self._conn.execute(
                "UPDATE subscribers SET status = ?, updated_at = ?, left_at = ? WHERE id = ?",
                (moved.value, stamp, stamp, subscriber_id),
            )
            return moved

    async def _sent_between(self, subscriber_id: int, since: datetime, until: datetime) -> bool:
        async with self._conn.execute(
            "SELECT 1 FROM outbox_items WHERE subscriber_id = ? AND channel = 'email'"
            " AND status = 'sent' AND julianday(sent_at) > julianday(?)"
            " AND julianday(sent_at) < julianday(?) LIMIT 1",
            (subscriber_id, _stamp(since), _stamp(until)),
        ) as cur:
            return await cur.fetchone() is not None

    async def report_counts(self) -> ReportCounts:
        """Bounce reports and complaints received, over every subscriber on record."""
        async with self._conn.execute(
            "SELECT SUM(hard_bounce_reports), SUM(soft_bounce_reports), SUM(complaints)"
            " FROM subscribers WHERE channel = 'email'"
        ) as cur:
            row = await cur.fetchone()
        hard, soft, complaints = (int(v or 0) for v in (row or (0, 0, 0)))
        return ReportCounts(hard=hard, soft=soft, complaints=complaints)
