"""Drive the real `herald` command in subprocesses, as a user and the acceptance checks do."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_SITE = ROOT / "examples" / "site"
SAMPLE = Path("/work/shared/samples/2025-11-11-syria-joins-coalition.md")
START_TIMEOUT_S = 20.0  # cold imports on two busy cores
READY = re.compile(r"\bready\b")  # not "already"


def free_port() -> int:
    """A port that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def visible(telegram_html: str) -> str:
    """What a reader sees of Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", telegram_html))


def recent(hours: float = 1.0) -> datetime:
    """A publication time in the past (posts in the future are held), whole seconds."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)


def post_text(title: str, body: str, when: datetime, **front: str) -> str:
    """A post file: YAML front matter and a Markdown body."""
    extra = "".join(f"{k}: {v}\n" for k, v in front.items())
    return f'---\ntitle: "{title}"\ndate: {when.isoformat()}\n{extra}---\n\n{body}\n'


def sample_breaking(title: str, when: datetime) -> str:
    """The shared sample post with a fresh title and date (same body, image and front matter)."""
    if SAMPLE.exists():
        text = SAMPLE.read_text(encoding="utf-8")
    else:  # the copy in the demo site is the same post
        text = (DEMO_SITE / "_posts" / SAMPLE.name).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^title: .*$", f'title: "{title}"', text, count=1)
    return re.sub(r"(?m)^date: .*$", f"date: {when.isoformat()}", text, count=1)


def files_under(folder: Path) -> list[Path]:
    """Every visible file below `folder`, sorted (as `ls -R` shows); none when it does not exist."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("[!.]*") if p.is_file() and not p.name.startswith("."))


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """`path` (a file or a folder) refuses writes, root's too: `chattr +i` as root, else chmod."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    # chmod does not stop root; the immutable flag does (it needs CAP_LINUX_IMMUTABLE).
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root, where chmod does not stop writes, and no chattr here")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"running as root, where chmod does not stop writes; chattr +i: {done.stderr}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def delete_database(db: Path) -> None:
    """`rm herald.db herald.db-wal herald.db-shm`: the database is gone, lock and marker stay."""
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def parse_eml(path: Path) -> EmailMessage:
    """An .eml file as a modern EmailMessage."""
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def mail_parts(msg: EmailMessage) -> tuple[str, str]:
    """The (text/plain, text/html) bodies, asserting that order inside multipart/alternative."""
    assert msg.get_content_type() == "multipart/alternative", msg.get_content_type()
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    return str(parts[0].get_content()), str(parts[1].get_content())


class Herald:
    """A temp install: a copy of the demo site, its data, outbox and environment."""

    def __init__(self, home: Path, *, defaults: bool = False, **env: str) -> None:
        """With `defaults`, only the web address is set: the rest is `make run`'s layout."""
        self.home = home
        self.site = home / ("examples/site" if defaults else "site")
        self.posts = self.site / "_posts"
        self.outbox = home / "outbox"
        if not self.site.exists():
            shutil.copytree(DEMO_SITE, self.site)
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        path = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        self.env = base | {
            "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1",
            "HERALD_WEB_LISTEN": f"127.0.0.1:{self.port}",
            "HERALD_PUBLIC_URL": self.public_url,
        }
        if not defaults:
            self.env |= {
                "HERALD_SITE_DIR": str(self.site),
                "HERALD_DATABASE_URL": f"sqlite:///{home / 'data' / 'herald.db'}",
                "HERALD_OUTBOX_DIR": str(self.outbox),
            }
        self.env.update(env)

    def write_post(self, name: str, text: str) -> Path:
        """Drop a post into `_posts/` the way an editor's save does: complete, at once."""
        tmp = self.home / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        target = self.posts / name
        tmp.replace(target)
        return target

    async def cli(self, *args: str, timeout: float = 30.0, **env: str) -> tuple[int, str, str]:  # noqa: ASYNC109
        """Run `herald ARGS…` to the end: (exit status, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args,
            cwd=self.home, env=self.env | env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def run(self, *args: str, **env: str) -> Running:
        """`herald run ARGS…` in the background; use as `async with herald.run() as running:`."""
        return Running(self, env, args)


class Running:
    """A `herald run` process whose log lines (stderr) are read as they come."""

    def __init__(self, herald: Herald, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.herald = herald
        self.env = herald.env | env
        self.args = args
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Running:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", *self.args,
            cwd=self.herald.home, env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The first log line matching `predicate`; fails with the log if none comes in time."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            done = self._reader is not None and self._reader.done()
            left = deadline - time.monotonic()
            if done or left <= 0:
                raise AssertionError(f"no such log line in {timeout}s; log:\n{self.log}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def ready(self) -> None:
        """Wait for the line containing `ready` that `herald run` logs once it serves."""
        await self.wait_line(lambda line: READY.search(line) is not None, START_TIMEOUT_S)

    async def stop(self, timeout: float = 15.0) -> int:  # noqa: ASYNC109
        """SIGTERM, then the exit status (the process is killed if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 15.0) -> int:  # noqa: ASYNC109
        """The exit status once the process ended by itself; killed and failed if it does not."""
        assert self.proc is not None and self._reader is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            await self._reader
            raise AssertionError(
                f"herald run did not exit in {timeout}s; log:\n{self.log}"
            ) from None
        await self._reader
        return code

    async def __aenter__(self) -> Running:
        await self.start()
        try:
            await self.ready()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


async def poll(predicate: Callable[[], object], timeout: float, what: str) -> float:  # noqa: ASYNC109
    """Seconds until `predicate()` held, polling every 50 ms; AssertionError naming `what`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start
