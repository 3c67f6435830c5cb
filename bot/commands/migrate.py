"""`herald migrate [--copy-from URL]`: bring the database's schema up to date, and copy another
database into it (e.g. SQLite into PostgreSQL), idempotently."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from bot.errors import ConfigError
from bot.models import OutboxStatus
from bot.settings import Settings
from bot.store import SQLITE, Store, database_name, open_store, same_database

T = TypeVar("T")


@dataclass(frozen=True)
class Copied:
    """What one copy added to the target (what it had already is not counted)."""

    subscribers: int
    posts: int
    notes: int
    jobs: int
    rows: int
    digests: int


class _Counted:
    """Passes records through, counting them: what the source offered."""

    def __init__(self) -> None:
        self.seen = 0

    async def __call__(self, records: AsyncIterable[T]) -> AsyncIterator[T]:
        async for record in records:
            self.seen += 1
            yield record


async def copy_database(source: Store, target: Store) -> tuple[Copied, Copied]:
    """Copy `source` into `target`, area by area; (what was added, what the source had).

    Subscribers first (rows name them), then the post log, the jobs not finished and their
    rows, and the digests done. Each area is one transaction in the target.
    """
    src, dst = source.transfer, target.transfer
    offered = {area: _Counted() for area in ("subscribers", "posts", "jobs", "rows")}
    subscribers = await dst.import_subscribers(offered["subscribers"](src.export_subscribers()))
    posts = await dst.import_posts(offered["posts"](src.export_posts()))
    meta, files = await src.export_notes()
    notes = await dst.import_notes(meta, files)
    jobs = await dst.import_jobs(offered["jobs"](src.export_jobs()))
    rows = await dst.import_items(offered["rows"](src.export_items()))
    digests = await src.export_digests()
    done = await dst.import_digests(digests)
    added = Copied(subscribers, posts, notes, jobs, rows, done)
    had = Copied(
        offered["subscribers"].seen,
        offered["posts"].seen,
        len(meta) + len(files),
        offered["jobs"].seen,
        offered["rows"].seen,
        len(digests),
    )
    return added, had


async def migrate(settings: Settings, out: TextIO, *, copy_from: str | None = None) -> int:
    """Apply the schema migrations of HERALD_DATABASE_URL; with `copy_from`, copy into it."""
    url = settings.database_url
    target_name = database_name(url)
    if copy_from is not None:
        if "://" not in copy_from:  # a path: a SQLite file
            copy_from = f"sqlite:///{copy_from}"
        if same_database(copy_from, url):
            raise ConfigError(
                f"--copy-from names {target_name}, the database HERALD_DATABASE_URL names"
                " already: give the other database to copy from"
            )
    async with open_store(url) as target:  # opening migrates
        out.write(f"database {target_name}: schema up to date\n")
        if copy_from is None:
            return 0
        async with open_store(copy_from) as source:
            added, had = await copy_database(source, target)
        key_note = await _keep_secret_key(settings, copy_from, target)
        totals = await target.outbox.totals()
        pending = await target.posts.pending()
    out.write(
        f"copied from {database_name(copy_from)}:"
        f" {added.subscribers} of {had.subscribers} subscribers,"
        f" {added.posts} of {had.posts} posts,"
        f" {added.notes} of {had.notes} notes and file versions,"
        f" {added.jobs} of {had.jobs} unfinished jobs"
        f" with {added.rows} of {had.rows} outbox rows,"
        f" {added.digests} of {had.digests} digests"
        " (the rest was there already)\n"
    )
    if key_note:
        out.write(key_note + "\n")
    waiting = totals[OutboxStatus.QUEUED] + totals[OutboxStatus.SENDING]
    out.write(f"{target_name}: {waiting} messages wait to be sent by `herald run`\n")
    if pending:
        out.write(
            f"{target_name}: {len(pending)} new posts were recorded but not yet announced;"
            " `herald run` announces them\n"
        )
    return 0


async def _keep_secret_key(settings: Settings, source: str, target: Store) -> str | None:
    """A move from SQLite keeps the secret key its links were signed with (the file in its
    data folder): unsubscribe and preference links in emails already sent keep working."""
    if settings.secret_key is not None or not source.startswith(SQLITE):
        return None  # HERALD_SECRET_KEY signs everything, wherever the data lives
    key_file = Path(source.removeprefix(SQLITE)).parent / "secret_key"
    if not key_file.is_file():
        return None
    key = key_file.read_text(encoding="ascii").strip()
    kept = await target.shared_secret(adopt=key)
    if kept is None:  # a SQLite target keeps its key in its own data folder
        return None
    if kept == key:
        return (
            f"secret key: the one of {key_file} is kept in the database"
            " (links already sent keep working)"
        )
    return (
        f"secret key: the database keeps another key than {key_file}, so links in emails"
        " already sent (unsubscribe, preferences) would be refused; set HERALD_SECRET_KEY"
        " to the old key's contents for every process"
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `herald migrate`."""
    p = sub.add_parser(
        "migrate",
        help="bring the database's schema up to date; copy another database into it",
        description="Apply the schema migrations of HERALD_DATABASE_URL. With --copy-from,"
        " also copy subscribers (with their state), the post log, the digests done and the"
        " messages not yet delivered from another database, e.g. from SQLite into"
        " PostgreSQL. Running it again copies nothing twice. Stop `herald run` on the"
        " source first, so that nothing changes there while it is copied.",
    )
    p.add_argument(
        "--copy-from",
        metavar="URL",
        help="the database to copy from: sqlite:///path/to/herald.db (or a path),"
        " postgresql://user:password@host:5432/database",
    )
    p.set_defaults(
        func=lambda args, settings: asyncio.run(
            migrate(settings, sys.stdout, copy_from=args.copy_from)
        )
    )
