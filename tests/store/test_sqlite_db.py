"""The shared connection's transactions: they take turns and never stay open by accident."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store.sqlite import db


async def test_cancelled_while_beginning_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A task cancelled while its BEGIN is on the way does not leave the connection stuck."""
    conn = await db.connect(tmp_path / "t.db")
    try:
        await conn.execute("CREATE TABLE t (x INTEGER)")

        async def write() -> None:
            async with db.transaction(conn):
                await conn.execute("INSERT INTO t VALUES (1)")

        task = asyncio.create_task(write())
        await asyncio.sleep(0)  # the task is now awaiting its BEGIN IMMEDIATE
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.transaction(conn):  # would fail: "transaction within a transaction"
            await conn.execute("INSERT INTO t VALUES (2)")
        assert not conn.in_transaction
        async with conn.execute("SELECT x FROM t") as cur:
            assert [r[0] for r in await cur.fetchall()] == [2]
    finally:
        await conn.close()


async def test_failed_body_rolls_back_and_the_next_transaction_commits(tmp_path: Path) -> None:
    """An error inside a transaction undoes its writes; the next one works normally."""
    conn = await db.connect(tmp_path / "t.db")
    try:
        await conn.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError):
            async with db.transaction(conn):
                await conn.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")
        async with db.transaction(conn):
            await conn.execute("INSERT INTO t VALUES (2)")
        async with conn.execute("SELECT x FROM t") as cur:
            assert [r[0] for r in await cur.fetchall()] == [2]
    finally:
        await conn.close()


async def test_a_write_from_another_task_is_not_swept_into_a_rolled_back_transaction(
    tmp_path: Path,
) -> None:
    """A single write made while another task's transaction is open survives its rollback."""
    conn = await db.connect(tmp_path / "t.db")
    try:
        await conn.execute("CREATE TABLE t (x INTEGER)")
        inside = asyncio.Event()

        async def failing_batch() -> None:
            async with db.transaction(conn):
                await conn.execute("INSERT INTO t VALUES (1)")
                inside.set()
                await asyncio.sleep(0.05)  # e.g. waiting on the network mid-transaction
                raise RuntimeError("batch failed")

        batch = asyncio.create_task(failing_batch())
        await inside.wait()
        await conn.execute("INSERT INTO t VALUES (2)")  # e.g. a confirmation from the web
        with pytest.raises(RuntimeError):
            await batch
        async with conn.execute("SELECT x FROM t") as cur:
            assert [r[0] for r in await cur.fetchall()] == [2]
    finally:
        await conn.close()
