"""`herald backup FILE` on SQLite: an online copy, consistent while `herald run` writes.

SQLite's backup API copies the database as one read transaction sees it; in WAL mode that
holds up no writer. The copy is made beside FILE under a hidden name, checked, switched
to a single-file journal, and only then linked into place, so FILE is never half written
and an existing FILE is never replaced.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from bot.store.interface import StoreError


@dataclass(frozen=True)
class Backup:
    """What one backup wrote."""

    path: Path
    size_bytes: int
    pages: int


def backup_sqlite(database: Path, target: Path) -> Backup:
    """Copy the SQLite `database` to the new file `target`; StoreError naming what is wrong."""
    if not database.is_file():
        raise StoreError(f"no database at {database}: nothing to back up (HERALD_DATABASE_URL)")
    if target.exists() or target.is_symlink():
        raise StoreError(f"{target} exists already; a backup never replaces a file: name a new one")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent} is not a folder; create it first")
    if target.resolve() == database.resolve():
        raise StoreError(f"{target} is the database itself; name another file")
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        pages = _copy(database, part)
        try:
            os.link(part, target)  # fails if `target` appeared meanwhile: never replaced
        except FileExistsError:
            raise StoreError(f"{target} appeared meanwhile; name a new file") from None
        except OSError:  # a file system without hard links: the check above must do
            if target.exists():
                raise StoreError(f"{target} exists already; name a new one") from None
            os.rename(part, target)
    except sqlite3.Error as exc:
        raise StoreError(f"backup of {database} to {target} failed: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot write the backup {target}: {exc.strerror or exc}") from None
    finally:
        with suppress(FileNotFoundError):
            part.unlink()
    return Backup(target, target.stat().st_size, pages)


def _copy(database: Path, part: Path) -> int:
    """The backup into `part`, checked; the number of pages copied."""
    part.unlink(missing_ok=True)  # a leftover of an earlier, killed backup by this pid
    with (
        closing(sqlite3.connect(database, timeout=30)) as source,
        closing(sqlite3.connect(part)) as copy,
    ):
        source.execute("PRAGMA busy_timeout=30000")
        # pages=-1: the whole database in one step, one snapshot, whatever is written meanwhile.
        source.backup(copy, pages=-1)
        # The copy stands alone: no -wal beside it, and it is sound.
        copy.execute("PRAGMA journal_mode=DELETE")
        (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the copy fails its check: {verdict}")
        (pages,) = copy.execute("PRAGMA page_count").fetchone()
    return int(pages)
