"""Watcher benchmark: start-up scan of a 10,000-post site, and publish → event latency.

Run: .venv/bin/python bench/watcher.py [--posts 10000] [--samples 20]
Each start-up is measured in a fresh process so peak RSS belongs to that start alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAGRAPH = (
    "Officials said on Tuesday that the measures would take effect next month, after a "
    "review of the figures. Critics argued that the plan did not go far enough. "
)


def make_site(root: Path, count: int) -> None:
    posts = root / "_posts"
    posts.mkdir(parents=True)
    (root / "_config.yml").write_text('title: Bench\nurl: "https://bench.test"\ntimezone: UTC\n')
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for i in range(count):
        day = start + timedelta(hours=7 * i)
        folder = posts / f"{day.year}"
        folder.mkdir(exist_ok=True)
        liquid = "See {{ site.url }}/about.\n\n" if i % 10 == 0 else ""
        body = "\n\n".join(PARAGRAPH * 4 for _ in range(5))
        (folder / f"{day:%Y-%m-%d}-story-number-{i}.md").write_text(
            f'---\ntitle: "Story number {i}"\ndate: {day:%Y-%m-%d %H:%M:%S} +0000\n'
            f"categories: [news, world]\ntags: [bench]\nauthor: Desk\n---\n\n{liquid}{body}\n"
        )


def startup(site: Path, db: Path) -> None:
    """Child process: one start-up scan; prints seconds and peak RSS as JSON."""
    from bot.settings import Settings
    from bot.sources.jekyll.site import load_site
    from bot.sources.watcher import Watcher
    from bot.store import open_store

    async def main() -> float:
        async def on_post(post: object, post_id: int) -> None:
            pass

        async with open_store(db) as store:
            watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, on_post)
            t0 = time.perf_counter()
            await watcher.scan()
            return time.perf_counter() - t0

    t0 = time.perf_counter()
    scan_s = asyncio.run(main())
    total_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"scan_s": scan_s, "total_s": total_s, "rss_mb": rss_mb}))


async def latency(site: Path, db: Path, samples: int) -> list[float]:
    from bot.models import Post
    from bot.settings import Settings
    from bot.sources.jekyll.site import load_site
    from bot.sources.watcher import Watcher
    from bot.store import open_store

    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def on_post(post: Post, post_id: int) -> None:
        arrived.put_nowait(time.perf_counter())

    stop, ready = asyncio.Event(), asyncio.Event()
    results = []
    async with open_store(db) as store:
        watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, on_post)
        task = asyncio.create_task(watcher.run(stop, ready))
        await ready.wait()
        await asyncio.sleep(0.5)
        for i in range(samples):
            path = site / "_posts" / f"2026-11-24-latency-{i}.md"
            text = f'---\ntitle: "Latency {i}"\ndate: 2026-11-24 06:00:00 +0000\n---\n\nBody.\n'
            # Write then rename: how editors and git land a complete file.
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            t0 = time.perf_counter()
            tmp.rename(path)
            results.append(await asyncio.wait_for(arrived.get(), 10) - t0)
            await asyncio.sleep(0.1)
        stop.set()
        await task
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        startup(Path(args.child[0]), Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        site, db = Path(tmp) / "site", Path(tmp) / "herald.db"
        make_site(site, args.posts)
        for label in ("first start (baseline)", "restart"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(site), str(db)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{label}: {args.posts} posts scanned in {r['scan_s']:.2f} s "
                f"(process total {r['total_s']:.2f} s), peak RSS {r['rss_mb']:.0f} MB"
            )
        lat = sorted(asyncio.run(latency(site, db, args.samples)))
        p95 = lat[max(0, int(len(lat) * 0.95) - 1)]
        print(
            f"publish → event latency over {len(lat)} posts: median "
            f"{statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {lat[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
