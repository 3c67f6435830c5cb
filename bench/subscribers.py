"""Subscriber store benchmark: import 100,000 CSV rows, then stream 1,000,000 subscribers.

Run: `.venv/bin/python bench/subscribers.py [--import-rows N] [--scan-rows N]`.
Targets: the 100k import under 5 s; the 1M streamed scan under 100 MB peak RSS (the scan
runs in a fresh child process, so its peak is the scan's own, not the insert's).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.models import Channel
from bot.settings import Settings
from bot.store import open_store
from bot.subscribers_cli import import_file

BATCH = 50_000


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("channel,address,breaking,daily\n")
        for i in range(rows):
            if i % 2:
                out.write(f"email,reader{i}@example.com,yes,{'no' if i % 3 else 'yes'}\n")
            else:
                out.write(f"telegram,{100000000 + i},true,{'false' if i % 5 else 'true'}\n")


async def bench_import(workdir: Path, rows: int) -> None:
    csv_path = workdir / "subscribers.csv"
    write_csv(csv_path, rows)
    settings = Settings(_env_file=None, database_url=f"sqlite:///{workdir / 'import.db'}")
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with csv_path.open(encoding="utf-8", newline="") as source:
        code = await import_file(settings, source, out, err)
    elapsed = time.perf_counter() - started
    assert code == 0, err.getvalue()
    print(f"import {rows:,} CSV rows: {elapsed:.2f} s ({rows / elapsed:,.0f} rows/s)")
    print(f"  {out.getvalue().strip()}")


async def fill(db: Path, rows: int) -> float:
    started = time.perf_counter()
    async with open_store(db) as store:
        for start in range(0, rows, BATCH):
            batch = [
                (Channel.TELEGRAM, str(200000000 + i), i % 2 == 0, True)
                for i in range(start, min(rows, start + BATCH))
            ]
            await store.subscribers.import_rows(batch)
    return time.perf_counter() - started


async def scan(db: Path) -> None:
    """Child process: stream every breaking recipient and report count, time and peak RSS."""
    before = peak_rss_mb()
    started = time.perf_counter()
    count = 0
    async with open_store(db) as store:
        async for _sub in store.subscribers.recipients():
            count += 1
    elapsed = time.perf_counter() - started
    print(f"scan {count:,} subscribers: {elapsed:.2f} s, peak RSS {peak_rss_mb():.1f} MB")
    print(f"  (peak RSS at start-up, before the scan: {before:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--scan-rows", type=int, default=1_000_000)
    parser.add_argument("--scan", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.scan:
        asyncio.run(scan(args.scan))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        asyncio.run(bench_import(workdir, args.import_rows))
        db = workdir / "scan.db"
        elapsed = asyncio.run(fill(db, args.scan_rows))
        print(f"insert {args.scan_rows:,} rows in batches of {BATCH:,}: {elapsed:.2f} s")
        subprocess.run([sys.executable, __file__, "--scan", str(db)], check=True)


if __name__ == "__main__":
    main()
