"""The readers' own digests fanned out on SQLite: rows queued and readers marked done together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime

import aiosqlite

from bot.choices import topics_text
from bot.models import Channel, DigestGroup, Kind
from bot.store.interface import DigestSlot
from bot.store.rules import BY_HAND_DAY, FAN_OUT_BATCH
from bot.store.sqlite.db import iso, transaction
from bot.store.sqlite.subscribers import DUE_SQL

# The group's readers still due for the day; `DUE_SQL`'s three parameters, then topics and
# where their last window ended (NULL matches NULL: never had one).
_WHO = f"{DUE_SQL} AND topics = ? AND digest_until IS ?"
# By the slot's index: SQLite otherwise picks the status index and a batch's id range,
# reading every subscriber in it (28 ms a statement at 100,000 readers, not 1 ms).
_READERS = "subscribers INDEXED BY subscribers_digest_slot"


class DigestFanOut:
    """`Outbox.fan_out_digest`, a mixin of the SQLite outbox (it reads `self._conn`)."""

    _conn: aiosqlite.Connection

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
        """Queue the digest for the group's readers on `channels` and mark them done for
        `day`, a batch of subscribers per transaction (see the Protocol).

        Every reader of the group is marked, on any channel: one whose channel has no
        message in this digest would otherwise stay due, and be planned again, forever.
        """
        due = BY_HAND_DAY if day is None else day
        who = (*slot, due, topics_text(group.topics), iso(group.since) if group.since else None)
        last = 0
        while True:
            async with self._conn.execute(
                f"SELECT MAX(id) FROM (SELECT id FROM subscribers WHERE id > ? AND {_WHO}"
                " ORDER BY id LIMIT ?)",
                (last, *who, batch),
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[0] is None:
                return
            upto = int(row[0])
            added: dict[Channel, int] = {}
            async with transaction(self._conn):
                for channel in channels if job_id is not None else ():
                    cur = await self._conn.execute(
                        "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id,"
                        " address, priority) SELECT ?, ? || id, ?, channel, id, address, ?"
                        f" FROM {_READERS} WHERE id > ? AND id <= ? AND {_WHO}"
                        " AND channel = ? ON CONFLICT(key) DO NOTHING",
                        (
                            job_id, f"{job_key}:{channel.value}:", Kind.DIGEST.value,
                            Kind.DIGEST.priority, last, upto, *who, channel.value,
                        ),
                    )  # fmt: skip
                    added[channel] = max(0, cur.rowcount)
                await self._conn.execute(
                    # By hand (day None) the day stays: only the window moves on.
                    f"UPDATE {_READERS} SET digest_day = COALESCE(?, digest_day),"
                    f" digest_until = ? WHERE id > ? AND id <= ? AND {_WHO}",
                    (day, iso(until), last, upto, *who),
                )
            yield added
            last = upto
