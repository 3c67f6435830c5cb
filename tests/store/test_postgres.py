"""PostgreSQL shared by several processes (each a PostgresStore on one database): claims,
the per-chat rule, rows of dead processes, the shared secret key, and clear open errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.models import (
    Channel,
    ClaimedItem,
    ItemUpdate,
    Kind,
    OutboxStatus,
    Rendered,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.store import Store, StoreError, open_store
from tests.support.postgres import database_url

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
MESSAGE = Rendered(telegram=(TelegramMessage("sendMessage", "<b>hi</b>"),))
LEASE_S = 600.0


@pytest.fixture
async def two(postgres_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' stores on one PostgreSQL database."""
    async with open_store(postgres_url) as a, open_store(postgres_url) as b:
        yield a, b


async def queue(store: Store, key: str, kind: Kind, chats: list[str]) -> int:
    job_id, _ = await store.outbox.create_job(key, kind.value, MESSAGE.encode(), title=key, now=NOW)
    recipients = [
        Recipient.of(await store.subscribers.upsert(Channel.TELEGRAM, chat)) for chat in chats
    ]
    await store.outbox.add_items(job_id, plan.rows_for(key, kind, MESSAGE, recipients))
    await store.outbox.mark_planned(job_id)
    return job_id


async def claimed_soon(store: Store, timeout_s: float = 10.0) -> list[ClaimedItem]:
    """The first claim by `store` that takes something, polling every 50 ms."""
    deadline = time.monotonic() + timeout_s
    while not (items := await store.outbox.claim(10, now=time.time(), lease_s=LEASE_S)):
        assert time.monotonic() < deadline, "nothing became claimable"
        await asyncio.sleep(0.05)
    return items


def process_id(store: Store) -> str:
    found: str = getattr(store, "process_id")  # noqa: B009 - PostgresStore only
    return found


async def heartbeat(url: str, store: Store, *, silent_s: float) -> None:
    """The `processes` row of `store`'s process, last seen `silent_s` ago by the server."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO processes (id, host, pid, worker, started_at, seen_at)"
            " VALUES ($1, 'test', 1, FALSE, 0, extract(epoch from clock_timestamp()) - $2)"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            process_id(store),
            silent_s,
        )
    finally:
        await conn.close()


async def test_two_processes_claiming_at_once_never_take_a_row_twice(
    two: tuple[Store, Store],
) -> None:
    """Processes claiming the same outbox concurrently share it out: every row goes once."""
    a, b = two
    chats = [str(n) for n in range(1, 401)]
    await queue(a, "post:1", Kind.BREAKING, chats)
    await queue(a, "digest:2026-01-15", Kind.DIGEST, chats)  # each chat twice
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    async def drain(name: str, store: Store) -> None:
        while True:
            now = time.time()
            items = await store.outbox.claim(25, now=now, lease_s=LEASE_S, channel=Channel.EMAIL)
            items += await store.outbox.claim(25, now=now, lease_s=LEASE_S)
            if not items:
                if (await store.outbox.totals())[OutboxStatus.QUEUED] == 0:
                    return
                await asyncio.sleep(0.05)  # a chat the other process holds or just sent to
                continue
            claimed[name] += [i.id for i in items]
            await store.outbox.apply(
                [
                    ItemUpdate(id=i.id, status=OutboxStatus.SENT, attempts=0, parts_done=1)
                    for i in items
                ]
            )

    await asyncio.wait_for(asyncio.gather(drain("a", a), drain("b", b)), 50)
    every = claimed["a"] + claimed["b"]
    assert len(every) == len(set(every)) == 800
    assert claimed["a"] and claimed["b"]  # both took a share
    assert (await a.outbox.totals())[OutboxStatus.SENT] == 800


async def test_a_chat_another_process_is_sending_to_waits(two: tuple[Store, Store]) -> None:
    """A chat's row is not claimed while another process sends to that chat, nor within a
    second after its send; the claiming process's own rows of the chat are not held back."""
    a, b = two
    await queue(a, "post:1", Kind.BREAKING, ["1"])
    await queue(a, "post:2", Kind.BREAKING, ["1", "2"])
    [first] = await a.outbox.claim(1, now=time.time(), lease_s=LEASE_S)
    assert first.key == "post:1:telegram:1"
    took = await b.outbox.claim(10, now=time.time(), lease_s=LEASE_S)
    assert [i.address for i in took] == ["2"]  # chat 1 is a's right now
    await a.outbox.apply(
        [ItemUpdate(id=first.id, status=OutboxStatus.SENT, attempts=0, parts_done=1)]
    )
    sent_at = time.monotonic()
    assert await b.outbox.claim(10, now=time.time(), lease_s=LEASE_S) == []  # just sent
    later = await claimed_soon(b)
    assert [i.key for i in later] == ["post:2:telegram:1"]
    assert time.monotonic() - sent_at >= 1.0
    await queue(a, "post:3", Kind.BREAKING, ["1"])  # b sends to chat 1 now: b's own rows go
    assert [i.key for i in await b.outbox.claim(10, now=time.time(), lease_s=LEASE_S)] == [
        "post:3:telegram:1"
    ]


async def test_a_dead_process_s_rows_come_back_and_a_live_one_s_stay(
    postgres_url: str, two: tuple[Store, Store]
) -> None:
    """Rows of a process silent for 30 s are given back long before their lease ends, by
    release_expired and recover; rows of a process that is alive are left to it."""
    a, b = two
    await queue(a, "post:1", Kind.BREAKING, ["1", "2", "3"])
    held = await a.outbox.claim(10, now=time.time(), lease_s=LEASE_S)
    assert len(held) == 3
    await heartbeat(postgres_url, a, silent_s=1)
    assert await b.outbox.release_expired(time.time()) == 0
    assert await b.outbox.recover() == 0  # b starting up leaves a's sends alone
    await heartbeat(postgres_url, a, silent_s=31)  # e.g. killed with SIGKILL half a minute ago
    assert await b.outbox.release_expired(time.time()) == 3
    again = await b.outbox.claim(10, now=time.time(), lease_s=LEASE_S)
    assert sorted(i.id for i in again) == sorted(i.id for i in held)
    await heartbeat(postgres_url, b, silent_s=40)
    assert await a.outbox.recover() == 3  # b is dead as far as anyone can tell
    # Without a row in `processes` at all a process counts as dead too; own rows never do.
    mine = await a.outbox.claim(10, now=time.time(), lease_s=LEASE_S)
    assert len(mine) == 3 and await a.outbox.release_expired(time.time()) == 0


async def test_the_secret_key_is_one_for_every_process(postgres_url: str) -> None:
    """Every open of a PostgreSQL database gets the same secret key, made once."""
    async with open_store(postgres_url) as a, open_store(postgres_url) as b:
        first, second = await asyncio.gather(a.shared_secret(), b.shared_secret())
    async with open_store(postgres_url) as later:
        third = await later.shared_secret()
    assert first is not None and len(first) >= 43
    assert first == second == third


async def test_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    """Several processes opening a new database at the same moment all start, schema made once."""
    async with AsyncExitStack() as stack:
        stores = await asyncio.gather(
            *(stack.enter_async_context(open_store(postgres_url)) for _ in range(5))
        )
        await stores[0].subscribers.upsert(Channel.TELEGRAM, "7")
        assert all([await s.subscribers.get(Channel.TELEGRAM, "7") for s in stores])
    conn = await asyncpg.connect(postgres_url)
    try:
        versions = dict(await conn.fetch("SELECT area, version FROM schema_version"))
    finally:
        await conn.close()
    assert set(versions) >= {"posts", "subscribers", "outbox", "digests", "cluster"}


async def test_reopening_keeps_the_data_and_run_opens_beside_another(postgres_url: str) -> None:
    """A second open (also for `herald run`) finds what the first one wrote: no lock, no reset."""
    async with open_store(postgres_url, run=True) as first:
        await first.subscribers.upsert(Channel.EMAIL, "a@example.com")
        await first.posts.set_meta("watcher.baseline_done", NOW.isoformat())
        async with open_store(postgres_url, run=True) as second:
            assert await second.subscribers.get(Channel.EMAIL, "a@example.com") is not None
            assert await second.posts.get_meta("watcher.baseline_done") == NOW.isoformat()
            assert second.health() is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with(url: str, *, password: str | None = None, port: int | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    host = f"{parts.hostname}:{port or parts.port}"
    auth = f"{user}:{password}@" if password else (f"{user}:{parts.password}@")
    return urlunsplit((parts.scheme, auth + host, parts.path, "", ""))


async def open_error(url: str) -> str:
    with pytest.raises(StoreError) as refused:
        async with open_store(url):
            pass
    message = str(refused.value)
    assert "\n" not in message
    return message


async def test_an_unreachable_server_is_one_sentence(postgres_url: str) -> None:
    """No server at the port: one line naming host:port/db and what to check, no password."""
    port = _free_port()
    message = await open_error(_with(postgres_url, password="s3cret-pw", port=port))
    name = urlsplit(postgres_url).path.lstrip("/")
    assert f"127.0.0.1:{port}/{name}" in message and "reach" in message
    assert "s3cret-pw" not in message


async def test_a_wrong_password_is_one_sentence(postgres_url: str) -> None:
    """A wrong password is named as such, with the server, never the password itself."""
    message = await open_error(_with(postgres_url, password="wrong-pass-123"))
    assert "password" in message and "HERALD_DATABASE_URL" in message
    assert urlsplit(postgres_url).netloc.rpartition("@")[2] in message
    assert "wrong-pass-123" not in message


async def test_a_missing_database_says_how_to_create_it(postgres_server: str) -> None:
    """A database that does not exist is named, with createdb as the fix."""
    message = await open_error(database_url(postgres_server, "herald_no_such_db"))
    assert "herald_no_such_db" in message and "does not exist" in message
    assert "createdb" in message


async def test_an_unknown_scheme_is_refused_by_name() -> None:
    """A URL of a database Herald has no backend for is refused with the forms it takes."""
    with pytest.raises(StoreError, match="postgresql://"):
        async with open_store("mysql://u:p@h/db"):
            pass
