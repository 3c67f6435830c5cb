"""The PostgreSQL pool, its transactions, and schema migrations kept per area."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

import asyncpg
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# One list of steps per area; a step is one SQL script. Append, never edit a shipped step.
Migrations = Sequence[str]

# pg_advisory_xact_lock keys: fixed, so every Herald process on the database takes the same.
MIGRATE_LOCK = 0x4845_5241_4C44_0001  # "HERALD" 1: schema migrations, one process at a time
CLAIM_LOCK = 0x4845_5241_4C44_0002  # Telegram claims take turns (the per-chat rule)

Pool: TypeAlias = "asyncpg.Pool[Record]"
Conn: TypeAlias = "PoolConnectionProxy[Record]"


def server_of(url: str) -> str:
    """`host:port/db` of a PostgreSQL URL, for messages: never its user or password."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    host = parts.hostname or "localhost"
    db = unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres"
    return f"{host}:{port}/{db}"


# The server's clock as epoch seconds, in SQL: one clock for the processes of every host.
DB_NOW = "extract(epoch from clock_timestamp())"


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Conn]:
    """A connection from the pool inside BEGIN … COMMIT (ROLLBACK on error)."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


def affected(status: str) -> int:
    """Rows a statement touched, from its command tag (`INSERT 0 5`, `UPDATE 3`)."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


async def migrate(conn: Conn, areas: Mapping[str, Migrations]) -> None:
    """Apply every area's steps the database has not seen, in one transaction.

    The advisory lock makes processes starting at once take turns: the second finds the
    schema the first one made instead of racing it to CREATE the same tables.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (area TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for area, steps in areas.items():
            current = await conn.fetchval(
                "SELECT version FROM schema_version WHERE area = $1", area
            )
            current = int(current or 0)
            for version, script in enumerate(steps[current:], start=current + 1):
                started = time.monotonic()
                await conn.execute(script)  # no arguments: several statements in one go
                await conn.execute(
                    "INSERT INTO schema_version(area, version) VALUES ($1, $2)"
                    " ON CONFLICT (area) DO UPDATE SET version = excluded.version",
                    area,
                    version,
                )
                log.info(
                    "database: %s schema at version %d (%.1f s)",
                    area,
                    version,
                    time.monotonic() - started,
                )
