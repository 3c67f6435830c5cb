"""What the chat handlers need, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from telegram import Message, User

from bot.chat.pacing import ReplyPacer
from bot.models import TelegramMessage
from bot.settings import Site
from bot.store import Store


class BotRenderer(Protocol):
    """What handlers need from bot.render.renderer.Renderer."""

    site: Site  # the topics offer (`herald.topics`) and the site's time zone

    def text(self, template: str, **ctx: Any) -> str: ...

    def broadcast_messages(self, html: str) -> tuple[TelegramMessage, ...]: ...


class BroadcastPublisher(Protocol):
    """What handlers need from bot.outbox.publish.Publisher."""

    async def broadcast(self, html: str, *, admin_id: int) -> int: ...

    async def count_broadcast_recipients(self) -> int: ...

    async def retry_failed(self, job_id: int | None = None) -> int: ...


@dataclass(frozen=True)
class BotDeps:
    """Everything the handlers use, built once by the composition root."""

    store: Store
    renderer: BotRenderer
    publisher: BroadcastPublisher
    admin_ids: frozenset[int]  # Telegram user ids (HERALD_ADMIN_IDS)
    digest_time: str  # the site's digest time (HERALD_DIGEST_TIME): a reader's default
    latest_count: int = 5
    pacer: ReplyPacer = field(default_factory=ReplyPacer)  # shared with the update processor

    async def reply(self, msg: Message, text: str, /, **kwargs: Any) -> Message | None:
        """Reply in HTML at the chat's pace; None when skipped, a newer update answering."""
        return await self.pacer.send(msg.chat_id, lambda: msg.reply_html(text, **kwargs))

    def text(self, template: str, /, **ctx: Any) -> str:
        """A reply from templates/telegram/bot/."""
        return self.renderer.text(f"telegram/bot/{template}", **ctx)

    @property
    def site(self) -> Site:
        return self.renderer.site

    @property
    def site_zone(self) -> ZoneInfo:
        """The site's time zone (HERALD_TIMEZONE, else _config.yml): a reader's default."""
        return self.renderer.site.tz

    def is_admin(self, user: User | None) -> bool:
        return user is not None and user.id in self.admin_ids
