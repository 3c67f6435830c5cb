"""Corrections in the post log, on each backend: revisions of announced posts, withdrawals,
the posts corrected in a window, and the topics posts carry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from bot.models import Post, Revision
from bot.store import Store
from bot.store.postlog import visible

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def make_post(n: int, **changes: object) -> Post:
    post = Post(
        path=f"2026-01-{n:02d}-post-{n}.md",
        slug=f"post-{n}",
        title=f"Post number {n}",
        date=datetime(2026, 1, n, 9, 0, tzinfo=UTC),
        url=f"https://news.example.org/2026/01/{n:02d}/post-{n}.html",
        body="Some **text** here.",
        excerpt="Some text.",
    )
    return dataclasses.replace(post, **changes)  # type: ignore[arg-type]


async def announce(store: Store, post: Post, *, now: datetime = NOW) -> int:
    """Record `post` as new and queue its announcement, as the publisher does."""
    [(post_id, _)] = await store.posts.record([post], announced=True, now=now)
    await store.posts.mark_announced(post_id)
    return post_id


def test_visible_is_what_the_alert_shows() -> None:
    """Title, excerpt, image, link and label are what a reader saw; the body is not."""
    post = make_post(1)
    assert visible(post) == visible(dataclasses.replace(post, body="Other text."))
    for change in (
        {"title": "New title"},
        {"excerpt": "Other."},
        {"image": "https://news.example.org/a.jpg"},
        {"url": "https://news.example.org/moved.html"},
        {"label": "Breaking"},
    ):
        assert visible(dataclasses.replace(post, **change)) != visible(post)  # type: ignore[arg-type]


async def test_a_new_title_on_an_announced_post_is_one_revision(store: Store) -> None:
    """Fixing an announced post's title makes one revision to send, stamped as corrected."""
    post_id = await announce(store, make_post(3))
    fixed = make_post(3, title="Post number three")
    assert await store.posts.record([fixed], announced=True, now=NOW + HOUR) == []
    assert await store.posts.revisions() == [
        Revision(post_id=post_id, post=fixed, revision=1, withdrawn=False)
    ]
    await store.posts.record([fixed], announced=True, now=NOW + 2 * HOUR)  # seen again as is
    assert [r.revision for r in await store.posts.revisions()] == [1]
    assert await store.posts.corrected_since(NOW, NOW + 2 * HOUR) == [fixed]
    assert await store.posts.corrected_since(NOW + 2 * HOUR, NOW + 3 * HOUR) == []


async def test_unchanged_content_or_posts_never_sent_make_no_revision(store: Store) -> None:
    """Re-reading an unchanged post, a body-only edit, or editing a baseline or pending post
    (never sent as it was) leaves nothing to correct."""
    await announce(store, make_post(1))
    await store.posts.record([make_post(1)], announced=True, now=NOW)
    await store.posts.record([make_post(1, body="Longer text.")], announced=True, now=NOW)
    await store.posts.record([make_post(2)], announced=False, now=NOW)  # the baseline
    await store.posts.record([make_post(2, title="Baseline fixed")], announced=True, now=NOW)
    [(pending_id, _)] = await store.posts.record([make_post(4)], announced=True, now=NOW)
    await store.posts.record([make_post(4, title="Pending fixed")], announced=True, now=NOW)
    assert await store.posts.revisions() == []
    assert await store.posts.corrected_since(NOW - HOUR, NOW + HOUR) == []
    assert [p.title for _, p in await store.posts.pending()] == ["Pending fixed"]
    assert pending_id


async def test_a_withdrawal_is_one_revision_and_a_return_another(store: Store) -> None:
    """A withdrawn post gets one revision (a second withdraw does nothing), drops out of the
    digest, /latest and the topics; published again it is back with a new revision."""
    post = make_post(5, categories=("Weather",))
    post_id = await announce(store, post)
    await announce(store, make_post(6))
    assert not await store.posts.withdraw("2026-01-99-nothing.md", now=NOW)
    assert await store.posts.withdraw(post.path, now=NOW + HOUR)
    assert not await store.posts.withdraw(post.path, now=NOW + HOUR)
    assert await store.posts.revisions() == [
        Revision(post_id=post_id, post=post, revision=1, withdrawn=True)
    ]
    assert [p.slug for p in await store.posts.announced_since(NOW - HOUR, NOW + HOUR)] == ["post-6"]
    assert [p.slug for p in await store.posts.latest(10)] == ["post-6"]
    assert await store.posts.topic_counts(10) == []
    await store.posts.mark_revised(post_id, 1)
    assert await store.posts.revisions() == []

    await store.posts.record([post], announced=True, now=NOW + 2 * HOUR)  # published again
    assert await store.posts.revisions() == [
        Revision(post_id=post_id, post=post, revision=2, withdrawn=False)
    ]
    assert [p.slug for p in await store.posts.latest(10)] == ["post-6", "post-5"]
    assert await store.posts.corrected_since(NOW, NOW + 3 * HOUR) == []  # same content


async def test_a_pending_or_baseline_post_cannot_be_withdrawn(store: Store) -> None:
    """Only an announced post has messages out there to take back."""
    await store.posts.record([make_post(1)], announced=False, now=NOW)
    await store.posts.record([make_post(2)], announced=True, now=NOW)
    assert not await store.posts.withdraw(make_post(1).path, now=NOW)
    assert not await store.posts.withdraw(make_post(2).path, now=NOW)
    assert await store.posts.revisions() == []


async def test_mark_revised_never_goes_back(store: Store) -> None:
    """A correction queued for revision 2 covers revision 1; a later change is revision 3."""
    post_id = await announce(store, make_post(7))
    await store.posts.record([make_post(7, title="One")], announced=True, now=NOW)
    await store.posts.record([make_post(7, title="Two")], announced=True, now=NOW)
    assert [r.revision for r in await store.posts.revisions()] == [2]
    await store.posts.mark_revised(post_id, 2)
    await store.posts.mark_revised(post_id, 1)  # a late, older correction
    assert await store.posts.revisions() == []
    await store.posts.record([make_post(7, title="Three")], announced=True, now=NOW)
    assert [(r.revision, r.post.title) for r in await store.posts.revisions()] == [(3, "Three")]


async def test_corrected_since_lists_the_posts_corrected_in_the_window(store: Store) -> None:
    """The digest finds posts corrected in its window, oldest correction first, even those
    announced before it, and not those withdrawn since."""
    for n in (1, 2, 3):
        await announce(store, make_post(n), now=NOW - 48 * HOUR)
    await store.posts.record([make_post(2, excerpt="Fixed.")], announced=True, now=NOW)
    await store.posts.record([make_post(1, title="Fixed one")], announced=True, now=NOW + HOUR)
    await store.posts.record([make_post(3, title="Fixed 3")], announced=True, now=NOW + HOUR)
    await store.posts.withdraw(make_post(3).path, now=NOW + HOUR)
    found = await store.posts.corrected_since(NOW, NOW + 2 * HOUR)
    assert [p.slug for p in found] == ["post-2", "post-1"]
    assert [p.slug for p in await store.posts.corrected_since(NOW + HOUR, NOW + 2 * HOUR)] == [
        "post-1"
    ]


async def test_topic_counts_rank_the_topics_posts_carry(store: Store) -> None:
    """Categories and tags are counted once per post whatever their case, named as first
    written, most used first, at most `limit`."""
    posts = [
        make_post(1, categories=("Weather",), tags=("Floods", "weather")),
        make_post(2, categories=("weather",), tags=("Roads",)),
        make_post(3, categories=("WEATHER", "Roads"), tags=("Schools",)),
        make_post(4, tags=("floods",)),
    ]
    await store.posts.record(posts, announced=False, now=NOW)
    assert await store.posts.topic_counts(3) == [("Weather", 3), ("Floods", 2), ("Roads", 2)]
    assert await store.posts.topic_counts(24) == [
        ("Weather", 3),
        ("Floods", 2),
        ("Roads", 2),
        ("Schools", 1),
    ]
