"""Parse hostile posts (a YAML alias bomb, Liquid loop and filter bombs); print time and RSS.

Run: .venv/bin/python bench/yaml_bomb.py
Before the limits, the billion-laughs post rendered with `{{ page.lol9 }}` reached 2.6 GB RSS
and took 13 s; each case here should end at once, near the starting RSS.
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.errors import PostError
from bot.settings import load_settings
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site

LAUGHS = "\n".join(
    ["lol1: &lol1 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 10)}]" for n in range(2, 10)]
)
CASES = {
    "alias bomb, {{ page.lol9 }}": (LAUGHS, "{{ page.lol9 }}"),
    "alias bomb, for loops": (
        LAUGHS,
        "{% for a in page.lol9 %}{% for b in a %}{{ b }}{% endfor %}{% endfor %}",
    ),
    "nested loop bomb": (
        "title: Loops",
        "{% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %}",
    ),
    "range filter bomb": ("title: Range", "{{ (1..1000000000) | join: ',' }}"),
}


def rss_mb() -> float:
    """The current resident set size, from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


def main() -> None:
    """Parse each case once; report the outcome, the time, and RSS before/after/peak."""
    logging.basicConfig(level=logging.ERROR)  # the dropped-Liquid warnings are expected
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "_config.yml").write_text('url: "https://news.example.com"\n', encoding="utf-8")
        (root / "_posts").mkdir()
        site = load_site(load_settings(site_dir=root))
        for name, (front, body) in CASES.items():
            raw = f"---\n{front}\n---\n{body}\n".encode()
            before = rss_mb()
            start = time.perf_counter()
            try:
                post = parse_post("2026-01-01-bomb.md", raw, site)
                outcome = f"parsed, body {len(post.body):,} chars"
            except PostError as exc:
                outcome = f"broken post: {exc}"
            elapsed = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB
            print(
                f"{name}: {outcome}\n  {elapsed * 1e3:.1f} ms, RSS {before:.0f} MB → "
                f"{rss_mb():.0f} MB (peak so far {peak:.0f} MB)"
            )


if __name__ == "__main__":
    main()
