"""Real git repositories for tests: a bare remote and an editor's working copy that pushes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.sources.git import SiteClone

# Like the browser tests without chromium: skipped with the fix, not failed, where git is missing.
needs_git = pytest.mark.skipif(
    shutil.which("git") is None, reason="git is not installed: apt-get install git (.ci/run does)"
)
CONFIG = 'title: Git News\nurl: "https://news.test"\ntimezone: UTC\n'


def post_text(title: str, day: str = "2026-11-20") -> str:
    """A post file with `title`, dated `day` at 10:00 UTC."""
    return f'---\ntitle: "{title}"\ndate: {day} 10:00:00 +0000\n---\n\nBody of {title}.\n'


def git_env(tmp_path: Path) -> dict[str, str]:
    """Variables that give commits an author and keep user and system git config out."""
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}
    for name in ("AUTHOR", "COMMITTER"):
        env |= {f"GIT_{name}_NAME": "Test Editor", f"GIT_{name}_EMAIL": "editor@news.test"}
    return env


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git as a user would (the test's side of the remote); its output."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env=os.environ
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


class Remote:
    """A bare repository whose default branch is `trunk`, and an editor's clone that pushes.

    `site` is copied in as the first commit (default: a `_config.yml` and one post).
    """

    def __init__(self, tmp_path: Path, site: Path | None = None) -> None:
        self.bare = tmp_path / "remote.git"
        self.work = tmp_path / "work"
        git("-c", "init.defaultBranch=trunk", "init", "-q", "--bare", str(self.bare))
        git("-c", "init.defaultBranch=trunk", "init", "-q", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        if site is None:
            self.write("_config.yml", CONFIG)
            self.write("_posts/2026-11-01-old-news.md", post_text("Old news", "2026-11-01"))
        else:
            for path in sorted(p for p in site.rglob("*") if p.is_file()):
                rel = path.relative_to(site).as_posix()
                (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.work / rel).write_bytes(path.read_bytes())
        self.push("the site")

    @property
    def url(self) -> str:
        return str(self.bare)

    def write(self, rel: str, text: str) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def remove(self, rel: str) -> None:
        git("rm", "-q", rel, cwd=self.work)

    def commit(self, message: str) -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work).strip()

    def push(self, message: str, *, branch: str = "trunk", force: bool = False) -> str:
        """Commit everything and push it to `branch`; the new commit."""
        sha = self.commit(message)
        forced = ["--force"] if force else []
        git("push", "-q", *forced, "origin", f"HEAD:{branch}", cwd=self.work)
        return sha

    def rewind(self, commit: str) -> None:
        """Move the editor's branch back to `commit` (to rewrite history from there)."""
        git("reset", "-q", "--hard", commit, cwd=self.work)


def files(root: Path) -> set[str]:
    """Every file of a working tree, .git left out."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@asynccontextmanager
async def polling(clone: SiteClone) -> AsyncIterator[asyncio.Event]:
    """`clone.run` in the background until the block ends; yields its stop event."""
    stop = asyncio.Event()
    task = asyncio.create_task(clone.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
