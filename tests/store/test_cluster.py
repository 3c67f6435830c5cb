"""The processes on one database: one leader at a time, takeover, wake-ups, the shared budget."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bot.delivery.pacing import GLOBAL_MARGIN
from bot.store import open_store
from bot.store.postgres.cluster import APP_PREFIX, FREE_GAP_S, PostgresCluster, ServerClock
from bot.store.sqlite.cluster import SqliteCluster
from tests.support.rates import max_in_window

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER_S = 15.0  # the SPEC's promise, used here as how long a test waits for it

# A process that joins, leads if it can, and says so; kept alive until killed.
LEADER_SCRIPT = """
import asyncio, sys, uuid
from bot.store.postgres.cluster import PostgresCluster

async def main() -> None:
    cluster = PostgresCluster(sys.argv[1], uuid.uuid4().hex)
    async with cluster.joined(worker=False, on_wake=lambda: None):
        while (lost := await cluster.try_lead()) is None:
            await asyncio.sleep(0.2)
        print("leading", flush=True)
        await lost.wait()
        print("lost", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def database(postgres_url: str) -> str:
    """A migrated PostgreSQL database (tables `processes` and `send_budget` included)."""
    async with open_store(postgres_url):
        pass
    return postgres_url


@asynccontextmanager
async def member(url: str, *, worker: bool = False, **kw: float) -> AsyncIterator[Member]:
    """A cluster member as one `herald run` process has it, joined for the block."""
    woken = asyncio.Event()
    cluster = PostgresCluster(url, uuid.uuid4().hex, **kw)
    async with cluster.joined(worker=worker, on_wake=woken.set):
        woken.clear()  # the wake-up every (re)join gives
        yield Member(cluster, woken)


class Member:
    def __init__(self, cluster: PostgresCluster, woken: asyncio.Event) -> None:
        self.cluster, self.woken = cluster, woken


async def until(predicate: object, timeout_s: float, what: str) -> float:
    """Seconds until the awaitable-returning `predicate()` is truthy, polled every 0.1 s."""
    start = time.monotonic()
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def start_leader(url: str) -> asyncio.subprocess.Process:
    """A process of its own that joins and leads (it said so on stdout)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEADER_SCRIPT, url,
        cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"leading\n"
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


async def end_session_of(url: str, cluster: PostgresCluster) -> None:
    """Cut the cluster's session from the server side, as a crash or a network cut would."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            APP_PREFIX + cluster.process_id,
        )
    finally:
        await admin.close()


async def test_one_process_leads_and_another_takes_over_when_its_session_ends(
    database: str,
) -> None:
    """Of two processes one leads; when its session ends it knows at once, and the other
    takes over (worker processes never lead)."""
    async with (
        member(database) as a,
        member(database) as b,
        member(database, worker=True) as w,
    ):
        lost = await a.cluster.try_lead()
        assert lost is not None and not lost.is_set()
        assert await b.cluster.try_lead() is None
        assert await w.cluster.try_lead() is None
        await end_session_of(database, a.cluster)
        await asyncio.wait_for(lost.wait(), 5)

        async def b_leads() -> bool:
            return await b.cluster.try_lead() is not None

        took_s = await until(b_leads, TAKEOVER_S, "the second process leads")
        print(f"takeover after the leader's session ended: {took_s:.2f} s")
        assert await a.cluster.try_lead() is None  # a is back (its session reopened), b leads
        assert await w.cluster.try_lead() is None


async def test_a_resigning_leader_lets_another_lead_at_once(database: str) -> None:
    """A leader that resigns (stopping cleanly) leaves the lock to the next that asks."""
    async with member(database) as a, member(database) as b:
        assert await a.cluster.try_lead() is not None
        await a.cluster.resign()
        assert await b.cluster.try_lead() is not None
        assert await a.cluster.try_lead() is None


async def test_a_leader_that_hangs_is_cut_off_and_replaced(database: str, tmp_path: Path) -> None:
    """A leader whose process stops answering (SIGSTOP: its connection stays open, its
    heartbeat stops) is cut off by a contender and replaced; it learns so when it resumes."""
    proc = await start_leader(database)
    assert proc.stdout is not None
    try:
        async with member(database) as b:
            assert await b.cluster.try_lead() is None
            proc.send_signal(signal.SIGSTOP)

            async def b_leads() -> bool:
                return await b.cluster.try_lead() is not None

            took_s = await until(b_leads, TAKEOVER_S + 5, "the contender leads")
            print(f"takeover from a hanging leader: {took_s:.2f} s after it stopped")
            proc.send_signal(signal.SIGCONT)
            assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"lost\n"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_killed_process_is_forgotten_and_its_lock_freed(database: str) -> None:
    """A leader killed with SIGKILL frees the lock at once and is dropped from the processes
    within seconds (its claimed rows then go back), not after the outbox's 30 s."""
    proc = await start_leader(database)
    try:
        async with member(database) as b:
            command = PostgresCluster(database, uuid.uuid4().hex)
            assert await command.runner() is not None
            proc.kill()
            killed = time.monotonic()

            async def b_leads() -> bool:
                return await b.cluster.try_lead() is not None

            await until(b_leads, TAKEOVER_S, "the survivor leads")
            print(f"takeover after SIGKILL: {time.monotonic() - killed:.2f} s")

            async def forgotten() -> bool:
                async with asyncpg.create_pool(database, min_size=1, max_size=1) as pool:
                    return await pool.fetchval("SELECT count(*) FROM processes") == 1

            await until(forgotten, 30, "the killed process is forgotten")
            print(f"killed process forgotten after {time.monotonic() - killed:.2f} s")
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_notify_wakes_every_process(database: str) -> None:
    """A process that queued work wakes the others (and a command outside the cluster can too)."""
    async with member(database) as a, member(database) as b:
        started = time.monotonic()
        await a.cluster.notify()
        await asyncio.wait_for(b.woken.wait(), 5)
        print(f"notify → wake-up: {(time.monotonic() - started) * 1000:.1f} ms")
        b.woken.clear()
        await PostgresCluster(database, uuid.uuid4().hex).notify()  # not joined: `herald digest`
        await asyncio.wait_for(b.woken.wait(), 5)


async def test_runner_is_a_live_process_other_than_this_one(database: str) -> None:
    """A command sees a joined process as a runner to hand work to, until it leaves."""
    command = PostgresCluster(database, uuid.uuid4().hex)
    assert await command.runner() is None
    async with member(database, worker=True) as a:
        seen = await command.runner()
        assert seen is not None and seen.startswith(f"pid {os.getpid()} on ")
        assert await a.cluster.runner() is None  # itself does not count
    assert await command.runner() is None


async def test_two_processes_booking_the_budget_never_exceed_the_rate(database: str) -> None:
    """Windows booked at once by two processes never overlap: no rolling second holds more
    slots than the rate (booked, as the pacer books them, a little below it)."""
    rate, count = 100.0 * GLOBAL_MARGIN, 5
    slots: list[float] = []

    async def process(cluster: PostgresCluster) -> None:
        end = time.time() + 2.0
        while time.time() < end:
            start = await cluster.book_sends(count, rate)
            slots.extend(start + k / rate for k in range(count))
            await asyncio.sleep(max(0.0, start + count / rate - time.time()))

    async with member(database) as a, member(database) as b:
        await asyncio.gather(process(a.cluster), process(b.cluster))
    slots.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert min(gaps) >= 1 / rate - 0.002  # mapped onto this clock within a network trip
    assert max_in_window(slots) <= 100
    assert len(slots) >= 150  # both sent, near the rate together


async def test_edit_windows_start_a_second_after_paid_sends_and_paid_sends_after_them(
    database: str,
) -> None:
    """The free lane's windows (edits in paid mode) and the paid sends' share one timeline
    across processes: an edit window starts at least FREE_GAP_S after the paid windows
    booked end, and a paid window only after the edit windows booked."""
    async with member(database) as a, member(database) as b:
        paid = await a.cluster.book_sends(100, 1000.0)  # 0.1 s of paid sends
        edits = await b.cluster.book_sends(14, 28.0, edits=True)  # 0.5 s of edits
        assert edits >= paid + 0.1 + FREE_GAP_S - 0.01
        more_edits = await a.cluster.book_sends(14, 28.0, edits=True)
        assert more_edits == pytest.approx(edits + 0.5, abs=0.01)  # one lane for both
        after = await b.cluster.book_sends(100, 1000.0)
        assert after >= more_edits + 0.5 - 0.01


@pytest.mark.parametrize(
    ("readings", "offset"),
    [
        ([], 0.0),
        ([(100.0, 100.002, 1100.001)], 1000.0),  # a 2 ms trip: the middle of its bounds
        # A slow trip (a busy event loop) beside a quick one: the quick one's bounds win.
        ([(100.0, 100.050, 1100.049), (101.0, 101.001, 1101.0005)], 1000.0),
        # Readings that disagree (the clocks moved apart): the tightest alone.
        ([(100.0, 100.002, 1100.001), (110.0, 110.001, 1109.9)], 999.8995),
    ],
)
def test_the_server_clock_is_read_from_the_tightest_bounds(
    readings: list[tuple[float, float, float]], offset: float
) -> None:
    """The server's clock offset lies between every asking and answer; slow trips don't move it."""
    clock = ServerClock()
    for asked, answered, server_now in readings:
        clock.add(asked, answered, server_now)
    assert clock.offset() == pytest.approx(offset, abs=1e-6)
    assert clock.local(2000.0) == pytest.approx(2000.0 - offset, abs=1e-6)


async def test_sqlite_has_one_leader_and_sees_its_run(tmp_path: Path) -> None:
    """On SQLite `herald run` leads from the start; a command beside it sees it by its run lock."""
    db = tmp_path / "herald.db"
    async with AsyncExitStack() as stack:
        assert await SqliteCluster(db).runner() is None
        run = await stack.enter_async_context(open_store(db, run=True))
        lost = await run.cluster.try_lead()
        assert lost is not None and not lost.is_set()
        assert await run.cluster.runner() is None  # itself
        command = await stack.enter_async_context(open_store(db))
        assert await command.cluster.runner() == f"pid {os.getpid()}"
    assert await SqliteCluster(db).runner() is None
