"""The cluster of one: a SQLite database has a single `herald run` (its run lock says so),
which always leads and paces Telegram sends by itself.

Other herald commands on the same database ask `runner()` whether that `herald run` is
there, to hand it their work instead of delivering beside it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.store.sqlite.files import beside


class SqliteCluster:
    """One process on the database: it leads from the start and never stops leading."""

    shared = False

    def __init__(self, db: Path | None, *, holds_run_lock: bool = False) -> None:
        """`db`: the database file (None in memory); `holds_run_lock`: this is `herald run`."""
        self._lock_path = beside(db.absolute(), ".lock") if db is not None else None
        self._holds_run_lock = holds_run_lock
        self._next_send = 0.0  # when the next send is free (time.time())

    @asynccontextmanager
    async def joined(self, *, worker: bool, on_wake: Callable[[], None]) -> AsyncIterator[None]:
        # Nobody else delivers here: the one `herald run` polls its outbox every second.
        yield

    async def try_lead(self) -> asyncio.Event | None:
        return asyncio.Event()  # never set: leadership is not lost with one process

    async def resign(self) -> None:
        return None

    async def notify(self) -> None:
        return None

    async def book_sends(self, count: int, rate_per_s: float, *, edits: bool = False) -> float:
        # One process on SQLite: its pacer and free lane pace by themselves (not shared).
        start = max(time.time(), self._next_send)
        self._next_send = start + count / rate_per_s
        return start

    async def runner(self) -> str | None:
        if self._lock_path is None or self._holds_run_lock:
            return None
        return run_lock_holder(self._lock_path)


def run_lock_holder(lock_path: Path) -> str | None:
    """`pid N` of the `herald run` holding the database's run lock, or None when it is free.

    A shared lock is tried for a moment: it fails only while `herald run` holds its
    exclusive one.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            return f"pid {holder}" if holder.isdigit() else "a `herald run`"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
