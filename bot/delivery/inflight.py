"""Transport calls in flight, and cutting them short when delivery stops and they hang on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class InFlight:
    """Runs transport calls so that, on stop, those still unanswered after the grace can be
    cut short: their outcome is unknown, so their rows go back to the queue as they were.

    A cut is a cancellation of the worker's task, told apart from any other by counting:
    every cancel sent here is taken back (`uncancel`) when the call ends.
    """

    def __init__(self) -> None:
        self._calls: dict[asyncio.Task[object], int] = {}  # task in a call → cancels sent
        self._cut = False

    async def run(self, call: Callable[[], Awaitable[object]]) -> bool:
        """Await `call()`: True once it returned (what it raised propagates), False if cut."""
        if self._cut:
            return False
        task = asyncio.current_task()
        assert task is not None
        self._calls[task] = 0
        try:
            await call()
        except asyncio.CancelledError:
            if not self._take_back(task) or task.cancelling():
                raise  # (also) cancelled by someone else: not ours to swallow
            return False
        except Exception:
            # A library may turn the cancellation into an error of its own: still a cut.
            if self._take_back(task):
                return False
            raise
        self._take_back(task)  # cancels lost on the way (the call returned): taken back too
        return True

    def _take_back(self, task: asyncio.Task[object]) -> int:
        sent = self._calls.pop(task, 0)
        for _ in range(sent):
            task.uncancel()
        return sent

    def cut(self) -> int:
        """Cut short every call still running, and refuse new ones; returns how many.

        Call it again for calls that outlive it: a library may lose a cancellation
        (asyncio.wait_for on Python 3.11 does when the answer arrives at that moment).
        """
        self._cut = True
        for task in self._calls:
            self._calls[task] += 1
            task.cancel()
        return len(self._calls)
