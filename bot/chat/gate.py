"""The publish gate's questions to admins: a post that does not go live, with Announce / Skip.

`GateDesk` asks (the gate calls `ask` after HERALD_LIVE_TIMEOUT_S) and handles the buttons;
only an admin's press counts, and the gate makes the first press the only one.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot.chat.deps import BotDeps
from bot.models import Post

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
DESK_KEY = "herald.gate_desk"
DECIDED = frozenset({"announced", "skipped"})


class HeldPosts(Protocol):
    """What the buttons need of the publish gate (`bot.sources.gate.PublishGate`)."""

    async def decide(self, post_id: int, *, announce: bool, admin_id: int) -> str: ...


def register(application: Application[Any, Any, Any, Any, Any, Any], deps: BotDeps) -> None:
    """Add the Announce / Skip buttons' handler; the desk is kept for the composition root."""
    desk = GateDesk(deps, application.bot)
    application.bot_data[DESK_KEY] = desk
    application.add_handler(CallbackQueryHandler(desk.press, pattern=r"^gate:"))


def gate_desk(application: Application[Any, Any, Any, Any, Any, Any]) -> GateDesk:
    """The desk `register` added to `application`."""
    desk = application.bot_data[DESK_KEY]
    assert isinstance(desk, GateDesk)
    return desk


class GateDesk:
    """Asks the admins about held posts and takes their answer."""

    def __init__(self, deps: BotDeps, bot: Any) -> None:
        self.deps = deps
        self.bot = bot
        self.gate: HeldPosts | None = None  # set by the composition root
        # post id → its title and the questions sent (chat id, message id)
        self._asked: dict[int, tuple[str, list[tuple[int, int]]]] = {}

    def _keyboard(self, post_id: int) -> InlineKeyboardMarkup:
        buttons = [
            InlineKeyboardButton(
                self.deps.text("gate.txt", kind=f"button_{action}"),
                callback_data=f"gate:{action}:{post_id}",
            )
            for action in ("announce", "skip")
        ]
        return InlineKeyboardMarkup([buttons])

    async def ask(self, post_id: int, post: Post, *, waited_s: float, answer: str) -> int:
        """Send each admin the question; returns how many got it."""
        text = self.deps.text("gate_ask.html", post=post, waited_s=waited_s, answer=answer)
        sent: list[tuple[int, int]] = []
        for admin_id in sorted(self.deps.admin_ids):
            try:
                msg = await self.bot.send_message(
                    admin_id,
                    text,
                    parse_mode="HTML",
                    reply_markup=self._keyboard(post_id),
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
                log.warning("gate: admin %s cannot be asked about %s: %s", admin_id, post.path, exc)
                continue
            sent.append((admin_id, msg.message_id))
        if sent:
            self._asked[post_id] = (post.title, sent)
        return len(sent)

    async def settled(self, post_id: int, outcome: str) -> None:
        """The gate decided without a press (the post went live): close the questions."""
        await self._close(post_id, outcome, by=None)

    async def press(self, update: Update, context: Context) -> None:
        """Announce or Skip: only an admin's press counts; the first one decides."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        if not self.deps.is_admin(query.from_user):
            await query.answer(self.deps.text("gate.txt", kind="refusal"), show_alert=True)
            return
        _, action, ident = [*query.data.split(":", 2), "", ""][:3]
        if self.gate is None or not ident.isdigit() or action not in ("announce", "skip"):
            await query.answer(self.deps.text("gate.txt", kind="unknown"), show_alert=True)
            return
        post_id = int(ident)
        outcome = await self.gate.decide(
            post_id, announce=action == "announce", admin_id=query.from_user.id
        )
        if outcome in DECIDED:
            log.info("gate: admin %s pressed %s on post %d", query.from_user.id, action, post_id)
            pressed = None
            if query.message is not None:
                pressed = (query.message.chat.id, query.message.message_id)
            await self._close(post_id, outcome, by=query.from_user.full_name, pressed=pressed)
        await query.answer(
            self.deps.text("gate.txt", kind=outcome), show_alert=outcome not in DECIDED
        )

    async def _close(
        self,
        post_id: int,
        outcome: str,
        *,
        by: str | None,
        pressed: tuple[int, int] | None = None,
    ) -> None:
        """Every question about the post (and the one pressed) now says how it was decided."""
        title, targets = self._asked.pop(post_id, ("", []))
        if pressed is not None and pressed not in targets:
            targets = [*targets, pressed]  # asked before a restart: not remembered
        text = self.deps.text("gate_done.html", outcome=outcome, by=by, title=title)
        for chat_id, message_id in targets:
            try:
                await self.bot.edit_message_text(
                    text, chat_id=chat_id, message_id=message_id, parse_mode="HTML"
                )
            except TelegramError as exc:
                log.debug("gate: question %s/%s not updated: %s", chat_id, message_id, exc)
