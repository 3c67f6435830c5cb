"""The SQLite online backup: consistent copies while another connection keeps writing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.models import Channel
from bot.store import StoreError, backup_sqlite, open_store


def leftovers(folder: Path) -> list[Path]:
    """Hidden part files a backup left behind."""
    return list(folder.glob(".*.part"))


async def chats_in(path: Path) -> list[int]:
    """The Telegram chat ids of the subscribers in the Herald database at `path`, in order."""
    async with open_store(path) as store:
        return sorted([int(s.address) async for s in store.subscribers.all(Channel.TELEGRAM)])


async def test_backups_taken_while_writes_go_on_are_whole_herald_databases(
    tmp_path: Path,
) -> None:
    """Each copy made mid-write holds exactly the first N subscribers; the last one, all."""
    db = tmp_path / "herald.db"
    written = 0
    copies: list[Path] = []
    async with open_store(db) as store:
        done = asyncio.Event()
        progress = asyncio.Condition()

        async def write() -> None:
            nonlocal written
            while not done.is_set():
                await store.subscribers.upsert(Channel.TELEGRAM, str(written + 1))
                async with progress:
                    written += 1
                    progress.notify_all()

        writer = asyncio.create_task(write())
        for n in range(4):
            async with progress:  # writes have gone on since the last copy
                await progress.wait_for(lambda: written >= 20 * len(copies) + 20)
            copy = tmp_path / f"copy-{n}.db"
            await asyncio.to_thread(backup_sqlite, db, copy)
            copies.append(copy)
        done.set()
        await writer
        final = await asyncio.to_thread(backup_sqlite, db, tmp_path / "final.db")
    assert final.size_bytes == final.path.stat().st_size and final.pages > 0
    for copy in copies:
        chats = await chats_in(copy)
        assert chats == list(range(1, len(chats) + 1))  # a prefix: no torn write
        assert not copy.with_name(copy.name + "-wal").exists()  # one file stands alone
    assert await chats_in(final.path) == list(range(1, written + 1)) == await chats_in(db)
    assert not leftovers(tmp_path)


async def test_a_backup_never_replaces_a_file_and_names_the_problem(tmp_path: Path) -> None:
    """An existing FILE is left as it was; a missing database or folder is said, not created."""
    db = tmp_path / "herald.db"
    async with open_store(db) as store:
        await store.subscribers.upsert(Channel.TELEGRAM, "7")
    existing = tmp_path / "keep.db"
    existing.write_text("precious")
    with pytest.raises(StoreError, match="exists already"):
        backup_sqlite(db, existing)
    assert existing.read_text() == "precious"
    with pytest.raises(StoreError, match="no database"):
        backup_sqlite(tmp_path / "nothing.db", tmp_path / "b.db")
    assert not (tmp_path / "nothing.db").exists()
    with pytest.raises(StoreError, match="not a folder"):
        backup_sqlite(db, tmp_path / "no" / "such" / "b.db")
    with pytest.raises(StoreError, match="exists already"):
        backup_sqlite(db, db)
    assert not leftovers(tmp_path)


async def test_a_backup_of_a_database_that_is_not_sqlite_fails_cleanly(tmp_path: Path) -> None:
    """A file that is not a database gives a StoreError, and no FILE is left behind."""
    junk = tmp_path / "herald.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="failed"):
        backup_sqlite(junk, tmp_path / "b.db")
    assert not (tmp_path / "b.db").exists()
    assert not leftovers(tmp_path)
    with pytest.raises(sqlite3.DatabaseError):  # the source was not touched either
        sqlite3.connect(junk).execute("PRAGMA schema_version").fetchone()
