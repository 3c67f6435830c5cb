"""Telegram's HTML parse mode, checked as strictly as the Bot API does.

Used by the fake Bot API server and by formatter tests, so both apply the same rules:
only the supported tags, balanced, `&` only as a known entity, `<` only as a tag, and
the visible text within the limit (counted in UTF-16 code units, as Telegram does).
"""

from __future__ import annotations

import html
import re

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*>")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_ATTR = re.compile(r'\s*([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s"\'>]+)))?')
_ALIASES = {"strong": "b", "em": "i", "ins": "u", "strike": "s", "del": "s"}
_SIMPLE = {"b", "i", "u", "s", "tg-spoiler"}


class TelegramHTMLError(ValueError):
    """What the Bot API answers as `Bad Request: can't parse entities: ...`."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _attrs(raw: str, tag: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pos = 0
    raw = raw.strip()
    while pos < len(raw):
        m = _ATTR.match(raw, pos)
        if not m or m.end() == pos:
            raise TelegramHTMLError(f'can\'t parse entities: bad attribute in tag "{tag}"')
        value = next((g for g in m.groups()[1:] if g is not None), "")
        attrs[m.group(1).lower()] = html.unescape(value)
        pos = m.end()
    return attrs


def _check_open(name: str, attrs: dict[str, str], stack: list[str]) -> None:
    if stack and stack[-1] in {"pre", "code"} and not (name == "code" and stack[-1] == "pre"):
        raise TelegramHTMLError(
            f'can\'t parse entities: tag "{name}" is not allowed inside "{stack[-1]}"'
        )
    if name == "a":
        if "href" not in attrs or not attrs["href"].strip():
            raise TelegramHTMLError('can\'t parse entities: tag "a" must have href')
        if "a" in stack:
            raise TelegramHTMLError("can't parse entities: nested links are not allowed")
    elif name == "span":
        if attrs.get("class") != "tg-spoiler":
            raise TelegramHTMLError('can\'t parse entities: unsupported start tag "span"')
    elif name == "code":
        cls = attrs.get("class", "")
        if cls and not cls.startswith("language-"):
            raise TelegramHTMLError('can\'t parse entities: bad class of tag "code"')
    elif name == "blockquote":
        if set(attrs) - {"expandable"}:
            raise TelegramHTMLError('can\'t parse entities: bad attribute of "blockquote"')
        if "blockquote" in stack:
            raise TelegramHTMLError("can't parse entities: nested blockquotes")
    elif name == "tg-emoji":
        if "emoji-id" not in attrs:
            raise TelegramHTMLError('can\'t parse entities: tag "tg-emoji" needs emoji-id')
    elif attrs:
        raise TelegramHTMLError(f'can\'t parse entities: tag "{name}" takes no attributes')


def visible_text(message: str) -> str:
    """The text a reader sees, or TelegramHTMLError for what the Bot API would refuse."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    n = len(message)
    while i < n:
        ch = message[i]
        if ch == "<":
            m = _TAG.match(message, i)
            if not m:
                raise TelegramHTMLError(
                    f"can't parse entities: unsupported start tag at byte offset {i}"
                )
            closing, name = m.group(1) == "/", m.group(2).lower()
            name = _ALIASES.get(name, name)
            if name not in _SIMPLE | {"a", "code", "pre", "blockquote", "span", "tg-emoji"}:
                raise TelegramHTMLError(f'can\'t parse entities: unsupported start tag "{name}"')
            if closing:
                if not stack or stack[-1] != name:
                    raise TelegramHTMLError(
                        f"can't parse entities: can't find end tag corresponding to \"{name}\""
                    )
                stack.pop()
            else:
                _check_open(name, _attrs(m.group(3), name), stack)
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(message, i)
            if not m:
                raise TelegramHTMLError(
                    f"can't parse entities: unsupported entity at byte offset {i}"
                )
            out.append(html.unescape(m.group(0)))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise TelegramHTMLError(f"can't parse entities: can't find end tag for \"{stack[-1]}\"")
    return "".join(out)


def check(message: str, *, caption: bool = False) -> str:
    """Validate a message or caption; returns its visible text."""
    text = visible_text(message)
    limit = CAPTION_LIMIT if caption else MESSAGE_LIMIT
    if utf16_len(text) > limit:
        raise TelegramHTMLError("message caption is too long" if caption else "message is too long")
    if not caption and not text.strip():
        raise TelegramHTMLError("message text is empty")
    return text
