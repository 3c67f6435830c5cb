"""Subscriber store benchmark: import 100,000 CSV rows, stream 1,000,000 subscribers, and
plan one post for 200,000 subscribers into the outbox.

Run: `.venv/bin/python bench/subscribers.py [--import-rows N] [--scan-rows N] [--plan-rows N]`.
Targets: the 100k import under 5 s; the 1M streamed scan under 100 MB peak RSS (the scan
runs in a fresh child process, so its peak is the scan's own, not the insert's). The plan
figure is Publisher.announce alone (no delivery running: only the rows written to the
outbox), in a fresh child process, beside a baseline that first lists every recipient in
memory and then inserts the same rows (what the fan-out did before it streamed).
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
from datetime import UTC, datetime
from pathlib import Path

from bot.commands.subscribers import import_file
from bot.models import Channel, Kind, Post, Rendered
from bot.outbox import plan
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import open_store

BATCH = 50_000
CHUNK = 1000  # rows per insert in the naive baseline
SITE_DIR = Path(__file__).resolve().parent.parent / "examples" / "site"


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


async def fill(db: Path, rows: int, breaking_every: int = 2) -> float:
    started = time.perf_counter()
    async with open_store(db) as store:
        for start in range(0, rows, BATCH):
            batch = [
                (Channel.TELEGRAM, str(200000000 + i), i % breaking_every == 0, True)
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


POST = Post(
    path="2026-01-01-bench.md",
    slug="bench",
    title="Water main burst on High Street",
    date=datetime(2026, 1, 1, 9, tzinfo=UTC),
    url="https://news.example.org/2026/01/01/bench.html",
    body="The road is **closed** until further notice.",
    excerpt="The road is **closed** until further notice.",
    breaking=True,
)


async def plan_post(db: Path, naive: bool) -> None:
    """Child process: queue one breaking post for every subscriber; time, rows and peak RSS."""
    settings = Settings(_env_file=None, site_dir=SITE_DIR, database_url=f"sqlite:///{db}")
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    before = peak_rss_mb()
    started = time.perf_counter()
    async with open_store(db) as store:
        if naive:
            rendered = Rendered(
                telegram=renderer.post_messages(POST, Kind.BREAKING),
                email=renderer.post_email(POST, Kind.BREAKING),
            )
            job_id, _ = await store.outbox.create_job(
                "post:1", "breaking", rendered.encode(), title=POST.title, now=POST.date
            )
            everyone = [plan.Recipient.of(s) async for s in store.subscribers.recipients()]
            items = plan.rows_for("post:1", Kind.BREAKING, rendered, everyone)
            rows = 0
            while batch := [i for _, i in zip(range(CHUNK), items, strict=False)]:
                rows += await store.outbox.add_items(job_id, batch)
        else:
            rows = await Publisher(
                store,
                renderer,
                stand_ins=settings.stand_in_channels,
                channel=settings.telegram_channel,
            ).announce(POST, post_id=1)
    elapsed = time.perf_counter() - started
    label = "baseline, all recipients listed first" if naive else "streamed fan-out"
    print(
        f"plan 1 post for {rows:,} rows ({label}): {elapsed:.2f} s, peak RSS {peak_rss_mb():.1f} MB"
    )
    print(f"  (peak RSS at start-up, renderer built: {before:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--scan-rows", type=int, default=1_000_000)
    parser.add_argument("--plan-rows", type=int, default=200_000)
    parser.add_argument("--scan", type=Path, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan:
        asyncio.run(scan(args.scan))
        return
    if args.plan:
        asyncio.run(plan_post(args.plan, args.naive))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        asyncio.run(bench_import(workdir, args.import_rows))
        db = workdir / "scan.db"
        elapsed = asyncio.run(fill(db, args.scan_rows))
        print(f"insert {args.scan_rows:,} rows in batches of {BATCH:,}: {elapsed:.2f} s")
        subprocess.run([sys.executable, __file__, "--scan", str(db)], check=True)
        for naive in (False, True):
            db = workdir / f"plan-{naive}.db"
            asyncio.run(fill(db, args.plan_rows, breaking_every=1))
            child = [sys.executable, __file__, "--plan", str(db)]
            subprocess.run(child + ["--naive"] * naive, check=True)


if __name__ == "__main__":
    main()
