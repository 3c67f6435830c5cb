"""The store under test, from each backend: every store test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bot.store import Store, open_store

# Opens the one database of a test (each call opens it again, as another process would).
Opener = Callable[[], AbstractAsyncContextManager[Store]]


def _sqlite(request: pytest.FixtureRequest, tmp: Path) -> Opener:
    return lambda: open_store(f"sqlite:///{tmp / 'herald.db'}")


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> Opener:
    url: str = request.getfixturevalue("postgres_url")  # a new database for this test
    return lambda: open_store(url)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Opener]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """How to open this test's fresh database, of one backend."""
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Opener) -> AsyncIterator[Store]:
    """A freshly migrated, empty database of each backend."""
    async with backend() as opened:
        yield opened
