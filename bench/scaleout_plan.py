"""Planning one post for 1,000,000 subscribers into the outbox: PostgreSQL beside SQLite.

    .venv/bin/python bench/scaleout_plan.py [--rows 1000000]

Target (PostgreSQL): ≤ 10 s, peak RSS ≤ 150 MB. Each plan runs in a fresh child process,
so its peak RSS is the plan's own, not the filling's. The PostgreSQL server is the one
HERALD_BENCH_POSTGRES_URL names (a superuser URL), else a throwaway cluster started here,
as the tests do (Debian's postgresql). The baseline is the same plan on SQLite, same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.models import Channel, Post  # noqa: E402
from bot.outbox.publish import Publisher  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402
from bot.store import open_store  # noqa: E402
from tests.support.postgres import Cluster, _binary, database_url  # noqa: E402

BATCH = 50_000
SITE_DIR = ROOT / "examples" / "site"
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def fill(url: str, rows: int) -> float:
    """Half Telegram chats, half email addresses, every one wanting breaking alerts."""
    started = time.perf_counter()
    async with open_store(url) as store:
        for start in range(0, rows, BATCH):
            await store.subscribers.import_rows(
                (
                    (Channel.TELEGRAM, str(200000000 + i), True, True)
                    if i % 2
                    else (Channel.EMAIL, f"reader{i}@example.com", True, True)
                )
                for i in range(start, min(rows, start + BATCH))
            )
    return time.perf_counter() - started


async def plan(url: str) -> None:
    """Child process: Publisher.announce of one breaking post; rows, time and peak RSS."""
    settings = Settings(_env_file=None, site_dir=SITE_DIR, database_url=url)  # type: ignore[call-arg]
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    before = peak_rss_mb()
    async with open_store(url) as store:
        publisher = Publisher(
            store, renderer, stand_ins=settings.stand_in_channels, channel=settings.telegram_channel
        )
        started = time.perf_counter()
        rows = await publisher.announce(POST, post_id=1)
        elapsed = time.perf_counter() - started
    backend = url.split(":", 1)[0]
    print(
        f"  {backend:10} plan 1 post for {rows:,} rows: {elapsed:.2f} s"
        f" ({rows / elapsed:,.0f} rows/s), peak RSS {peak_rss_mb():.1f} MB"
        f" (at start, renderer built: {before:.1f} MB)",
        flush=True,
    )


async def at_rest(url: str) -> None:
    """The database as it is long after an import: statistics gathered, pages written out
    (autovacuum and the checkpointer do this on their own, minutes later)."""
    if not url.startswith("postgresql"):
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def create_database(server: str, name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(server, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # child mode: a database URL
    args = parser.parse_args()
    if args.plan:
        asyncio.run(plan(args.plan))
        return
    cluster = None
    server = os.environ.get("HERALD_BENCH_POSTGRES_URL")
    if not server:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            sys.exit("PostgreSQL is not installed: apt-get install postgresql")
        cluster = Cluster(initdb, pg_ctl)
        cluster.start()
        server = cluster.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls = {
                "postgresql": asyncio.run(create_database(server, "herald_bench_plan")),
                "sqlite (baseline)": f"sqlite:///{Path(tmp) / 'plan.db'}",
            }
            print(f"planning one breaking post for {args.rows:,} subscribers")
            for label, url in urls.items():
                took = asyncio.run(fill(url, args.rows))
                print(f"  {label}: {args.rows:,} subscribers imported in {took:.1f} s")
                asyncio.run(at_rest(url))
                subprocess.run([sys.executable, __file__, "--plan", url], check=True)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
