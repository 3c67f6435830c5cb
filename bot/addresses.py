"""Subscriber addresses in their stored form: one normaliser for web sign-ups and CSV imports."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from bot.models import Channel

_CHAT_ID = re.compile(r"-?[1-9][0-9]{0,19}")
_FORMULA_START = ("=", "+", "-", "@", "|", "%")


def normalize_email(address: str) -> str:
    """A valid address in its canonical ASCII form (as the web form stores it), or ValueError."""
    if address.strip().startswith(_FORMULA_START):
        # Valid in RFC 5322 but never a real reader's, and a formula when an export is
        # opened in a spreadsheet.
        raise ValueError(f"{address!r} is not accepted: it starts with {address.strip()[0]!r}")
    try:
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not a valid email address ({exc})") from None
    # No DNS lookups: the confirmation email is the real test that an address works.
    return str(checked.ascii_email or checked.normalized)


def normalize_address(channel: Channel, address: str) -> str:
    """The stored form of an address: a numeric chat id, or a normalised email."""
    if channel is Channel.EMAIL:
        return normalize_email(address)
    text = address.strip()
    if not _CHAT_ID.fullmatch(text):
        raise ValueError(f"{address!r} is not a numeric Telegram chat id")
    return text


def parse_channel(text: str) -> Channel:
    """`telegram` or `email` (any case), or ValueError."""
    try:
        return Channel(text.strip().lower())
    except ValueError:
        raise ValueError(f"channel {text!r} is neither telegram nor email") from None
