"""Child process for the watcher test: a post read while no file descriptor is free (EMFILE).

Run as `python -m tests.sources.fd_limit_child SITE DB`. It starts a watcher, writes a post,
lowers RLIMIT_NOFILE so that no file can be opened, and gives the descriptors back as soon
as the watcher logs a warning about that post. It prints one JSON line: whether opening a
file really failed with EMFILE, the titles announced within the deadline, and the warnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import resource
import sys
from pathlib import Path

from bot.models import Post
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.sources.watcher import Watcher
from bot.store import open_store

NAME = "2026-11-21-crowded.md"
TEXT = '---\ntitle: "Crowded"\ndate: 2026-11-20 10:00:00 +0000\n---\n\nNo descriptor left.\n'
DEADLINE_S = 15.0


class GiveBack(logging.Handler):
    """On the watcher's first warning about the post, the process may open files again."""

    def __init__(self, limits: tuple[int, int]) -> None:
        super().__init__(logging.WARNING)
        self.limits = limits
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if NAME in message:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.limits)
            self.lines.append(message)


async def main(site: Path, db: Path) -> dict[str, object]:
    announced: list[str] = []
    arrived = asyncio.Event()

    async def on_post(post: Post, post_id: int) -> None:
        announced.append(post.title)
        arrived.set()

    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    give_back = GiveBack(limits)
    logging.getLogger("bot.sources.watcher").addHandler(give_back)
    stop, ready = asyncio.Event(), asyncio.Event()
    async with open_store(db) as store:
        watcher = Watcher(load_site(Settings(site_dir=site)), store.posts, on_post)
        task = asyncio.create_task(watcher.run(stop, ready))
        await asyncio.wait_for(ready.wait(), DEADLINE_S)
        (site / "_posts" / NAME).write_text(TEXT, encoding="utf-8")
        # No await until the limit is down: the watcher cannot read the file before that.
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        try:
            os.close(os.open(os.devnull, os.O_RDONLY))
            probe = "opened"
        except OSError as exc:
            probe = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), DEADLINE_S)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
    return {"probe": probe, "announced": announced, "warnings": give_back.lines}


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
    print(json.dumps(result))
