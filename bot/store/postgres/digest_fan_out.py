"""The readers' own digests fanned out on PostgreSQL: readers marked done and their rows
queued by one statement per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime

from bot.choices import topics_text
from bot.models import Channel, DigestGroup, Kind
from bot.store.interface import DigestSlot
from bot.store.postgres.db import Pool, transaction
from bot.store.postgres.subscribers import due_sql, matches
from bot.store.rules import BY_HAND_DAY, FAN_OUT_BATCH


def _who(slot: DigestSlot, group: DigestGroup) -> str:
    """The group's readers still due for the day: `due_sql` ($1-$3), then topics ($4) and
    where their last window ended ($5; NULL matches NULL: never had one)."""
    since = matches("digest_until", "$5::timestamptz", group.since)
    return f"{due_sql(slot)} AND topics = $4 AND {since}"


def _mark(who: str, by_hand: bool) -> str:
    """Readers of the batch ids ($6, $7] marked done for the day with their window end ($8);
    `by_hand`: only their window moves on."""
    day = "" if by_hand else "digest_day = $3, "
    return f"UPDATE subscribers SET {day}digest_until = $8 WHERE id > $6 AND id <= $7 AND {who}"


def _mark_and_queue(who: str, by_hand: bool) -> str:
    """... and, in the same statement, a row queued for those on the channels ($11) of job
    $9 (key prefix $10, kind $12, priority $13); the rows added per channel."""
    return (
        f"WITH marked AS ({_mark(who, by_hand)} RETURNING id, channel, address),"
        " added AS (INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id,"
        " address, priority) SELECT $9, $10 || channel || ':' || id, $12, channel, id,"
        " address, $13 FROM marked WHERE channel = ANY($11::text[]) ORDER BY id"
        " ON CONFLICT (key) DO NOTHING RETURNING channel)"
        " SELECT channel, count(*) FROM added GROUP BY channel"
    )


_CHANNEL = {c.value: c for c in Channel}


class DigestFanOut:
    """`Outbox.fan_out_digest`, a mixin of the PostgreSQL outbox (it reads `self._pool`)."""

    _pool: Pool

    async def fan_out_digest(
        self,
        job_id: int | None,
        job_key: str,
        channels: Collection[Channel],
        *,
        slot: DigestSlot,
        day: str | None,
        group: DigestGroup,
        until: datetime,
        batch: int = FAN_OUT_BATCH,
    ) -> AsyncIterator[dict[Channel, int]]:
        """Mark the group's readers done for `day` and queue the digest for those on
        `channels`, a batch of subscribers per transaction (see the Protocol).

        Every reader of the group is marked, on any channel: one whose channel has no
        message in this digest would otherwise stay due, and be planned again, forever.
        """
        sql = _who(slot, group)
        by_hand = day is None
        who = (*slot, BY_HAND_DAY if day is None else day, topics_text(group.topics), group.since)
        wanted = sorted(c.value for c in channels)
        last = 0
        while True:
            upto = await self._pool.fetchval(
                f"SELECT MAX(id) FROM (SELECT id FROM subscribers WHERE id > $6 AND {sql}"
                " ORDER BY id LIMIT $7) AS batch",
                *who,
                last,
                batch,
            )
            if upto is None:
                return
            added = {channel: 0 for channel in channels}
            async with transaction(self._pool) as conn:
                if job_id is None:
                    await conn.execute(_mark(sql, by_hand), *who, last, int(upto), until)
                else:
                    counted = await conn.fetch(
                        _mark_and_queue(sql, by_hand), *who, last, int(upto), until, job_id,
                        f"{job_key}:", wanted, Kind.DIGEST.value, Kind.DIGEST.priority,
                    )  # fmt: skip
                    added.update({_CHANNEL[r[0]]: int(r[1]) for r in counted})
            yield added
            last = int(upto)
