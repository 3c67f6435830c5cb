"""Reader choices in Telegram: /topics as toggle buttons, /quiet, /digest and /timezone.

Showing a choice is open to anyone in the chat; changing one follows /settings' rule (in a
group only its admins).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from telegram import Chat, InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot import choices
from bot.chat.deps import BotDeps
from bot.models import Channel, Status, Subscriber
from bot.outbox.topics import topic_offer

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
PREFIX = "tp:"
CLEAR = "tp:all"
RESET = "default"  # `/digest default`, `/timezone default`: back to the site's
_SHOWN_CHARS = 40  # of an argument echoed in a reply
MAX_BUTTONS = 48  # topic buttons (Telegram allows 100 per keyboard)
_LABEL_BYTES = 56  # of a topic on its button: with "✓ " and "…" it stays under 64


class Manager(Protocol):
    """Who may change a chat's choices (`Handlers.may_manage`)."""

    async def may_manage(
        self, context: Context, chat: Chat, user: User | None, msg: Any
    ) -> bool: ...


def register(
    application: Application[Any, Any, Any, Any, Any, Any],
    deps: BotDeps,
    manager: Manager,
    only_new: filters.BaseFilter,
) -> None:
    """Add /topics and its buttons, /quiet, /digest and /timezone."""
    h = ChoiceHandlers(deps, manager)
    for name, callback in (
        ("topics", h.topics),
        ("quiet", h.quiet),
        ("digest", h.digest),
        ("timezone", h.timezone),
    ):
        application.add_handler(CommandHandler(name, callback, filters=only_new))
    application.add_handler(CallbackQueryHandler(h.toggle_topic, pattern=rf"^{PREFIX}"))


def topic_hash(name: str) -> str:
    """A short fingerprint of a topic, so a button pressed after the offer changed (its
    index now another topic's) is recognised instead of toggling the wrong one."""
    return hashlib.sha256(choices.topic_key(name).encode()).hexdigest()[:8]


def topic_data(index: int, name: str) -> str:
    """A topic button's callback_data: `tp:<index>:<hash>`, short whatever the name."""
    return f"{PREFIX}{index}:{topic_hash(name)}"


def shown_topics(offer: Sequence[str], chosen: Sequence[str]) -> list[str]:
    """The buttons' topics: the offer, then chosen ones it no longer has (to untick them),
    as many as a keyboard holds."""
    offered = {choices.topic_key(name) for name in offer}
    return [*offer, *(key for key in chosen if key not in offered)][:MAX_BUTTONS]


async def chosen_names(deps: BotDeps, chosen: Sequence[str]) -> list[str]:
    """A chat's topics (stored casefolded) as the offer spells them, cut to button size."""
    if not chosen:
        return []
    offer = await topic_offer(deps.site, deps.store.posts)
    spelled = {choices.topic_key(name): name for name in offer}
    return [_label(spelled.get(key, key)) for key in chosen]


def pressed_topic(data: str, shown: Sequence[str]) -> str | None:
    """The topic a button's data names in `shown`, or None when the list changed since."""
    index, _, digest = data.removeprefix(PREFIX).partition(":")
    if not index.isdigit() or int(index) >= len(shown):
        return None
    name = shown[int(index)]
    return name if topic_hash(name) == digest else None


def _group(chat: Chat) -> bool:
    return chat.type != ChatType.PRIVATE


def _argument(context: Context) -> str:
    return " ".join(context.args or ()).strip()


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _label(name: str) -> str:
    """A topic as its button shows it: whole, or cut (in UTF-8 bytes) with an ellipsis."""
    if len(name.encode()) <= _LABEL_BYTES:
        return name
    cut = name.encode()[:_LABEL_BYTES].decode(errors="ignore")
    return cut.rstrip() + "…"


class ChoiceHandlers:
    """The reader-choice commands; one method per command or button."""

    def __init__(self, deps: BotDeps, manager: Manager) -> None:
        self.deps = deps
        self.manager = manager
        self.subs = deps.store.subscribers

    async def _subscriber(self, chat: Chat) -> Subscriber | None:
        sub = await self.subs.get(Channel.TELEGRAM, str(chat.id))
        return sub if sub is not None and sub.status is Status.ACTIVE else None

    def _zone_name(self, sub: Subscriber) -> str:
        return sub.tz or self.deps.site_zone.key

    # -- /topics ------------------------------------------------------------------------

    async def _topics_view(
        self, sub: Subscriber, chat: Chat
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        offer = await topic_offer(self.deps.site, self.deps.store.posts)
        shown = shown_topics(offer, sub.topics)
        chosen = set(sub.topics)
        buttons = [
            InlineKeyboardButton(
                self.deps.text(
                    "button.txt",
                    name="topic",
                    topic=_label(name),
                    on=choices.topic_key(name) in chosen,
                ),
                callback_data=topic_data(i, name),
            )
            for i, name in enumerate(shown)
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        if shown:
            all_label = self.deps.text("button.txt", name="all_topics", on=not chosen)
            rows.append([InlineKeyboardButton(all_label, callback_data=CLEAR)])
        names = [_label(name) for name in shown if choices.topic_key(name) in chosen]
        text = self.deps.text("topics.html", group=_group(chat), chosen=names, offered=bool(shown))
        return text, InlineKeyboardMarkup(rows) if rows else None

    async def topics(self, update: Update, context: Context) -> None:
        """Show the topics on offer as toggle buttons (✓ on the chosen ones)."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        sub = await self._subscriber(chat)
        if sub is None:
            await self.deps.reply(msg, self.deps.text("not_subscribed.html", group=_group(chat)))
            return
        text, keyboard = await self._topics_view(sub, chat)
        await self.deps.reply(msg, text, reply_markup=keyboard)

    async def toggle_topic(self, update: Update, context: Context) -> None:
        """A topic button: tick or untick it (or clear all), editing the message in place."""
        query, chat = update.callback_query, update.effective_chat
        if query is None or chat is None or query.data is None:
            return
        if not await self.manager.may_manage(context, chat, query.from_user, None):
            await query.answer(self.deps.text("answer.txt", kind="group_admin_only"), True)
            return
        sub = await self._subscriber(chat)
        if sub is None:
            await query.answer(self.deps.text("answer.txt", kind="not_subscribed"), True)
            return
        chosen = set(sub.topics)
        answer = "saved"
        if query.data == CLEAR:
            chosen = set()
        else:
            offer = await topic_offer(self.deps.site, self.deps.store.posts)
            name = pressed_topic(query.data, shown_topics(offer, sub.topics))
            if name is None:
                answer = "topics_changed"  # show the list as it is now, change nothing
            else:
                chosen ^= {choices.topic_key(name)}
        if chosen != set(sub.topics):
            await self.subs.set_topics(sub.id, sorted(chosen))
            sub = await self.subs.get_by_id(sub.id) or sub
        elif answer == "saved":  # "all topics" when none was chosen: nothing to edit
            await query.answer(self.deps.text("answer.txt", kind="saved"))
            return
        text, keyboard = await self._topics_view(sub, chat)
        try:
            await query.edit_message_text(text, parse_mode="HTML", reply_markup=keyboard)
        except BadRequest as exc:  # pressed twice: the message already shows this
            if "not modified" not in exc.message.lower():
                raise
        await query.answer(self.deps.text("answer.txt", kind=answer))

    # -- /quiet, /digest, /timezone -----------------------------------------------------

    async def _changing(
        self, update: Update, context: Context
    ) -> tuple[Subscriber, str, bool] | None:
        """The chat's subscriber, the argument, and whether the sender may change it;
        None (after replying) when the chat is not subscribed."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return None
        sub = await self._subscriber(chat)
        if sub is None:
            await self.deps.reply(msg, self.deps.text("not_subscribed.html", group=_group(chat)))
            return None
        arg = _argument(context)
        if arg and not await self.manager.may_manage(context, chat, update.effective_user, msg):
            await self.deps.reply(msg, self.deps.text("group_admin_only.html"))
            return None
        return sub, arg, _group(chat)

    async def _answer(self, update: Update, template: str, **ctx: Any) -> None:
        msg = update.effective_message
        if msg is not None:
            await self.deps.reply(msg, self.deps.text(template, **ctx))

    async def quiet(self, update: Update, context: Context) -> None:
        """`/quiet 22:00-07:00` silences non-breaking messages then; `/quiet off` ends it."""
        got = await self._changing(update, context)
        if got is None:
            return
        sub, arg, group = got
        decided = _decision(arg, sub.quiet, reset="off", parse=choices.parse_quiet)
        if decided is None:
            await self._answer(update, "quiet.html", kind="bad", given=_shown(arg))
            return
        kind, quiet = decided
        if kind != "shown":
            await self.subs.set_quiet(sub.id, quiet)
            log.info("bot: chat %s quiet hours %s", sub.address, quiet or "off")
        await self._answer(
            update, "quiet.html", kind=kind, quiet=quiet, zone=self._zone_name(sub), group=group
        )

    async def digest(self, update: Update, context: Context) -> None:
        """`/digest 18:30` sets the chat's digest time; `/digest default` the site's again."""
        got = await self._changing(update, context)
        if got is None:
            return
        sub, arg, group = got
        decided = _decision(arg, sub.digest_at, reset=RESET, parse=choices.parse_time)
        if decided is None:
            await self._answer(update, "digest_time.html", kind="bad", given=_shown(arg))
            return
        kind, at = decided
        if kind != "shown":
            await self.subs.set_digest_time(sub.id, at)
            log.info("bot: chat %s digest time %s", sub.address, at or "default")
        await self._answer(
            update,
            "digest_time.html",
            kind=kind,
            at=at or self.deps.digest_time,
            own=at is not None,
            daily=sub.daily,
            zone=self._zone_name(sub),
            group=group,
        )

    async def timezone(self, update: Update, context: Context) -> None:
        """`/timezone Europe/Berlin` sets the chat's zone; `/timezone default` the site's."""
        got = await self._changing(update, context)
        if got is None:
            return
        sub, arg, group = got
        decided = _decision(arg, sub.tz, reset=RESET, parse=choices.parse_zone)
        if decided is None:
            await self._answer(update, "timezone.html", kind="bad", given=_shown(arg))
            return
        kind, tz = decided
        if kind != "shown":
            await self.subs.set_timezone(sub.id, tz)
            log.info("bot: chat %s time zone %s", sub.address, tz or "default")
        await self._answer(
            update,
            "timezone.html",
            kind=kind,
            zone=tz or self.deps.site_zone.key,
            own=tz is not None,
            digest_at=sub.digest_at or self.deps.digest_time,
            group=group,
        )


def _decision(
    arg: str, current: str | None, *, reset: str, parse: Callable[[str], str]
) -> tuple[str, str | None] | None:
    """What a choice command's argument asks: ("shown", the current value) without one,
    (the reset word, None) for it ("off", "default"), ("set", the value parsed); None when
    it does not parse (the command replies with the format and changes nothing)."""
    if not arg:
        return "shown", current
    if arg.casefold() == reset:
        return reset, None
    try:
        return "set", parse(arg)
    except ValueError:
        return None
