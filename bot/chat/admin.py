"""Admin commands: /broadcast with preview and confirmation, /stats and its Resend button."""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import MessageEntityType
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.errors import DeliveryError
from bot.models import Channel, Post, Status, Subscriber
from bot.store.outbox_stats import FailedItem, JobProgress
from bot.store.subscribers import PreferenceCounts
from bot.transports.telegram import BotTransport

if TYPE_CHECKING:
    from bot.chat.handlers import BotDeps

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
PENDING, SENDING, SENT, CANCELLED = "pending", "sending", "sent", "cancelled"
# Previews kept for their buttons; the oldest are forgotten (their buttons then "expire").
MAX_PREVIEWS = 200
RECENT_JOBS, RECENT_FAILED = 5, 3  # what /stats lists; it must fit one message
RESEND = "rs:failed"


Reply = Callable[..., str]  # renders templates/telegram/bot/<name> with keyword context


@dataclass
class Draft:
    """A broadcast shown to an admin, waiting for Send or Cancel."""

    html: str
    admin_id: int
    state: str = PENDING


def register(
    application: Application[Any, Any, Any, Any, Any, Any],
    deps: BotDeps,
    only_new: filters.BaseFilter,
) -> None:
    """Add /broadcast, its buttons, /stats and its Resend button."""
    h = AdminHandlers(deps)
    application.add_handler(CommandHandler("broadcast", h.broadcast, filters=only_new))
    application.add_handler(CommandHandler("stats", h.stats, filters=only_new))
    application.add_handler(CallbackQueryHandler(h.decide, pattern=r"^bc:"))
    application.add_handler(CallbackQueryHandler(h.resend, pattern=r"^rs:"))


def broadcast_html(msg: Message) -> str:
    """The admin's text as Telegram HTML: after the command, or the replied-to message.

    The HTML comes from the message entities, so typed `<` and `&` arrive escaped (literal)
    and the admin's bold, links, spoilers... are kept.
    """
    html = ""
    text = msg.text or ""
    command = next(
        (e for e in msg.entities if e.type == MessageEntityType.BOT_COMMAND and e.offset == 0),
        None,
    )
    if command is not None:
        # The command is plain ASCII, so it starts the HTML unchanged.
        html = msg.text_html.removeprefix(text[: command.length]).strip()
    replied = msg.reply_to_message
    if not html and replied is not None:
        if replied.text:
            html = replied.text_html
        elif replied.caption:
            html = replied.caption_html
    return html.strip()


class AdminHandlers:
    """/broadcast, its Send/Cancel buttons, and /stats; only for HERALD_ADMIN_IDS."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps
        self.drafts: OrderedDict[str, Draft] = OrderedDict()

    def _answer(self, kind: str, count: int = 0) -> str:
        return self.deps.text("answer.txt", kind=kind, count=count)

    async def _refuse(self, msg: Message, command: str) -> None:
        await msg.reply_html(self.deps.text("refusal.html", command=command))

    async def broadcast(self, update: Update, context: Context) -> None:
        """Preview exactly what subscribers will get, then ask Send / Cancel."""
        msg, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if msg is None or chat is None:
            return
        if user is None or not self.deps.is_admin(user):
            await self._refuse(msg, "broadcast")
            return
        html = broadcast_html(msg)
        if not html:
            await msg.reply_html(self.deps.text("broadcast_usage.html"))
            return
        messages = self.deps.renderer.broadcast_messages(html)
        preview = BotTransport(context.bot)
        try:
            for message in messages:
                await preview.send(str(chat.id), message)
        except DeliveryError as exc:
            await msg.reply_html(self.deps.text("broadcast_invalid.html", reason=str(exc)))
            return
        recipients = await self.deps.publisher.count_broadcast_recipients()
        token = secrets.token_urlsafe(9)
        self.drafts[token] = Draft(html, user.id)
        while len(self.drafts) > MAX_PREVIEWS:
            self.drafts.popitem(last=False)
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        self.deps.text("button.txt", name="send", on=True),
                        callback_data=f"bc:send:{token}",
                    ),
                    InlineKeyboardButton(
                        self.deps.text("button.txt", name="cancel", on=False),
                        callback_data=f"bc:cancel:{token}",
                    ),
                ]
            ]
        )
        text = self.deps.text("broadcast_confirm.html", recipients=recipients, parts=len(messages))
        await msg.reply_html(text, reply_markup=buttons)

    async def decide(self, update: Update, context: Context) -> None:
        """Send or Cancel on a preview; only the first press of either counts."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        _, action, token = [*query.data.split(":", 2), "", ""][:3]
        if not self.deps.is_admin(query.from_user):
            await query.answer(self._answer("refusal"), show_alert=True)
            return
        draft = self.drafts.get(token)
        if draft is None:
            await query.answer(self._answer("expired"), show_alert=True)
            return
        if query.from_user.id != draft.admin_id:  # e.g. another admin in a shared group
            await query.answer(self._answer("refusal"), show_alert=True)
            return
        if draft.state != PENDING:
            kind = "already_cancelled" if draft.state == CANCELLED else "already_sent"
            await query.answer(self._answer(kind), show_alert=True)
            return
        if action != "send":
            draft.state = CANCELLED
            await query.edit_message_text(
                self.deps.text("broadcast_cancelled.html"), parse_mode="HTML"
            )
            await query.answer(self._answer("cancelled"))
            return
        # Claimed before the first await: a second press arriving meanwhile sees SENDING.
        draft.state = SENDING
        try:
            recipients = await self.deps.publisher.broadcast(
                draft.html, admin_id=query.from_user.id
            )
        except Exception:
            draft.state = PENDING  # nothing was queued; the admin may press Send again
            await query.answer(self._answer("failed"), show_alert=True)
            raise
        draft.state = SENT
        log.info("bot: broadcast by %s queued for %d recipients", query.from_user.id, recipients)
        await query.edit_message_text(
            self.deps.text("broadcast_sent.html", recipients=recipients), parse_mode="HTML"
        )
        await query.answer(self._answer("sent"))

    async def stats(self, update: Update, context: Context) -> None:
        """Subscribers by channel and preference, deliveries, recent jobs and failed sends."""
        msg = update.effective_message
        if msg is None:
            return
        if not self.deps.is_admin(update.effective_user):
            await self._refuse(msg, "stats")
            return
        store = self.deps.store
        counts = await store.subscribers.counts()
        prefs = await store.subscribers.preference_counts()
        channels = [
            {
                "label": channel.value.capitalize(),
                "prefs": prefs[channel],
                **{s.value: counts.get((channel.value, s.value), 0) for s in Status},
            }
            for channel in Channel
        ]
        gone = {
            s: sum(counts.get((c.value, s), 0) for c in Channel) for s in ("blocked", "bounced")
        }
        delivery = await store.outbox.totals() | gone
        jobs = await store.outbox.progress(RECENT_JOBS)
        failed = await store.outbox.failed(RECENT_FAILED) if delivery["failed"] else []
        text = self.deps.text(
            "stats.html", channels=channels, delivery=delivery, jobs=jobs, failed=failed
        )
        resend = None
        if delivery["failed"]:
            label = self.deps.text("button.txt", name="resend", on=True)
            resend = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=RESEND)]])
        await msg.reply_html(text, reply_markup=resend)

    async def resend(self, update: Update, context: Context) -> None:
        """The Resend button under /stats: failed sends go back in the queue (once)."""
        query = update.callback_query
        if query is None:
            return
        if not self.deps.is_admin(query.from_user):
            await query.answer(self._answer("refusal"), show_alert=True)
            return
        # One UPDATE moves failed rows back: a second press (or a second admin) finds none.
        count = await self.deps.publisher.retry_failed()
        if count == 0:
            await query.answer(self._answer("nothing_to_resend"), show_alert=True)
            return
        log.info("bot: %s queued %d failed sends again", query.from_user.id, count)
        await query.edit_message_text(
            self.deps.text("resend_queued.html", count=count), parse_mode="HTML"
        )
        await query.answer(self._answer("resent", count))


ANSWER_KINDS = (
    "saved",
    "not_subscribed",
    "group_admin_only",
    "refusal",
    "already_sent",
    "already_cancelled",
    "sent",
    "cancelled",
    "expired",
    "failed",
    "resent",
    "nothing_to_resend",
)


def sample_replies(text: Reply) -> dict[str, str]:
    """Every bot reply rendered with sample data, by name (for `herald check` and tests)."""
    sub = Subscriber(1, Channel.TELEGRAM, "1", True, False, True, Status.ACTIVE)
    post = Post("p.md", "p", "A & <b>", datetime(2000, 1, 1, tzinfo=UTC), "https://x/p", "", "")
    figures = {s.value: 1 for s in Status}
    channels = [{"label": "Telegram", "prefs": PreferenceCounts(3, 2, 1, 0), **figures}]
    counts = {"queued": 1, "sending": 0, "sent": 5, "failed": 1, "cancelled": 0}
    delivery = counts | {"blocked": 2, "bounced": 1}
    job = JobProgress(3, "post:3", "breaking", "A & <b>", "2000-01-01T00:00:00", None, counts)
    failed = FailedItem(9, 3, "post:3", "telegram", "-100", 8, "gave up: <502> & more")
    out: dict[str, str] = {}
    for group in (False, True):
        g = "group" if group else "private"
        out[f"welcome/{g}"] = text("welcome.html", group=group)
        out[f"settings/{g}"] = text("settings.html", sub=sub, group=group, digest_time="08:00")
        out[f"not_subscribed/{g}"] = text("not_subscribed.html", group=group)
        for was in (False, True):
            out[f"stop/{g}/{was}"] = text("stop.html", was_subscribed=was, group=group)
        for admin in (False, True):
            out[f"help/{g}/{admin}"] = text("help.html", admin=admin, group=group)
    out["latest/none"] = text("latest.html", posts=[])
    out["latest/some"] = text("latest.html", posts=[post, post])
    out["group_admin_only"] = text("group_admin_only.html")
    out["refusal"] = text("refusal.html", command="stats")
    out["broadcast_usage"] = text("broadcast_usage.html")
    out["broadcast_confirm"] = text("broadcast_confirm.html", recipients=2, parts=2)
    out["broadcast_sent"] = text("broadcast_sent.html", recipients=1)
    out["broadcast_cancelled"] = text("broadcast_cancelled.html")
    out["broadcast_invalid"] = text("broadcast_invalid.html", reason="x < y & z")
    out["stats"] = text(
        "stats.html", channels=channels, delivery=delivery, jobs=[job, job], failed=[failed]
    )
    out["stats/empty"] = text(
        "stats.html", channels=channels, delivery=dict.fromkeys(delivery, 0), jobs=[], failed=[]
    )
    out["resend_queued"] = text("resend_queued.html", count=2)
    out["error"] = text("error.html")
    return out


def sample_plain(text: Reply) -> dict[str, str]:
    """Button labels and callback answers (plain text, not HTML) rendered with sample data."""
    out = {f"answer/{kind}": text("answer.txt", kind=kind, count=2) for kind in ANSWER_KINDS}
    for name in ("breaking", "daily", "every_post", "send", "cancel", "resend"):
        for on in (False, True):
            out[f"button/{name}/{on}"] = text("button.txt", name=name, on=on)
    for admin in (False, True):
        out[f"commands/{admin}"] = text("commands.txt", admin=admin)
    return out
