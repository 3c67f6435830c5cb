"""A python-telegram-bot request backend on aiohttp, for fast fan-out.

PTB's default HTTPXRequest spends most of its time in httpx itself; aiohttp's client
keeps a pool of keep-alive connections at a fraction of the per-request cost, which is
what a broadcast to thousands of chats needs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
# PTB marks "timeout not passed, use the default" with this sentinel's class (public API:
# `BaseRequest.DEFAULT_NONE`; the class itself lives in a private module).
_DEFAULT = type(BaseRequest.DEFAULT_NONE)


class UnreadableAnswer(NetworkError):
    """The Bot API's answer was not Bot API JSON: cut off on the way, or a proxy's page."""


class AiohttpRequest(BaseRequest):
    """`telegram.request.BaseRequest` over one aiohttp ClientSession with a connection pool."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 128,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session and its connection pool (idempotent)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                # PTB parses the body itself; skip aiohttp's cookie and redirect bookkeeping
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        """Close the session and every pooled connection (idempotent)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """The answer as JSON, or UnreadableAnswer if it is not a Bot API answer at all.

        PTB's own version raises a bare TelegramError (and logs the body at ERROR) that
        callers cannot tell from Telegram's verdicts; this one is a NetworkError: retry.
        """
        text = payload.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            kind = "cut-off or broken JSON" if text.lstrip()[:1] == "{" else "not JSON"
            raise UnreadableAnswer(f"not a Bot API answer: {kind} ({len(payload)} bytes)") from None
        if not isinstance(data, dict) or ("result" not in data and "description" not in data):
            raise UnreadableAnswer(
                f"not a Bot API answer: JSON without result ({len(payload)} bytes)"
            )
        return data

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Make one HTTP request; return status and body, or raise TimedOut/NetworkError."""
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized; call initialize() first")
        files = (
            request_data.multipart_data if request_data and request_data.contains_files else None
        )
        read = _pick(read_timeout, self._read_timeout)
        write = _pick(write_timeout, self._media_write_timeout if files else self._write_timeout)
        connect = _pick(connect_timeout, self._connect_timeout)
        pool = _pick(pool_timeout, self._pool_timeout)
        # aiohttp has no per-write timeout: an upload is bounded as a whole by `write` plus
        # `read`; `connect` covers waiting for a pooled connection and opening one.
        timeout = aiohttp.ClientTimeout(
            total=None if not files or write is None or read is None else write + read,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        kwargs: dict[str, Any] = {"timeout": timeout}
        if files:
            kwargs["data"] = _form_data(request_data, files)  # type: ignore[arg-type]
        elif request_data is not None and request_data.parameters:
            kwargs["data"] = request_data.url_encoded_parameters().encode()
            kwargs["headers"] = {"Content-Type": FORM}
        try:
            async with self._session.request(method, url, **kwargs) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp timeouts subclass it
            raise TimedOut(f"Timed out talking to the Bot API ({exc.__class__.__name__})") from exc
        except (aiohttp.InvalidURL, aiohttp.ClientResponseError) as exc:
            # These quote the URL, which carries the bot token: keep it out of logs and chains.
            name = exc.__class__.__name__
            raise NetworkError(f"aiohttp.{name}: the Bot API URL did not work") from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc


def _pick(value: object, default: float | None) -> float | None:
    """The timeout PTB passed, or `default` when it passed its "not set" sentinel."""
    if isinstance(value, _DEFAULT):
        return default
    if value is None or isinstance(value, int | float):
        return value
    raise TypeError(f"a timeout must be seconds or None, not {value!r}")


def _form_data(request_data: RequestData, files: dict[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime)
    return form
