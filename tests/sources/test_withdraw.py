"""Withdrawn posts seen by the watcher: drafted again, or deleted and not renamed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.models import Post
from bot.settings import Settings
from bot.sources.git import SiteClone
from bot.sources.jekyll.site import load_site
from bot.sources.watcher import MASS_GONE, Watcher
from bot.store import Store, open_store
from tests.sources.test_watcher import CONFIG, post_text, until
from tests.support.gitrepo import Remote, needs_git
from tests.support.gitrepo import post_text as git_post

GRACE_S = 0.3


@dataclass
class Watching:
    store: Store
    posts: Path
    announced: list[str]

    def write(self, name: str, text: str) -> Path:
        path = self.posts / name
        path.write_text(text, encoding="utf-8")
        return path

    async def withdrawn(self) -> list[str]:
        """Titles of the posts whose withdrawal is waiting to be queued."""
        return [r.post.title for r in await self.store.posts.revisions() if r.withdrawn]

    async def announced_title(self, title: str) -> None:
        await until(lambda: title in self.announced, f"{title!r} announced")


@asynccontextmanager
async def watching(root: Path, db: Path) -> AsyncIterator[Watching]:
    """A watcher with a short grace for deleted files, on the store's real post log."""
    announced: list[str] = []

    async def on_post(post: Post, post_id: int) -> None:
        announced.append(post.title)

    stop, ready = asyncio.Event(), asyncio.Event()
    async with open_store(db) as store:
        site = load_site(Settings(_env_file=None, site_dir=root))
        watcher = Watcher(site, store.posts, on_post, gone_s=GRACE_S)
        task = asyncio.create_task(watcher.run(stop, ready))
        try:
            await asyncio.wait_for(ready.wait(), 15)
            yield Watching(store, site.posts_dir, announced)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text(CONFIG)
    return root


async def eventually_withdrawn(w: Watching, titles: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while (got := await w.withdrawn()) != titles:
        assert asyncio.get_running_loop().time() < deadline, f"withdrawn: {got}, not {titles}"
        await asyncio.sleep(0.02)


async def test_an_announced_post_drafted_again_is_withdrawn(site: Path, tmp_path: Path) -> None:
    """`published: false` in an announced post's file withdraws it, once."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-11-21-flood.md", post_text("Flood"))
        await w.announced_title("Flood")
        path.write_text(post_text("Flood", extra="published: false\n"))
        await eventually_withdrawn(w, ["Flood"])
        (first,) = await w.store.posts.revisions()
        path.write_text(post_text("Flood", extra="published: false\ntags: [x]\n"))
        for n in range(2):  # two later batches: the draft's second change was handled
            w.write(f"2026-11-22-marker-{n}.md", post_text(f"Marker {n}"))
            await w.announced_title(f"Marker {n}")
        (again,) = await w.store.posts.revisions()
        assert again.revision == first.revision


async def test_a_deleted_post_is_withdrawn_after_the_grace(site: Path, tmp_path: Path) -> None:
    """An announced post whose file is deleted, and stays gone, is withdrawn."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-11-21-gone.md", post_text("Gone"))
        w.write("2026-11-21-stays.md", post_text("Stays"))
        await w.announced_title("Gone")
        await w.announced_title("Stays")
        path.unlink()
        await eventually_withdrawn(w, ["Gone"])


async def test_a_renamed_post_is_not_withdrawn(site: Path, tmp_path: Path) -> None:
    """A rename (a delete and an add of the same post) moves the post; nothing is withdrawn."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-12-01-moving.md", "---\ntitle: Moving\n---\n\nWe move.\n")
        await w.announced_title("Moving")
        path.rename(w.posts / "2026-11-30-moving.md")
        w.write("2026-11-22-after.md", post_text("After"))  # seen after the rename's events
        await w.announced_title("After")
        await asyncio.sleep(GRACE_S * 3)  # past the grace: a withdrawal would be there now
        assert await w.withdrawn() == []
    assert w.announced == ["Moving", "After"]


async def test_a_post_deleted_while_stopped_is_withdrawn_at_start(
    site: Path, tmp_path: Path
) -> None:
    """The start's scan withdraws an announced post whose file went while Herald was off."""
    db = tmp_path / "db.sqlite"
    async with watching(site, db) as w:
        gone = w.write("2026-11-21-gone.md", post_text("Gone"))
        w.write("2026-11-21-stays.md", post_text("Stays"))
        w.write("2026-11-21-stays-too.md", post_text("Stays too"))
        for title in ("Gone", "Stays", "Stays too"):
            await w.announced_title(title)
    gone.unlink()
    async with watching(site, db) as w2:
        await eventually_withdrawn(w2, ["Gone"])


async def test_many_files_gone_at_once_are_not_withdrawn(
    site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More than MASS_GONE posts deleted at once look like an accident: none is withdrawn."""
    count = MASS_GONE + 1
    async with watching(site, tmp_path / "db.sqlite") as w:
        paths = [w.write(f"2026-11-21-p{n}.md", post_text(f"P{n}")) for n in range(count)]
        await until(lambda: len(w.announced) == count, "all announced")
        with caplog.at_level(logging.WARNING, logger="bot.sources.watcher"):
            for path in paths:
                path.unlink()
            await until(lambda: "none is withdrawn" in caplog.text, "the warning")
        assert await w.withdrawn() == []


@needs_git
async def test_a_post_deleted_in_the_git_remote_is_withdrawn(tmp_path: Path) -> None:
    """The git source: a post removed by a push is withdrawn once the clone follows it."""
    remote = Remote(tmp_path)
    remote.write("_posts/2026-11-10-kept.md", git_post("Kept", "2026-11-10"))
    remote.push("two posts")
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    async with watching(clone.root, tmp_path / "herald.db") as w:
        remote.write("_posts/2026-11-20-fresh.md", git_post("Fresh"))
        remote.push("fresh")
        await clone.sync()
        await w.announced_title("Fresh")
        remote.remove("_posts/2026-11-20-fresh.md")
        remote.push("fresh was wrong")
        await clone.sync()
        await eventually_withdrawn(w, ["Fresh"])
