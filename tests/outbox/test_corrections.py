"""Corrections planned: what each Telegram message already sent becomes (pure, as tables)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.models import (
    DELETE,
    EDIT_CAPTION,
    EDIT_MEDIA,
    EDIT_TEXT,
    KEEP,
    Audience,
    Channel,
    ItemUpdate,
    Kind,
    OutboxStatus,
    Rendered,
    TelegramMessage,
)
from bot.outbox.corrections import Corrector, changes, plan_edits, withdraw_edits
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer, fit_parts
from bot.render.splitter import CAPTION_LIMIT, MESSAGE_LIMIT, visible_len, visible_text
from bot.sources.jekyll.site import load_site
from bot.store import ImportRow, Store, open_store
from tests.support.delivery import make_post, make_settings

URL = "https://news.example.org/a.html"
PHOTO = "https://news.example.org/a.jpg"
OTHER = "https://news.example.org/b.jpg"


def text(body: str, *, button: bool = False) -> TelegramMessage:
    return TelegramMessage(
        "sendMessage", body, None, "Read" if button else None, URL if button else None
    )


def photo(caption: str, image: str = PHOTO, *, button: bool = True) -> TelegramMessage:
    return TelegramMessage(
        "sendPhoto", caption, image, "Read" if button else None, URL if button else None
    )


def sent(*messages: TelegramMessage) -> Rendered:
    return Rendered(telegram=messages)


CASES = [
    pytest.param(
        sent(text("<b>Old title</b>", button=True)),
        sent(text("<b>New title</b>", button=True)),
        [(EDIT_TEXT, "<b>New title</b>", None)],
        id="title changed in a text alert",
    ),
    pytest.param(
        sent(photo("<b>Old title</b>")),
        sent(photo("<b>New title</b>")),
        [(EDIT_CAPTION, "<b>New title</b>", PHOTO)],
        id="title changed under a photo",
    ),
    pytest.param(
        sent(photo("<b>Title</b>")),
        sent(photo("<b>Title</b>", OTHER)),
        [(EDIT_MEDIA, "<b>Title</b>", OTHER)],
        id="image changed",
    ),
    pytest.param(
        sent(text("<b>Title</b>", button=True)),
        sent(photo("<b>Title</b>", OTHER)),
        [(KEEP, "<b>Title</b>", None)],
        id="image added to a text alert: a text stays a text",
    ),
    pytest.param(
        sent(photo("<b>Title</b>")),
        sent(text("<b>Title</b>", button=True)),
        [(KEEP, "<b>Title</b>", PHOTO)],
        id="image removed: the photo sent stays",
    ),
    pytest.param(
        sent(photo("<b>Title</b>")),
        sent(text("<b>Title</b> corrected", button=True)),
        [(EDIT_CAPTION, "<b>Title</b> corrected", PHOTO)],
        id="image removed and text changed: the caption is edited",
    ),
    pytest.param(
        sent(text("one"), text("two", button=True)),
        sent(text("one"), text("two", button=True)),
        [(KEEP, "one", None), (KEEP, "two", None)],
        id="no change: all kept",
    ),
    pytest.param(
        sent(text("one"), text("two", button=True)),
        sent(text("one"), text("two, corrected", button=True)),
        [(KEEP, "one", None), (EDIT_TEXT, "two, corrected", None)],
        id="only the second part changed",
    ),
    pytest.param(
        sent(text("one"), text("two", button=True)),
        sent(text("one and two", button=True)),
        [(EDIT_TEXT, "one and two", None), (DELETE, "✏️ updated", None)],
        id="fewer parts: the part left over is deleted",
    ),
    pytest.param(
        sent(text("one", button=True)),
        sent(text("one"), text("two", button=True)),
        [(EDIT_TEXT, "one\ntwo…", None)],
        id="more parts: fitted into the one sent, with an ellipsis",
    ),
    pytest.param(
        sent(text("one", button=True)),
        sent(text("one", button=False)),
        [(EDIT_TEXT, "one", None)],
        id="the button went: edited",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_plan_edits_gives_one_message_per_part_sent(
    old: Rendered, new: Rendered, expected: list[tuple[str, str, str | None]]
) -> None:
    """Each part sent becomes the call that shows the new rendering (or none: KEEP)."""
    edits = plan_edits(old, new, rest="✏️ updated")
    assert [(m.method, m.text, m.photo) for m in edits] == expected
    assert len(edits) == len(old.telegram)


def test_the_button_moves_to_the_new_last_part() -> None:
    """A shorter correction carries the post's button on its last part (the one left)."""
    edits = plan_edits(
        sent(text("one"), text("two", button=True)), sent(text("one!", button=True)), rest="x"
    )
    assert (edits[0].button_text, edits[0].button_url) == ("Read", URL)
    assert edits[1].method == DELETE


def test_a_caption_sent_as_a_photo_is_fitted_to_the_caption_limit() -> None:
    """A long text for a part sent as a photo is cut to Telegram's caption limit."""
    long = "word " * 600  # ~3000 characters: fits a text message, not a caption
    edits = plan_edits(sent(photo("short")), sent(text(long, button=True)))
    assert edits[0].method == EDIT_CAPTION
    assert visible_len(edits[0].text) <= CAPTION_LIMIT
    assert edits[0].text.endswith("…")


def test_withdraw_edits_delete_every_part_with_the_notice() -> None:
    """A withdrawal deletes each part; the notice and the photo sent are there for the
    fallback edit of a message too old to delete."""
    edits = withdraw_edits(sent(photo("a"), text("b", button=True)), "withdrawn")
    assert [(m.method, m.text, m.photo) for m in edits] == [
        (DELETE, "withdrawn", PHOTO),
        (DELETE, "withdrawn", None),
    ]
    assert edits[0].button_url is None  # the post is gone: no link to it


FITS = [
    (["a", "b"], 2, ["a", "b"]),
    (["a", "b", "c"], 2, ["a", "b\nc…"]),
    (["a"], 1, ["a"]),
    ([], 1, []),
]


@pytest.mark.parametrize(("parts", "count", "expected"), FITS)
def test_fit_parts_keeps_at_most_count_parts(
    parts: list[str], count: int, expected: list[str]
) -> None:
    """Parts past `count` are folded into the last, which ends with an ellipsis."""
    assert fit_parts(parts, count) == expected


def test_fit_parts_keeps_the_last_within_the_limit() -> None:
    """The folded last part is cut to fit one message, tags kept balanced."""
    parts = ["<b>" + "x " * 2000 + "</b>", "<i>" + "y " * 2000 + "</i>"]
    (one,) = fit_parts(parts, 1)
    assert visible_len(one) <= MESSAGE_LIMIT and one.endswith("…")
    assert one.count("<b>") == one.count("</b>")


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    settings = make_settings(tmp_path)
    return Renderer(load_site(settings), public_url=settings.public_base)


def test_a_corrected_alert_reads_updated_in_the_shape_sent(renderer: Renderer) -> None:
    """The corrected alert has the new title and the "updated" line, as many parts as
    were sent and the photo sent, and editing it changes only what changed."""
    post = make_post(1, image=PHOTO)
    before = renderer.post_messages(post, Kind.POST)
    fixed = replace(post, title="Post number one, corrected")
    after = renderer.corrected_messages(fixed, Kind.POST, before)
    assert len(after) == len(before) == 1
    shown = visible_text(after[0].text)
    assert "Updated" in shown and "Post number one, corrected" in shown
    assert after[0].photo == PHOTO and after[0].button_url == post.url
    edits = plan_edits(Rendered(telegram=before), Rendered(telegram=after))
    assert [m.method for m in edits] == [EDIT_CAPTION]


def test_an_unchanged_rendering_plans_no_call(renderer: Renderer) -> None:
    """The same post rendered again as sent (no "updated" line) changes nothing."""
    post = make_post(2)
    before = renderer.post_messages(post, Kind.BREAKING)
    again = renderer.corrected_messages(post, Kind.BREAKING, before, updated=False)
    assert changes(plan_edits(Rendered(telegram=before), Rendered(telegram=again))) == 0


def test_a_post_that_grew_keeps_its_message_count(renderer: Renderer) -> None:
    """A correction that makes a one-message alert longer than a message still edits just
    that one message, ending with an ellipsis."""
    post = make_post(3)
    before = renderer.post_messages(post, Kind.POST)
    grown = replace(post, excerpt="Long text. " * 800)
    assert len(renderer.post_messages(grown, Kind.POST)) > 1
    after = renderer.corrected_messages(grown, Kind.POST, before)
    assert len(after) == 1 and visible_len(after[0].text) <= MESSAGE_LIMIT
    assert visible_text(after[0].text).endswith("…")


def test_the_withdrawn_notice_names_the_site_not_the_post(renderer: Renderer) -> None:
    """The notice a withdrawn post's old messages get says it was withdrawn."""
    notice = renderer.withdrawn_text(make_post(4))
    assert "withdrawn" in notice and "Post number 4" not in notice


# -- the Corrector, on a real store ------------------------------------------------------

READERS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of each backend, fresh."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'herald.db'}"


@asynccontextmanager
async def announced(tmp_path: Path, database: str) -> AsyncIterator[tuple[Store, Corrector]]:
    """A post announced to READERS chats, each sent (message id 100 + its row id)."""
    settings = make_settings(tmp_path, database_url=database)
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    async with open_store(database) as store:
        await store.subscribers.import_rows(
            ImportRow(Channel.TELEGRAM, str(1000 + i), True, False) for i in range(READERS)
        )
        (post_id, post), *_ = await store.posts.record([POST], announced=True, now=NOW)
        publisher = Publisher(store, renderer)
        await publisher.announce(post, post_id)
        await store.posts.mark_announced(post_id)
        items = await store.outbox.claim(100, now=NOW.timestamp(), lease_s=60)
        await store.outbox.apply(
            [
                ItemUpdate(
                    id=i.id,
                    status=OutboxStatus.SENT,
                    attempts=1,
                    parts_done=1,
                    message_ids=(100 + i.id,),
                )
                for i in items
            ]
        )
        yield store, Corrector(publisher)


NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
POST = make_post(7, breaking=True)


async def edit_rows(store: Store, key: str) -> list[tuple[str, tuple[int, ...]]]:
    items = await store.outbox.claim(100, now=NOW.timestamp() + 1, lease_s=60)
    return sorted((i.address, i.message_ids) for i in items if i.key.startswith(key))


async def test_a_title_correction_queues_one_edit_per_chat(tmp_path: Path, database: str) -> None:
    """A corrected title: one edit job, a row per chat carrying its message id, the
    announcement's payload corrected, the revision marked queued."""
    async with announced(tmp_path, database) as (store, corrector):
        await store.posts.record([replace(POST, title="Fixed")], announced=True, now=NOW)
        (done,) = await corrector.correct_all(NOW)
        assert (done.parts, done.rows, done.withdrawn) == (1, READERS, False)
        assert await store.posts.revisions() == []
        found = await store.outbox.find_job(f"edit:{done.post_id}:{done.revision}")
        assert found is not None and found[0] == done.job_id
        (edit,) = Rendered.decode(found[1]).telegram
        assert edit.method == EDIT_TEXT and "Fixed" in edit.text and "Updated" in edit.text
        rows = await edit_rows(store, "edit:")
        assert len(rows) == READERS and all(len(ids) == 1 for _, ids in rows)
        source = await store.outbox.find_job(f"post:{done.post_id}")
        assert source is not None
        assert "Fixed" in Rendered.decode(source[1]).telegram[0].text
        assert await corrector.correct_all(NOW) == []  # queued once


async def test_a_change_the_alert_does_not_show_queues_nothing(
    tmp_path: Path, database: str
) -> None:
    """A revision whose alert would read as sent (a breaking post's label) sends nothing."""
    async with announced(tmp_path, database) as (store, corrector):
        await store.posts.record([replace(POST, label="Opinion")], announced=True, now=NOW)
        assert len(await store.posts.revisions()) == 1  # a visible change to the post log
        (done,) = await corrector.correct_all(NOW)
        assert done.job_id is None
        assert await store.posts.revisions() == []
        assert await edit_rows(store, "edit:") == []


async def test_a_withdrawal_queues_a_delete_per_chat(tmp_path: Path, database: str) -> None:
    """A withdrawn post: one delete per chat; its rows not sent yet will send nothing."""
    async with announced(tmp_path, database) as (store, corrector):
        assert await store.posts.withdraw(POST.path, now=NOW)
        (done,) = await corrector.correct_all(NOW)
        assert done.withdrawn and done.rows == READERS
        found = await store.outbox.find_job(f"withdraw:{done.post_id}:{done.revision}")
        assert found is not None
        (edit,) = Rendered.decode(found[1]).telegram
        assert edit.method == DELETE and "withdrawn" in edit.text
        source = await store.outbox.find_job(f"post:{done.post_id}")
        assert source is not None and Rendered.decode(source[1]).telegram == ()


async def test_a_correction_interrupted_is_queued_the_same_at_the_next_start(
    tmp_path: Path, database: str
) -> None:
    """A crash after the job was made (revision not marked) plans the same edits again,
    once, though the announcement's payload already shows the correction."""
    async with announced(tmp_path, database) as (store, corrector):
        await store.posts.record([replace(POST, title="Fixed")], announced=True, now=NOW)
        (revision,) = await store.posts.revisions()
        first = await corrector.correct(revision, NOW)
        again = await corrector.correct(revision, NOW)  # as if mark_revised had not run
        assert again.job_id == first.job_id and again.parts == 1 and again.rows == 0


async def test_rows_in_flight_at_a_correction_are_edited_once_written_back(
    tmp_path: Path, database: str
) -> None:
    """Three chats' alerts are on their way when the title is corrected: two being sent,
    one with its first part out and the rest back in the queue. The correction waits for
    them (its revision stays open), then edits those that went out with the first title, in
    whole or in part, and not the one that read the corrected payload; then it is done."""
    async with announced(tmp_path, database) as (store, corrector):
        await store.posts.record([replace(POST, title="Fixed")], announced=True, now=NOW)
        (revision,) = await store.posts.revisions()
        key = f"post:{revision.post_id}"
        source = await store.outbox.find_job(key)
        assert source is not None
        late = ["2000", "2001", "2002"]  # subscribed meanwhile: claimed, not sent yet
        await store.subscribers.import_rows(
            ImportRow(Channel.TELEGRAM, chat, True, False) for chat in late
        )
        batches = store.outbox.fan_out(
            source[0], key, Kind.BREAKING, {Channel.TELEGRAM}, Audience.BREAKING
        )
        assert sum([sum(b.values()) async for b in batches]) == 3
        flying = {
            i.address: i for i in await store.outbox.claim(10, now=NOW.timestamp(), lease_s=60)
        }
        assert sorted(flying) == late

        def written(chat: str, status: OutboxStatus, rev: int) -> ItemUpdate:
            n = int(chat) - 1100
            return ItemUpdate(
                id=flying[chat].id,
                status=status,
                attempts=1,
                parts_done=1,
                message_ids=(n,),
                payload_rev=rev,
            )

        await store.outbox.apply([written("2002", OutboxStatus.QUEUED, 0)])  # its chat paused
        (done,) = await corrector.correct_all(NOW)
        assert (done.rows, done.waiting) == (READERS, 3)
        assert len(await store.posts.revisions()) == 1  # open while rows are on their way
        (waiting,) = await corrector.correct_all(NOW)
        assert (waiting.rows, waiting.waiting) == (0, 3)

        sent = OutboxStatus.SENT
        await store.outbox.apply([written("2000", sent, 0), written("2001", sent, 1)])
        (swept,) = await corrector.correct_all(NOW)
        assert (swept.job_id, swept.rows, swept.waiting) == (done.job_id, 1, 1)
        await store.outbox.apply([written("2002", sent, 1)])  # its first part went with 0
        (last,) = await corrector.correct_all(NOW)
        assert (last.rows, last.waiting) == (1, 0)
        assert await store.posts.revisions() == []
        rows = await edit_rows(store, "edit:")
        assert len(rows) == READERS + 2
        assert ("2000", (900,)) in rows and ("2002", (902,)) in rows
        assert all(address != "2001" for address, _ in rows)
        assert await corrector.correct_all(NOW) == []


async def test_a_post_published_again_after_its_withdrawal_is_announced_again(
    tmp_path: Path, database: str
) -> None:
    """Withdrawn, then back: every chat that had the alert is queued to get it anew (from
    its first part, no message ids kept), as the post reads now, and no email row."""
    async with announced(tmp_path, database) as (store, corrector):
        assert await store.posts.withdraw(POST.path, now=NOW)
        (gone,) = await corrector.correct_all(NOW)
        assert gone.withdrawn and gone.rows == READERS
        await edit_rows(store, "withdraw:")  # the deletes, claimed (as if on their way)
        back = replace(POST, title="Back again")
        await store.posts.record([back], announced=True, now=NOW)
        (again,) = await corrector.correct_all(NOW)
        assert (again.withdrawn, again.rows) == (False, READERS)
        assert await store.posts.revisions() == []
        items = await store.outbox.claim(100, now=NOW.timestamp() + 1, lease_s=60)
        alerts = [i for i in items if i.key.startswith("post:")]
        assert len(alerts) == READERS
        assert all(i.parts_done == 0 and i.message_ids == () for i in alerts)
        assert {i.channel for i in alerts} == {Channel.TELEGRAM}
        (job_id, payload) = await store.outbox.find_job(f"post:{again.post_id}") or (0, "")
        assert job_id == again.job_id
        assert "Back again" in Rendered.decode(payload).telegram[0].text
