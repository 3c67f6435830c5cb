"""Opening a real SQLite file: one `herald run` at a time, locks waited out, read-only files
and folders named, a file deleted under a running store noticed, a lost post log refused."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import StoreError, open_store
from tests.support.acceptance import ROOT, delete_database, poll, unwritable

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def logged(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    """The captured log messages that contain every one of `words`."""
    return [m for r in caplog.records if all(w in (m := r.getMessage()) for w in words)]


async def test_a_second_run_is_refused_while_other_commands_open_the_database(
    tmp_path: Path,
) -> None:
    """While one store is open for `herald run`, a second run is refused by name; others open."""
    db = tmp_path / "herald.db"
    async with open_store(db, run=True) as first:
        with pytest.raises(StoreError, match=re.escape(str(db))) as refused:
            async with open_store(db, run=True):
                pass
        assert "\n" not in str(refused.value)
        async with open_store(db) as other:  # herald subscribers / stats / digest
            assert await other.subscribers.counts() == {}
        await first.posts.set_meta("k", "v")
        assert await first.posts.get_meta("k") == "v"


async def test_the_run_lock_goes_with_a_killed_process(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves no lock behind: the next run opens the database."""
    db = tmp_path / "herald.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from bot.store import open_store\n"
        "async def main():\n"
        "    async with open_store(Path(sys.argv[1]), run=True):\n"
        "        print('open', flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n",
        str(db),
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 20) == b"open\n"
        with pytest.raises(StoreError):
            async with open_store(db, run=True):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    async with open_store(db, run=True) as store:
        assert store.health() is None


async def test_a_locked_database_is_waited_for_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program's write lock makes the open wait, logged once, until it is released."""
    caplog.set_level(logging.INFO)
    db = tmp_path / "herald.db"
    async with open_store(db):
        pass
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        opened = asyncio.Event()
        release = asyncio.Event()

        async def run() -> None:
            async with open_store(db, run=True) as store:
                opened.set()
                await store.posts.set_meta("k", "v")
                await release.wait()

        task = asyncio.create_task(run())
        await poll(lambda: logged(caplog, str(db), "is locked"), 20, "a log line: is locked")
        assert not opened.is_set()
        holder.execute("ROLLBACK")
        await asyncio.wait_for(opened.wait(), 20)
        release.set()
        await task
    finally:
        holder.close()
    assert len(logged(caplog, str(db), "is locked")) == 1


async def test_a_read_only_database_file_is_one_sentence(tmp_path: Path) -> None:
    """A database file that refuses writes stops the open with one line naming it and the fix."""
    db = tmp_path / "herald.db"
    async with open_store(db):
        pass
    with unwritable(db), pytest.raises(StoreError) as refused:
        async with open_store(db, run=True):
            pass
    message = str(refused.value)
    assert str(db) in message and "read-only" in message and "writable" in message
    assert "\n" not in message


async def test_a_folder_without_room_for_the_wal_is_one_sentence(tmp_path: Path) -> None:
    """A folder where SQLite cannot create its -wal and -shm files is named with the fix."""
    folder = tmp_path / "data"
    db = folder / "herald.db"
    async with open_store(db, run=True):  # leaves herald.db and its lock, not -wal nor -shm
        pass
    assert not (folder / "herald.db-wal").exists()
    with unwritable(folder), pytest.raises(StoreError) as refused:
        async with open_store(db, run=True):
            pass
    message = str(refused.value)
    assert str(folder) in message and "writable" in message and "herald.db-wal" in message
    assert "\n" not in message


async def test_a_database_file_deleted_or_replaced_under_a_running_store_is_noticed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """health() names a deleted (then a replaced) database file, and it is logged at ERROR."""
    db = tmp_path / "herald.db"
    async with open_store(db, run=True) as store:
        assert store.health() is None
        db.unlink()
        problem = store.health()
        assert problem is not None and str(db) in problem and "deleted" in problem
        await poll(
            lambda: [
                r
                for r in caplog.records
                if r.levelno == logging.ERROR and str(db) in r.getMessage()
            ],
            20,
            "an ERROR log line naming the database",
        )
        db.write_bytes(b"")  # a new file at the same path is not the database Herald writes
        replaced = store.health()
        assert replaced is not None and str(db) in replaced and "replaced" in replaced


async def test_a_new_database_where_posts_were_recorded_is_refused_unless_fresh(
    tmp_path: Path,
) -> None:
    """A run on an empty database whose predecessor recorded posts refuses; --fresh goes on."""
    db = tmp_path / "herald.db"
    async with open_store(db, run=True) as store:
        await store.posts.set_meta("watcher.baseline_done", NOW.isoformat())
    delete_database(db)
    with pytest.raises(StoreError, match="--fresh") as refused:
        async with open_store(db, run=True):
            pass
    assert str(db) in str(refused.value) and "\n" not in str(refused.value)
    async with open_store(db):  # other commands still open it
        pass
    async with open_store(db, run=True, fresh=True) as store:
        await store.posts.set_meta("watcher.baseline_done", NOW.isoformat())
    async with open_store(db, run=True):  # the new post log is the database's own now
        pass
