"""Health of the running parts: what `GET /healthz` and the `herald_up` gauge report.

Parts either register a check (an async callable: None when the part works, else why not)
or set their status as they go; the composition root wires them in and the web app reads
`report()`. Checks run concurrently, each given `timeout_s`: a check that hangs counts as
down, and a check still running from an earlier report is awaited again, never started twice
(a locked database must not collect one waiting write per probe).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
HEARTBEAT_KEY = "health:heartbeat"

Check = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class PartHealth:
    """One part's state in a report; `reason` says why it is down, or notes how it is up."""

    part: str
    up: bool
    reason: str = ""


class Note(str):
    """A check's answer for a part that is up all the same, e.g. on standby while another
    process runs it."""

    __slots__ = ()


class Health:
    """The registry of parts and their checks; `report()` answers within about `timeout_s`."""

    def __init__(self, *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._parts: dict[str, None] = {}  # every part, in the order it joined
        self._checks: dict[str, Check] = {}
        self._status: dict[str, PartHealth] = {}
        self._running: dict[str, asyncio.Task[str | None]] = {}
        self._last: dict[str, bool] = {}

    def register(self, part: str, check: Check) -> None:
        """`part` is checked by `check` at every report."""
        self._parts[part] = None
        self._checks[part] = check

    def set(self, part: str, up: bool, reason: str = "") -> None:
        """`part` says how it is; it stays so until it says otherwise."""
        self._parts[part] = None
        self._status[part] = PartHealth(part, up, "" if up else reason)

    async def report(self) -> list[PartHealth]:
        """Every part's state: down when its status says so or its check fails or hangs."""
        tasks = {part: self._start(part, check) for part, check in self._checks.items()}
        if tasks:
            await asyncio.wait(tasks.values(), timeout=self.timeout_s)
        report = []
        for part in self._parts:
            state = self._status.get(part, PartHealth(part, True))
            task = tasks.get(part)
            if state.up and task is not None:
                state = self._outcome(part, task)
            self._note(state)
            report.append(state)
        return report

    async def close(self) -> None:
        """Cancel checks still running (at shutdown)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, part: str, check: Check) -> asyncio.Task[str | None]:
        task = self._running.get(part)
        if task is None:
            task = asyncio.ensure_future(check())
            self._running[part] = task
            task.add_done_callback(functools.partial(self._finished, part))
        return task

    def _finished(self, part: str, task: asyncio.Task[str | None]) -> None:
        if self._running.get(part) is task:
            del self._running[part]
        failed = not task.cancelled() and task.exception() is not None
        # Logged here, once per spell; the public answer names no internals.
        if failed and self._last.get(part, True):
            log.warning("health: %s check failed", part, exc_info=task.exception())

    def _outcome(self, part: str, task: asyncio.Task[str | None]) -> PartHealth:
        if not task.done():
            return PartHealth(part, False, f"no answer within {self.timeout_s:g} s")
        if task.cancelled() or task.exception() is not None:
            return PartHealth(part, False, "check failed")
        reason = task.result()
        if isinstance(reason, Note):
            return PartHealth(part, True, str(reason))
        return PartHealth(part, reason is None, reason or "")

    def _note(self, state: PartHealth) -> None:
        was_up = self._last.get(state.part, True)
        if was_up and not state.up:
            log.warning("health: %s is down: %s", state.part, state.reason)
        elif state.up and not was_up:
            log.info("health: %s is up again", state.part)
        self._last[state.part] = state.up


class MetaWriter(Protocol):
    """The store's post log, as far as the database check needs it."""

    async def set_meta(self, key: str, value: str) -> None: ...


def database_check(meta: MetaWriter, problem: Callable[[], str | None] | None = None) -> Check:
    """A real write (a heartbeat row): a locked, read-only or full database is down.

    `problem` is the store's own verdict (e.g. its file was replaced), asked first.
    """

    async def check() -> str | None:
        if problem is not None and (found := problem()) is not None:
            return found
        await meta.set_meta(HEARTBEAT_KEY, datetime.now(UTC).isoformat())
        return None

    return check


def task_check(
    task: asyncio.Future[Any],
    *,
    started: asyncio.Event | None = None,
    then: Check | None = None,
) -> Check:
    """Down once `task` has ended, or before `started` is set; then `then` decides."""

    async def check() -> str | None:
        if task.done():
            return "stopped"
        if started is not None and not started.is_set():
            return "starting"
        return await then() if then is not None else None

    return check


def progress_check(
    next_due: Callable[[], Awaitable[float | None]],
    progress: Callable[[], object],
    *,
    stuck_s: float,
    clock: Callable[[], float] = time.time,
) -> Check:
    """Down when queued work has been due for over `stuck_s` while nothing moved for as long.

    `next_due()` is when the earliest waiting work became due (epoch seconds, or None);
    movement is a change of `progress()` (e.g. messages sent) or of `next_due()`.
    """
    seen: list[Any] = [None, clock()]  # (progress, next due) last seen, and since when

    async def check() -> str | None:
        due = await next_due()
        now = clock()
        state = (progress(), due)
        if state != seen[0]:
            seen[:] = [state, now]
        still_s = now - seen[1]
        if due is not None and now - due > stuck_s and still_s > stuck_s:
            return f"stuck: work due {now - due:.0f} s ago, nothing moved for {still_s:.0f} s"
        return None

    return check
