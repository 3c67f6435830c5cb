"""`herald digest` beside a running `herald run`: it hands the job over instead of sending too."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import open_store
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.acceptance import Herald
from tests.support.delivery import make_post
from tests.support.rates import closest_repeat_s, max_in_window

CHATS = 60
RATE = 20  # msg/s: 60 chats take three seconds


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database of one backend."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'data' / 'herald.db'}"


async def announce(url: str, n: int) -> None:
    """A post announced since the last digest, as `herald run`'s watcher leaves it."""
    async with open_store(url) as store:
        [(post_id, _)] = await store.posts.record(
            [make_post(n)], announced=True, now=datetime.now(UTC)
        )
        await store.posts.mark_announced(post_id)


async def import_chats(herald: Herald, tmp_path: Path, first: int) -> None:
    """`CHATS` Telegram chats from `first` on, with the digest on, imported by the CLI."""
    source = tmp_path / f"readers-{first}.csv"
    rows = "".join(f"telegram,{first + i},no,yes\n" for i in range(CHATS))
    source.write_text("channel,address,breaking,daily\n" + rows, encoding="utf-8")
    code, _, err = await herald.cli("subscribers", "import", str(source))
    assert code == 0, err


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


async def test_digest_is_handed_to_herald_run_and_sent_by_itself_without_one(
    tmp_path: Path, url: str
) -> None:
    """With `herald run` on the database, `herald digest` queues the digest and reports while
    the run delivers it (one pacer: the rate holds); without one it delivers it itself. Each
    reader gets the posts since their own previous digest: a second run reaches everyone
    again, the first readers with only the post that came since."""
    async with FakeBotAPI() as fake:
        herald = Herald(
            tmp_path,
            HERALD_DATABASE_URL=url,
            HERALD_TELEGRAM_TOKEN=TOKEN,
            HERALD_TELEGRAM_API_URL=fake.base_url,
            HERALD_TELEGRAM_RATE=str(RATE),
        )
        await import_chats(herald, tmp_path, 7000)
        chats = {7000 + i for i in range(CHATS)}

        async with herald.run() as run:
            await announce(url, 1)
            code, out, err = await herald.cli("digest", timeout=60)
            assert code == 0, err
            assert re.search(r"the `herald run` \(pid \d+[^)]*\) delivers it", out), out
            assert f"{CHATS + 1} sent" in out, out  # the subscribers and the email stand-in
            assert await run.stop() == 0
        first = [s for s in fake.sent if s.chat_id in chats]
        assert sorted(s.chat_id for s in first) == sorted(chats)  # each chat once

        await announce(url, 2)
        await import_chats(herald, tmp_path, 8000)  # new readers: today's is still due
        joined = {8000 + i for i in range(CHATS)}
        code, out, err = await herald.cli("digest", timeout=60)
        assert code == 0, err
        assert "delivers it" not in out
        second = [s for s in fake.sent if s.chat_id in chats | joined][len(first) :]
        assert sorted(s.chat_id for s in second) == sorted(chats | joined)  # each once
        again = [s for s in second if s.chat_id in chats]
        assert all("post-2" in (s.text or "") and "post-1." not in (s.text or "") for s in again)

    for sends in (first, second):
        per_s = max_in_window(s.at for s in sends)
        print(f"digest sends: at most {per_s} in a second (HERALD_TELEGRAM_RATE={RATE})")
        assert per_s <= RATE
    assert closest_repeat_s((s.chat_id, s.at) for s in first + second) > 1.0
    assert fake.too_many == 0
