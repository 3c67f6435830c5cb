"""Scale-out on PostgreSQL: three `herald run` processes share a database and the Bot API.

One fan-out of a breaking alert to 2,000 chats while the leader is killed with SIGKILL:
each chat hears it once (apart from what the killed process had in flight), the processes
together never exceed HERALD_TELEGRAM_RATE, a survivor takes over the watcher and the bot.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bot.delivery.setup import workers_for
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.acceptance import Herald, Running, free_port, poll, post_text, recent
from tests.support.rates import closest_repeat_s, max_in_window

CHATS = 2000
RATE = 200  # msg/s for all processes together: the fake answers 429 above it
CHANNEL = "@herald_news"
NEW_READER = 99_999
# What a killed process may have sent without recording it: the rows it held claimed.
IN_FLIGHT = workers_for(RATE) + workers_for(RATE) // 2
TAKEOVER_S = 15.0  # the SPEC's promise; the watcher then scans and announces
QUIET_S = 1.5


def leads(run: Running) -> bool:
    """Whether the process said it leads (from the start, or after a takeover)."""
    return any("ready: watching" in line or "this process leads" in line for line in run.lines)


@pytest.mark.timeout(120)  # about 35 s; a slow machine gets room
async def test_three_processes_share_one_fan_out_and_survive_the_leader(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two processes and a worker fan a breaking alert out to 2,000 chats while the leader is
    killed: every chat gets it (twice only for the killed process's sends in flight), never
    more than the rate in any second nor twice in a second to a chat, the standby takes over
    (not the worker) and announces the next post, and /start is answered once."""
    # The fake's clock must not stall: a collection pass over the test session's heap takes
    # ~0.1 s here and would bunch the sends it sees, as Telegram never would.
    gc.freeze()
    try:
        await fan_out_and_kill(tmp_path, postgres_url)
    finally:
        gc.unfreeze()


async def fan_out_and_kill(tmp_path: Path, postgres_url: str) -> None:
    """The scenario, with its figures printed and checked."""
    async with FakeBotAPI(paid_rate=RATE) as fake:
        herald = Herald(
            tmp_path,
            HERALD_DATABASE_URL=postgres_url,
            HERALD_TELEGRAM_TOKEN=TOKEN,
            HERALD_TELEGRAM_API_URL=fake.base_url,
            HERALD_TELEGRAM_RATE=str(RATE),
            HERALD_TELEGRAM_CHANNEL=CHANNEL,
        )
        source = tmp_path / "readers.csv"
        rows = "".join(f"telegram,{10_000 + i},yes,no\n" for i in range(CHATS))
        source.write_text("channel,address,breaking,daily\n" + rows, encoding="utf-8")
        code, _, err = await herald.cli("subscribers", "import", str(source))
        assert code == 0, err
        chats = {10_000 + i for i in range(CHATS)}

        ports: dict[Running, int] = {}

        def process(*args: str) -> Running:
            port = free_port()
            running = herald.run(*args, HERALD_WEB_LISTEN=f"127.0.0.1:{port}")
            ports[running] = port
            return running

        async with process() as first, process() as second, process("--worker") as third:
            assert leads(first) and not leads(second) and not leads(third)
            assert "ready: on standby" in second.log and "ready: a worker" in third.log
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{ports[second]}/healthz")
            assert health.status_code == 200, health.text
            assert "watcher: up (standby: another process leads)" in health.text

            herald.write_post(
                f"{recent():%Y-%m-%d}-scale-out.md",
                post_text("Scale-out alert", "Everyone hears it.", recent(), tags="[Breaking]"),
            )

            def alerted() -> set[int | str]:
                return {s.chat_id for s in fake.sent if "Scale-out alert" in (s.text or "")}

            await poll(lambda: len(alerted() & chats) >= CHATS // 3, 30, "a third alerted")
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            herald.write_post(
                f"{recent():%Y-%m-%d}-after-the-kill.md",
                post_text("After the kill", "A quiet update.", recent(0.5)),
            )
            await poll(lambda: leads(second), TAKEOVER_S, "takeover")  # the worker never leads
            took_over_s = time.monotonic() - killed
            await poll(
                lambda: "'After the kill'" in second.log, TAKEOVER_S + 10, "next post announced"
            )
            announced_s = time.monotonic() - killed
            await poll(lambda: alerted() >= chats, 60, "every chat alerted")
            complete_s = time.monotonic() - killed
            await poll(  # queued behind the breaking alert's rows: it goes out after them
                lambda: any("After the kill" in (s.text or "") for s in fake.sent_to(CHANNEL)),
                10,
                "the next post in the channel",
            )
            await asyncio.sleep(QUIET_S)  # a late duplicate would show up now

            fake.push_command(NEW_READER, NEW_READER, "/start")
            await fake.wait_for(lambda: fake.sent_to(NEW_READER), 10)
            await asyncio.sleep(QUIET_S)
            replies = fake.sent_to(NEW_READER)
            assert not leads(third)
            assert await second.stop() == 0 and await third.stop() == 0

    sends = [s for s in fake.sent if s.method in ("sendMessage", "sendPhoto", "copyMessage")]
    counts = Counter(s.chat_id for s in sends if "Scale-out alert" in (s.text or ""))
    duplicates = sum(n - 1 for chat, n in counts.items() if chat in chats)
    per_s = max_in_window(s.at for s in sends)
    closest_s = closest_repeat_s((s.chat_id, s.at) for s in sends)
    print(
        f"\nscale-out: {len(sends)} sends, at most {per_s} in a second (rate {RATE}); "
        f"{duplicates} duplicates (bound {IN_FLIGHT}); after the kill a survivor led in "
        f"{took_over_s:.1f} s, announced the next post in {announced_s:.1f} s, and every chat "
        f"had the alert in {complete_s:.1f} s; closest repeat to a chat {closest_s:.1f} s"
    )
    assert set(counts) >= chats
    assert duplicates <= IN_FLIGHT
    assert per_s <= RATE
    assert fake.too_many == 0
    assert closest_s > 1.0
    assert len([s for s in fake.sent_to(CHANNEL) if "After the kill" in (s.text or "")]) == 1
    assert len(replies) == 1


async def test_a_worker_needs_postgresql(tmp_path: Path) -> None:
    """`herald run --worker` on SQLite is refused, saying why: one `herald run` does it all."""
    code, _, err = await Herald(tmp_path).cli("run", "--worker")
    assert code == 1
    assert "--worker needs a PostgreSQL database" in err
