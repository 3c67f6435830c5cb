"""Planning a day of digests for 100,000 readers with their own times, zones and topics,
beside 100,000 readers all on the site's default time, in the same run.

    .venv/bin/python bench/digest_planning.py [--readers 100000] [--no-postgres]

The scheduler ticks once a minute through one (DST-free) UTC day, as `herald run` does, and
plans every reader's digest once; its first tick, at midnight, catches up on the digests
of the 12 hours before (every reader is new) and is measured on its own. The readers with
their own choices are spread over 48 times (every half hour) × 10 zones and five topic
choices, so 480 slots come due one after another; the baseline's readers all come due at
08:00. Figures per database: the day's planning time (all ticks), the longest and the
median tick, rows queued, jobs, and the planning process's peak RSS (each plan runs in a
fresh child process, so its peak is the plan's own, not the filling's). No delivery runs:
only the rows written.

PostgreSQL: the server HERALD_BENCH_POSTGRES_URL names (a superuser URL), else a throwaway
cluster started here as the tests do; skipped with --no-postgres or when not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.models import Channel, Post  # noqa: E402
from bot.outbox.digest import DigestScheduler  # noqa: E402
from bot.outbox.publish import Publisher  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402
from bot.store import ImportRow, open_store  # noqa: E402
from tests.support.postgres import Cluster, _binary, database_url  # noqa: E402

BATCH = 20_000
SITE_DIR = ROOT / "examples" / "site"
DAY = datetime(2026, 2, 10, tzinfo=UTC)  # no zone below changes its clocks near it
TIMES = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]  # 48
ZONES = [
    "UTC", "Europe/London", "Europe/Berlin", "Europe/Moscow", "Asia/Kolkata",
    "Asia/Tokyo", "Australia/Sydney", "America/New_York", "America/Chicago",
    "America/Los_Angeles",
]  # fmt: skip
TOPICS: list[tuple[str, ...]] = [(), ("sport",), ("politics",), ("sport", "weather"), ("culture",)]
CATEGORIES = ["sport", "politics", "weather", "culture", "business"]
POSTS = 72  # one every 50 minutes over the 60 hours before and during the day
SITE_TIME = "08:00"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def readers(count: int, *, own: bool) -> list[ImportRow]:
    """Two Telegram chats to one email address; `own`: spread over times, zones, topics."""
    rows = []
    for i in range(count):
        channel = Channel.EMAIL if i % 3 == 2 else Channel.TELEGRAM
        address = f"reader{i}@example.com" if channel is Channel.EMAIL else str(300000000 + i)
        if own:
            at, tz = TIMES[i % len(TIMES)], ZONES[(i // len(TIMES)) % len(ZONES)]
            topics = TOPICS[(i // (len(TIMES) * len(ZONES))) % len(TOPICS)]
            rows.append(ImportRow(channel, address, False, True, topics, None, at, tz))
        else:
            rows.append(ImportRow(channel, address, False, True))
    return rows


def post(n: int) -> Post:
    when = DAY - timedelta(hours=36) + timedelta(minutes=50 * n)
    return Post(
        path=f"2026-02-{n:03d}-bench.md",
        slug=f"bench-{n}",
        title=f"Council news item {n}",
        date=when,
        url=f"https://news.example.org/2026/02/bench-{n}.html",
        body="The council **met** again today. " * 4,
        excerpt="The council **met** again today. " * 4,
        categories=(CATEGORIES[n % len(CATEGORIES)],),
    )


async def fill(url: str, count: int, *, own: bool) -> float:
    """The readers, and the posts announced over the day and a half before and the day."""
    started = time.perf_counter()
    async with open_store(url) as store:
        rows = readers(count, own=own)
        for start in range(0, len(rows), BATCH):
            await store.subscribers.import_rows(rows[start : start + BATCH])
        for n in range(POSTS):
            p = post(n)
            [(post_id, _)] = await store.posts.record([p], announced=True, now=p.date)
            await store.posts.mark_announced(post_id)
        for n in (3, 40):  # two corrections during the day: marked updated
            fixed = replace(post(n), title=f"Council news item {n}, corrected")
            await store.posts.record([fixed], announced=True, now=DAY + timedelta(hours=n % 20))
    return time.perf_counter() - started


async def plan(url: str) -> None:
    """Child process: tick once a minute through the day; figures as one JSON line."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        site_dir=SITE_DIR,
        database_url=url,
        digest_time=SITE_TIME,
        timezone="UTC",
    )
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    at_start = peak_rss_mb()
    async with open_store(url) as store:
        publisher = Publisher(store, renderer)  # no outbox stand-ins: readers only
        sched = DigestScheduler(publisher, store.digests, at=SITE_TIME, tz=ZoneInfo("UTC"))
        # Herald starts at midnight: the first tick catches up on the digests due in the
        # last 12 hours (every reader is new), measured on its own.
        started = time.perf_counter()
        caught = await sched.tick(DAY + timedelta(seconds=5))
        catch_up = time.perf_counter() - started
        ticks: list[float] = []
        longest, busiest = 0.0, ""
        rows = jobs = readers_done = 0
        for minute in range(1, 24 * 60 + 1):  # then each slot's digest once, at its time
            now = DAY + timedelta(minutes=minute, seconds=5)
            started = time.perf_counter()
            runs = await sched.tick(now)
            took = time.perf_counter() - started
            ticks.append(took)
            if took > longest:
                longest, busiest = took, f"{now:%H:%M}"
            rows += sum(r.queued for r in runs)
            jobs += sum(1 for r in runs if r.job_id is not None)
            readers_done += sum(r.readers for r in runs)
    print(
        json.dumps(
            {
                "seconds": sum(ticks),
                "longest": longest,
                "busiest": busiest,
                "median": sorted(ticks)[len(ticks) // 2],
                "catch_up": catch_up,
                "caught": sum(r.readers for r in caught),
                "rows": rows,
                "jobs": jobs,
                "readers": readers_done,
                "rss": peak_rss_mb(),
                "rss_at_start": at_start,
            }
        ),
        flush=True,
    )


async def create_database(server: str, name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(server, name)


async def at_rest(url: str) -> None:
    """Statistics gathered after the import, as autovacuum would soon."""
    if not url.startswith("postgresql"):
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def measure(label: str, url: str, count: int, *, own: bool) -> None:
    took = asyncio.run(fill(url, count, own=own))
    asyncio.run(at_rest(url))
    out = subprocess.run(
        [sys.executable, __file__, "--plan", url], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    f = json.loads(out.strip().splitlines()[-1])
    print(
        f"  {label}: {f['seconds']:.2f} s for the day's 1,440 ticks"
        f" (longest {f['longest']:.2f} s at {f['busiest']}, median {f['median'] * 1000:.1f} ms);"
        f" {f['readers']:,} readers' digests, {f['rows']:,} rows, {f['jobs']:,} jobs;"
        f" peak RSS {f['rss']:.0f} MB (renderer built: {f['rss_at_start']:.0f} MB);"
        f" catch-up tick at start: {f['catch_up']:.2f} s for {f['caught']:,} readers"
        f" [filled in {took:.0f} s]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # child mode: a database URL
    args = parser.parse_args()
    if args.plan:
        asyncio.run(plan(args.plan))
        return
    print(
        f"a day of digests for {args.readers:,} readers: own times ({len(TIMES)} times ×"
        f" {len(ZONES)} zones × {len(TOPICS)} topic choices) beside all on {SITE_TIME} UTC"
    )
    cluster = None
    server = os.environ.get("HERALD_BENCH_POSTGRES_URL")
    if not server and not args.no_postgres:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is not None and pg_ctl is not None:
            cluster = Cluster(initdb, pg_ctl)
            cluster.start()
            server = cluster.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backends = [("sqlite", lambda name: f"sqlite:///{Path(tmp) / name}.db")]
            if server and not args.no_postgres:
                backends.append(
                    ("postgresql", lambda name: asyncio.run(create_database(server, name)))
                )
            for backend, make in backends:
                for own, label in (
                    (True, "own times, zones, topics"),
                    (False, "baseline: site default"),
                ):
                    url = make(f"herald_bench_digest_{'own' if own else 'default'}")
                    measure(f"{backend} {label}", url, args.readers, own=own)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
