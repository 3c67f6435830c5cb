"""Publishing a post to many subscribers: every one who wants it gets one row, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.models import Channel, OutboxStatus
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.sources.jekyll.site import load_site
from bot.store import open_store
from tests.support.delivery import make_post, make_settings

READERS = 2345


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of each backend, fresh."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'herald.db'}"


async def test_a_breaking_post_queues_one_row_per_reader_who_wants_it_once(
    tmp_path: Path, database: str
) -> None:
    """Breaking readers and every-post readers each get one alert,
    digest-only readers none; announcing the post again adds nothing."""
    settings = make_settings(tmp_path, database_url=database)
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    async with open_store(database) as store:
        await store.subscribers.import_rows(
            (Channel.TELEGRAM, str(1000 + i), i % 3 != 0, True) for i in range(READERS)
        )
        digest_only = [str(1000 + i) for i in range(READERS) if i % 3 == 0]
        for address in digest_only[:10]:  # every-post on, breaking off: still one alert
            sub = await store.subscribers.get(Channel.TELEGRAM, address)
            assert sub is not None
            await store.subscribers.set_prefs(sub.id, breaking=False, daily=True, every_post=True)
        publisher = Publisher(store, renderer)
        wanted = READERS - len(digest_only) + 10
        assert await publisher.announce(make_post(1, breaking=True), post_id=1) == wanted
        assert await publisher.announce(make_post(1, breaking=True), post_id=1) == 0
        (job,) = await store.outbox.progress(limit=1)
        assert job.total == wanted and job.counts[OutboxStatus.QUEUED] == wanted


async def test_topics_filter_every_post_notices_but_never_breaking_alerts(
    tmp_path: Path, database: str
) -> None:
    """An every-post reader who chose Sport gets the notice of a sport post, not of a
    politics or untagged one; a reader with no topics gets all three; a breaking politics
    post reaches both."""
    settings = make_settings(tmp_path, database_url=database)
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    async with open_store(database) as store:
        for chat in ("101", "102"):
            await store.subscribers.upsert(Channel.TELEGRAM, chat, breaking=True, every_post=True)
        fan = await store.subscribers.get(Channel.TELEGRAM, "101")
        assert fan is not None
        await store.subscribers.set_topics(fan.id, ["Sport"])
        publisher = Publisher(store, renderer)
        sport = replace(make_post(1), categories=("news",), tags=("sport",))
        politics = replace(make_post(2), categories=("Politics",))
        untagged = make_post(3)
        breaking = replace(make_post(4, breaking=True), categories=("Politics",))
        got = {
            post.slug: await publisher.announce(post, post_id=n)
            for n, post in enumerate((sport, politics, untagged, breaking), start=1)
        }
        assert got == {"post-1": 2, "post-2": 1, "post-3": 1, "post-4": 2}
        fan_rows = await store.outbox.claim(100, now=1e12, lease_s=60)
        by_reader: dict[str, list[str]] = {}
        for item in fan_rows:
            by_reader.setdefault(item.address, []).append(item.key.split(":")[1])
        assert sorted(by_reader["101"]) == ["1", "4"]
        assert sorted(by_reader["102"]) == ["1", "2", "3", "4"]
