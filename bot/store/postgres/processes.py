"""The schema several `herald run` processes share on one database: who is alive, the send
budget, and the one secret key. The coordination itself lives in `cluster` (H2's module)."""

from __future__ import annotations

import secrets

from bot.store.postgres.db import Pool

CLUSTER_MIGRATIONS = [
    """
    CREATE TABLE processes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        worker BOOLEAN NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE send_budget (name TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)
    """,
]

SECRET_MIGRATIONS = [
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

# A process whose `seen_at` is older than this is dead (e.g. killed with SIGKILL): the rows it
# held are given back within a minute rather than at the end of their lease.
ALIVE_S = 30.0


def held_by_the_dead(*, me: str, now: str) -> str:
    """SQL true for an outbox row (`claimed_by`) whose claimant is another, dead process.

    `me` and `now` are the SQL of this process's id (a parameter) and of the current epoch
    time, the server's (`DB_NOW`), as `processes.seen_at` is written.
    """
    return (
        f"(claimed_by IS DISTINCT FROM {me} AND NOT EXISTS (SELECT 1 FROM processes p"
        f" WHERE p.id = claimed_by AND p.seen_at >= {now} - {ALIVE_S}))"
    )


async def shared_secret(pool: Pool, name: str = "secret_key", *, adopt: str | None = None) -> str:
    """The one secret key of every process on this database, made by whichever asks first
    (`adopt`: the key to keep when there is none yet, instead of a new one)."""
    await pool.execute(
        "INSERT INTO secrets(name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        adopt or secrets.token_urlsafe(32),
    )
    value = await pool.fetchval("SELECT value FROM secrets WHERE name = $1", name)
    return str(value)
