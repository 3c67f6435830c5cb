"""Admin commands: /broadcast with preview and confirmation, /stats and its Resend button."""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import MessageEntityType
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.chat.deps import BotDeps
from bot.errors import DeliveryError
from bot.models import Channel, Status
from bot.store import gather_stats
from bot.transports.telegram import BotTransport

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
        await self.deps.reply(msg, self.deps.text("refusal.html", command=command))

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
            await self.deps.reply(msg, self.deps.text("broadcast_usage.html"))
            return
        messages = self.deps.renderer.broadcast_messages(html)
        preview = BotTransport(context.bot)
        try:
            for message in messages:
                await preview.send(str(chat.id), message)
        except DeliveryError as exc:
            await self.deps.reply(msg, self.deps.text("broadcast_invalid.html", reason=str(exc)))
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
        await self.deps.reply(msg, text, reply_markup=buttons)

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
        report = await gather_stats(self.deps.store, jobs=RECENT_JOBS, failed=RECENT_FAILED)
        channels = [
            {
                "label": channel.value.capitalize(),
                "prefs": report.preferences[channel],
                **{s.value: report.subscribers.get((channel, s), 0) for s in Status},
            }
            for channel in Channel
        ]
        delivery = report.delivery
        text = self.deps.text(
            "stats.html",
            channels=channels,
            delivery=delivery,
            jobs=report.jobs,
            failed=report.failed,
            reports=report.reports,
            corrections=report.corrections,
        )
        resend = None
        if delivery["failed"]:
            label = self.deps.text("button.txt", name="resend", on=True)
            resend = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=RESEND)]])
        await self.deps.reply(msg, text, reply_markup=resend)

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
