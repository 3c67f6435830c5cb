"""The store under test, from each backend: a second backend plugs in as another parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bot.store import Store, open_store

Opener = Callable[[Path], AbstractAsyncContextManager[Store]]


def _sqlite(tmp: Path) -> AbstractAsyncContextManager[Store]:
    return open_store(tmp / "herald.db")


BACKENDS: dict[str, Opener] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Opener:
    """How to open a fresh database of one backend in a folder."""
    opener: Opener = BACKENDS[request.param]
    return opener


@pytest.fixture
async def store(tmp_path: Path, backend: Opener) -> AsyncIterator[Store]:
    """A freshly migrated, empty database of each backend."""
    async with backend(tmp_path) as opened:
        yield opened
