"""Corrections: a post announced and then corrected (or withdrawn) has the Telegram messages
already sent edited in place (or deleted), through the outbox like any other send.

`plan_edits` and `withdraw_edits` are pure: what each message already sent becomes, part by
part. The `Corrector` (the leader runs it) turns each revision the post log keeps into one
correction job whose rows carry the message ids to edit; the revision is marked queued only
after that, so a crash in between plans the same job again at the next start.

Decisions (Telegram allows no more):
- A correction never sends a new message: the new text is fitted into as many messages as
  were sent. A longer one ends with an ellipsis in the last (its button leads on to the
  post); a shorter one leaves parts it no longer needs, which are deleted (edited to the
  "updated" line where Telegram no longer deletes them).
- A text message cannot become a photo, nor a photo a text message: an image added to a
  post sent without one is not shown; an image removed leaves the photo sent (its caption is
  corrected); a new image replaces the photo (editMessageMedia).
- A withdrawn post: every part is deleted (edited to the withdrawn notice past Telegram's 48
  hours), and its rows not sent yet send nothing on Telegram. Email cannot be taken back:
  emails already queued still go. Published again, it is announced again: every chat that
  had its alert gets a new one (no email).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.models import (
    DELETE,
    EDIT_CAPTION,
    EDIT_MEDIA,
    EDIT_TEXT,
    KEEP,
    Channel,
    Kind,
    Rendered,
    Revision,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.publish import Publisher
from bot.render.renderer import fit_parts
from bot.render.splitter import CAPTION_LIMIT, MESSAGE_LIMIT, split_html, visible_len

log = logging.getLogger(__name__)

# The corrector looks at the post log when woken (after each record or withdraw) and at
# least this often, so a correction that failed is tried again.
POLL_S = 60.0
# While rows of a corrected announcement are still being sent with its earlier text, it
# looks this often whether they are done, to edit them too.
SWEEP_S = 1.0


def _limit(k: int, message: TelegramMessage) -> int:
    return CAPTION_LIMIT if k == 0 and message.photo else MESSAGE_LIMIT


def shaped(old: Sequence[TelegramMessage], new: Sequence[TelegramMessage]) -> list[TelegramMessage]:
    """`new` in the shape of the messages sent (`old`): at most as many parts, a photo only
    where one was sent (the new image, else the one sent), the button on the last part.

    The renderer's `corrected_messages` already gives this shape; this keeps `plan_edits`
    right for any pair.
    """
    if not old or not new:
        return []
    photo = (new[0].photo or old[0].photo) if old[0].photo else None
    first = CAPTION_LIMIT if photo else MESSAGE_LIMIT
    texts = [m.text for m in new]
    over = visible_len(texts[0]) > first or any(visible_len(t) > MESSAGE_LIMIT for t in texts)
    if over:  # split for another shape (a caption sent as a text, or back): split anew
        texts = split_html("\n".join(texts), limit=MESSAGE_LIMIT, first_limit=first)
    texts = fit_parts(texts, len(old), first_limit=first)
    out = [
        TelegramMessage(
            "sendPhoto" if photo and k == 0 else "sendMessage",
            text,
            photo if k == 0 else None,
        )
        for k, text in enumerate(texts)
    ]
    button = new[-1]
    out[-1] = TelegramMessage(
        out[-1].method, out[-1].text, out[-1].photo, button.button_text, button.button_url
    )
    return out


def _looks_same(a: TelegramMessage, b: TelegramMessage) -> bool:
    return (a.text, a.photo, a.button_text, a.button_url) == (
        b.text,
        b.photo,
        b.button_text,
        b.button_url,
    )


def plan_edits(old: Rendered, new: Rendered, *, rest: str = "…") -> tuple[TelegramMessage, ...]:
    """What each Telegram message sent (`old`) becomes to show `new`: one per part sent.

    KEEP where the part would not change (same text, photo and button); EDIT_TEXT for a
    text; EDIT_CAPTION for a photo's caption, EDIT_MEDIA for a new image; a part the new
    text no longer needs is deleted (DELETE with `rest`, the "updated" line, as the text
    it is edited to where it cannot be deleted).
    """
    fitted = shaped(old.telegram, new.telegram)
    out: list[TelegramMessage] = []
    for k, before in enumerate(old.telegram):
        if k >= len(fitted):
            out.append(TelegramMessage(DELETE, rest, before.photo))
            continue
        after = fitted[k]
        if _looks_same(before, after):
            out.append(TelegramMessage(KEEP, after.text, after.photo))
            continue
        if before.photo:
            method = EDIT_MEDIA if after.photo != before.photo else EDIT_CAPTION
        else:
            method = EDIT_TEXT
        out.append(
            TelegramMessage(method, after.text, after.photo, after.button_text, after.button_url)
        )
    return tuple(out)


def withdraw_edits(old: Rendered, notice: str) -> tuple[TelegramMessage, ...]:
    """Every part sent is deleted; `notice` (with the photo sent, so the caption is what
    changes) is what it is edited to where Telegram no longer deletes it."""
    return tuple(TelegramMessage(DELETE, notice, m.photo) for m in old.telegram)


def changes(edits: Sequence[TelegramMessage]) -> int:
    """How many of the planned parts make a Bot API call."""
    return sum(1 for m in edits if m.method != KEEP)


@dataclass(frozen=True)
class Correction:
    """What one revision came to: the job queued (None: nothing to edit) and its size."""

    post_id: int
    revision: int
    withdrawn: bool
    job_id: int | None = None
    parts: int = 0  # parts that change, of those sent
    rows: int = 0  # chats whose messages are edited (added by this pass)
    waiting: int = 0  # rows of the announcement still in flight with the earlier text


@dataclass
class _Sweep:
    """A correction queued while rows of its announcement were in flight (being sent, or
    partly sent and queued again): they may go out with the text before it, in whole or in
    part, so once each is settled it is edited too (if it was)."""

    post_id: int
    revision: int
    withdrawn: bool
    job_id: int
    key: str
    source_id: int
    source_key: str
    rev: int  # the announcement's payload revision with the correction
    rows: set[int]  # its rows in flight when the correction was queued
    parts: int


class Corrector:
    """Turns the post log's revisions into correction jobs; the leader runs one."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.renderer = publisher.renderer
        self._wake = asyncio.Event()
        # By (post id, revision): corrections waiting for rows in flight. Kept in memory
        # only: their revision stays unmarked, so after a restart the whole correction is
        # fanned out again and the rows sent meanwhile are found by their revision.
        self._sweeps: dict[tuple[int, int], _Sweep] = {}

    def wake(self) -> None:
        """A post was recorded or withdrawn: look at the revisions now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Correct at start (a crash left revisions queued) and whenever woken, until `stop`."""
        relay = asyncio.ensure_future(stop.wait())
        relay.add_done_callback(lambda _: self._wake.set())
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.correct_all(datetime.now(UTC))
                except Exception:  # the store is away: the next turn reads the revisions again
                    log.exception("corrections: reading the revisions failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), SWEEP_S if self._sweeps else POLL_S)
        finally:
            relay.cancel()

    async def correct_all(self, now: datetime) -> list[Correction]:
        """Queue the correction of every revision not queued yet, oldest first."""
        done = []
        for sweep in list(self._sweeps.values()):
            try:
                done.append(await self._sweep(sweep))
            except Exception:  # kept: looked at again at the next turn
                log.exception("corrections: post %d: rows in flight not looked at", sweep.post_id)
        for revision in await self.store.posts.revisions():
            if (revision.post_id, revision.revision) in self._sweeps:
                continue  # queued; its sweep goes on above
            try:
                done.append(await self.correct(revision, now))
            except Exception:  # left unmarked: tried again at the next turn
                log.exception(
                    "corrections: post %d revision %d could not be queued; trying again",
                    revision.post_id,
                    revision.revision,
                )
        return done

    async def correct(self, revision: Revision, now: datetime) -> Correction:
        """Queue one revision's correction (or nothing when no message would change)."""
        outbox, posts, post = self.store.outbox, self.store.posts, revision.post
        post_id, number, withdrawn = revision.post_id, revision.revision, revision.withdrawn
        what = "withdrawal" if withdrawn else "correction"
        source_key = f"post:{post_id}"
        source = await outbox.find_job(source_key)
        if source is None:  # announced before jobs were keyed by post id, or not at all
            await posts.mark_revised(post_id, number)
            log.info("corrections: post %d %r: no announcement to edit", post_id, post.title)
            return Correction(post_id, number, withdrawn)
        source_id, payload = source
        old = Rendered.decode(payload)
        kind = plan.post_kind(post.breaking)
        if not withdrawn and not old.telegram:  # withdrawn before: nothing left to edit
            return await self._announce_again(revision, source_id, kind)
        key = f"{'withdraw' if withdrawn else 'edit'}:{post_id}:{number}"
        if withdrawn:
            # Rows not sent yet send nothing on Telegram; queued email cannot be taken back.
            corrected = Rendered(telegram=(), email=old.email)
            edits = withdraw_edits(old, self.renderer.withdrawn_text(post))
        else:
            messages = self.renderer.corrected_messages(post, kind, old.telegram)
            corrected = Rendered(telegram=messages, email=self.renderer.post_email(post, kind))
            edits = self._edits(old, messages, kind, revision)
            if not changes(edits):  # what the readers see stays as it is
                corrected = Rendered(telegram=old.telegram, email=corrected.email)
        planned = await outbox.find_job(key)
        if planned is not None:  # a restart after the job was made: its plan stands
            edits = Rendered.decode(planned[1]).telegram
        if not changes(edits):
            await outbox.set_payload(source_id, corrected.encode())
            await self.publisher.queued()
            await posts.mark_revised(post_id, number)
            log.info(
                "corrections: post %d %r revision %d: no message would change; nothing sent",
                post_id,
                post.title,
                number,
            )
            return Correction(post_id, number, withdrawn)
        # The plan is kept before the announcement's payload changes: a crash in between
        # finds it (the payload then already shows the corrected post).
        job_id, _ = await outbox.create_job(
            key, Kind.EDIT.value, Rendered(telegram=edits).encode(), title=post.title, now=now
        )
        rev = await outbox.set_payload(source_id, corrected.encode())
        # Delivery everywhere drops the payloads it keeps: rows claimed from now on go out
        # corrected; those sent already (with their ids) get the edits.
        await self.publisher.queued()
        rows = await outbox.fan_out_edits(job_id, key, source_key, below_rev=rev)
        log.info(
            "corrections: post %d %r %s (revision %d): job %d %s, %d of %d parts, %d chats",
            post_id,
            post.title,
            what,
            number,
            job_id,
            key,
            changes(edits),
            len(edits),
            rows,
        )
        in_flight = set(await outbox.unsettled(source_id))
        sweep = _Sweep(
            post_id,
            number,
            withdrawn,
            job_id,
            key,
            source_id,
            source_key,
            rev,
            in_flight,
            changes(edits),
        )
        if in_flight:
            self._sweeps[post_id, number] = sweep
        return await self._queued(sweep, rows)

    async def _announce_again(self, revision: Revision, source_id: int, kind: Kind) -> Correction:
        """A post withdrawn and then published again: its alerts were deleted, so every chat
        that had the announcement gets it anew, as the post reads now (its Telegram rows go
        out again; the email went once and does not). Later corrections edit the new ones."""
        post = revision.post
        rendered = self.renderer.post(post, kind)
        await self.store.outbox.set_payload(source_id, rendered.encode())
        rows = await self.store.outbox.send_again(source_id, Channel.TELEGRAM)
        await self.store.posts.mark_revised(revision.post_id, revision.revision)
        if rows and self.publisher.metrics is not None:
            self.publisher.metrics.job_queued("telegram", kind.value, rows)
        await self.publisher.queued()
        log.info(
            "corrections: post %d %r published again after its withdrawal: announced again"
            " to %d chats",
            revision.post_id,
            post.title,
            rows,
        )
        return Correction(
            revision.post_id, revision.revision, False, source_id, len(rendered.telegram), rows
        )

    async def _sweep(self, sweep: _Sweep) -> Correction:
        """Edit the rows that were in flight at the correction and are written back now,
        if they went out with the text before it."""
        outbox = self.store.outbox
        still = sweep.rows & set(await outbox.unsettled(sweep.source_id))
        done = sorted(sweep.rows - still)
        rows = 0
        if done:
            rows = await outbox.fan_out_edits(
                sweep.job_id, sweep.key, sweep.source_key, below_rev=sweep.rev, only=done
            )
        sweep.rows = still
        if rows:
            log.info(
                "corrections: post %d revision %d: %d chats sent the earlier text while it was"
                " corrected; editing them too",
                sweep.post_id,
                sweep.revision,
                rows,
            )
        return await self._queued(sweep, rows)

    async def _queued(self, sweep: _Sweep, rows: int) -> Correction:
        """Wake delivery for the rows added; once no row is in flight, the job is whole and
        the revision done."""
        if rows and self.publisher.metrics is not None:
            self.publisher.metrics.job_queued("telegram", Kind.EDIT.value, rows)
        if not sweep.rows:
            await self.store.outbox.mark_planned(sweep.job_id)
            await self.store.posts.mark_revised(sweep.post_id, sweep.revision)
            self._sweeps.pop((sweep.post_id, sweep.revision), None)
        if rows:
            await self.publisher.queued()
        return Correction(
            sweep.post_id,
            sweep.revision,
            sweep.withdrawn,
            sweep.job_id,
            sweep.parts,
            rows,
            waiting=len(sweep.rows),
        )

    def _edits(
        self,
        old: Rendered,
        messages: tuple[TelegramMessage, ...],
        kind: Kind,
        revision: Revision,
    ) -> tuple[TelegramMessage, ...]:
        """The edits a correction makes; none when, the "updated" line aside, the messages
        would read as they were sent (a change the alert does not show)."""
        plain = self.renderer.corrected_messages(revision.post, kind, old.telegram, updated=False)
        if not changes(plan_edits(old, Rendered(telegram=plain))):
            return tuple(TelegramMessage(KEEP, m.text, m.photo) for m in old.telegram)
        return plan_edits(old, Rendered(telegram=messages), rest=self.renderer.updated_line())
