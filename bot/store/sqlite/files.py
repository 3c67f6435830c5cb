"""The files beside a SQLite database: the run lock, the post-log marker, and the check that
the file at the database's path is still the one opened.

`herald.db.lock` is held (flock) by the one `herald run` on the database; the kernel drops
it when that process ends, however it ends. `herald.db.baseline` says that a post log was
kept here: a run that finds it next to an empty database refuses to start afresh silently.
"""

from __future__ import annotations

import fcntl
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from bot.store.interface import StoreError

log = logging.getLogger(__name__)


def beside(db: Path, suffix: str) -> Path:
    """`herald.db` → `herald.db<suffix>` in the same folder."""
    return db.with_name(db.name + suffix)


def unwritable(db: Path) -> str | None:
    """Why SQLite cannot write `db` (the file, or its folder for -wal/-shm), or None."""
    db = db.absolute()
    if db.exists() and not os.access(db, os.W_OK):
        return (
            f"the database {db} is read-only: make it writable by the user running herald"
            " (see its owner and mode with ls -l, and an immutable flag with lsattr)"
        )
    folder = next(f for f in db.parents if f.is_dir())  # the one to create, if missing
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"the folder {folder} of the database {db.name} is not writable: SQLite creates"
            f" {db.name}-wal and {db.name}-shm there, so make it writable by the user running"
            " herald (or set HERALD_DATABASE_URL to a database in a writable folder)"
        )
    return None


class RunLock:
    """`<db>.lock`, locked for the life of one `herald run`: a second one is refused."""

    def __init__(self, db: Path) -> None:
        self.db = db.absolute()
        self.path = beside(self.db, ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StoreError naming the database (and the holder's pid)."""
        while True:
            try:
                self.db.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreError(
                    unwritable(self.db) or f"cannot create the lock file {self.path}: {exc}"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise StoreError(
                    f"another `herald run`{pid} is using the database {self.db}: only one"
                    " `herald run` may use a SQLite database (other herald commands work"
                    " beside it); stop that one first, or give this one its own"
                    " HERALD_DATABASE_URL"
                ) from None
            if self._same_file(fd):
                break
            os.close(fd)  # the file was replaced between open and lock: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _same_file(self, fd: int) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def problem(self) -> str | None:
        """What went wrong with the held lock file (deleted or replaced), or None."""
        if self._fd is None or self._same_file(self._fd):
            return None
        return (
            f"the lock file {self.path} was deleted or replaced: a second `herald run` on"
            f" {self.db} would not be refused; restart herald to lock it again"
        )

    def release(self) -> None:
        """Let go (the file stays: deleting it would race with a run that is starting)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FileIdentity:
    """The database file as opened (device and inode), to notice it deleted or replaced."""

    def __init__(self, db: Path) -> None:
        self.db = db.absolute()
        st = os.stat(self.db)
        self._id = (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """Why the file at the path is no longer the database Herald writes, or None."""
        try:
            st = os.stat(self.db)
        except FileNotFoundError:
            what = "deleted"
        else:
            if (st.st_dev, st.st_ino) == self._id:
                return None
            what = "replaced by another file"
        return (
            f"the database file {self.db} was {what} while herald runs: what it records from"
            " now on is lost when it stops, and a restart would find no subscribers; restore"
            " the database (e.g. from a backup), then restart herald"
        )


class PostLogMarker:
    """`<db>.baseline`: written once a post log is kept in the database at this path."""

    def __init__(self, db: Path) -> None:
        self.db = db.absolute()
        self.path = beside(self.db, ".baseline")
        self._seen = self.path.exists()

    def exists(self) -> bool:
        return self._seen or self.path.exists()

    def write(self) -> None:
        """Leave the marker (once); a folder that refuses it is logged, never fatal."""
        if self._seen:
            return
        self._seen = True
        text = (
            f"{datetime.now(UTC).isoformat(timespec='seconds')}\n"
            f"Herald keeps the post log of this site in {self.db.name} (since the time above).\n"
            f"If {self.db.name} is gone, `herald run` refuses to start afresh: restore it from\n"
            "a backup, or run `herald run --fresh` to record today's posts as a new baseline.\n"
        )
        try:
            self.path.write_text(text, encoding="utf-8")
        except OSError as exc:
            log.warning("database: cannot write %s (%s)", self.path, exc)

    def forget(self) -> None:
        """Starting afresh on purpose: the next post log leaves a marker of its own."""
        self.path.unlink(missing_ok=True)
        self._seen = False

    def since(self) -> str:
        """When the marker was written, as it says."""
        try:
            return self.path.read_text(encoding="utf-8").partition("\n")[0]
        except OSError:
            return "an earlier start"
