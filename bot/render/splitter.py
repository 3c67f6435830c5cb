"""Split Telegram HTML into messages within the Bot API's limits; pure functions.

Telegram counts a message's length in UTF-16 code units of its text after entity parsing,
so tags cost nothing and `&amp;` costs one. A cut never falls inside a tag or an entity;
tags open at the cut are closed at the end of one part and reopened at the start of the next.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

_ATOM = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^<>]*>|&(?:#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-z]+);|[^<&]"
)
_TAG_OR_ENTITY = re.compile(r"<[^<>]*>|&(?:#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-z]+);")
_SENTENCE_END = frozenset(".!?…。")
_CLOSERS = frozenset("\"'”’»)]")
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")

# An atom: (raw markup, visible text, tag name or "", is a closing tag).
Atom = tuple[str, str, str, bool]


class MarkupError(ValueError):
    """The HTML is not something the Bot API would accept (unbalanced tag, bare `<` or `&`)."""


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def visible_text(markup: str) -> str:
    """The text a reader sees: tags removed, entities decoded."""
    return html.unescape(
        _TAG_OR_ENTITY.sub(lambda m: m.group(0) if m.group(0)[0] == "&" else "", markup)
    )


def visible_len(markup: str) -> int:
    """Visible length in UTF-16 code units, the unit of Telegram's limits."""
    return utf16_len(visible_text(markup))


def atoms(markup: str) -> list[Atom]:
    """Tags, entities and single characters, or MarkupError at the first malformed spot."""
    out: list[Atom] = []
    pos = 0
    stack: list[str] = []
    for m in _ATOM.finditer(markup):
        if m.start() != pos:
            raise MarkupError(f"bare '<' or '&' at offset {pos}")
        pos = m.end()
        raw = m.group(0)
        if m.group(2):
            name, closing = m.group(2).lower(), m.group(1) == "/"
            if closing:
                if not stack or stack[-1] != name:
                    raise MarkupError(f"closing </{name}> does not match an open tag")
                stack.pop()
            else:
                stack.append(name)
            out.append((raw, "", name, closing))
        elif raw[0] == "&":
            out.append((raw, html.unescape(raw), "", False))
        else:
            out.append((raw, raw, "", False))
    if pos != len(markup):
        raise MarkupError(f"bare '<' or '&' at offset {pos}")
    if stack:
        raise MarkupError(f"<{stack[-1]}> is never closed")
    return out


def _kind_ok(parts: Sequence[Atom], k: int, kind: int) -> bool:
    """Is a cut before atom k (a whitespace character) a boundary of this kind?"""
    text = parts[k][1]
    if kind == 0:  # paragraph: a blank line
        return text == "\n" and k + 1 < len(parts) and parts[k + 1][1] == "\n"
    if kind == 1:  # line
        return text == "\n"
    if kind == 2:  # sentence: whitespace after . ! ? (possibly after a closing quote)
        j = k - 1
        while j >= 0 and (parts[j][2] or parts[j][1] in _CLOSERS):
            j -= 1
        return j >= 0 and parts[j][1] in _SENTENCE_END
    return True  # any whitespace


def _choose_cut(parts: Sequence[Atom], cum: Sequence[int], start: int, end: int, limit: int) -> int:
    """Best cut in (start, end]: paragraph, line, sentence, then word; else a hard cut."""
    for floor in (limit // 2, 1):
        for kind in range(4):
            k = end
            while k > start and cum[k] - cum[start] >= floor:
                if parts[k][1].isspace() and _kind_ok(parts, k, kind):
                    return k
                k -= 1
    k = end
    # Keep combining marks, joiners and variation selectors with their base character.
    while k - 1 > start and (
        parts[k][1] in _JOINERS
        or parts[k - 1][1] in _JOINERS
        or unicodedata.category(parts[k][1][:1] or "a").startswith("M")
    ):
        k -= 1
    return k


def split_html(
    markup: str, *, limit: int = MESSAGE_LIMIT, first_limit: int | None = None
) -> list[str]:
    """Cut valid Telegram HTML into parts whose visible text fits `limit` (`first_limit` first)."""
    first = limit if first_limit is None else first_limit
    if visible_len(markup) <= first:
        return [markup]
    parts = atoms(markup)
    n = len(parts)
    cum = [0] * (n + 1)
    for idx, atom in enumerate(parts):
        cum[idx + 1] = cum[idx] + utf16_len(atom[1])
    out: list[str] = []
    stack: list[Atom] = []
    i = 0
    while True:
        # A part starts at visible, non-blank text: blanks at a cut are dropped, and any
        # tags among them carry over on the stack to be reopened.
        while i < n and (parts[i][2] or parts[i][1].isspace()):
            _track(stack, parts[i])
            i += 1
        if i == n:
            break
        cap = first if not out else limit
        j = i
        while j < n and cum[j + 1] - cum[i] <= cap:
            j += 1
        cut = n if j == n else max(_choose_cut(parts, cum, i, j, cap), i + 1)
        head = "".join(a[0] for a in stack)
        for atom in parts[i:cut]:
            _track(stack, atom)
        body = "".join(a[0] for a in parts[i:cut])
        tail = "".join(f"</{a[2]}>" for a in reversed(stack))
        out.append(head + body + tail)
        i = cut
    return out or [""]


def _track(stack: list[Atom], atom: Atom) -> None:
    """Keep the stack of open tags up to date as atoms go by."""
    if atom[2]:
        if atom[3]:
            stack.pop()
        else:
            stack.append(atom)


_ALLOWED = frozenset(
    [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "span",
        "tg-emoji",
    ]
)


def validate(markup: str, *, limit: int = MESSAGE_LIMIT) -> None:
    """MarkupError unless the Bot API would take this as a message (or caption) of `limit`."""
    for _raw, _text, name, _closing in atoms(markup):
        if name and name not in _ALLOWED:
            raise MarkupError(f"<{name}> is not a tag Telegram supports")
    size = visible_len(markup)
    if size > limit:
        raise MarkupError(f"{size} characters is over Telegram's limit of {limit}")
