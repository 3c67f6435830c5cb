"""A fake Telegram Bot API server on 127.0.0.1 that answers, limits and fails like Telegram.

Point python-telegram-bot at it with `base_url=fake.base_url`; successful sends, edits and
deletes are recorded in `.sent`, every request in `.calls`, 429 answers are counted in
`.too_many`; `message(chat, id)` is what a chat shows now (None once deleted), and `age`
makes a chat's messages older (Telegram deletes only those under 48 hours). Faults are
injected per chat (`block`, `migrate`, `fail`, ...) or for every request (`fail_next`,
`garbage`, `unauthorized`, `delay`). Updates for a
polling bot are queued with `push_command` / `push_message` / `push_callback`; while a
webhook is set (`setWebhook`) they are POSTed to it instead, with the secret-token header,
one at a time and retried until answered 2xx (`.webhook_posts`), and getUpdates gets 409.
Run `python -m tests.fakes.bot_api --no-limits` to serve it alone (prints its base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.tg_html import TelegramHTMLError, check, utf16_len

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz0123"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Herald", "username": "herald_test_bot"}
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "copyMessage"})
EDIT_METHODS = frozenset(
    {"editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup"}
)
RECORDED = SEND_METHODS | EDIT_METHODS | {"deleteMessage"}
DELETE_WINDOW_S = 48 * 3600  # Telegram deletes a bot's message for everyone only this soon
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)
PHOTO_SIZE = {"file_id": "AgAD-fake", "file_unique_id": "fake-unique", "width": 640, "height": 480}
_RIGHTS = """can_be_edited is_anonymous can_manage_chat can_delete_messages can_manage_video_chats
can_restrict_members can_promote_members can_change_info can_invite_users can_post_stories
can_edit_stories can_delete_stories"""
ADMIN_RIGHTS = dict.fromkeys(_RIGHTS.split(), False) | {"can_manage_chat": True}
# 200 answers that are not Bot API JSON: a reply cut off mid-body, and a proxy's error page.
GARBAGE = (
    (b'{"ok":true,"result":{"message_id":1,"from":{"id":123456,"is_b', "application/json"),
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
)
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
GIFTS = dict.fromkeys(
    ["unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"], False
) | {"gifts_from_channels": False}


class ApiError(Exception):
    """An error answer: `{"ok": false, "error_code": code, "description": ..., ...}`."""

    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass
class Fault:
    """A fault that hits the next `times` requests, and every request until `until`."""

    times: int = 0
    until: float = 0.0  # time.monotonic()

    def arm(self, times: int, for_s: float) -> None:
        self.times = times
        self.until = time.monotonic() + for_s if for_s > 0 else 0.0

    def hit(self) -> bool:
        if self.times > 0:
            self.times -= 1
            return True
        return time.monotonic() < self.until


@dataclass
class Call:
    """One request as the server saw it, with the HTTP status it answered."""

    method: str
    params: dict[str, Any]
    status: int = 200
    description: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class WebhookPost:
    """One POST of an update to the webhook, with the status the bot's server answered."""

    update_id: int
    url: str
    status: int  # 0: no answer (refused, timed out)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Webhook:
    """What setWebhook set; `last_error` as getWebhookInfo reports it."""

    url: str
    secret_token: str | None
    last_error: tuple[int, str] | None = None  # (unix time, message)


@dataclass
class Sent:
    """One successful send or edit: what a user would see in the chat."""

    method: str
    chat_id: int | str  # int for numeric ids, "@name" for channel usernames
    message_id: int
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    allow_paid_broadcast: bool
    photo: str | None
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def silent(self) -> bool:
        """Sent with disable_notification: it arrived without a sound."""
        return _flag(self.params.get("disable_notification"))


def _chat_key(value: Any) -> int | str:
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1"}


def _obj(value: Any) -> Any:
    """Form fields carry nested objects as JSON strings; JSON bodies carry them as-is."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


class FakeBotAPI:
    """The fake server; use as `async with FakeBotAPI() as fake:`."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        global_rate: int | None = 30,
        paid_rate: int | None = 1000,
        chat_rate: float | None = 1.0,
        chat_burst: int = 3,
        record: bool = True,
    ) -> None:
        self.token = token
        self.global_rate, self.paid_rate = global_rate, paid_rate
        self.chat_rate, self.chat_burst = chat_rate, chat_burst
        self.record = record  # the benchmark turns bookkeeping lists off
        self.sent: list[Sent] = []
        self.calls: list[Call] = []
        self.too_many = 0
        self.commands: list[dict[str, Any]] = []
        self.base_url = self.base_file_url = ""
        # fault injection, keyed by chat id (int, or "@name")
        self.blocked: set[int | str] = set()
        self.deactivated: set[int | str] = set()
        self.missing: set[int | str] = set()
        self.migrated: dict[int | str, int] = {}
        self.failing: dict[int | str, tuple[int, int]] = {}  # chat → (times left, status)
        self.bad_photos: dict[str, str] = {}  # photo URL → description
        self.latency_s = 0.0
        self.chat_latency_s: dict[int | str, float] = {}
        self.fail_next_n, self.fail_next_status = 0, 502
        self.garbled, self.garbage_status = Fault(), 200
        self.revoked = Fault()  # 401 for every request, as if the token had been revoked
        self._garbage_kinds = itertools.cycle(GARBAGE)
        self.members: dict[tuple[int | str, int], str] = {}
        self._window: deque[float] = deque()
        self._buckets: dict[int | str, tuple[float, float]] = {}  # chat → (tokens, at)
        self._ids: dict[int | str, itertools.count[int]] = {}
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._photo_urls: dict[tuple[int | str, int], str] = {}  # a photo message's image URL
        self._chats: dict[int | str, dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Event()  # set and replaced on every change
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        # Webhook mode, as a local Bot API server (--local) runs it: http:// URLs accepted.
        self.https_only = False  # True: api.telegram.org's rule, https:// only
        self.webhook: Webhook | None = None
        self.webhook_posts: list[WebhookPost] = []
        self._pusher: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> FakeBotAPI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/bot"
        self.base_file_url = f"http://127.0.0.1:{port}/file/bot"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # ends pending long polls, so shutdown does not wait for them
        self._notify()
        await self._stop_pushing()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- fault injection and state for tests ----------------------------------------
    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot: 403."""
        self.blocked.add(_chat_key(chat_id))

    def deactivate(self, chat_id: int | str) -> None:
        """The user deleted their account: 403."""
        self.deactivated.add(_chat_key(chat_id))

    def not_found(self, chat_id: int | str) -> None:
        """The chat does not exist (or the bot was never in it): 400."""
        self.missing.add(_chat_key(chat_id))

    def migrate(self, chat_id: int | str, new_chat_id: int) -> None:
        """The group became a supergroup: 400 with migrate_to_chat_id."""
        self.migrated[_chat_key(chat_id)] = new_chat_id

    def fail(self, chat_id: int | str, times: int, status: int = 502) -> None:
        """The next `times` sends to the chat fail with a 5xx, then succeed."""
        self.failing[_chat_key(chat_id)] = (times, status)

    def fail_next(self, times: int, status: int = 502) -> None:
        """The next `times` requests of any method fail with a 5xx."""
        self.fail_next_n, self.fail_next_status = times, status

    def garbage(self, times: int = 0, *, for_s: float = 0.0, status: int = 200) -> None:
        """The next `times` requests (and all for `for_s` seconds) get `status` with a body
        that is not Bot API JSON, cut-off JSON and an HTML page in turn; nothing is executed."""
        self.garbled.arm(times, for_s)
        self.garbage_status = status

    def unauthorized(self, times: int = 0, *, for_s: float = 0.0) -> None:
        """The next `times` requests (and all for `for_s` seconds) get 401 Unauthorized, as
        when the token is revoked and later restored; getUpdates included."""
        self.revoked.arm(times, for_s)

    def bad_photo(
        self, url: str, description: str = "Bad Request: wrong file identifier/HTTP URL specified"
    ) -> None:
        """sendPhoto with this photo URL fails the way Telegram fails on a broken image."""
        self.bad_photos[url] = description

    def delay(self, seconds: float, chat_id: int | str | None = None) -> None:
        """Answer every request (or sends to one chat) after `seconds`."""
        if chat_id is None:
            self.latency_s = seconds
        else:
            self.chat_latency_s[_chat_key(chat_id)] = seconds

    def set_member(self, chat_id: int | str, user_id: int, status: str = "administrator") -> None:
        """getChatMember answers `status` (creator, administrator, member, left, kicked)."""
        self.members[(_chat_key(chat_id), user_id)] = status

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """What the chat shows now as that message (`photo_url`: its image), or None if it
        was deleted or never sent."""
        key = (_chat_key(chat_id), message_id)
        msg = self._messages.get(key)
        if msg is None:
            return None
        url = self._photo_urls.get(key)
        return dict(msg) | ({"photo_url": url} if url else {})

    def age(self, chat_id: int | str, seconds: float) -> None:
        """Make every message in the chat `seconds` older (past 48 h it cannot be deleted)."""
        chat = _chat_key(chat_id)
        for (c, _), msg in self._messages.items():
            if c == chat:
                msg["date"] = int(msg["date"] - seconds)

    def sent_to(self, chat_id: int | str) -> list[Sent]:
        """Successful sends and edits in one chat, oldest first."""
        key = _chat_key(chat_id)
        return [s for s in self.sent if s.chat_id == key]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until `predicate()` is true; AssertionError with the recent calls if not."""
        try:
            async with asyncio.timeout(timeout):
                await self._until(lambda: bool(predicate()))
        except TimeoutError:
            recent = [(c.method, c.status, c.description) for c in self.calls[-10:]]
            raise AssertionError(f"condition not met in {timeout}s; last calls: {recent}") from None

    # ---- updates for a polling bot --------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (its update_id is assigned here) for getUpdates."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return int(update["update_id"])

    def push_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        chat_type: str = "private",
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A user writes `text` in a chat; returns the new message_id."""
        user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = user["first_name"]
        else:
            chat["title"] = f"Chat {chat_id}"
        self._chats[_chat_key(chat_id)] = chat
        msg = self._new_message(chat_id, {"from": user, "text": text})
        if entities:
            msg["entities"] = entities
        if reply_to is not None:
            replied = self._messages.get((_chat_key(chat_id), reply_to))
            if replied is not None:
                msg["reply_to_message"] = replied
        self.push_update({"message": msg})
        return int(msg["message_id"])

    def push_command(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        chat_type: str = "private",
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A user sends a command such as `/start ref`; returns the new message_id."""
        command = text.split(maxsplit=1)[0]
        cmd_entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
        return self.push_message(
            chat_id, user_id, text, chat_type, [cmd_entity, *(entities or [])], reply_to
        )

    def push_callback(self, chat_id: int, user_id: int, data: str, message_id: int) -> str:
        """A user presses an inline button on `message_id`; returns the callback query id."""
        message = self._messages.get((_chat_key(chat_id), message_id)) or {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "text": "",
        }
        query_id = str(next(self._callback_ids))
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"},
                    "chat_instance": f"ci{chat_id}",
                    "data": data,
                    "message": message,
                }
            }
        )
        return query_id

    # ---- the HTTP side --------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        if self.garbled.hit():
            junk, content_type = next(self._garbage_kinds)
            call.status, call.description = self.garbage_status, "garbage"
            self._log(call)
            return web.Response(body=junk, status=call.status, content_type=content_type)
        try:
            if request.match_info["token"] != self.token or self.revoked.hit():
                raise ApiError(401, "Unauthorized")
            result = await self._dispatch(method, params)
        except ApiError as err:
            call.status, call.description = err.code, err.description
            body: dict[str, Any] = {
                "ok": False,
                "error_code": err.code,
                "description": err.description,
            }
            if err.parameters:
                body["parameters"] = err.parameters
            response = web.json_response(body, status=err.code)
        else:
            response = web.json_response({"ok": True, "result": result})
        self._log(call)
        return response

    def _log(self, call: Call) -> None:
        if self.record:
            self.calls.append(call)
            self._notify()

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                for key, value in (await request.post()).items():
                    name = value.filename if isinstance(value, web.FileField) else "?"
                    params[key] = value if isinstance(value, str) else f"<upload {name}>"
        return params

    async def _dispatch(self, method: str, p: dict[str, Any]) -> Any:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.fail_next_n > 0:
            self.fail_next_n -= 1
            raise ApiError(self.fail_next_status, "Bad Gateway")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(p)

    def _check_chat(self, p: dict[str, Any]) -> int | str:
        if "chat_id" not in p or p["chat_id"] in ("", None):
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = _chat_key(p["chat_id"])
        if chat in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat in self.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if chat in self.missing:
            raise ApiError(400, "Bad Request: chat not found")
        if chat in self.migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.migrated[chat],
            )
        times, status = self.failing.get(chat, (0, 0))
        if times > 0:
            self.failing[chat] = (times - 1, status)
            raise ApiError(status, "Bad Gateway" if status == 502 else "Internal Server Error")
        return chat

    @staticmethod
    def _check_text(text: Any, parse_mode: Any, *, caption: bool) -> None:
        if text is None or text == "":
            if not caption:
                raise ApiError(400, "Bad Request: message text is empty")
            return
        try:
            if str(parse_mode).upper() == "HTML":
                check(str(text), caption=caption)
            elif utf16_len(str(text)) > (1024 if caption else 4096):
                raise TelegramHTMLError(
                    "message caption is too long" if caption else "message is too long"
                )
            elif not caption and not str(text).strip():
                raise TelegramHTMLError("message text is empty")
        except TelegramHTMLError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None

    def _check_rate(self, chat: int | str, paid: bool) -> None:
        now = time.monotonic()
        window = self._window
        while window and now - window[0] >= 1.0:
            window.popleft()
        limit = self.paid_rate if paid else self.global_rate
        if limit is not None and len(window) >= limit:
            self._too_many(max(1, math.ceil(1.0 - (now - window[0]))))
        if self.chat_rate is not None:
            tokens, at = self._buckets.get(chat, (float(self.chat_burst), now))
            tokens = min(float(self.chat_burst), tokens + (now - at) * self.chat_rate)
            if tokens < 1.0:
                self._buckets[chat] = (tokens, now)
                self._too_many(max(1, math.ceil((1.0 - tokens) / self.chat_rate)))
            self._buckets[chat] = (tokens - 1.0, now)
        window.append(now)

    def _too_many(self, retry_after_s: int) -> None:
        self.too_many += 1
        raise ApiError(
            429, f"Too Many Requests: retry after {retry_after_s}", retry_after=retry_after_s
        )

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        key = _chat_key(chat_id)
        if key in self._chats:
            return self._chats[key]
        if isinstance(key, str):
            return {"id": -1001000000000, "type": "channel", "title": key, "username": key[1:]}
        if key > 0:
            return {"id": key, "type": "private", "first_name": f"User{key}"}
        kind = "supergroup" if str(key).startswith("-100") else "group"
        return {"id": key, "type": kind, "title": f"Chat {key}"}

    def _new_message(self, chat_id: int | str, body: dict[str, Any]) -> dict[str, Any]:
        key = _chat_key(chat_id)
        counter = self._ids.setdefault(key, itertools.count(1))
        message_id = next(counter)
        msg = {"message_id": message_id, "date": int(time.time()), "chat": self._chat(key)}
        msg.update(body)
        self._messages[(key, message_id)] = msg
        return msg

    def _record(
        self,
        method: str,
        chat: int | str,
        msg: dict[str, Any],
        p: dict[str, Any],
        *,
        mode: str | None = None,
    ) -> None:
        if self.record:
            paid, markup = _flag(p.get("allow_paid_broadcast")), _obj(p.get("reply_markup"))
            text, caption, mid = msg.get("text"), msg.get("caption"), msg["message_id"]
            photo = self._photo_urls.get((chat, mid)) if "photo" in msg else None
            mode = mode or p.get("parse_mode")
            self.sent.append(Sent(method, chat, mid, text, caption, mode, markup, paid, photo, p))

    async def _send(self, p: dict[str, Any], method: str, body: dict[str, Any]) -> dict[str, Any]:
        chat = self._check_chat(p)
        if chat in self.chat_latency_s:
            await asyncio.sleep(self.chat_latency_s[chat])
        paid = _flag(p.get("allow_paid_broadcast"))
        self._check_rate(chat, paid)
        markup = _obj(p.get("reply_markup"))
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            body["reply_markup"] = markup
        msg = self._new_message(chat, {"from": BOT_USER, **body})
        if method == "sendPhoto":
            self._photo_urls[(chat, msg["message_id"])] = str(p["photo"])
        self._record(method, chat, msg, p)
        return msg

    # ---- methods --------------------------------------------------------------------
    async def _m_getMe(self, p: dict[str, Any]) -> Any:
        return BOT_USER | {"can_join_groups": True, "can_read_all_group_messages": False}

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = int(p.get("offset") or 0)
        limit = int(p.get("limit") or 100)
        timeout = float(p.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0 and not self._closing.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._until(
                        lambda: (
                            bool(self._updates)
                            or self._closing.is_set()
                            or self.webhook is not None
                        )
                    )
            except TimeoutError:
                pass
        if self.webhook is not None:  # set during the poll: Telegram ends it so
            raise ApiError(409, WEBHOOK_CONFLICT)
        return self._updates[:limit]

    # ---- webhook mode ---------------------------------------------------------------
    async def _m_setWebhook(self, p: dict[str, Any]) -> Any:
        url = str(p.get("url") or "")
        if not url:  # Telegram: an empty URL removes the webhook
            return await self._m_deleteWebhook(p)
        scheme = url.partition("://")[0].lower()
        if scheme != "https" and (self.https_only or scheme != "http"):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = p.get("secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if _flag(p.get("drop_pending_updates")):
            self._updates.clear()
        await self._stop_pushing()
        self.webhook = Webhook(url, None if secret is None else str(secret))
        self._pusher = asyncio.create_task(self._push_to_webhook(self.webhook))
        self._notify()
        return True

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        if _flag(p.get("drop_pending_updates")):
            self._updates.clear()
        await self._stop_pushing()
        self.webhook = None
        self._notify()
        return True

    async def _m_getWebhookInfo(self, p: dict[str, Any]) -> Any:
        hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook is not None:
            info["max_connections"] = 40
            if hook.last_error is not None:
                info["last_error_date"], info["last_error_message"] = hook.last_error
        return info

    async def _stop_pushing(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None

    async def _push_to_webhook(self, hook: Webhook) -> None:
        """Telegram's side of webhook mode: POST each update in turn until answered 2xx."""
        headers = (
            {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
        )
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            delay_s = 0.1
            while True:
                await self._until(lambda: bool(self._updates) or self._closing.is_set())
                if self._closing.is_set():
                    return
                update = self._updates[0]
                status, error = 0, ""
                try:
                    async with session.post(hook.url, json=update, headers=headers) as answer:
                        status = answer.status
                        error = f"Wrong response from the webhook: {answer.status} {answer.reason}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"Connection failed: {exc.__class__.__name__}"
                self.webhook_posts.append(WebhookPost(int(update["update_id"]), hook.url, status))
                if 200 <= status < 300:
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    delay_s = 0.1
                    self._notify()
                    continue
                hook.last_error = (int(time.time()), error)
                self._notify()
                await asyncio.sleep(delay_s)  # Telegram backs off a failing webhook too
                delay_s = min(delay_s * 2, 2.0)

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:
        self.commands = list(_obj(p.get("commands")) or [])
        return True

    async def _m_getMyCommands(self, p: dict[str, Any]) -> Any:
        return self.commands

    async def _m_sendChatAction(self, p: dict[str, Any]) -> Any:
        self._check_chat(p)
        return True

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        self._check_text(p.get("text"), p.get("parse_mode"), caption=False)
        return await self._send(p, "sendMessage", {"text": p["text"]})

    async def _m_sendPhoto(self, p: dict[str, Any]) -> Any:
        photo = p.get("photo")
        if not photo:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        self._check_text(p.get("caption"), p.get("parse_mode"), caption=True)
        if photo in self.bad_photos:
            self._check_chat(p)
            raise ApiError(400, self.bad_photos[photo])
        body: dict[str, Any] = {"photo": [PHOTO_SIZE]}
        if p.get("caption"):
            body["caption"] = p["caption"]
        return await self._send(p, "sendPhoto", body)

    async def _m_copyMessage(self, p: dict[str, Any]) -> Any:
        source = self._messages.get((_chat_key(p.get("from_chat_id")), int(p["message_id"])))
        if source is None:
            raise ApiError(400, "Bad Request: message to copy not found")
        body: dict[str, Any] = {
            k: source[k] for k in ("text", "entities", "caption", "photo") if k in source
        }
        msg = await self._send(p, "copyMessage", body)
        return {"message_id": msg["message_id"]}

    async def _acted_on(self, p: dict[str, Any], verb: str) -> tuple[tuple[int | str, int], Any]:
        """The chat and message an edit or delete acts on; it counts in the limits like a send."""
        chat = self._check_chat(p)
        if chat in self.chat_latency_s:
            await asyncio.sleep(self.chat_latency_s[chat])
        self._check_rate(chat, paid=False)
        try:
            key = (chat, int(p.get("message_id") or 0))
        except ValueError:
            raise ApiError(400, "Bad Request: message identifier is not specified") from None
        msg = self._messages.get(key)
        if msg is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        return key, msg

    async def _edit(
        self,
        p: dict[str, Any],
        method: str,
        *,
        text: str | None = None,
        caption: str | None = None,
        photo: str | None = None,
        mode: str | None = None,
    ) -> Any:
        """Change what the message shows: its text, or a photo's caption (and image)."""
        key, msg = await self._acted_on(p, "edit")
        if text is not None and "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if method == "editMessageCaption" and "photo" not in msg:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        if photo is not None and "photo" not in msg:
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        markup = _obj(p.get("reply_markup")) or None
        changed = markup != msg.get("reply_markup")
        if text is not None:
            changed = changed or text != msg.get("text")
        if method in ("editMessageCaption", "editMessageMedia"):
            changed = changed or (caption or None) != msg.get("caption")
        if photo is not None:
            changed = changed or photo != self._photo_urls.get(key)
        if not changed:
            raise ApiError(400, NOT_MODIFIED)
        if text is not None:
            msg["text"] = text
        if method in ("editMessageCaption", "editMessageMedia"):
            msg.pop("caption", None)
            if caption:
                msg["caption"] = caption
        if photo is not None:
            self._photo_urls[key] = photo
        msg.pop("reply_markup", None)
        if markup:  # an edit without reply_markup removes the buttons, as Telegram does
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        self._record(method, key[0], msg, p, mode=mode)
        return msg

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        self._check_text(p.get("text"), p.get("parse_mode"), caption=False)
        return await self._edit(p, "editMessageText", text=str(p["text"]))

    async def _m_editMessageCaption(self, p: dict[str, Any]) -> Any:
        caption = p.get("caption")
        self._check_text(caption, p.get("parse_mode"), caption=True)
        return await self._edit(p, "editMessageCaption", caption=str(caption or ""))

    async def _m_editMessageMedia(self, p: dict[str, Any]) -> Any:
        media = _obj(p.get("media"))
        if not isinstance(media, dict) or not media.get("media"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media not found")
        if media.get("type") != "photo":
            raise ApiError(400, "Bad Request: can't parse InputMedia: unsupported media type")
        caption, mode = media.get("caption"), media.get("parse_mode")
        self._check_text(caption, mode, caption=True)
        url = str(media["media"])
        if url in self.bad_photos:
            self._check_chat(p)
            raise ApiError(400, self.bad_photos[url])
        return await self._edit(
            p, "editMessageMedia", caption=str(caption or ""), photo=url, mode=mode
        )

    async def _m_editMessageReplyMarkup(self, p: dict[str, Any]) -> Any:
        return await self._edit(p, "editMessageReplyMarkup")

    async def _m_deleteMessage(self, p: dict[str, Any]) -> Any:
        key, msg = await self._acted_on(p, "delete")
        if time.time() - msg["date"] > DELETE_WINDOW_S:
            raise ApiError(400, "Bad Request: message can't be deleted for everyone")
        self._record("deleteMessage", key[0], msg, p)
        del self._messages[key]
        self._photo_urls.pop(key, None)
        return True

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        if not p.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        return True

    def _member(self, chat: int | str, user_id: int) -> dict[str, Any]:
        user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        status = self.members.get((chat, user_id), "member")
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(ADMIN_RIGHTS)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    async def _m_getChatMember(self, p: dict[str, Any]) -> Any:
        chat = self._check_chat(p)
        return self._member(chat, int(p["user_id"]))

    async def _m_getChatAdministrators(self, p: dict[str, Any]) -> Any:
        chat = self._check_chat(p)
        users = [u for (c, u), s in self.members.items() if c == chat and s in ADMIN_STATUSES]
        return [self._member(chat, u) for u in users]

    async def _m_getChat(self, p: dict[str, Any]) -> Any:
        chat = self._check_chat(p)
        info = {"accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": GIFTS}
        return self._chat(chat) | info


ADMIN_STATUSES = frozenset({"administrator", "creator"})


async def _serve(limits: bool) -> None:
    rates: dict[str, Any] = {} if limits else {"global_rate": None, "paid_rate": None}
    async with FakeBotAPI(record=False, **rates) as fake:
        if not limits:
            fake.chat_rate = None
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """Serve the fake alone (for benchmarks): prints its base URL, runs until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-limits", action="store_true", help="disable rate limits")
    args = parser.parse_args()
    asyncio.run(_serve(limits=not args.no_limits))


if __name__ == "__main__":
    main()
