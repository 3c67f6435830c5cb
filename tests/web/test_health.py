"""`/healthz` and `herald_up` over HTTP: every part's state, answered even when a check hangs."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.health import HEARTBEAT_KEY, Health, database_check, progress_check
from bot.metrics import Metrics
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve
from tests.support.web import SECRET, FakeClock, RecordingPublisher, web_settings

# What a probe or scraper would allow; the answer must come within it.
CLIENT_TIMEOUT_S = 5.0


@dataclass
class Probed:
    """A served web app whose health registry the test fills, and a client with a deadline."""

    health: Health
    store: Store
    db_path: Path
    client: httpx.AsyncClient


@pytest.fixture
async def probed(tmp_path: Path) -> AsyncIterator[Probed]:
    """The web app on a real socket, its `database` part checked against its real store."""
    listener = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = web_settings(tmp_path, public_url=base)
    stop, started = asyncio.Event(), asyncio.Event()
    health = Health()
    async with open_store(settings.database_path) as store:
        health.register("database", database_check(store.posts))
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=Tokens(SECRET),
            publisher=RecordingPublisher(),
            metrics=Metrics(),
            health=health,
        )
        task = asyncio.create_task(serve(app, settings, stop, sock=listener, started=started))
        try:
            await asyncio.wait_for(started.wait(), 20)
            async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S) as client:
                yield Probed(health, store, settings.database_path, client)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await health.close()


async def answer_until(client: httpx.AsyncClient, status: int) -> httpx.Response:
    """GET /healthz until it answers `status` (a check still running finishes meanwhile)."""
    async with asyncio.timeout(20):
        while True:
            response = await client.get("/healthz")
            if response.status_code == status:
                return response
            await asyncio.sleep(0.05)


async def test_healthz_is_ok_and_every_part_is_up_while_all_work(probed: Probed) -> None:
    """With every part working /healthz answers 200 listing each, after a real database write."""
    probed.health.set("telegram", True)

    async def fine() -> None:
        return None

    probed.health.register("watcher", fine)
    response = await probed.client.get("/healthz")
    assert response.status_code == 200
    assert response.text.splitlines() == ["ok", "database: up", "telegram: up", "watcher: up"]
    assert await probed.store.posts.get_meta(HEARTBEAT_KEY) is not None
    metrics = (await probed.client.get("/metrics")).text
    assert 'herald_up{part="database"} 1.0' in metrics
    assert 'herald_up{part="telegram"} 1.0' in metrics


async def test_a_locked_database_is_named_down_before_the_client_gives_up(
    probed: Probed,
) -> None:
    """A database another connection holds exclusively: 503 naming it, answered in the time."""
    other = sqlite3.connect(probed.db_path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        response = await probed.client.get("/healthz")
        assert response.status_code == 503
        assert response.text.splitlines()[0] == "down: database"
        assert "database: down (no answer within 2 s)" in response.text
        metrics = await probed.client.get("/metrics")
        assert 'herald_up{part="database"} 0.0' in metrics.text
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert (await answer_until(probed.client, 200)).text.startswith("ok")


async def test_telegram_down_is_named_with_its_reason(probed: Probed) -> None:
    """A part that says it is down (Telegram rejecting the token) makes /healthz 503 naming it."""
    probed.health.set("telegram", False, "Telegram rejects HERALD_TELEGRAM_TOKEN")
    response = await probed.client.get("/healthz")
    assert response.status_code == 503
    assert response.text.splitlines()[0] == "down: telegram"
    assert "telegram: down (Telegram rejects HERALD_TELEGRAM_TOKEN)" in response.text
    assert "database: up" in response.text
    metrics = (await probed.client.get("/metrics")).text
    assert 'herald_up{part="telegram"} 0.0' in metrics
    probed.health.set("telegram", True)
    assert (await probed.client.get("/healthz")).status_code == 200


async def test_a_hung_check_counts_as_down_and_is_not_started_again(probed: Probed) -> None:
    """A check that never returns: each probe gets 503 naming it; the check runs only once."""
    started: list[int] = []

    async def hangs() -> str | None:
        started.append(1)
        await asyncio.Event().wait()
        return None

    probed.health.register("watcher", hangs)
    for _ in range(2):
        response = await probed.client.get("/healthz")
        assert response.status_code == 503
        assert response.text.splitlines()[0] == "down: watcher"
    assert started == [1]


async def test_a_failing_check_is_down_without_its_error_text(
    probed: Probed, caplog: pytest.LogCaptureFixture
) -> None:
    """A check that raises is down as `check failed`; the error is logged, not shown."""

    async def broken() -> str | None:
        raise RuntimeError("secret detail")

    probed.health.register("delivery", broken)
    response = await probed.client.get("/healthz")
    assert response.status_code == 503
    assert "delivery: down (check failed)" in response.text
    assert "secret detail" not in response.text and "secret detail" in caplog.text


async def test_delivery_is_stuck_when_due_work_waits_and_nothing_moves(probed: Probed) -> None:
    """Work due past the limit while nothing was sent for as long: delivery is down as stuck."""
    clock = FakeClock()
    due: list[float | None] = [None]
    sent = [0]

    async def next_due() -> float | None:
        return due[0]

    stuck = progress_check(next_due, lambda: sent[0], stuck_s=300, clock=clock)
    probed.health.register("delivery", stuck)
    assert (await probed.client.get("/healthz")).status_code == 200
    due[0] = clock.now - 10
    assert (await probed.client.get("/healthz")).status_code == 200
    clock.now += 301
    response = await probed.client.get("/healthz")
    assert response.status_code == 503
    assert response.text.splitlines()[0] == "down: delivery"
    assert "delivery: down (stuck:" in response.text
    sent[0] += 1  # a message went out: moving again
    assert (await probed.client.get("/healthz")).status_code == 200


async def test_the_stores_own_verdict_comes_before_the_write(probed: Probed) -> None:
    """A store that knows its file was replaced is down with its sentence, nothing written."""
    problem = "the database file was replaced since Herald opened it"
    probed.health.register("database", database_check(probed.store.posts, lambda: problem))
    response = await probed.client.get("/healthz")
    assert response.status_code == 503
    assert f"database: down ({problem})" in response.text
    assert await probed.store.posts.get_meta(HEARTBEAT_KEY) is None
