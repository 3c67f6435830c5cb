"""The watcher, with real files written into a temp site while it runs."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bot.errors import ConfigError
from bot.models import Post
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.sources.watcher import Watcher
from bot.store import PostLog, open_store

CONFIG = 'title: Test News\nurl: "https://news.test"\ntimezone: UTC\n'


def post_text(title: str, date: str = "2026-11-20 10:00:00 +0000", extra: str = "") -> str:
    return f'---\ntitle: "{title}"\ndate: {date}\n{extra}---\n\nBody of {title}.\n'


MARKER = "Marker "


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    site: Path
    announced: list[Post] = field(default_factory=list)
    arrived_at: list[datetime] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    markers: int = 0

    @property
    def posts(self) -> Path:
        return self.site / "_posts"

    @property
    def titles(self) -> list[str]:
        """Titles announced so far, without the markers written by `barrier`."""
        return [p.title for p in self.announced if not p.title.startswith(MARKER)]

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.posts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    async def next_post(self, timeout_s: float = 5.0) -> Post:
        await asyncio.wait_for(self.arrived.wait(), timeout_s)
        self.arrived.clear()
        return self.announced[-1]

    async def announced_title(self, title: str) -> None:
        """Wait until a post with `title` has been announced."""
        await until(lambda: title in [p.title for p in self.announced], f"{title!r} announced")

    async def barrier(self) -> None:
        """Wait until the watcher has handled every file event from before this call.

        Writes a marker post and waits for it, twice: the second marker's event comes in a
        later batch than the first's, so once it is announced every earlier batch is done.
        """
        for _ in range(2):
            self.markers += 1
            title = f"{MARKER}{self.markers}"
            self.write(f"2026-11-01-marker-{self.markers}.md", post_text(title))
            await self.announced_title(title)
        self.arrived.clear()

    async def quiet(self) -> None:
        """Let the watcher handle whatever happened, and assert nothing was announced."""
        before = len(self.titles)
        await self.barrier()
        assert self.titles[before:] == []


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text(CONFIG)
    return root


@asynccontextmanager
async def watching(
    site: Path,
    db: Path,
    clock: Callable[[], datetime] | None = None,
    *,
    also: Callable[[Post], object] | None = None,
    settle_s: float | None = None,
) -> AsyncIterator[Running]:
    """A watcher running on `site`; yields once it signalled `ready`.

    `also` runs inside each announcement, as a slow publisher would.
    """
    running = Running(site)

    async def on_post(post: Post, post_id: int) -> None:
        running.announced.append(post)
        running.arrived_at.append(datetime.now(UTC))
        running.arrived.set()
        if also is not None:
            also(post)

    stop = asyncio.Event()
    ready = asyncio.Event()
    async with open_store(db) as store:
        kwargs: dict[str, Any] = {"clock": clock} if clock else {}
        if settle_s is not None:
            kwargs["settle_s"] = settle_s
        watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, on_post, **kwargs)
        task = asyncio.create_task(watcher.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield running
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_first_start_is_a_silent_baseline(site: Path, tmp_path: Path) -> None:
    """Posts already on the site at the very first start are recorded, not announced."""
    (site / "_posts" / "2026-11-20-old-news.md").write_text(post_text("Old news"))
    async with watching(site, tmp_path / "db.sqlite") as w:
        await w.quiet()
        w.write("2026-11-21-fresh.md", post_text("Fresh news", "2026-11-21 09:00:00 +0000"))
        post = await w.next_post()
        assert post.title == "Fresh news"
        assert post.url.startswith("https://news.test/")
    assert w.titles == ["Fresh news"]


async def test_new_post_announced_once_despite_edits_and_rename(site: Path, tmp_path: Path) -> None:
    """A new post is announced once; editing and renaming its file never announce it again."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-11-21-flood.md", post_text("Flood warning"))
        assert (await w.next_post()).title == "Flood warning"
        path.write_text(post_text("Flood warning") + "\nUpdate: water is receding.\n")
        await w.quiet()
        path.rename(w.posts / "2026-11-21-flood-warning.md")
        await w.quiet()
    assert w.titles == ["Flood warning"]


UNDATED = "---\ntitle: Moving day\n---\n\nWe are moving to a new office.\n"


async def test_rename_to_another_date_is_not_announced_again(site: Path, tmp_path: Path) -> None:
    """A post dated only by its file name keeps its one announcement when renamed to a new date."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-12-01-moving-day.md", UNDATED)
        await w.announced_title("Moving day")
        path.rename(w.posts / "2026-11-30-moving-day.md")
        await w.quiet()
    assert w.titles == ["Moving day"]


async def test_rename_while_stopped_is_not_announced_again(site: Path, tmp_path: Path) -> None:
    """The same rename made while Herald was stopped is recognised by the next start's scan."""
    db = tmp_path / "db.sqlite"
    async with watching(site, db) as w:
        path = w.write("2026-12-01-moving-day.md", UNDATED)
        await w.announced_title("Moving day")
    path.rename(site / "_posts" / "2026-11-30-moving-day.md")
    async with watching(site, db) as w2:
        await w2.quiet()
    assert w2.titles == []


async def test_restart_announces_only_what_arrived_while_stopped(
    site: Path, tmp_path: Path
) -> None:
    """After a restart known posts stay silent, and a post added while stopped goes out."""
    db = tmp_path / "db.sqlite"
    async with watching(site, db) as w:
        w.write("2026-11-21-one.md", post_text("One"))
        await w.next_post()
    (site / "_posts" / "2026-11-22-two.md").write_text(post_text("Two", "2026-11-22 08:00:00Z"))
    async with watching(site, db) as w2:
        await w2.quiet()  # the start-up scan announced "Two" before `ready`
    assert w2.titles == ["Two"]


async def test_post_written_during_start_is_announced(site: Path, tmp_path: Path) -> None:
    """A post that lands while the start-up scan is still announcing is seen, not left for later."""
    db = tmp_path / "db.sqlite"
    async with watching(site, db):
        pass  # the first start: an empty baseline
    (site / "_posts" / "2026-11-21-while-stopped.md").write_text(post_text("While stopped"))

    def publish_another(post: Post) -> None:
        # Runs as the scan announces the post added while stopped: after the folder was listed.
        if post.title == "While stopped":
            (site / "_posts" / "2026-11-22-meanwhile.md").write_text(post_text("Meanwhile"))

    async with watching(site, db, also=publish_another) as w:
        assert w.titles == ["While stopped"]
        await w.announced_title("Meanwhile")
        w.write("2026-11-23-right-after.md", post_text("Right after ready"))
        await w.announced_title("Right after ready")
    assert w.titles == ["While stopped", "Meanwhile", "Right after ready"]


async def test_delete_and_readd_does_not_reannounce(site: Path, tmp_path: Path) -> None:
    """A post deleted and put back (a revert, a git checkout) is not announced twice."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-11-21-back.md", post_text("Back again"))
        await w.next_post()
        text = path.read_text()
        path.unlink()
        await w.quiet()  # the deletion was seen before the file comes back
        w.write("2026-11-21-back.md", text)
        await w.quiet()
    assert w.titles == ["Back again"]


async def test_draft_waits_until_published(site: Path, tmp_path: Path) -> None:
    """`published: false` is not announced; removing it announces the post."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write("2026-11-21-draft.md", post_text("Draft", extra="published: false\n"))
        await w.quiet()
        path.write_text(post_text("Draft"))
        assert (await w.next_post()).title == "Draft"


async def test_future_post_is_held_until_its_time(site: Path, tmp_path: Path) -> None:
    """A post dated in the future is announced when its time comes, not before."""
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    async with watching(site, tmp_path / "db.sqlite") as w:
        w.write(
            "2026-11-21-later.md", post_text("Later", at.strftime("%Y-%m-%d %H:%M:%S.%f +0000"))
        )
        post = await w.next_post(timeout_s=10)
        assert post.title == "Later"
        assert w.arrived_at[-1] >= at  # announced at its time, not when the file appeared


async def test_subfolders_and_bom_crlf(site: Path, tmp_path: Path) -> None:
    """Posts in subfolders, with a UTF-8 BOM and Windows line endings, are read."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        text = "\ufeff" + post_text("Windows post").replace("\n", "\r\n")
        w.write("world/2026-11-21-windows.md", text.encode("utf-8"))
        post = await w.next_post()
        assert post.title == "Windows post"
        assert post.path == "world/2026-11-21-windows.md"
        await w.quiet()  # the new folder is watched by now
        w.write("world/europe/2026-11-22-later.md", post_text("Later in a new folder"))
        await w.announced_title("Later in a new folder")
        w.write("world/europe/2026-11-23-again.md", post_text("Again in that folder"))
        await w.announced_title("Again in that folder")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("2026-11-21-bad-yaml.md", b'---\ntitle: "unclosed\ndate: [\n---\nbody\n', "YAML"),
        ("2026-11-21-binary.md", bytes(range(256)) * 4, "binary"),
        ("2026-11-21-empty.md", b"", "empty"),
        ("2026-11-21-latin.md", post_text("Caf\u00e9 cr\u00e8me").encode("latin-1"), "UTF-8"),
    ],
)
async def test_broken_file_logged_once_and_retried_when_fixed(
    site: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    content: bytes,
    reason: str,
) -> None:
    """A broken file gets one log line naming it and why; once fixed, it is announced."""
    caplog.set_level(logging.WARNING, logger="bot.sources.watcher")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if name in r.getMessage()]

    async with watching(site, tmp_path / "db.sqlite") as w:
        path = w.write(name, content)
        # Logged once the file has been quiet past the settle time (it might be half-written).
        await until(lines, f"a log line about {name}")
        await w.quiet()
        assert len(lines()) == 1, lines()
        assert reason.lower() in lines()[0].lower()
        path.write_text(post_text("Fixed"), encoding="utf-8")
        assert (await w.next_post()).title == "Fixed"


async def test_half_written_file_is_announced_once_complete(
    site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file caught mid-write is neither announced broken nor twice, only once complete."""
    caplog.set_level(logging.WARNING, logger="bot.sources.watcher")
    full = post_text("Slow writer", extra='author: "Someone"\n')
    # A long settle time, so the half-written version is still "maybe mid-write" when completed.
    async with watching(site, tmp_path / "db.sqlite", settle_s=30) as w:
        path = w.write("2026-11-21-slow.md", full[:30])
        await w.quiet()  # the half-written version has been read
        path.write_text(full)
        await w.announced_title("Slow writer")
        await w.quiet()
    assert not [r for r in caplog.records if "slow" in r.getMessage()]
    assert w.titles == ["Slow writer"]


async def test_bad_file_never_stops_the_watcher(site: Path, tmp_path: Path) -> None:
    """After a broken post, the next good post is still announced."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        w.write("2026-11-21-junk.md", b"\x00\x01\x02 not a post")
        w.write("not-a-post-name.md", post_text("Ignored: no date in the name"))
        await w.quiet()
        w.write("2026-11-21-good.md", post_text("Good"))
        await w.announced_title("Good")
        await w.quiet()
    assert w.titles == ["Good"]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the site holding a post-shaped file and a plain one."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "2026-11-21-unrelated.md").write_text(post_text("Unrelated"))
    (folder / "secret.md").write_text(post_text("Secret"))
    return folder


async def test_links_out_of_the_site_are_never_followed(
    site: Path, tmp_path: Path, elsewhere: Path
) -> None:
    """Symlinks made in `_posts/` to a folder or a file outside the site publish nothing."""
    (site / "_drafts").mkdir()
    (site / "_drafts" / "inside.md").write_text(post_text("Inside the site"))
    async with watching(site, tmp_path / "db.sqlite") as w:
        (w.posts / "root").symlink_to(elsewhere, target_is_directory=True)
        (w.posts / "2026-11-22-leak.md").symlink_to(elsewhere / "secret.md")
        (w.posts / "2026-11-23-inside.md").symlink_to(site / "_drafts" / "inside.md")
        await w.announced_title("Inside the site")  # a link that stays in the site is read
        await w.quiet()
    assert w.titles == ["Inside the site"]


async def test_links_out_of_the_site_are_never_followed_from_the_start(
    site: Path, tmp_path: Path, elsewhere: Path
) -> None:
    """Links already there at a start: the scan skips them, and so do events beneath them."""
    db = tmp_path / "db.sqlite"
    async with watching(site, db):
        pass  # the first start: an empty baseline
    (site / "_posts" / "root").symlink_to(elsewhere, target_is_directory=True)
    (site / "_posts" / "2026-11-22-leak.md").symlink_to(elsewhere / "secret.md")
    async with watching(site, db) as w:
        (elsewhere / "2026-11-24-later.md").write_text(post_text("Later, elsewhere"))
        await w.quiet()
    assert w.titles == []


async def test_link_to_the_whole_machine_at_start(site: Path, tmp_path: Path) -> None:
    """`ln -s / _posts/root` before a start: the watcher starts, watches, and reads none of it."""
    (site / "_posts" / "root").symlink_to("/", target_is_directory=True)
    async with watching(site, tmp_path / "db.sqlite") as w:
        w.write("2026-11-21-fine.md", post_text("Still fine"))
        await w.announced_title("Still fine")
        await w.quiet()
    assert w.titles == ["Still fine"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_post_unreadable_for_a_moment_is_read_again_soon(site: Path, tmp_path: Path) -> None:
    """A post that cannot be opened for want of a free descriptor (EMFILE) is read again soon."""
    # The child watches the site, writes a post and lowers its RLIMIT_NOFILE so the read
    # really fails; it raises the limit again once the watcher has logged the failure.
    done = subprocess.run(
        [sys.executable, "-m", "tests.sources.fd_limit_child", str(site), str(tmp_path / "db")],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["probe"] == "EMFILE"  # the read failed for real
    assert [w for w in result["warnings"] if "Too many open files" in w], result
    assert result["announced"] == ["Crowded"], result


async def test_post_not_queued_before_a_stop_goes_out_at_restart(
    site: Path, tmp_path: Path
) -> None:
    """If queuing a new post fails (or the process dies first), the next start queues it."""
    db = tmp_path / "db.sqlite"
    failures: list[str] = []

    async def broken_queue(post: Post, post_id: int) -> None:
        failures.append(post.title)
        raise RuntimeError("database is locked")

    stop, ready = asyncio.Event(), asyncio.Event()
    async with open_store(db) as store:
        watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, broken_queue)
        task = asyncio.create_task(watcher.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 10)
        (site / "_posts" / "2026-11-21-urgent.md").write_text(post_text("Urgent"))
        await until(lambda: failures, "the failed attempt to queue the post")
        stop.set()
        await asyncio.wait_for(task, 10)
    assert failures == ["Urgent"]
    async with watching(site, db) as w:
        await w.quiet()  # the start-up scan queued the pending post before `ready`
    assert w.titles == ["Urgent"]


async def test_post_recorded_later_when_the_database_was_locked(
    site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A post arriving while another process holds the write lock is announced once it frees."""
    db = tmp_path / "db.sqlite"
    announced: list[str] = []
    arrived = asyncio.Event()

    async def on_post(post: Post, post_id: int) -> None:
        announced.append(post.title)
        arrived.set()

    stop, ready = asyncio.Event(), asyncio.Event()
    async with open_store(db) as store:
        await store.conn.execute("PRAGMA busy_timeout=0")  # fail at once instead of in 5 s
        watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, on_post, retry_s=0.3)
        task = asyncio.create_task(watcher.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 10)
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            (site / "_posts" / "2026-11-21-locked.md").write_text(post_text("Locked out"))
            await until(
                lambda: any("recording" in r.getMessage() for r in caplog.records),
                "the failed recording to be logged",
            )
            assert announced == []
        finally:
            other.rollback()
            other.close()
        await asyncio.wait_for(arrived.wait(), 5)
        stop.set()
        await asyncio.wait_for(task, 10)
    assert announced == ["Locked out"]
    assert any("recording 1 new posts failed" in r.getMessage() for r in caplog.records)


def test_bad_breaking_config_stops_the_start_not_a_later_post(site: Path, tmp_path: Path) -> None:
    """A malformed `herald.breaking` in _config.yml is reported when the watcher is built."""
    (site / "_config.yml").write_text(CONFIG + "herald:\n  breaking: [1, 2]\n")

    async def on_post(post: Post, post_id: int) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match=r"herald\.breaking"):
        Watcher(load_site(Settings(site_dir=site)), cast(PostLog, None), on_post)


async def test_replaced_posts_folder_is_watched_anew(
    site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deploy that swaps `_posts/` for a new folder: its new post goes out, old ones don't."""
    caplog.set_level(logging.WARNING, logger="bot.sources.watcher")
    (site / "_posts" / "2026-11-20-old.md").write_text(post_text("Old"))
    async with watching(site, tmp_path / "db.sqlite") as w:
        staged = tmp_path / "staged"
        staged.mkdir()
        (staged / "2026-11-20-old.md").write_text(post_text("Old"))
        (staged / "2026-11-22-deployed.md").write_text(post_text("Deployed", "2026-11-22 07:00Z"))
        w.posts.rename(tmp_path / "previous")
        await until(
            lambda: any("moved or replaced" in r.getMessage() for r in caplog.records),
            "the watcher to notice the folder is gone",
        )
        staged.rename(w.posts)
        post = await w.next_post(timeout_s=8)
        assert post.title == "Deployed"
        w.write("2026-11-23-after.md", post_text("After", "2026-11-23 07:00Z"))
        assert (await w.next_post()).title == "After"
    assert w.titles == ["Deployed", "After"]


async def test_posts_under_a_site_folder_are_read_and_watched(site: Path, tmp_path: Path) -> None:
    """`news/_posts/` is a posts folder, as in Jekyll: its posts are in the category `news`."""
    (site / "news" / "_posts").mkdir(parents=True)
    (site / "news" / "_posts" / "2026-11-20-old.md").write_text(post_text("Old news"))
    db = tmp_path / "db.sqlite"
    async with watching(site, db):
        pass  # the first start: the existing post is the baseline
    async with watching(site, db) as w:
        (site / "news" / "_posts" / "2026-11-21-fresh.md").write_text(post_text("Fresh news"))
        post = await w.next_post()
        await w.quiet()
    assert w.titles == ["Fresh news"]
    assert (post.path, post.categories) == ("news/_posts/2026-11-21-fresh.md", ("news",))
    assert post.url == "https://news.test/news/2026/11/20/fresh.html"


async def test_a_new_folder_with_posts_is_watched(site: Path, tmp_path: Path) -> None:
    """A `<folder>/_posts/` made while Herald runs is seen, and so are posts written later."""
    async with watching(site, tmp_path / "db.sqlite") as w:
        (site / "sport" / "results" / "_posts").mkdir(parents=True)
        folder = site / "sport" / "results" / "_posts"
        (folder / "2026-11-21-first.md").write_text(post_text("First result"))
        await w.announced_title("First result")
        (folder / "2026-11-22-second.md").write_text(post_text("Second result"))
        await w.announced_title("Second result")
        await w.quiet()
    assert w.titles == ["First result", "Second result"]
    assert w.announced[0].categories == ("sport", "results")


async def test_folders_jekyll_does_not_read_are_not_watched(site: Path, tmp_path: Path) -> None:
    """`_posts/` under `_`, `.` or excluded folders (node_modules, `exclude:`) is not read."""
    (site / "_config.yml").write_text(CONFIG + "exclude: [archive]\n")
    async with watching(site, tmp_path / "db.sqlite") as w:
        for folder in ("_drafts", ".cache", "node_modules/pkg", "archive/old"):
            posts = site / folder / "_posts"
            posts.mkdir(parents=True)
            (posts / "2026-11-21-hidden.md").write_text(post_text(f"Hidden in {folder}"))
        await w.quiet()
    assert w.titles == []
