"""The PostgreSQL backend: a connection pool shared by the areas, for one or many processes.

Any number of `herald run` processes, on any hosts, may share the database: each is told
apart by `process_id`, and the rows it claims carry it (see `outbox`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import unquote, urlsplit

import asyncpg

from bot.store.interface import StoreError
from bot.store.postgres import cluster, db, digests, outbox, posts, processes, subscribers
from bot.store.postgres.transfer import PostgresTransfer

log = logging.getLogger(__name__)

POOL_SIZE = 10  # a fan-out's stream holds one connection while its inserts use another
CONNECT_TIMEOUT_S = 10.0
HEALTH_CHECK_S = 2.0  # how often the server is asked whether it still answers
CLOSE_TIMEOUT_S = 5.0

# Applied in this order: the outbox refers to subscribers.
AREAS: dict[str, db.Migrations] = {
    "posts": posts.MIGRATIONS,
    "subscribers": subscribers.MIGRATIONS,
    "outbox": outbox.MIGRATIONS,
    "digests": digests.MIGRATIONS,
    "cluster": processes.CLUSTER_MIGRATIONS,
    "secrets": processes.SECRET_MIGRATIONS,
}


class PostgresStore:
    """Open PostgreSQL database: `posts`, `subscribers`, `outbox`, `digests` and `cluster`."""

    def __init__(self, pool: db.Pool, server: str, url: str) -> None:
        self.pool = pool
        self.server = server  # host:port/db, for messages
        self.process_id = uuid.uuid4().hex  # this process among those sharing the database
        self.posts = posts.PostLog(pool)
        self.subscribers = subscribers.Subscribers(pool)
        self.outbox = outbox.Outbox(pool, self.process_id)
        self.digests = digests.Digests(pool)
        self.transfer = PostgresTransfer(pool)  # herald migrate --copy-from
        # Its own session from `url`: heartbeat, LISTEN and the leader's advisory lock.
        self.cluster = cluster.PostgresCluster(url, self.process_id)
        self._problem: str | None = None

    def health(self) -> str | None:
        """None while the server answered the last check; else why it did not."""
        return self._problem

    async def shared_secret(self, adopt: str | None = None) -> str | None:
        """The one secret key kept in the database for every process (made once)."""
        return await processes.shared_secret(self.pool, adopt=adopt)

    async def watch(self, every_s: float) -> None:
        """Ask the server every `every_s` whether it answers; log each new problem, once."""
        while True:
            await asyncio.sleep(every_s)
            problem: str | None = None
            try:
                async with asyncio.timeout(every_s):
                    await self.pool.fetchval("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                problem = (
                    f"the PostgreSQL server {self.server} does not answer"
                    f" ({type(exc).__name__}: {exc}); check that it runs and is reachable"
                )
            if problem is not None and problem != self._problem:
                log.error("database: %s", problem)
            elif problem is None and self._problem is not None:
                log.info("database: %s answers again", self.server)
            self._problem = problem


@asynccontextmanager
async def open_postgres(url: str, *, run: bool = False) -> AsyncIterator[PostgresStore]:
    """Connect a pool, migrate every area, and close on exit; StoreError says why it cannot.

    `run` takes no lock: several `herald run` share a PostgreSQL database. Nor is there a
    post-log check as on SQLite: its marker lies beside the file and outlives a deleted
    database, while a marker kept in this database would go with it, telling nothing.
    """
    del run
    server = db.server_of(url)
    pool = await _connect(url, server)
    try:
        store = PostgresStore(pool, server, url)
        watch = asyncio.create_task(store.watch(HEALTH_CHECK_S))
        try:
            yield store
        finally:
            watch.cancel()
            with suppress(asyncio.CancelledError):
                await watch
    finally:
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:  # a scan left open holds its connection: close them anyway
            pool.terminate()


async def _connect(url: str, server: str) -> db.Pool:
    """A pool on a migrated database, or StoreError naming the server and the fix."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=POOL_SIZE, timeout=CONNECT_TIMEOUT_S
        )
    except Exception as exc:  # asyncpg raises OSError, its own errors and ValueError alike
        raise StoreError(_explain(url, server, exc)) from exc
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, AREAS)
    except BaseException as exc:
        pool.terminate()
        if isinstance(exc, asyncpg.PostgresError | OSError):
            raise StoreError(_explain(url, server, exc)) from exc
        raise
    return pool


def _explain(url: str, server: str, exc: BaseException) -> str:
    """One sentence naming the server (never the password) and what to do about `exc`."""
    detail = str(exc)
    password = urlsplit(url).password
    for secret in filter(None, {password, unquote(password or "")}):
        detail = detail.replace(secret, "[secret]")  # should a driver message ever echo it
    return " ".join(_reason(url, server, exc, detail).split())  # one line, whatever it says


def _reason(url: str, server: str, exc: BaseException, detail: str) -> str:
    user = unquote(urlsplit(url).username or "") or "(default)"
    host, _, name = server.partition("/")
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return (
            f"the PostgreSQL server {server} refused the password of user {user}: fix the"
            " user or password in HERALD_DATABASE_URL"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (
            f"the database {name} does not exist on the PostgreSQL server {host}: create it"
            f" (e.g. `createdb -O {user} {name}`) or fix its name in HERALD_DATABASE_URL"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"the PostgreSQL server {server} refused user {user} ({detail}): create that role or"
            " allow it in pg_hba.conf, or fix the user in HERALD_DATABASE_URL"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (
            f"user {user} may not create Herald's tables in {server} ({detail}): grant it CREATE"
            " on the database and its schema, or make it the database's owner"
        )
    if isinstance(exc, OSError | TimeoutError):
        return (
            f"cannot reach the PostgreSQL server {server} ({type(exc).__name__}: {detail}):"
            " check that it runs and accepts connections there, and the host and port in"
            " HERALD_DATABASE_URL"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return f"the PostgreSQL server {server} refused to open the database: {detail}"
    return (
        f"cannot open the PostgreSQL database {server} ({type(exc).__name__}: {detail}): check"
        " HERALD_DATABASE_URL (postgresql://user:password@host:5432/database)"
    )
