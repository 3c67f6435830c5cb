"""Feed benchmark: the first poll of a 1,000-entry feed (the silent baseline), its time and
peak memory, beside feedparser parsing the same document alone, measured in the same run.

Run: .venv/bin/python bench/feed_baseline.py [--entries 1000] [--runs 3]
The feed is served over loopback by this process (aiohttp, with an ETag); every measurement
runs in a fresh child process, so its peak RSS belongs to it alone. Reported per run:
- import: the child with the modules imported and nothing done (the floor of the RSS);
- parse alone: `feedparser.parse` of the document's bytes, read from disk, with its defaults
  and as the poller calls it (no sanitizing, no link resolving: the poller reduces HTML itself);
- first poll: fetch + parse + HTML → Markdown + recording every entry in a new SQLite file;
- 304 poll: the next poll, answered 304 Not Modified;
- restart poll: a new poller on the same database (no validators: 200, every entry known).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
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


def make_feed(count: int) -> bytes:
    """An Atom feed as jekyll-feed writes it: summary and full HTML content per entry."""
    from html import escape

    start = datetime(2020, 1, 1, tzinfo=UTC)
    entries = []
    for i in range(count):
        day = start + timedelta(hours=7 * i)
        url = f"https://bench.test/{day:%Y/%m/%d}/story-number-{i}.html"
        paragraphs = "".join(f"<p>{PARAGRAPH * 3}<em>Update {n}</em>.</p>" for n in range(4))
        content = (
            f'<figure><img src="/assets/{i}.jpg" alt="Picture {i}"><figcaption>Scene {i}'
            f"</figcaption></figure>{paragraphs}<ul><li>one</li><li>two &amp; three</li></ul>"
        )
        thumb = f'<media:thumbnail url="https://bench.test/t/{i}.jpg"/>' if i % 2 else ""
        entries.append(
            f'<entry><title type="html">Story number {i}</title>'
            f'<link href="{url}" rel="alternate" type="text/html"/>'
            f"<published>{day:%Y-%m-%dT%H:%M:%S}+00:00</published>"
            f"<updated>{day:%Y-%m-%dT%H:%M:%S}+00:00</updated><id>{url}</id>"
            f'<content type="html" xml:base="{url}">{escape(content)}</content>'
            f"<author><name>Desk</name></author>"
            f'<category term="news"/><category term="world"/>'
            f'<summary type="html">{escape(f"<p>{PARAGRAPH}</p>")}</summary>{thumb}</entry>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">'
        '<title type="html">Bench News</title><link href="https://bench.test/" rel="alternate"/>'
        "<id>https://bench.test/feed.xml</id><updated>2026-01-01T00:00:00+00:00</updated>"
        + "".join(entries)
        + "</feed>\n"
    ).encode()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_import() -> dict[str, float]:
    import feedparser  # noqa: F401

    import bot.sources.feed
    import bot.store  # noqa: F401

    return {"rss_mb": peak_rss_mb()}


def child_parse(feed_file: Path, lean: bool) -> dict[str, float]:
    import io

    import feedparser

    import bot.sources.feed
    import bot.store  # noqa: F401

    body = feed_file.read_bytes()
    t0 = time.perf_counter()
    # lean: as the poller calls it (no sanitizing nor link resolving: it reduces HTML itself)
    doc = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": "https://bench.test/feed.xml"},
        sanitize_html=not lean,
        resolve_relative_uris=not lean,
    )
    seconds = time.perf_counter() - t0
    assert len(doc.entries) > 0
    return {"s": seconds, "rss_mb": peak_rss_mb(), "entries": len(doc.entries)}


def child_poll(url: str, db: Path) -> dict[str, float]:
    from bot.settings import Site
    from bot.sources.feed import FeedPoller, http_session
    from bot.store import open_store

    site = Site(root=db.parent, url="https://bench.test", tz=UTC, permalink="date", title="B")

    async def nothing(post: object, post_id: int) -> None:
        raise AssertionError("the baseline announces nothing")

    async def main() -> dict[str, float]:
        out: dict[str, float] = {}
        async with open_store(db) as store, http_session() as session:
            poller = FeedPoller(url, site, store.posts, nothing, poll_s=3600)
            t0 = time.perf_counter()
            await poller.start()
            assert await poller.poll(session)
            out["first_s"] = time.perf_counter() - t0
            out["rss_mb"] = peak_rss_mb()
            out["recorded"] = len(await store.posts.file_versions())
            t0 = time.perf_counter()
            assert await poller.poll(session)
            out["not_modified_s"] = time.perf_counter() - t0
            again = FeedPoller(url, site, store.posts, nothing, poll_s=3600)
            t0 = time.perf_counter()
            await again.start()
            assert await again.poll(session)
            out["restart_s"] = time.perf_counter() - t0
        return out

    return asyncio.run(main())


async def run_child(*args: str) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed")
    return json.loads(out)


async def main(entries: int, runs: int) -> None:
    from aiohttp import web

    body = make_feed(entries)
    etag = '"bench-1"'

    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/atom+xml"}
        )

    app = web.Application()
    app.router.add_get("/feed.xml", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/feed.xml"
    print(f"feed: {entries} entries, {len(body) / 2**20:.2f} MB, served at {url}")
    results: dict[str, list[dict[str, float]]] = {"import": [], "parse": [], "lean": [], "poll": []}
    with tempfile.TemporaryDirectory() as tmp:
        feed_file = Path(tmp) / "feed.xml"
        feed_file.write_bytes(body)
        for n in range(runs):
            results["import"].append(await run_child("import"))
            results["parse"].append(await run_child("parse", str(feed_file)))
            results["lean"].append(await run_child("lean", str(feed_file)))
            results["poll"].append(await run_child("poll", url, str(Path(tmp) / f"h{n}.db")))
    await runner.cleanup()

    def span(rows: list[dict[str, float]], key: str, fmt: str) -> str:
        values = [r[key] for r in rows]
        low, high = min(values), max(values)
        med = statistics.median(values)
        return f"{format(med, fmt)} (range {format(low, fmt)}–{format(high, fmt)})"

    poll = results["poll"]
    assert all(r["recorded"] == entries for r in poll), poll
    print(f"runs: {runs}; medians, with the range over runs")
    print(f"import only:          peak RSS {span(results['import'], 'rss_mb', '.0f')} MB")
    for kind, label in (("parse", "defaults"), ("lean", "as the poller calls it")):
        print(
            f"feedparser.parse only ({label}): {span(results[kind], 's', '.2f')} s, "
            f"peak RSS {span(results[kind], 'rss_mb', '.0f')} MB"
        )
    print(
        f"first poll (baseline): {span(poll, 'first_s', '.2f')} s, "
        f"peak RSS {span(poll, 'rss_mb', '.0f')} MB, {entries} entries recorded"
    )
    print(f"next poll (304):       {span(poll, 'not_modified_s', '.4f')} s")
    print(f"restart poll (200, all known): {span(poll, 'restart_s', '.2f')} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "import":
            result = child_import()
        elif kind in ("parse", "lean"):
            result = child_parse(Path(rest[0]), lean=kind == "lean")
        else:
            result = child_poll(rest[0], Path(rest[1]))
        print(json.dumps(result))
    else:
        asyncio.run(main(args.entries, args.runs))
