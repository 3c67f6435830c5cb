"""`POST /hooks/git`: signed and forged push webhooks, over real HTTP and through `herald run`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bot.metrics import Metrics
from bot.sources.git import SiteClone
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from bot.tokens import Tokens
from bot.web.hooks import MAX_BODY_BYTES, authentic, decide, github_signature, hook_routes
from bot.web.routes import create_app, serve
from tests.support.acceptance import (
    DEMO_SITE,
    Herald,
    files_under,
    poll,
    recent,
    sample_breaking,
    visible,
)
from tests.support.gitrepo import Remote, git_env, needs_git, polling, post_text
from tests.support.web import SECRET, RecordingPublisher, web_settings

HOOK_SECRET = "hook-secret-for-tests"
PING = {"x-github-event": "ping"}
PUSH = json.dumps({"ref": "refs/heads/trunk", "after": "0" * 40}).encode()


def signed(body: bytes, secret: str = HOOK_SECRET, **extra: str) -> dict[str, str]:
    """Headers of a GitHub push hook signed with `secret`."""
    return {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-hub-signature-256": github_signature(secret, body),
        **extra,
    }


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Commits need an author; no user or system git config may change what git does."""
    for name, value in git_env(tmp_path).items():
        monkeypatch.setenv(name, value)


# --- the decision, as a table -------------------------------------------------------------


def test_githubs_documented_signature_example() -> None:
    """GitHub's docs example: this secret and payload give exactly this signature."""
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, body) == expected
    assert authentic({"x-hub-signature-256": expected}, body, secret)
    assert not authentic({"x-hub-signature-256": expected}, b"Hello, World?", secret)


def _gitea(body: bytes) -> dict[str, str]:
    digest = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"x-gitea-event": "push", "x-gitea-signature": digest}


@pytest.mark.parametrize(
    ("headers", "body", "secret", "branch", "status", "fetch"),
    [
        (signed(PUSH), PUSH, HOOK_SECRET, "trunk", 202, True),
        (signed(PUSH), PUSH, None, "trunk", 401, False),  # no secret set: nothing is accepted
        ({"x-github-event": "push"}, PUSH, HOOK_SECRET, "trunk", 401, False),  # unsigned
        (signed(PUSH, "a guess"), PUSH, HOOK_SECRET, "trunk", 401, False),  # forged
        (signed(PUSH), PUSH + b" ", HOOK_SECRET, "trunk", 401, False),  # body changed
        ({"x-hub-signature-256": "sha256=zz"}, PUSH, HOOK_SECRET, "trunk", 401, False),
        (signed(b"{}", "guess") | PING, b"{}", HOOK_SECRET, "trunk", 401, False),  # forged ping
        (signed(b"{}") | PING, b"{}", HOOK_SECRET, "trunk", 200, False),
        (signed(PUSH), PUSH, HOOK_SECRET, "release", 200, False),  # another branch
        (signed(PUSH), PUSH, HOOK_SECRET, None, 202, True),  # branch not known yet
        (signed(PUSH) | {"x-github-event": "issues"}, PUSH, HOOK_SECRET, "trunk", 200, False),
        (signed(b"[1]"), b"[1]", HOOK_SECRET, "trunk", 400, False),
        (
            {"x-gitlab-event": "Push Hook", "x-gitlab-token": HOOK_SECRET},
            PUSH, HOOK_SECRET, "trunk", 202, True,
        ),
        (
            {"x-gitlab-event": "Push Hook", "x-gitlab-token": "hook-secret-for-test"},
            PUSH, HOOK_SECRET, "trunk", 401, False,
        ),
        (
            {"x-gitlab-event": "Tag Push Hook", "x-gitlab-token": HOOK_SECRET},
            PUSH, HOOK_SECRET, "trunk", 200, False,
        ),
        (_gitea(PUSH), PUSH, HOOK_SECRET, "trunk", 202, True),
        (_gitea(PUSH), PUSH.replace(b"trunk", b"other"), HOOK_SECRET, "trunk", 401, False),
    ],
)  # fmt: skip
def test_each_hook_is_refused_ignored_or_fetches(
    headers: dict[str, str],
    body: bytes,
    secret: str | None,
    branch: str | None,
    status: int,
    fetch: bool,
) -> None:
    """Signatures and tokens decide 401; pings, other events and other branches never fetch."""
    verdict = decide(headers, body, secret=secret, branch=branch)
    assert (verdict.status, verdict.fetch) == (status, fetch), verdict


def test_a_form_encoded_push_is_read_from_its_payload_field() -> None:
    """GitHub's `application/x-www-form-urlencoded` hooks carry the JSON in `payload`."""
    form = b"payload=" + quote('{"ref": "refs/heads/release"}').encode()
    headers = signed(form) | {"content-type": "application/x-www-form-urlencoded"}
    assert decide(headers, form, secret=HOOK_SECRET, branch="trunk").status == 200
    assert decide(headers, form, secret=HOOK_SECRET, branch="release").fetch


# --- over HTTP ----------------------------------------------------------------------------


@asynccontextmanager
async def hooked(
    tmp_path: Path, request_fetch: Callable[[], object], branch: str | None = "trunk"
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app with the hook route on a real socket; a client for it."""
    listener = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = web_settings(tmp_path, public_url=base)
    stop, started = asyncio.Event(), asyncio.Event()
    async with open_store(settings.database_path) as store:
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=Tokens(SECRET),
            publisher=RecordingPublisher(),
            metrics=Metrics(),
            hooks=hook_routes(
                secret=HOOK_SECRET, request_fetch=request_fetch, branch=lambda: branch
            ),
        )
        task = asyncio.create_task(serve(app, settings, stop, sock=listener, started=started))
        try:
            await asyncio.wait_for(started.wait(), 20)
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                yield client
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def test_signed_hooks_fetch_and_forged_ones_get_401(tmp_path: Path) -> None:
    """Over HTTP: the exact body's signature is checked; only an authentic push asks a fetch."""
    asked: list[None] = []
    async with hooked(tmp_path, lambda: asked.append(None)) as client:
        # Byte-exact: odd spacing and non-ASCII text are signed as sent, not as re-encoded.
        body = (
            b'{ "ref" : "refs/heads/trunk",  "head_commit": {"message": "R\xc3\xa9sum\xc3\xa9"}}\n'
        )
        forged = await client.post("/hooks/git", content=body, headers=signed(body, "guess"))
        unsigned = await client.post("/hooks/git", content=body, headers={"x-github-event": "push"})
        assert (forged.status_code, unsigned.status_code, asked) == (401, 401, [])
        ping = await client.post("/hooks/git", content=b"{}", headers=signed(b"{}") | PING)
        other = json.dumps({"ref": "refs/heads/release"}).encode()
        ignored = await client.post("/hooks/git", content=other, headers=signed(other))
        assert (ping.status_code, ignored.status_code, asked) == (200, 200, [])
        good = await client.post("/hooks/git", content=body, headers=signed(body))
        assert good.status_code == 202 and asked == [None]
        lab = await client.post(
            "/hooks/git",
            content=PUSH,
            headers={"x-gitlab-event": "Push Hook", "x-gitlab-token": HOOK_SECRET},
        )
        assert lab.status_code == 202 and len(asked) == 2
        assert (await client.get("/hooks/git")).status_code == 405


async def test_an_oversized_body_is_refused_unread(tmp_path: Path) -> None:
    """A body over the cap gets 413 and asks no fetch, signed or not."""
    asked: list[None] = []
    async with hooked(tmp_path, lambda: asked.append(None)) as client:
        big = b'{"ref": "refs/heads/trunk", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
        answer = await client.post("/hooks/git", content=big, headers=signed(big))
        assert answer.status_code == 413 and asked == []


@needs_git
async def test_a_burst_of_hooks_makes_one_fetch_besides_one_running(tmp_path: Path) -> None:
    """Twenty signed hooks at once, into a real clone: the pushed commit, in at most two fetches."""
    remote = Remote(tmp_path)
    clone = SiteClone(remote.url, tmp_path / "clone", poll_s=3600)
    await clone.prepare()
    remote.write("_posts/2026-11-20-burst.md", post_text("Burst"))
    pushed = remote.push("a post")
    before = clone.fetches
    async with polling(clone), hooked(tmp_path, clone.request_fetch) as client:
        answers = await asyncio.gather(
            *(client.post("/hooks/git", content=PUSH, headers=signed(PUSH)) for _ in range(20))
        )
        assert {a.status_code for a in answers} == {202}
        await poll(lambda: clone.head == pushed and not clone.fetch_pending, 15, "pushed commit")
    # One fetch may have been running when later hooks came: they are one more, never twenty.
    assert 1 <= clone.fetches - before <= 2


# --- end to end ---------------------------------------------------------------------------


@needs_git
async def test_herald_run_announces_a_pushed_post_when_the_webhook_comes(tmp_path: Path) -> None:
    """`herald run` on a git remote: push a post, send the hook, and it lands in the outbox once."""
    remote = Remote(tmp_path / "repo", site=DEMO_SITE)
    herald = Herald(
        tmp_path / "home",
        HERALD_SITE_GIT=remote.url,
        HERALD_WEBHOOK_SECRET=HOOK_SECRET,
        HERALD_GIT_POLL_S="3600",  # only the hook can bring the post in time
    )
    del herald.env["HERALD_SITE_DIR"]  # the clone goes to data/site
    tg_dir = herald.outbox / "telegram"
    hook = f"{herald.public_url}/hooks/git"
    async with herald.run() as run, httpx.AsyncClient(timeout=10) as client:
        assert (herald.home / "data" / "site" / "_config.yml").exists()
        title = "Breaking: Pushed through git"
        name = f"{recent():%Y-%m-%d}-pushed-through-git.md"
        remote.write(f"_posts/{name}", sample_breaking(title, recent()))
        remote.push("a breaking post")
        forged = await client.post(hook, content=PUSH, headers=signed(PUSH, "wrong secret"))
        assert forged.status_code == 401
        answer = await client.post(hook, content=PUSH, headers=signed(PUSH))
        assert answer.status_code == 202
        await poll(lambda: files_under(tg_dir), 15, "the alert in outbox/telegram")
        (alert,) = files_under(tg_dir)
        assert "Pushed through git" in visible(alert.read_text(encoding="utf-8"))
        assert (herald.home / "data" / "site" / "_posts" / name).exists()
        assert await run.stop() == 0
    assert "hook: refused (bad or missing signature)" in run.log
    assert HOOK_SECRET not in run.log
