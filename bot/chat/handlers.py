"""Telegram commands: thin typed handlers that call the store or the publisher and reply."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
    User,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.chat import admin as admin_handlers
from bot.chat import choices as choice_handlers
from bot.chat import gate as gate_buttons
from bot.chat.deps import BotDeps
from bot.models import Channel, Status, Subscriber

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
PREFS = ("breaking", "daily", "every_post")
MANAGERS = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})
GONE = frozenset({ChatMemberStatus.BANNED, ChatMemberStatus.LEFT})


def register(application: Application[Any, Any, Any, Any, Any, Any], deps: BotDeps) -> None:
    """Add every command, button and chat-member handler, and the error handler."""
    h = Handlers(deps)
    only_new = filters.UpdateType.MESSAGE  # an edited command must not run twice
    for name, callback in (
        ("start", h.start),
        ("settings", h.settings),
        ("stop", h.stop),
        ("latest", h.latest),
        ("help", h.help),
    ):
        application.add_handler(CommandHandler(name, callback, filters=only_new))
    application.add_handler(CallbackQueryHandler(h.toggle, pattern=r"^set:"))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, h.migrated))
    application.add_handler(ChatMemberHandler(h.membership, ChatMemberHandler.MY_CHAT_MEMBER))
    admin_handlers.register(application, deps, only_new)
    choice_handlers.register(application, deps, h, only_new)
    gate_buttons.register(application, deps)
    application.add_error_handler(h.on_error)


async def set_commands(bot: Any, deps: BotDeps) -> None:
    """The command menu (setMyCommands): everyone's, plus the admin commands for admins."""
    await bot.set_my_commands(_commands(deps, admin=False), scope=BotCommandScopeDefault())
    for admin_id in sorted(deps.admin_ids):
        try:
            await bot.set_my_commands(
                _commands(deps, admin=True), scope=BotCommandScopeChat(admin_id)
            )
        except TelegramError as exc:  # the admin never opened a chat with the bot
            log.warning("bot: admin menu for %s not set: %s", admin_id, exc)


def _commands(deps: BotDeps, *, admin: bool) -> list[BotCommand]:
    lines = deps.text("commands.txt", admin=admin).splitlines()
    pairs = (line.split(" - ", 1) for line in lines if " - " in line)
    return [BotCommand(name.strip(), about.strip()) for name, about in pairs]


def _group(chat: Chat) -> bool:
    return chat.type != ChatType.PRIVATE


class Handlers:
    """The subscriber-facing commands; one method per update kind."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps
        self.subs = deps.store.subscribers

    def keyboard(self, sub: Subscriber) -> InlineKeyboardMarkup:
        """One toggle per preference; its label shows the current state."""
        rows = [
            [
                InlineKeyboardButton(
                    self.deps.text("button.txt", name=name, on=getattr(sub, name)),
                    callback_data=f"set:{name}",
                )
            ]
            for name in PREFS
        ]
        return InlineKeyboardMarkup(rows)

    async def settings_text(self, sub: Subscriber, chat: Chat) -> str:
        return self.deps.text(
            "settings.html",
            sub=sub,
            topics=await choice_handlers.chosen_names(self.deps, sub.topics),
            group=_group(chat),
            digest_time=sub.digest_at or self.deps.digest_time,
            zone=sub.tz or self.deps.site_zone.key,
        )

    async def may_manage(self, context: Context, chat: Chat, user: User | None, msg: Any) -> bool:
        """Anyone in a private chat; in a group only its admins (anonymous ones included)."""
        if not _group(chat):
            return True
        sender_chat = getattr(msg, "sender_chat", None)
        if sender_chat is not None and sender_chat.id == chat.id:
            return True  # an anonymous admin writes as the group itself
        if user is None:
            return False
        member = await context.bot.get_chat_member(chat.id, user.id)
        return member.status in MANAGERS

    async def _subscriber(self, chat: Chat) -> Subscriber | None:
        sub = await self.subs.get(Channel.TELEGRAM, str(chat.id))
        return sub if sub is not None and sub.status is Status.ACTIVE else None

    async def start(self, update: Update, context: Context) -> None:
        """Subscribe the chat (breaking + digest on) and show the settings buttons."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        sub = await self._subscriber(chat)
        if sub is None:
            if not await self.may_manage(context, chat, update.effective_user, msg):
                await self.deps.reply(msg, self.deps.text("group_admin_only.html"))
                return
            sub = await self.subs.upsert(Channel.TELEGRAM, str(chat.id))
            log.info("bot: chat %s subscribed", chat.id)
        text = self.deps.text("welcome.html", group=_group(chat))
        await self.deps.reply(msg, text, reply_markup=self.keyboard(sub))

    async def settings(self, update: Update, context: Context) -> None:
        """Show the current preferences with toggle buttons."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        sub = await self._subscriber(chat)
        if sub is None:
            await self.deps.reply(msg, self.deps.text("not_subscribed.html", group=_group(chat)))
            return
        await self.deps.reply(
            msg, await self.settings_text(sub, chat), reply_markup=self.keyboard(sub)
        )

    async def toggle(self, update: Update, context: Context) -> None:
        """A settings button: flip one preference and edit the settings message in place."""
        query = update.callback_query
        chat = update.effective_chat
        if query is None or chat is None or query.data is None:
            return
        name = query.data.removeprefix("set:")
        if name not in PREFS:
            await query.answer()
            return
        if not await self.may_manage(context, chat, query.from_user, None):
            await query.answer(self.deps.text("answer.txt", kind="group_admin_only"), True)
            return
        sub = await self._subscriber(chat)
        if sub is None:
            await query.answer(self.deps.text("answer.txt", kind="not_subscribed"), True)
            return
        prefs = {p: getattr(sub, p) for p in PREFS} | {name: not getattr(sub, name)}
        await self.subs.set_prefs(sub.id, **prefs)
        sub = await self.subs.get_by_id(sub.id) or sub
        await query.edit_message_text(
            await self.settings_text(sub, chat), parse_mode="HTML", reply_markup=self.keyboard(sub)
        )
        await query.answer(self.deps.text("answer.txt", kind="saved"))

    async def stop(self, update: Update, context: Context) -> None:
        """Unsubscribe the chat."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        sub = await self._subscriber(chat)
        if sub is not None:
            if not await self.may_manage(context, chat, update.effective_user, msg):
                await self.deps.reply(msg, self.deps.text("group_admin_only.html"))
                return
            await self.subs.set_status(sub.id, Status.UNSUBSCRIBED)
            log.info("bot: chat %s unsubscribed", chat.id)
        text = self.deps.text("stop.html", was_subscribed=sub is not None, group=_group(chat))
        await self.deps.reply(msg, text)

    async def latest(self, update: Update, context: Context) -> None:
        """The most recent posts as links."""
        msg = update.effective_message
        if msg is None:
            return
        posts = await self.deps.store.posts.latest(self.deps.latest_count)
        await self.deps.reply(
            msg,
            self.deps.text("latest.html", posts=posts),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def help(self, update: Update, context: Context) -> None:
        """What the bot does; admins also see their commands."""
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        admin = self.deps.is_admin(update.effective_user)
        await self.deps.reply(
            msg,
            self.deps.text("help.html", admin=admin, group=_group(chat)),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def migrated(self, update: Update, context: Context) -> None:
        """A group became a supergroup: the subscription follows it to the new chat id."""
        msg = update.effective_message
        if msg is None:
            return
        old, new = _migration(msg)
        if old is None or new is None:
            return
        sub = await self.subs.get(Channel.TELEGRAM, str(old))
        if sub is not None:
            await self.subs.change_address(sub.id, str(new))
            log.info("bot: group %s is now supergroup %s", old, new)

    async def membership(self, update: Update, context: Context) -> None:
        """The bot was blocked, or removed from a group: stop sending there."""
        change = update.my_chat_member
        if change is None or change.new_chat_member.status not in GONE:
            return
        await self._mark_blocked(change.chat.id)

    async def _mark_blocked(self, chat_id: int) -> None:
        sub = await self.subs.get(Channel.TELEGRAM, str(chat_id))
        if sub is not None and sub.status is Status.ACTIVE:
            await self.subs.set_status(sub.id, Status.BLOCKED)
            log.info("bot: chat %s blocked the bot or removed it", chat_id)

    async def on_error(self, update: object, context: Context) -> None:
        """The one error handler: blocked chats and migrations are data; the rest is logged."""
        error = context.error
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is not None and isinstance(error, Forbidden):
            await self._mark_blocked(chat.id)
            return
        if chat is not None and isinstance(error, ChatMigrated):
            sub = await self.subs.get(Channel.TELEGRAM, str(chat.id))
            if sub is not None:
                await self.subs.change_address(sub.id, str(error.new_chat_id))
            return
        if isinstance(error, RetryAfter):  # flood control on an edit or answer: one line
            where = chat.id if chat is not None else "?"
            log.warning("bot: Telegram flood control in chat %s: %s", where, error)
            return
        log.error("bot: handling an update failed", exc_info=error)
        msg = update.effective_message if isinstance(update, Update) else None
        if msg is not None and isinstance(update, Update) and update.callback_query is None:
            with suppress(TelegramError):
                await self.deps.reply(msg, self.deps.text("error.html"))


def _migration(msg: Message) -> tuple[int | None, int | None]:
    if msg.migrate_to_chat_id:
        return msg.chat.id, msg.migrate_to_chat_id
    if msg.migrate_from_chat_id:
        return msg.migrate_from_chat_id, msg.chat.id
    return None, None
