"""`herald backup FILE`: an online SQLite backup; on PostgreSQL, how to use `pg_dump`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.settings import Settings
from bot.store import backup_sqlite

POSTGRES = ("postgresql://", "postgres://")


def without_password(url: str) -> str:
    """`url` with its password left out (in the user part and as a `password=` option)."""
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def pg_dump_advice(url: str, file: Path) -> str:
    """What to run instead on PostgreSQL: pg_dump's own consistent, online dump."""
    target = shlex.quote(without_password(url))
    dump = shlex.quote(str(file))
    return (
        "HERALD_DATABASE_URL is a PostgreSQL database: back it up with PostgreSQL's own\n"
        "pg_dump, which takes a consistent snapshot while Herald runs:\n"
        "\n"
        f"  pg_dump --format=custom --file={dump} {target}\n"
        "\n"
        "The password comes from PGPASSWORD or ~/.pgpass (it is left out here). Restore into\n"
        "an empty database with:\n"
        "\n"
        f"  pg_restore --no-owner --dbname={target} {dump}\n"
    )


def backup(settings: Settings, file: Path, out: TextIO) -> int:
    """Back up the database to the new `file` (SQLite), or say how to (PostgreSQL)."""
    if settings.database_url.startswith(POSTGRES):
        out.write(pg_dump_advice(settings.database_url, file))
        return 0
    done = backup_sqlite(settings.database_path, file)
    db = settings.database_path
    out.write(
        f"backed up {db} to {done.path} ({done.size_bytes} bytes, {done.pages} pages)\n"
        f"to restore: stop herald run, remove {db} with its -wal and -shm files, "
        f"and copy {done.path} to {db}\n"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `herald backup FILE`."""
    p = sub.add_parser("backup", help="copy the database to FILE while Herald runs")
    p.add_argument("file", type=Path, metavar="FILE", help="a new file for the backup")
    p.set_defaults(func=lambda args, settings: backup(settings, args.file, sys.stdout))
