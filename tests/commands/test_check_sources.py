"""`herald check` on the git remote and the feed: reachable, the branch there, a real feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands.check_sources import source_problems
from bot.settings import load_settings
from tests.fakes.site_server import SiteServer
from tests.sources.test_feed import atom, entry
from tests.support.gitrepo import Remote, git_env, needs_git

pytestmark = needs_git


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Commits get an author; the user's git config stays out."""
    for name, value in git_env(tmp_path).items():
        monkeypatch.setenv(name, value)


async def check_git(tmp_path: Path, url: str, **extra: object) -> list[str]:
    settings = load_settings(
        _env_file=None,
        site_git=url,
        database_url=f"sqlite:///{tmp_path}/data/herald.db",
        **extra,
    )
    return await source_problems(settings)


async def test_a_reachable_remote_with_its_default_branch_and_a_secret_passes(
    tmp_path: Path,
) -> None:
    """The remote's default branch (`trunk`, not main) is found and nothing is wrong."""
    remote = Remote(tmp_path)
    assert await check_git(tmp_path, remote.url, webhook_secret="s3cret") == []


async def test_a_missing_branch_an_unreachable_remote_and_no_secret_are_named(
    tmp_path: Path,
) -> None:
    """Each problem is one sentence naming the variable to fix."""
    remote = Remote(tmp_path)
    missing = await check_git(tmp_path, remote.url, site_branch="main", webhook_secret="s")
    assert len(missing) == 1 and "HERALD_SITE_BRANCH" in missing[0] and "'main'" in missing[0]
    gone = await check_git(tmp_path, str(tmp_path / "nowhere.git"), webhook_secret="s")
    assert len(gone) == 1 and gone[0].startswith("HERALD_SITE_GIT:")
    unsigned = await check_git(tmp_path, remote.url)
    assert len(unsigned) == 1 and "HERALD_WEBHOOK_SECRET" in unsigned[0]


async def test_a_password_in_the_git_url_is_never_shown(tmp_path: Path) -> None:
    """A failing remote's problem masks the credentials of its URL."""
    url = "http://editor:pa55word@127.0.0.1:9/site.git"
    problems = await check_git(tmp_path, url, webhook_secret="s")
    assert problems and all("pa55word" not in p for p in problems)


async def test_the_feed_must_answer_and_be_a_feed(tmp_path: Path) -> None:
    """A real feed passes; a 404 or an HTML page instead of a feed is named."""
    async with SiteServer() as site:
        site.serve("/feed.xml", atom(entry(1)))
        site.serve("/page.html", "<html><body>hi</body></html>", content_type="text/html")

        async def check_feed(path: str) -> list[str]:
            settings = load_settings(_env_file=None, feed_url=site.url(path))
            return await source_problems(settings)

        assert await check_feed("/feed.xml") == []
        (missing,) = await check_feed("/nothing.xml")
        assert missing.startswith("HERALD_FEED_URL:") and "404" in missing
        (html,) = await check_feed("/page.html")
        assert "not an Atom or RSS feed" in html
