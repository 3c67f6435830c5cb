"""`kill -9` of `herald run` in the middle of a 500-chat fan-out: the restart finishes it."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from bot.delivery.setup import workers_for
from bot.models import Channel
from bot.store import open_store
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.acceptance import Herald, post_text, recent

CHATS = 500
RATE = 100  # paid mode, so the fan-out takes seconds, not twenty


async def test_kill_9_mid_fan_out_then_restart(tmp_path: Path) -> None:
    """After SIGKILL mid fan-out and a restart every chat has the alert; few got it twice."""
    async with FakeBotAPI() as fake:
        herald = Herald(
            tmp_path,
            HERALD_TELEGRAM_TOKEN=TOKEN,
            HERALD_TELEGRAM_API_URL=fake.base_url,
            HERALD_TELEGRAM_RATE=str(RATE),
        )
        async with open_store(tmp_path / "data" / "herald.db") as store:
            for chat in range(1, CHATS + 1):
                await store.subscribers.upsert(Channel.TELEGRAM, str(chat))

        def alerts() -> list[int]:
            return [
                int(s.chat_id)
                for s in fake.sent
                if isinstance(s.chat_id, int) and "Crash drill" in (s.text or s.caption or "")
            ]

        async with herald.run() as first:
            when = recent()
            herald.write_post(
                f"{when:%Y-%m-%d}-crash-drill.md",
                post_text("Crash drill", "Everyone must get this once.", when, breaking="true"),
            )
            await fake.wait_for(lambda: len(alerts()) >= 150, timeout=20)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
        assert len(alerts()) < CHATS, "the fan-out ended before the kill"

        async with herald.run() as second:
            await fake.wait_for(lambda: len(set(alerts())) == CHATS, timeout=30)
            await asyncio.sleep(0.5)  # a stray second copy would arrive now
            assert await second.stop() == 0  # SIGTERM: a clean exit
        per_chat = Counter(alerts())
        assert set(per_chat) == set(range(1, CHATS + 1))
        duplicates = sum(n - 1 for n in per_chat.values())
        claim_window = workers_for(RATE) + workers_for(RATE) // 2  # rows claimed at most
        print(f"crash drill: {duplicates} duplicates, claim window {claim_window}")
        assert duplicates <= claim_window, (duplicates, claim_window)
        assert fake.too_many == 0
        assert "sends interrupted by a crash are queued again" in second.log
