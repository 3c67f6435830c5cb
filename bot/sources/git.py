"""The git source: a clone of the site's repository that follows one branch.

The clone is a plain working tree that the file watcher reads; this module only moves it to
the remote's state: fetch, `reset --hard`, `clean`. A force-push or a rewritten history so
lands exactly as the remote has it, as file changes the watcher sees, and the post log's
identity rules (path, URL, day + title) keep known posts from being announced again.

Fetches come every `poll_s` and on `request_fetch()` (a push webhook). Requests are a flag,
not a queue: any number made before a fetch starts are that one fetch. The git CLI runs with
argument lists, never a shell, each command bounded in time; every log line and error has
the userinfo of URLs masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from bot.errors import ConfigError, HeraldError
from bot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

NETWORK_TIMEOUT_S = 120.0  # one command that talks to the remote (ls-remote, fetch)
LOCAL_TIMEOUT_S = 60.0  # one local command (a reset that rewrites a big checkout)
TERM_GRACE_S = 5.0  # after SIGTERM (git removes its lock files on it), before SIGKILL
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 300.0
DOWN_AFTER = 3  # failed fetches in a row before health reports the clone as down
MARK = "herald.clone"  # git config key set in the clones Herald makes (and may reset)

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")


class GitError(HeraldError):
    """A git command failed or took too long; the message is masked and says which."""


def mask_url(text: str) -> str:
    """`text` with the userinfo (user, password, token) of every URL in it replaced by ***."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def backoff(
    attempt: int, *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): doubling, capped."""
    return float(min(first_s * 2 ** min(max(attempt - 1, 0), 32), max_s))


def default_branch(ls_remote: str) -> str | None:
    """The branch that `git ls-remote --symref <remote> HEAD` names as the remote's HEAD."""
    for line in ls_remote.splitlines():
        ref, _, name = line.partition("\t")
        if name.strip() == "HEAD" and ref.startswith("ref: refs/heads/"):
            return ref.removeprefix("ref: refs/heads/").strip()
    return None


def url_secrets(url: str) -> list[str]:
    """The credentials in `url`, raw and decoded, to mask wherever they turn up alone."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    found = [password] if password and len(password) >= 4 else []
    if user and not password and len(user) >= 8:  # https://<token>@host/…: the name is the secret
        found.append(user)
    return sorted({v for s in found for v in (s, unquote(s))}, key=len, reverse=True)


def git_env() -> dict[str, str]:
    """The environment of git commands: ours (credential helpers, SSH agent), never prompting."""
    # No prompt (nobody would answer), and only the usual transports (not ext::, fd::, …).
    return os.environ | {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:http:ssh:git:file",
    }


class SiteClone:
    """A clone of `url` in `root` that follows `branch` (None: the remote's default branch)."""

    def __init__(
        self,
        url: str,
        root: Path,
        *,
        branch: str | None = None,
        poll_s: float = 300.0,
        timeout_s: float = NETWORK_TIMEOUT_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
    ) -> None:
        self.root = root.absolute()
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.backoff_first_s = backoff_first_s
        self._url = url
        self._secrets = url_secrets(url)
        self._configured = branch
        self._branch = branch
        self._wanted = asyncio.Event()
        self.fetches = 0  # fetches started
        self.failures = 0  # failed in a row
        self.last_error: str | None = None
        self.head: str | None = None  # the commit checked out after the last good fetch

    @classmethod
    def from_settings(cls, settings: Settings) -> SiteClone | None:
        """The clone HERALD_SITE_GIT asks for, in HERALD_SITE_DIR (default data/site); or None."""
        if settings.site_git is None:
            return None
        return cls(
            settings.site_git.get_secret_value(),
            settings.site_dir,
            branch=settings.site_branch,
            poll_s=settings.git_poll_s,
        )

    @property
    def url(self) -> str:
        """The remote's URL as logs may show it."""
        return self.mask(self._url)

    @property
    def branch(self) -> str | None:
        """The branch followed: HERALD_SITE_BRANCH, else the remote's default as last seen."""
        return self._branch

    @property
    def fetch_pending(self) -> bool:
        """A fetch was asked for and has not started yet."""
        return self._wanted.is_set()

    def mask(self, text: str) -> str:
        """`text` without the credentials of the remote's URL."""
        text = mask_url(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def request_fetch(self) -> None:
        """Fetch as soon as possible; requests made before that fetch starts are that one fetch."""
        self._wanted.set()

    async def prepare(self) -> None:
        """Make the clone if needed and bring it to the remote's state, before the site is read.

        ConfigError when there is no checkout to read afterwards, or when `root` holds
        something that is not a clone Herald made (a reset would destroy its changes). A
        failing fetch over an existing clone is logged; the clone is then read as it is.
        """
        if (self.root / ".git").exists():
            if await self._config(MARK) != "true":
                raise ConfigError(
                    f"{self.root} is a git repository Herald did not make: Herald resets its "
                    "clone to the remote's state, discarding local changes. Give it a folder of "
                    "its own in HERALD_SITE_DIR (or leave that unset for data/site)"
                )
        elif self.root.exists() and any(self.root.iterdir()):
            raise ConfigError(
                f"{self.root} is not empty and not a clone: point HERALD_SITE_DIR at an empty "
                "or missing folder for the clone of HERALD_SITE_GIT (or leave it unset)"
            )
        else:
            log.info("git: cloning %s into %s", self.url, self.root)
            self.root.mkdir(parents=True, exist_ok=True)
            await self._git("init", "--quiet")
            await self._git("config", MARK, "true")
        try:
            # Every start: HERALD_SITE_GIT may have changed (a new token, a moved repository).
            await self._git("config", "remote.origin.url", self._url)
            await self.sync()
        except GitError as exc:
            if await self._checked_out() is None:
                raise ConfigError(f"HERALD_SITE_GIT: cannot clone {self.url}: {exc}") from exc
            self._failed(exc)

    async def sync(self) -> bool:
        """Fetch the followed branch and move the clone to it; True when the commit changed."""
        self.fetches += 1
        branch = self._configured or await self._remote_default()
        if branch != self._branch and self._branch is not None:
            log.info("git: the remote's default branch is now %s (was %s)", branch, self._branch)
        self._branch = branch
        ref = f"refs/remotes/origin/{branch}"
        # Shallow: only the tip's files are needed, whatever the size of the site's history.
        await self._git(
            "fetch", "--quiet", "--no-tags", "--depth=1", "origin", f"+refs/heads/{branch}:{ref}",
            timeout_s=self.timeout_s,
        )  # fmt: skip
        target = (await self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")).strip()
        before = await self._checked_out()
        await self._git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        # The remote's state exactly: a force-push or rewrite included, local changes dropped.
        await self._git("reset", "--quiet", "--hard", target)
        await self._git("clean", "--quiet", "-ffdx")
        self.head = target
        if before != target:
            log.info(
                "git: %s is at %s (was %s)", branch, target[:12], before[:12] if before else "none"
            )
        return before != target

    async def run(self, stop: asyncio.Event, *, after: asyncio.Event | None = None) -> None:
        """Fetch every `poll_s` and when asked, until `stop`; a failure is retried with backoff.

        `after`: wait for it first (the watcher's first scan), so nothing moves beneath it.
        """
        if after is not None:
            await _first_of(stop, after)
        while not stop.is_set():
            delay_s = self.poll_s
            if self.failures:
                delay_s = min(delay_s, backoff(self.failures, first_s=self.backoff_first_s))
            await _first_of(stop, self._wanted, timeout_s=delay_s)
            if stop.is_set():
                return
            self._wanted.clear()
            try:
                moved = await _unless_stopped(stop, self.sync())
            except GitError as exc:
                self._failed(exc)
                continue
            if moved is None:
                return
            if self.failures:
                log.info("git: fetching %s works again", self.url)
            self.failures, self.last_error = 0, None

    async def problem(self) -> str | None:
        """Why the clone is behind, for health reports; None until DOWN_AFTER failures in a row."""
        if self.failures < DOWN_AFTER:
            return None
        return f"fetching failed {self.failures} times in a row: {self.last_error}"

    def _failed(self, exc: GitError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        retry_s = min(self.poll_s, backoff(self.failures, first_s=self.backoff_first_s))
        log.warning(
            "git: fetching %s failed (%s); the clone stays as it is, next try in %g s",
            self.url,
            exc,
            retry_s,
        )

    async def remote_problem(self) -> str | None:
        """Why the remote or its branch cannot be followed (for `herald check`), or None.

        Runs `git ls-remote` against the URL itself: no clone is needed.
        """
        try:
            out = await self._git("ls-remote", "--symref", self._url, timeout_s=self.timeout_s)
        except GitError as exc:
            return str(exc)
        branch = self._configured or default_branch(out)
        if branch is None:
            return (
                f"{self.url} names no default branch (an empty repository?); set HERALD_SITE_BRANCH"
            )
        if f"\trefs/heads/{branch}\n" not in out + "\n":
            return f"{self.url} has no branch {branch!r}; check HERALD_SITE_BRANCH"
        return None

    async def _remote_default(self) -> str:
        out = await self._git("ls-remote", "--symref", "origin", "HEAD", timeout_s=self.timeout_s)
        branch = default_branch(out) or self._branch
        if branch is None:
            raise GitError(
                f"{self.url} names no default branch (an empty repository?); "
                "push to it or set HERALD_SITE_BRANCH"
            )
        return branch

    async def _checked_out(self) -> str | None:
        try:
            return (await self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")).strip()
        except GitError:
            return None

    async def _config(self, key: str) -> str | None:
        try:
            return (await self._git("config", "--get", key)).strip()
        except GitError:
            return None

    async def _git(self, *args: str, timeout_s: float = LOCAL_TIMEOUT_S) -> str:
        """Run `git ARGS` in the clone: its output, or GitError (masked) naming the command."""
        try:
            proc = await asyncio.create_subprocess_exec(
                "git", *args,
                cwd=self.root, env=git_env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                # Its own group, so a timeout also ends the helpers (git-remote-https, ssh),
                # and no terminal for them to prompt on.
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise GitError("the git command is not installed (apt-get install git)") from exc
        try:
            async with asyncio.timeout(timeout_s):
                out, err = await proc.communicate()
        except TimeoutError:
            await _end(proc)
            raise GitError(f"git {args[0]} gave no answer in {timeout_s:g} s") from None
        except BaseException:  # cancelled: the command must not outlive the bot
            await _end(proc)
            raise
        if proc.returncode != 0:
            reason = self.mask(err.decode(errors="replace").strip())
            raise GitError(f"git {args[0]} failed: {reason or f'exit status {proc.returncode}'}")
        return out.decode(errors="replace")


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Stop a git command and its helpers: SIGTERM (git then removes its locks), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), TERM_GRACE_S)
            return


async def _first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Wait until one of `events` is set, or `timeout_s` passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _unless_stopped(stop: asyncio.Event, step: Coroutine[Any, Any, T]) -> T | None:
    """The result of `step`, or None when `stop` came first (`step` is then cancelled)."""
    doing = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not doing.done():  # stopped, or this task cancelled: end the git command first
            doing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await doing
    return None if doing.cancelled() else doing.result()
