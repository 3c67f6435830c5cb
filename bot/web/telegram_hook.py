"""Telegram's webhook (HERALD_TELEGRAM_WEBHOOK_URL): the updates Telegram posts to Herald.

Telegram sends `X-Telegram-Bot-Api-Secret-Token` with the token given to `setWebhook`; a
request without it, or with another, gets 401 before its body is read. An accepted update
is handed to `on_update` (the bot's queue, joined in by the composition root: the web app
may not import telegram) and answered 200 at once, so Telegram never waits on a handler.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.web.limits import capped_body

log = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# An update is a message of at most 4096 characters with its entities, a few KiB as JSON;
# anything near this is not from Telegram.
MAX_BODY_BYTES = 256 * 1024
REFUSED_LOG_INTERVAL_S = 60.0  # a flood of forged posts is one log line a minute

OnUpdate = Callable[[dict[str, Any]], Awaitable[None]]


def update_of(body: bytes) -> dict[str, Any] | None:
    """The JSON object of an update (it has an integer `update_id`), or None."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    return data


def telegram_hook_routes(
    *,
    path: str,
    secret: str,
    on_update: OnUpdate,
    clock: Callable[[], float] = time.monotonic,
) -> list[Route]:
    """The webhook route at `path`; `on_update(data)` gets each update with the right secret.

    `on_update` raises ValueError for JSON that is not an update (answered 400).
    """
    expected = secret.encode()
    refused_at: list[float] = []  # when a refusal was last logged

    def refused(reason: str) -> Response:
        now = clock()
        if not refused_at or now - refused_at[0] >= REFUSED_LOG_INTERVAL_S:
            refused_at[:] = [now]
            log.warning("telegram webhook: refused a post to %s (%s)", path, reason)
        return PlainTextResponse("unauthorized\n", status_code=401)

    async def endpoint(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return refused("no secret-token header")
        if not hmac.compare_digest(given.encode(), expected):
            return refused("wrong secret token")
        try:
            body = await capped_body(request, MAX_BODY_BYTES)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            return PlainTextResponse("payload too large\n", status_code=413)
        data = update_of(body)
        if data is None:
            log.warning("telegram webhook: a post with the right secret was not an update")
            return PlainTextResponse("not an update\n", status_code=400)
        try:
            await on_update(data)
        except ValueError as exc:
            log.warning("telegram webhook: update %s not taken: %s", data["update_id"], exc)
            return PlainTextResponse("not an update\n", status_code=400)
        return Response(status_code=200)

    return [Route(path, endpoint, methods=["POST"])]
