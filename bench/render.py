"""Render throughput: Telegram alerts/s, email alerts/s, a 50-post digest, per-recipient cost.

Run: .venv/bin/python bench/render.py   (targets: ≥ 2,000 Telegram alerts/s; fill < 50 µs)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.delivery.mail import fill, personalize  # noqa: E402
from bot.models import Kind, Post  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402

EXCERPT = (
    "Delegates from **120 countries** agreed on Friday to cut methane emissions by a third "
    "by 2035. The deal, reached after two weeks of talks, includes money for monitoring "
    "[satellites](/sat.html) & leak repairs.\n\n* Methane cut: one third by 2035\n"
    "* Monitoring fund: $2 billion\n* Next review: 2028"
)


def post(n: int) -> Post:
    return Post(
        path=f"2026-11-22-story-{n}.md",
        slug=f"story-{n}",
        title=f"Climate summit ends with agreement on methane, part {n}",
        date=datetime(2026, 11, 22, 17, 5, tzinfo=UTC),
        url=f"https://news.example.com/world/2026/11/22/story-{n}.html",
        body=EXCERPT,
        excerpt=EXCERPT,
        author="Foreign desk",
        categories=("World",),
        image="https://news.example.com/assets/images/summit.jpg",
        breaking=True,
    )


def per_call_s(func: Callable[[int], object], seconds: float = 1.0) -> float:
    """Mean seconds per call, running for about `seconds` after a warm-up."""
    for n in range(20):
        func(n)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for n in range(100):
            func(n)
        calls += 100
    return (time.perf_counter() - start) / calls


def main() -> None:
    settings = load_settings(site_dir=ROOT / "examples" / "site")
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    posts = [post(n) for n in range(200)]
    fifty = posts[:50]
    day = date(2026, 11, 22)
    alert = renderer.post_email(posts[0], Kind.BREAKING)
    digest = renderer.digest_email(fifty, day)
    links = {
        "unsubscribe_url": "https://herald.example.com/unsubscribe/eyJpZCI6MTIzNH0.abc.def",
        "preferences_url": "https://herald.example.com/preferences/eyJpZCI6MTIzNH0.abc.def",
    }
    now = datetime.now(UTC)

    tg = per_call_s(lambda n: renderer.post_messages(posts[n % 200], Kind.BREAKING))
    em = per_call_s(lambda n: renderer.post_email(posts[n % 200], Kind.BREAKING))
    dtg = per_call_s(lambda n: renderer.digest_messages(fifty, day), 0.5)
    dem = per_call_s(lambda n: renderer.digest_email(fifty, day), 0.5)
    fill_alert = per_call_s(lambda n: fill(alert, **links), 0.5)
    fill_digest = per_call_s(lambda n: fill(digest, **links), 0.5)
    mime = per_call_s(
        lambda n: personalize(
            alert, to=f"reader{n}@example.org", mail_from=settings.mail_from, now=now, **links
        ),
        0.5,
    )
    print(f"Telegram alert render:        {1 / tg:8,.0f} alerts/s ({tg * 1e6:.0f} µs each)")
    print(f"Email alert render (MJML):    {1 / em:8,.0f} alerts/s ({em * 1e3:.2f} ms each)")
    print(f"50-post digest, Telegram:     {dtg * 1e3:8.2f} ms")
    print(f"50-post digest, email:        {dem * 1e3:8.2f} ms ({len(digest.html) / 1000:.0f} KB)")
    size_kb = len(alert.html) / 1000
    print(f"Per-recipient fill, alert:    {fill_alert * 1e6:8.1f} µs ({size_kb:.0f} KB)")
    print(f"Per-recipient fill, digest:   {fill_digest * 1e6:8.1f} µs")
    print(f"Per-recipient MIME message:   {mime * 1e6:8.0f} µs (headers + both parts, QP)")


if __name__ == "__main__":
    main()
