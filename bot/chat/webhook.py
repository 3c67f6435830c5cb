"""Webhook mode, the PTB side: Telegram's secret token, `setWebhook`, and updates handed on.

The web endpoint (bot.web.telegram_hook) checks the header and parses the body; it may
not import telegram, so the composition root joins it to `update_receiver` here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.error import BadRequest

from bot.errors import ConfigError

log = logging.getLogger(__name__)

# The secret token is derived from Herald's secret key, so every process of one install
# agrees on it without another setting; the label keeps it apart from other uses of the key.
_LABEL = b"herald telegram webhook secret_token v1"

OnUpdate = Callable[[dict[str, Any]], Awaitable[None]]
# PTB logs every call's parameters at DEBUG (`herald -v`), setWebhook's secret_token too.
PTB_BOT_LOGGER = "telegram.Bot"


class _Redact(logging.Filter):
    """Replaces one secret in each record of the logger it filters."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, "[secret]"), None
        return True


def _keep_out_of_logs(secret: str) -> None:
    logger = logging.getLogger(PTB_BOT_LOGGER)
    if not any(isinstance(f, _Redact) and f.secret == secret for f in logger.filters):
        logger.addFilter(_Redact(secret))


def secret_token(secret_key: str) -> str:
    """Telegram's `secret_token` for this install: 43 characters of [A-Za-z0-9_-]."""
    digest = hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def set_webhook(bot: Bot, url: str, secret_key: str) -> None:
    """`setWebhook(url, secret_token)`; ConfigError when Telegram refuses the URL."""
    token = secret_token(secret_key)
    _keep_out_of_logs(token)  # whoever knows it can post updates as any user, admins too
    try:
        await bot.set_webhook(url=url, secret_token=token)
    except BadRequest as exc:  # "bad webhook: …": the URL's form, host, port or certificate
        raise ConfigError(
            f"HERALD_TELEGRAM_WEBHOOK_URL: Telegram refused {url}: {exc.message}; use a public "
            "https:// URL on port 443, 80, 88 or 8443 (http:// only with a local Bot API server)"
        ) from None


def update_receiver(application: Any) -> OnUpdate:
    """What the web endpoint calls with each update's JSON: it joins the Application's queue.

    ValueError when the JSON is not an update.
    """

    async def on_update(data: dict[str, Any]) -> None:
        try:
            update = Update.de_json(data, application.bot)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a Telegram update: {exc!r}") from None
        await application.update_queue.put(update)

    return on_update
