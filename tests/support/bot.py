"""The bot harness: a real PTB Application against the fake Bot API, a real store and Publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram.ext import Application, ApplicationBuilder

from bot.chat.deps import BotDeps
from bot.chat.handlers import register
from bot.models import Channel
from bot.outbox.publish import Publisher
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from tests.fakes.bot_api import FakeBotAPI, Sent

ADMIN = 42
OTHER_ADMIN = 43  # a second admin, for drafts that belong to one admin
USER = 7
GROUP = -555
SITE_DIR = Path(__file__).resolve().parents[2] / "examples" / "site"


@dataclass
class SpyPublisher:
    """The real Publisher, with its broadcast and resend calls recorded (broadcast slowable)."""

    real: Publisher
    calls: list[tuple[str, int]] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    delay_s: float = 0.0

    async def count_broadcast_recipients(self) -> int:
        return await self.real.count_broadcast_recipients()

    async def broadcast(self, html: str, *, admin_id: int) -> int:
        self.calls.append((html, admin_id))
        await asyncio.sleep(self.delay_s)
        return await self.real.broadcast(html, admin_id=admin_id)

    async def retry_failed(self, job_id: int | None = None) -> int:
        count = await self.real.retry_failed(job_id)
        self.retries.append(count)
        return count


@dataclass
class Env:
    fake: FakeBotAPI
    app: Application[Any, Any, Any, Any, Any, Any]
    store: Store
    publisher: SpyPublisher
    deps: BotDeps
    settings: Settings
    offset: int = 0

    async def drain(self) -> None:
        """Fetch the queued updates with the real getUpdates and process each in turn."""
        updates = await self.app.bot.get_updates(offset=self.offset, timeout=0)
        for update in updates:
            self.offset = update.update_id + 1
            await self.app.process_update(update)

    async def command(self, chat: int, user: int, text: str, **kw: Any) -> list[Sent]:
        """Send a command and return what the bot sent or edited in that chat because of it."""
        before = len(self.fake.sent)
        self.fake.push_command(chat, user, text, **kw)
        await self.drain()
        return [s for s in self.fake.sent[before:] if s.chat_id == chat]

    async def press(self, chat: int, user: int, data: str, message_id: int) -> dict[str, Any]:
        """Press an inline button; returns the answerCallbackQuery parameters."""
        query_id = self.fake.push_callback(chat, user, data, message_id)
        await self.drain()
        answers = [
            c.params
            for c in self.fake.calls
            if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
        ]
        assert len(answers) == 1
        return answers[0]

    async def sub(self, chat: int) -> Any:
        return await self.store.subscribers.get(Channel.TELEGRAM, str(chat))


def bot_settings(tmp_path: Path, fake: FakeBotAPI, *, outbox_mode: bool = False) -> Settings:
    """Settings for the harness; in outbox mode no transport is configured (stand-ins join)."""
    transports: dict[str, Any] = {
        "telegram_token": fake.token,
        "telegram_api_url": fake.base_url,
        "smtp_url": "smtp://127.0.0.1:1",
    }
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        site_dir=SITE_DIR,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        outbox_dir=tmp_path / "outbox",
        admin_ids=f"{ADMIN},{OTHER_ADMIN}",
        secret_key="test-secret",
        **({} if outbox_mode else transports),
    )


@asynccontextmanager
async def bot_env(
    tmp_path: Path, fake: FakeBotAPI, *, outbox_mode: bool = False
) -> AsyncIterator[Env]:
    """The bot's handlers in a PTB Application talking to `fake`, over a fresh store."""
    fake.chat_rate = None  # replies to commands are not a fan-out
    settings = bot_settings(tmp_path, fake, outbox_mode=outbox_mode)
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    async with open_store(settings.database_path) as store:
        publisher = SpyPublisher(
            Publisher(
                store,
                renderer,
                stand_ins=settings.stand_in_channels,
                channel=settings.telegram_channel,
            )
        )
        deps = BotDeps(
            store=store,
            renderer=renderer,
            publisher=publisher,
            admin_ids=settings.admin_user_ids,
            digest_time=settings.digest_time,
        )
        app = ApplicationBuilder().token(fake.token).base_url(fake.base_url).build()
        register(app, deps)
        await app.initialize()
        try:
            yield Env(fake, app, store, publisher, deps, settings)
        finally:
            await app.shutdown()


def buttons(sent: Sent) -> list[tuple[str, str]]:
    assert sent.reply_markup is not None
    rows = sent.reply_markup["inline_keyboard"]
    return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def edits(env: Env, chat: int) -> list[Sent]:
    return [s for s in env.fake.sent_to(chat) if s.method == "editMessageText"]
