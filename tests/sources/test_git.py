"""The git source, with real repositories in temp dirs: a bare remote, pushes, force-pushes."""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.models import Post
from bot.settings import Settings, load_settings
from bot.sources.git import GitError, SiteClone, backoff, default_branch, mask_url
from bot.sources.jekyll.site import load_site
from bot.sources.watcher import Watcher
from bot.store import open_store
from tests.support.gitrepo import Remote, files, git, git_env, needs_git, polling, post_text

pytestmark = needs_git
TOKEN = "s3cretTOKENvalue"


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Commits need an author; no user or system git config may change what git does."""
    for name, value in git_env(tmp_path).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 15.0) -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://user:tok@github.com/a/b.git", "https://***@github.com/a/b.git"),
        ("https://ghp_abc123@github.com/a/b.git", "https://***@github.com/a/b.git"),
        ("fatal: 'http://u:p@h:8/x' not found", "fatal: 'http://***@h:8/x' not found"),
        ("ssh://git@host/x and https://a:b@c/d", "ssh://***@host/x and https://***@c/d"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),  # scp form: a user name only
        ("mail me at a@b.c", "mail me at a@b.c"),
    ],
)
def test_mask_url_hides_every_userinfo(text: str, masked: str) -> None:
    """The userinfo of each URL in a text is replaced, and nothing else is touched."""
    assert mask_url(text) == masked


@pytest.mark.parametrize(
    ("attempt", "delay_s"), [(1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (500, 300.0)]
)
def test_backoff_doubles_up_to_a_cap(attempt: int, delay_s: float) -> None:
    """Retries of a failing fetch wait 5 s, then twice as long each time, at most 300 s."""
    assert backoff(attempt) == delay_s


@pytest.mark.parametrize(
    ("output", "branch"),
    [
        ("ref: refs/heads/trunk\tHEAD\n61e0c9d\tHEAD\n", "trunk"),
        ("ref: refs/heads/release/2026\tHEAD\nabc\tHEAD\n", "release/2026"),
        ("61e0c9d\tHEAD\n", None),  # a server that does not say
        ("", None),  # an empty repository
    ],
)
def test_default_branch_is_read_from_ls_remote(output: str, branch: str | None) -> None:
    """The remote's default branch comes from the symref line of `ls-remote --symref`."""
    assert default_branch(output) == branch


def test_clone_lives_in_data_site_unless_site_dir_is_set(tmp_path: Path) -> None:
    """With HERALD_SITE_GIT and no HERALD_SITE_DIR the clone sits beside the database."""
    db = f"sqlite:///{tmp_path / 'state' / 'herald.db'}"
    plain = load_settings(_env_file=None, site_git="https://h/x.git", database_url=db)
    assert plain.site_dir == tmp_path / "state" / "site"
    chosen = load_settings(_env_file=None, site_git="https://h/x.git", site_dir=tmp_path / "c")
    assert chosen.site_dir == tmp_path / "c"
    assert load_settings(_env_file=None).site_dir == Path("examples/site")
    blank = load_settings(_env_file=None, site_git="", site_branch="", webhook_secret="")
    assert (blank.site_git, blank.site_branch, blank.webhook_secret) == (None, None, None)


def test_git_settings_mask_the_url_and_refuse_unsafe_values() -> None:
    """The URL (it may hold a token) is masked in repr; odd branch names and URLs are refused."""
    settings = load_settings(_env_file=None, site_git=f"https://{TOKEN}@h/x.git")
    assert TOKEN not in repr(settings)
    assert settings.git_poll_s == 300
    for branch in ("-x", "a:b", "a..b", "a b", "x.lock", "a~1"):
        with pytest.raises(ConfigError, match="HERALD_SITE_BRANCH"):
            load_settings(_env_file=None, site_branch=branch)
    with pytest.raises(ConfigError, match="HERALD_SITE_GIT"):
        load_settings(_env_file=None, site_git="--upload-pack=touch /tmp/x")
    with pytest.raises(ConfigError, match="HERALD_GIT_POLL_S"):
        load_settings(_env_file=None, git_poll_s=0)


# --- the clone ----------------------------------------------------------------------------


async def test_clone_follows_the_remotes_default_branch(remote: Remote, tmp_path: Path) -> None:
    """Without a branch set, the clone follows the remote's HEAD (`trunk` here), not `main`."""
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    assert clone.branch == "trunk"
    assert clone.head == remote.head()
    assert files(clone.root) == {"_config.yml", "_posts/2026-11-01-old-news.md"}
    site = load_site(Settings(_env_file=None, site_dir=clone.root))
    assert site.title == "Git News"


async def test_a_set_branch_is_followed(remote: Remote, tmp_path: Path) -> None:
    """HERALD_SITE_BRANCH picks another branch than the default, and only its files are read."""
    remote.write("_posts/2026-11-02-draft.md", post_text("Draft", "2026-11-02"))
    staged = remote.push("a draft", branch="staging")
    clone = SiteClone(remote.url, tmp_path / "clone", branch="staging")
    await clone.prepare()
    assert (clone.branch, clone.head) == ("staging", staged)
    assert "_posts/2026-11-02-draft.md" in files(clone.root)


async def test_a_new_default_branch_is_followed(remote: Remote, tmp_path: Path) -> None:
    """When the remote's default branch changes, the next fetch follows the new one."""
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    remote.write("_posts/2026-11-03-main-only.md", post_text("Main only", "2026-11-03"))
    main = remote.push("on main", branch="main")
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=remote.bare)
    assert await clone.sync() is True
    assert (clone.branch, clone.head) == ("main", main)


async def test_push_and_force_push_move_the_clone_to_the_remote(
    remote: Remote, tmp_path: Path
) -> None:
    """A push adds files; a force-push moves the clone to the rewritten state, local edits gone."""
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    base = remote.head()
    remote.write("_posts/2026-11-20-pushed.md", post_text("Pushed"))
    pushed = remote.push("a post")
    assert await clone.sync() is True
    assert clone.head == pushed
    assert "_posts/2026-11-20-pushed.md" in files(clone.root)
    assert await clone.sync() is False  # nothing new: the tree stays

    remote.rewind(base)
    remote.write("_posts/2026-11-21-instead.md", post_text("Instead"))
    rewritten = remote.push("history rewritten", force=True)
    (clone.root / "_posts" / "2026-11-01-old-news.md").write_text("edited in the clone\n")
    (clone.root / "stray.txt").write_text("not in the repository\n")
    assert await clone.sync() is True
    assert clone.head == rewritten
    assert files(clone.root) == files(remote.work)
    old = (clone.root / "_posts" / "2026-11-01-old-news.md").read_text()
    assert old == post_text("Old news", "2026-11-01")


async def test_a_folder_that_is_not_herald_s_clone_is_left_alone(
    remote: Remote, tmp_path: Path
) -> None:
    """A non-empty folder, or a repository Herald did not make, is refused, not reset."""
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine\n")
    with pytest.raises(ConfigError, match="not empty"):
        await SiteClone(remote.url, busy).prepare()
    with pytest.raises(ConfigError, match="did not make"):
        await SiteClone(remote.url, remote.work).prepare()
    assert (busy / "notes.txt").exists()


async def test_no_clone_and_no_remote_is_a_config_error(tmp_path: Path) -> None:
    """The first start with an unreachable remote stops with a message naming the setting."""
    clone = SiteClone(str(tmp_path / "nowhere.git"), tmp_path / "clone")
    with pytest.raises(ConfigError, match="HERALD_SITE_GIT: cannot clone"):
        await clone.prepare()


async def test_a_failing_fetch_is_logged_and_retried_with_backoff(
    remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the remote is unreachable each try is logged; once it is back the clone catches up."""
    caplog.set_level(logging.INFO, logger="bot.sources.git")
    clone = SiteClone(remote.url, tmp_path / "clone", poll_s=3600, backoff_first_s=0.05)
    await clone.prepare()
    away = remote.bare.with_name("away.git")
    remote.bare.rename(away)
    async with polling(clone):
        clone.request_fetch()
        await until(lambda: clone.failures >= 3, "three failed fetches")
        assert "fetching failed" in (await clone.problem() or "")  # health: down by now
        assert "_posts/2026-11-01-old-news.md" in files(clone.root)  # the clone stays usable
        away.rename(remote.bare)
        remote.write("_posts/2026-11-20-back.md", post_text("Back"))
        back = remote.push("after the outage")
        # No request: the backoff itself tries again (the poll interval is an hour).
        await until(lambda: clone.head == back, "the clone to catch up")
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) >= 3 and all(r.levelno == logging.WARNING for r in failed)
    assert "next try in 0.05 s" in failed[0].getMessage()
    assert "next try in 0.1 s" in failed[1].getMessage()
    assert "works again" in caplog.text
    assert clone.failures == 0 and await clone.problem() is None


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    """A git host that refuses every request with 401, as for a wrong token."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_host() -> Iterator[str]:
    """The base URL of a local HTTP server that answers 401 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskForPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_credentials_in_the_url_never_reach_logs_or_errors(
    remote: Remote, tmp_path: Path, refusing_host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A token in HERALD_SITE_GIT is masked in every log line and error, and git never prompts."""
    caplog.set_level(logging.DEBUG)
    url = f"http://editor:{TOKEN}@{refusing_host}/site.git"
    with pytest.raises(ConfigError) as refused:
        await SiteClone(url, tmp_path / "first").prepare()
    assert TOKEN not in str(refused.value) and "***@" in str(refused.value)

    # An existing clone whose remote starts refusing: logged, retried, never the token.
    clone = SiteClone(remote.url, tmp_path / "clone", poll_s=3600, backoff_first_s=0.05)
    await clone.prepare()
    token_only = SiteClone(f"http://{TOKEN}@{refusing_host}/site.git", clone.root)
    await token_only.prepare()  # the fetch fails; the clone is used as it is
    assert token_only.failures == 1
    async with polling(token_only):
        token_only.request_fetch()
        await until(lambda: token_only.failures >= 2, "a failed retry")
    with pytest.raises(GitError) as failed:
        await token_only.sync()
    for text in (caplog.text, str(failed.value), token_only.last_error or ""):
        assert TOKEN not in text
    assert f"http://***@{refusing_host}/site.git" in caplog.text
    assert token_only.mask(f"token={TOKEN}") == "token=***"


async def test_a_fetch_that_hangs_is_ended(remote: Remote, tmp_path: Path) -> None:
    """A remote that accepts the connection and never answers fails the fetch at its time limit."""
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts
        port = silent.getsockname()[1]
        stuck = SiteClone(f"http://127.0.0.1:{port}/site.git", clone.root, timeout_s=1.0)
        await stuck.prepare()
        assert stuck.last_error is not None and "gave no answer in 1 s" in stuck.last_error
    assert files(clone.root) >= {"_config.yml", "_posts/2026-11-01-old-news.md"}


async def test_requests_before_a_fetch_starts_make_one_fetch(
    remote: Remote, tmp_path: Path
) -> None:
    """Ten fetch requests at once are one fetch, and none is left pending after it."""
    clone = SiteClone(remote.url, tmp_path / "clone", poll_s=3600)
    await clone.prepare()
    remote.write("_posts/2026-11-20-hooked.md", post_text("Hooked"))
    pushed = remote.push("a post")
    before = clone.fetches
    async with polling(clone):
        for _ in range(10):
            clone.request_fetch()
        await until(lambda: clone.head == pushed, "the pushed commit")
        assert not clone.fetch_pending
    assert clone.fetches == before + 1


# --- the clone under the watcher: identity and once-only ----------------------------------


async def test_force_pushes_never_reannounce_and_a_new_post_is_announced_once(
    remote: Remote, tmp_path: Path
) -> None:
    """Posts removed by a force-push and pushed again are not news; a new post is, once."""
    remote.write("_posts/2026-11-10-kept.md", post_text("Kept", "2026-11-10"))
    base = remote.push("two posts")
    clone = SiteClone(remote.url, tmp_path / "clone")
    await clone.prepare()
    announced: list[str] = []

    async def on_post(post: Post, post_id: int) -> None:
        announced.append(post.title)

    async def pushed(title: str, name: str, *, force: bool = False) -> None:
        """Push a new post (and whatever else is staged), fetch, wait for its announcement."""
        remote.write(f"_posts/{name}", post_text(title))
        remote.push(title, force=force)
        await clone.sync()
        await until(lambda: title in announced, f"{title!r} announced")

    stop, ready = asyncio.Event(), asyncio.Event()
    async with open_store(tmp_path / "herald.db") as store:
        site = load_site(Settings(_env_file=None, site_dir=clone.root))
        watcher = Watcher(site, store.posts, on_post)
        task = asyncio.create_task(watcher.run(stop, ready))
        try:
            await asyncio.wait_for(ready.wait(), 15)
            assert announced == []  # the first start's posts are the baseline
            await pushed("Fresh", "2026-11-20-fresh.md")

            # History rewritten: the posts since the first are gone from the remote (beside a
            # new one, whose announcement shows the watcher has seen the files go) ...
            remote.rewind(base)
            remote.remove("_posts/2026-11-10-kept.md")
            await pushed("Meanwhile", "2026-11-19-meanwhile.md", force=True)
            assert not (clone.root / "_posts" / "2026-11-20-fresh.md").exists()
            # ... and then they come back, in new commits, beside a post that is new.
            remote.write("_posts/2026-11-10-kept.md", post_text("Kept", "2026-11-10"))
            remote.write("_posts/2026-11-20-fresh.md", post_text("Fresh"))
            await pushed("Newer", "2026-11-21-newer.md")
            # The same tree under rewritten commits: nothing to read at all.
            tree = {rel: (remote.work / rel).read_text() for rel in files(remote.work)}
            remote.rewind(base)
            for rel, text in tree.items():
                remote.write(rel, text)
            remote.push("squashed", force=True)
            assert await clone.sync() is True
            await pushed("Last", "2026-11-22-last.md")
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
    assert announced == ["Fresh", "Meanwhile", "Newer", "Last"]
