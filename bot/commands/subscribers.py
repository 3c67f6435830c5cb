"""`herald subscribers list|add|remove|import|export`: the store behind a small CLI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TextIO

from bot.addresses import normalize_address, parse_channel
from bot.commands.subscribers_csv import (
    CsvHeaderError,
    ImportRow,
    RowError,
    header_line,
    parse_csv,
    subscriber_line,
)
from bot.models import Channel, Status, Subscriber
from bot.settings import Settings
from bot.store import open_store

# Rows per transaction: big enough to be fast, small enough not to hold the write lock
# for long while `herald run` is using the same database.
IMPORT_BATCH = 10_000
_TABLE = "{:>8}  {:<8}  {:<40}  {:<12}  {:<8}  {:<5}  {:<8}  {}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table_row(sub: Subscriber) -> str:
    since = sub.created_at.strftime("%Y-%m-%d %H:%M") if sub.created_at else ""
    return _TABLE.format(
        sub.id,
        sub.channel.value,
        sub.address,
        sub.status.value,
        _yes(sub.breaking),
        _yes(sub.daily),
        _yes(sub.every_post),
        since,
    )


async def list_subscribers(
    settings: Settings, out: TextIO, *, channel: str | None, status: str | None
) -> int:
    """Print a readable table of subscribers, streamed from the database."""
    chan = parse_channel(channel) if channel else None
    stat = Status(status) if status else None
    count = 0
    async with open_store(settings.database_url) as store:
        out.write(
            _TABLE.format(
                "id", "channel", "address", "status", "breaking", "daily", "every", "since"
            )
            + "\n"
        )
        async for sub in store.subscribers.all(chan, stat):
            out.write(_table_row(sub) + "\n")
            count += 1
    out.write(f"{count} subscriber(s)\n")
    return 0


async def add(
    settings: Settings,
    out: TextIO,
    *,
    channel: str,
    address: str,
    breaking: bool,
    daily: bool,
    every_post: bool,
) -> int:
    """Add (or re-activate and update) one confirmed subscriber."""
    chan = parse_channel(channel)
    normal = normalize_address(chan, address)
    async with open_store(settings.database_url) as store:
        sub = await store.subscribers.upsert(
            chan, normal, breaking=breaking, daily=daily, every_post=every_post
        )
    out.write(_table_row(sub) + "\n")
    return 0


async def remove(
    settings: Settings, out: TextIO, err: TextIO, *, channel: str, address: str
) -> int:
    """Delete one subscriber; exit status 1 when there was none."""
    chan = parse_channel(channel)
    normal = normalize_address(chan, address)
    async with open_store(settings.database_url) as store:
        removed = await store.subscribers.remove(chan, normal)
    if not removed:
        err.write(f"herald: no {chan.value} subscriber {normal}\n")
        return 1
    out.write(f"removed {chan.value} subscriber {normal}\n")
    return 0


class _BadRows:
    """Reports bad rows as they are found and counts them."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.count = 0

    def keep_good(self, items: Iterable[ImportRow | RowError]) -> Iterator[ImportRow]:
        for item in items:
            if isinstance(item, RowError):
                self.count += 1
                self.err.write(f"{item}\n")
            else:
                yield item


async def import_file(
    settings: Settings, source: TextIO, out: TextIO, err: TextIO, *, strict: bool = False
) -> int:
    """Import a CSV; bad rows go to `err` by line number, good rows are kept.

    Exit status: 0 when at least one row was good (or the file had no data rows), 1 when
    the header is wrong or every row was bad, or with `strict` when any row was bad.
    """
    bad = _BadRows(err)
    good = written = 0
    try:
        async with open_store(settings.database_url) as store:
            rows = bad.keep_good(parse_csv(source))
            while batch := list(islice(rows, IMPORT_BATCH)):
                good += len(batch)
                written += await store.subscribers.import_rows(batch)
    except CsvHeaderError as exc:
        err.write(f"herald: {exc}\n")
        return 1
    kept_out = good - written
    out.write(f"imported {written} subscriber(s); {bad.count} bad row(s) skipped")
    if kept_out:
        # An old list must not bring back who unsubscribed, blocked the bot or bounced.
        out.write(f"; {kept_out} left out (unsubscribed, blocked or bounced earlier)")
    out.write("\n")
    if bad.count and (strict or not good):
        return 1
    return 0


async def export(settings: Settings, out: TextIO) -> int:
    """Write every active subscriber as CSV (the import format) to `out`."""
    async with open_store(settings.database_url) as store:
        out.write(header_line())
        async for sub in store.subscribers.all(status=Status.ACTIVE):
            out.write(subscriber_line(sub))
    return 0


def open_source(name: str) -> TextIO:
    """The file to import; `-` is standard input."""
    if name == "-":
        return sys.stdin
    return Path(name).open(encoding="utf-8-sig", newline="")


def cmd_subscribers(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch `herald subscribers ACTION`; a bad channel or address exits 2 with a message."""
    out, err = sys.stdout, sys.stderr
    try:
        match args.action:
            case "list":
                job = list_subscribers(settings, out, channel=args.channel, status=args.status)
            case "add":
                job = add(
                    settings,
                    out,
                    channel=args.channel,
                    address=args.address,
                    breaking=args.breaking,
                    daily=args.daily,
                    every_post=args.every_post,
                )
            case "remove":
                job = remove(settings, out, err, channel=args.channel, address=args.address)
            case "import":
                with open_source(args.file) as source:
                    return asyncio.run(import_file(settings, source, out, err, strict=args.strict))
            case _:
                job = export(settings, out)
        return asyncio.run(job)
    except (ValueError, OSError) as exc:
        err.write(f"herald subscribers {args.action}: {exc}\n")
        return 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `herald subscribers list|add|remove|import|export`."""
    p = sub.add_parser("subscribers", help="list, add, remove, import or export subscribers")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", help="print subscribers as a table")
    a.add_argument("--channel", choices=[c.value for c in Channel])
    a.add_argument("--status", choices=[s.value for s in Status])
    a = actions.add_parser("add", help="add (or re-activate) one confirmed subscriber")
    a.add_argument("channel", choices=[c.value for c in Channel])
    a.add_argument("address", help="Telegram chat id or email address")
    a.add_argument("--breaking", action=argparse.BooleanOptionalAction, default=True)
    a.add_argument("--daily", action=argparse.BooleanOptionalAction, default=True)
    a.add_argument("--every-post", action=argparse.BooleanOptionalAction, default=False)
    a = actions.add_parser("remove", help="delete one subscriber")
    a.add_argument("channel", choices=[c.value for c in Channel])
    a.add_argument("address", help="Telegram chat id or email address")
    a = actions.add_parser(
        "import",
        help="import CSV: channel,address,breaking,daily [,topics,quiet,digest_time,timezone]",
    )
    a.add_argument("file", help="CSV file, or - for standard input")
    a.add_argument("--strict", action="store_true", help="exit 1 when any row is bad")
    actions.add_parser("export", help="write active subscribers as CSV to standard output")
    p.set_defaults(func=cmd_subscribers)
