"""Simpler forms of a Telegram message that Telegram refused: text without the photo, plain
text, and an edit saying it was withdrawn for a message too old to delete."""

from __future__ import annotations

import html
import re

from bot.models import DELETE, EDIT_CAPTION, EDIT_MEDIA, EDIT_TEXT, Degrade, TelegramMessage

_TAG = re.compile(r"<[^>]*>")


def plain_text(text_html: str) -> str:
    """Telegram HTML without any markup, escaped again so it is valid with parse_mode=HTML."""
    return html.escape(html.unescape(_TAG.sub("", text_html)), quote=False)


def degrade(message: TelegramMessage, flags: Degrade) -> TelegramMessage:
    """The message as sent after the simplifications in `flags`."""
    if not flags:  # nearly every send: no copy on the fan-out path
        return message
    method, photo, text = message.method, message.photo, message.text
    if flags & Degrade.NO_DELETE and method == DELETE:
        # Telegram keeps it (past 48 hours): edit it to the withdrawn notice in `text`.
        method = EDIT_CAPTION if photo else EDIT_TEXT
    if flags & Degrade.NO_PHOTO:
        if method == "sendPhoto":
            method, photo = "sendMessage", None
        elif method == EDIT_MEDIA:  # the new image failed: the old one stays, caption edited
            method = EDIT_CAPTION
    if flags & Degrade.PLAIN:
        text = plain_text(text)
    return TelegramMessage(method, text, photo, message.button_text, message.button_url)
