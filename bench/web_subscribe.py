"""Benchmark: POST /subscribe and one-click unsubscribe through the ASGI app (no network).

Run: .venv/bin/python bench/web_subscribe.py [N]
Prints requests per second and the median/95th percentile time of a subscribe, for a new
address and for a known one (they should be alike: the answer must not leak which is which).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.metrics import Metrics
from bot.models import Channel
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from bot.tokens import Purpose, Tokens
from bot.web.limits import Limits, SubscribeLimiter
from bot.web.routes import create_app
from tests.support.web import SECRET, RecordingPublisher, web_settings


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = web_settings(Path(tmp))
        async with open_store(settings.database_path) as store:
            tokens = Tokens(SECRET)
            unlimited = Limits(per_ip=10**9, per_address=10**9)
            app = create_app(
                settings=settings,
                site=load_site(settings),
                store=store,
                tokens=tokens,
                publisher=RecordingPublisher(),
                metrics=Metrics(),
                limiter=SubscribeLimiter(unlimited),
            )
            known = await store.subscribers.upsert(Channel.EMAIL, "known@example.com")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                for label, address in (("new", None), ("known", "known@example.com")):
                    times = []
                    started = time.perf_counter()
                    for i in range(n):
                        t0 = time.perf_counter()
                        data = {"email": address or f"r{i}@example.com", "breaking": "on"}
                        response = await client.post("/subscribe", data=data)
                        times.append(time.perf_counter() - t0)
                        assert response.status_code == 200
                    total = time.perf_counter() - started
                    times.sort()
                    print(
                        f"subscribe {label:5}: {n / total:7.0f} req/s  "
                        f"median {statistics.median(times) * 1000:.2f} ms  "
                        f"p95 {times[int(n * 0.95)] * 1000:.2f} ms"
                    )
                path = f"/unsubscribe/{tokens.make(Purpose.UNSUBSCRIBE, known.id)}"
                started = time.perf_counter()
                for _ in range(n):
                    await client.post(path, data={"List-Unsubscribe": "One-Click"})
                total = time.perf_counter() - started
                print(f"one-click unsubscribe: {n / total:7.0f} req/s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
