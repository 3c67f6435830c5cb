"""Web input and output hygiene: header-breaking input, address validation, safe headers."""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import addresses

# CR and LF split headers, NUL ends strings in C code, and the other controls and Unicode
# line breaks have no business in an address: anything of the kind is refused outright.
_HEADER_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_EMAIL_CHARS = 320

SECURITY_HEADERS = (
    ("cache-control", "no-store"),
    # Token links must not leak to other sites through the Referer header.
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-robots-tag", "noindex"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
)


def breaks_headers(value: str) -> bool:
    """True when `value` holds a character that could split or end a mail header."""
    return _HEADER_BREAKING.search(value) is not None


def normalize_email(raw: str) -> str | None:
    """The address in its canonical ASCII form, or None if it is not a valid address."""
    value = raw.strip(" ")
    if not value or len(value) > _MAX_EMAIL_CHARS or breaks_headers(value):
        return None
    try:
        # The same form an import stores, so a sign-up and an import meet in one row.
        return addresses.normalize_email(value)
    except ValueError:
        return None


class SecurityHeaders:
    """Adds the headers every page should carry (no caching, no referrer, no framing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
