"""Many herald processes on one PostgreSQL database: who is alive, which one leads, waking
each other, and the Telegram send budget they share.

Each process keeps one session of its own, outside the pool: its heartbeat row in
`processes`, LISTEN for wake-ups, the shared budget and, in the leader, the advisory lock.
The lock lives as long as that session: a process that dies, or whose connection dies,
lets go of it, and one whose host vanished without closing its connection is cut off by
the next contender once its heartbeat is STALE_LEADER_S old. A leader steps down first
(STEP_DOWN_S, well before that): never two leaders at once. Times are the server's clock,
one clock for the processes of every host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeAlias, TypeVar

import asyncpg

from bot.store.postgres.db import DB_NOW

log = logging.getLogger(__name__)
T = TypeVar("T")
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

# pg_try_advisory_lock(int4, int4): "HERA", "LD" 3 (pg_locks: classid, objid, objsubid 2).
LEADER_LOCK = (0x4845_5241, 0x4C44_0003)
WAKE_CHANNEL = "herald_wake"
BUDGET = "telegram"  # the row of send_budget all processes book Telegram sends from
APP_PREFIX = "herald:"  # the session's application_name: "herald:<process id>"
HEARTBEAT_S = 2.0
QUERY_TIMEOUT_S = 3.0  # a session that takes longer is taken for lost, and opened again
# A leader whose heartbeat has not gone through for HEARTBEAT_S + QUERY_TIMEOUT_S has
# dropped its session and stopped leading; a contender waits longer than that before it
# cuts off a leader it no longer hears from.
STALE_LEADER_S = 10.0
RUNNER_SEEN_S = 10.0  # a `herald run` heard from this recently is there
# A process silent this long whose session has ended is gone: more than a heartbeat and
# the reconnect after a lost session take.
GONE_S = 3 * HEARTBEAT_S + QUERY_TIMEOUT_S
FORGET_S = 3600.0  # rows of processes silent this long are deleted

FREE_BUDGET = "telegram-free"  # the row edits in paid mode book from, at the free rate
# Telegram counts paid sends in the 30 a second edits may make: the free lane's windows
# start this long after the last paid window booked ends (a second, and the way there).
FREE_GAP_S = 1.25
# Books a window of $2 seconds of the shared budget $1: its start, by the server's clock.
# It starts $4 seconds after the windows booked of budget $3 end, at the earliest.
_AFTER = "COALESCE((SELECT next_at FROM send_budget WHERE name = $3), 0) + $4::float8"
BOOK_SQL = (
    "INSERT INTO send_budget AS b (name, next_at)"
    f" VALUES ($1, GREATEST({DB_NOW}, {_AFTER}) + $2::float8) ON CONFLICT (name) DO UPDATE"
    f" SET next_at = GREATEST(b.next_at, {DB_NOW}, {_AFTER}) + $2::float8"
    f" RETURNING next_at - $2::float8 AS start, {DB_NOW} AS server_now"
)
CLOCK_HORIZON_S = 60.0  # how long a reading of the server's clock is trusted

# What a lost or hanging session raises; other database errors are the statement's own.
LOST = (
    TimeoutError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # e.g. terminated by pg_terminate_backend
)


class SessionLost(Exception):
    """This process has no session with the database at the moment."""


class ServerClock:
    """The server's clock as seen from this process: its offset is bounded by every reading
    (the server's time lies between our asking and its answer), and the tightest recent
    bounds win, so a slow trip or a busy event loop does not shift the windows."""

    def __init__(self, horizon_s: float = CLOCK_HORIZON_S) -> None:
        self.horizon_s = horizon_s
        self._readings: deque[tuple[float, float, float]] = deque()  # (at, low, high)

    def add(self, asked: float, answered: float, server_now: float) -> None:
        """The server said `server_now` between `asked` and `answered` (this clock)."""
        self._readings.append((answered, server_now - answered, server_now - asked))
        while self._readings[0][0] < answered - self.horizon_s:
            self._readings.popleft()

    def offset(self) -> float:
        """server - local, in seconds (0 before any reading)."""
        if not self._readings:
            return 0.0
        low = max(r[1] for r in self._readings)
        high = min(r[2] for r in self._readings)
        if low > high:  # the clocks moved apart: the one tightest reading decides
            _, low, high = min(self._readings, key=lambda r: r[2] - r[1])
        return (low + high) / 2

    def local(self, server_s: float) -> float:
        """A moment of the server's clock on this one."""
        return server_s - self.offset()


class PostgresCluster:
    """This process among all herald processes on the database."""

    shared = True

    def __init__(
        self,
        dsn: str,
        process_id: str,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
        stale_leader_s: float = STALE_LEADER_S,
    ) -> None:
        self.dsn = dsn
        self.process_id = process_id
        self.heartbeat_s = heartbeat_s
        self.query_timeout_s = query_timeout_s
        self.stale_leader_s = stale_leader_s
        self._conn: Connection | None = None
        self._book: asyncpg.prepared_stmt.PreparedStatement[asyncpg.Record] | None = None
        self._clock = ServerClock()
        self._use = asyncio.Lock()  # one statement at a time on the session
        self._worker = False
        self._on_wake: Callable[[], None] = lambda: None
        self._lost: asyncio.Event | None = None  # set while leading
        self._said_lost = False

    # -- membership ----------------------------------------------------------------------
    @asynccontextmanager
    async def joined(self, *, worker: bool, on_wake: Callable[[], None]) -> AsyncIterator[None]:
        self._worker, self._on_wake = worker, on_wake
        await self._open()
        beat = asyncio.create_task(self._beat_loop(), name="cluster-heartbeat")
        try:
            yield
        finally:
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat
            await self._leave()

    async def _open(self) -> None:
        """Open the session: LISTEN, and this process's row in `processes`."""
        conn: Connection = await asyncpg.connect(
            self.dsn,
            timeout=self.query_timeout_s * 2,
            command_timeout=self.query_timeout_s,
            server_settings={"application_name": APP_PREFIX + self.process_id},
        )
        try:
            # Prepared now: a booking then takes one trip, a tight reading of the server's
            # clock. (First: asyncpg ends a prepare without a Sync, and the server delivers
            # no notification to a session until its next Sync.)
            book = await conn.prepare(BOOK_SQL)
            await conn.add_listener(WAKE_CHANNEL, self._woken)
            await self._register(conn)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._terminated)
        self._conn, self._book = conn, book
        self._on_wake()  # wake-ups sent while there was no session were missed

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                if self._conn is None:
                    await self._open()
                    log.info("cluster: the session with the database is back")
                    self._said_lost = False
                else:
                    await self._session(self._beat)
            except (*LOST, SessionLost) as exc:
                if not self._said_lost:
                    log.warning("cluster: no session with the database (%s); retrying", exc)
                self._said_lost = True
            except asyncpg.PostgresError as exc:  # the heartbeat itself refused: say so loudly
                log.error("cluster: the heartbeat failed (%s); retrying", exc)

    async def _register(self, conn: Connection) -> None:
        """This process's row in `processes`, seen now."""
        await conn.execute(
            "INSERT INTO processes (id, host, pid, worker, started_at, seen_at)"
            f" VALUES ($1, $2, $3, $4, {DB_NOW}, {DB_NOW})"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            self.process_id,
            socket.gethostname(),
            os.getpid(),
            self._worker,
        )

    async def _beat(self, conn: Connection) -> None:
        asked = time.time()
        seen_at = await conn.fetchval(
            f"UPDATE processes SET seen_at = {DB_NOW} WHERE id = $1 RETURNING seen_at",
            self.process_id,
        )
        if seen_at is None:  # forgotten meanwhile (it hung): here again, claims its own
            await self._register(conn)
        else:  # a reading of the server's clock, ready for the first booking
            self._clock.add(asked, time.time(), float(seen_at))
        # Forgotten: a process silent for GONE_S whose session the server no longer has
        # (killed, its host cut off), so that the rows it claimed go back now rather than
        # after the outbox's 30 s; and any process silent for FORGET_S.
        await conn.execute(
            "DELETE FROM processes p WHERE p.id != $1"
            f" AND (p.seen_at < {DB_NOW} - $2 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
            f" WHERE a.application_name = $3 || p.id) OR p.seen_at < {DB_NOW} - $4)",
            self.process_id,
            GONE_S,
            APP_PREFIX,
            FORGET_S,
        )

    async def _leave(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            async with asyncio.timeout(self.query_timeout_s):
                await conn.execute("DELETE FROM processes WHERE id = $1", self.process_id)
                await conn.close()  # the leader's lock goes with the session
        except (*LOST, asyncpg.PostgresError):
            conn.terminate()
        self._lost = None

    def _woken(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._on_wake()

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._drop("the connection closed")

    def _drop(self, why: str) -> None:
        """The session is gone (or no longer trusted): leadership ends with it, at once."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # a hanging session must not keep the lock a moment longer
        if self._lost is not None:
            log.warning("cluster: this process no longer leads: %s", why)
            self._lost.set()
            self._lost = None

    async def _session(self, op: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `op` on the session; a session that fails or hangs is dropped (SessionLost)."""
        conn = self._conn
        if conn is None:
            raise SessionLost("no session with the database")
        try:
            async with asyncio.timeout(self.query_timeout_s), self._use:
                if conn is not self._conn:
                    raise SessionLost("the session was lost meanwhile")
                return await op(conn)
        except LOST as exc:
            if conn is self._conn:
                self._drop(f"{type(exc).__name__}: {exc}")
            raise SessionLost(str(exc) or type(exc).__name__) from exc

    async def _anyhow(self, op: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `op` on the session, or on a connection of its own outside one (a command)."""
        if self._conn is not None:
            return await self._session(op)
        conn: Connection = await asyncpg.connect(
            self.dsn, timeout=self.query_timeout_s * 2, command_timeout=self.query_timeout_s
        )
        try:
            return await op(conn)
        finally:
            await conn.close()

    # -- leadership ----------------------------------------------------------------------
    async def try_lead(self) -> asyncio.Event | None:
        if self._lost is not None:
            return self._lost
        if self._worker or self._conn is None:
            return None
        conn = self._conn
        try:
            got = await self._session(
                lambda c: c.fetchval("SELECT pg_try_advisory_lock($1, $2)", *LEADER_LOCK)
            )
            if not got:
                await self._session(self._unseat_stale_leader)
                return None
        except SessionLost:
            return None
        except asyncpg.PostgresError as exc:  # e.g. not allowed to end another's session
            log.error("cluster: trying to lead failed (%s); trying again", exc)
            return None
        if conn is not self._conn:  # lost on the way: the lock went with that session
            return None
        self._lost = asyncio.Event()
        log.info("cluster: this process leads (process %s)", self.process_id)
        return self._lost

    async def _unseat_stale_leader(self, conn: Connection) -> None:
        """End the session of a leader whose heartbeat is STALE_LEADER_S old: its host is
        gone without closing its connection, or it hangs; it stopped leading before now."""
        holder = await conn.fetchrow(
            "SELECT l.pid, a.application_name, p.host, p.pid AS os_pid,"
            f" {DB_NOW} - p.seen_at AS silent_s"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " LEFT JOIN processes p ON a.application_name = $3 || p.id"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.classid::int8 = $1 AND l.objid::int8 = $2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            *LEADER_LOCK,
            APP_PREFIX,
        )
        if holder is None or not str(holder["application_name"] or "").startswith(APP_PREFIX):
            return
        silent_s = holder["silent_s"]
        if silent_s is not None and silent_s <= self.stale_leader_s:
            return
        heard = "never" if silent_s is None else f"not for {silent_s:.0f} s"
        log.warning(
            "cluster: the leader (pid %s on %s) was heard from %s: ending its session to take over",
            holder["os_pid"],
            holder["host"],
            heard,
        )
        await conn.execute("SELECT pg_terminate_backend($1)", holder["pid"])

    async def resign(self) -> None:
        lost, self._lost = self._lost, None
        if lost is None:
            return
        try:
            await self._session(
                lambda c: c.execute("SELECT pg_advisory_unlock($1, $2)", *LEADER_LOCK)
            )
        except SessionLost:
            pass  # the lock went with the session
        except asyncpg.PostgresError:  # let go of it with the session: a new one comes
            self._drop("the lock could not be let go")

    # -- wake-ups, the send budget, other runners -----------------------------------------
    async def notify(self) -> None:
        await self._anyhow(lambda c: c.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL))

    async def book_sends(self, count: int, rate_per_s: float, *, edits: bool = False) -> float:
        # Paid sends go right after the edits booked; edits a gap after the paid sends.
        name, after, gap = (
            (FREE_BUDGET, BUDGET, FREE_GAP_S) if edits else (BUDGET, FREE_BUDGET, 0.0)
        )

        async def book(conn: Connection) -> float:
            ready = self._book if conn is self._conn else None
            statement = ready or await conn.prepare(BOOK_SQL)
            asked = time.time()
            row = await statement.fetchrow(name, count / rate_per_s, after, gap)
            assert row is not None
            self._clock.add(asked, time.time(), float(row["server_now"]))
            return self._clock.local(float(row["start"]))

        return await self._anyhow(book)

    async def runner(self) -> str | None:
        async def find(conn: Connection) -> Any:
            return await conn.fetchrow(
                "SELECT host, pid FROM processes WHERE id != $1"
                f" AND seen_at >= {DB_NOW} - $2 ORDER BY worker, started_at LIMIT 1",
                self.process_id,
                RUNNER_SEEN_S,
            )

        row = await self._anyhow(find)
        return None if row is None else f"pid {row['pid']} on {row['host']}"
