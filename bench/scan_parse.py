"""Time parse_post over 10,000 generated posts (a tenth with Liquid); prints posts/s."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.settings import load_settings
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site

COUNT = 10_000
BODY = "\n\n".join(
    f"Paragraph {n}: the council met and discussed the budget, roads and libraries."
    for n in range(12)
)


def make_site(root: Path) -> None:
    """A site with COUNT posts spread over a few subfolders."""
    (root / "_config.yml").write_text(
        'url: "https://news.example.com"\ntimezone: Europe/Berlin\npermalink: pretty\n',
        encoding="utf-8",
    )
    for n in range(COUNT):
        folder = root / "_posts" / f"part{n % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        day = f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}"
        liquid = (
            "\nSee {{ site.url }}/about and {{ page.title | upcase }}.\n" if n % 10 == 0 else ""
        )
        text = (
            f'---\ntitle: "Story number {n}"\ndate: {day} 10:{n % 60:02d}:00 +0100\n'
            f"categories: [News, Local]\ntags: [budget, council]\nauthor: Desk\n---\n\n"
            f"{BODY}{liquid}\n"
        )
        (folder / f"{day}-story-{n}.md").write_text(text, encoding="utf-8")


def main() -> None:
    """Generate the site, then read and parse every post once."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_site(root)
        site = load_site(load_settings(site_dir=root))
        posts_dir = site.posts_dir
        start = time.perf_counter()
        count = 0
        for path in posts_dir.rglob("*.md"):
            parse_post(path.relative_to(posts_dir).as_posix(), path.read_bytes(), site)
            count += 1
        elapsed = time.perf_counter() - start
    print(f"parsed {count} posts in {elapsed:.2f} s: {count / elapsed:,.0f} posts/s")


if __name__ == "__main__":
    main()
