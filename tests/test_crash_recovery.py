"""SIGKILL in the middle of a 500-recipient fan-out: after a restart everyone has the alert."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from bot.delivery import workers_for
from bot.models import Channel
from tests.delivery_support import make_post, make_settings, running
from tests.fakes.bot_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
CHATS = 500
RATE = 100.0  # paid mode, so the test takes seconds, not twenty


async def spawn(env: dict[str, str], *args: str, log: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.crash_child", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
    )  # fmt: skip


async def test_kill_9_mid_fan_out_then_restart(tmp_path: Path) -> None:
    """After kill -9 mid fan-out and a restart, all 500 chats have the alert, few twice."""
    async with FakeBotAPI() as fake:
        settings = make_settings(
            tmp_path, telegram_token=TOKEN, telegram_api_url=fake.base_url, telegram_rate=RATE
        )
        async with running(settings, start=False) as rig:
            for chat in range(1, CHATS + 1):
                await rig.store.subscribers.upsert(Channel.TELEGRAM, str(chat))
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(
            HERALD_SITE_DIR=str(settings.site_dir),
            HERALD_DATABASE_URL=settings.database_url,
            HERALD_TELEGRAM_TOKEN=TOKEN,
            HERALD_TELEGRAM_API_URL=fake.base_url,
            HERALD_TELEGRAM_RATE=str(RATE),
            HERALD_SECRET_KEY="test-secret",
            HERALD_SMTP_URL="smtp://127.0.0.1:1",
            HERALD_OUTBOX_DIR=str(tmp_path / "outbox"),
        )
        first = await spawn(env, log=None)
        await fake.wait_for(lambda: len(fake.sent) >= 150, timeout=20)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        sent_before = len(fake.sent)
        assert sent_before < CHATS  # killed in the middle, not after the end

        second = await spawn(env, "--until-drained")
        assert await asyncio.wait_for(second.wait(), 30) == 0

        per_chat = Counter(int(s.chat_id) for s in fake.sent)
        assert set(per_chat) == set(range(1, CHATS + 1))  # every reachable chat got it
        duplicates = sum(n - 1 for n in per_chat.values())
        in_flight = workers_for(RATE) + workers_for(RATE) // 2  # the claim window
        assert duplicates <= in_flight, (duplicates, in_flight)
        assert fake.too_many == 0
