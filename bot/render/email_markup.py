"""Markdown and Telegram HTML → email HTML (and plain text); pure functions."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from markdown_it.token import Token

from bot.render.markup import absolute_link, escape, parser
from bot.render.splitter import atoms

_SPOILER = '<span style="background:#d0d0d0;color:#d0d0d0">'


def _email_raw_html(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    content = tokens[idx].content
    return "" if content.lstrip().startswith("<!--") else escape(content)


def _email_image(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    tok = tokens[idx]
    src, alt = escape(str(tok.attrs.get("src", "")), quote=True), escape(tok.content, quote=True)
    return f'<img src="{src}" alt="{alt}" style="max-width:100%;height:auto;border:0">'


def _email_spoiler(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    return _SPOILER if tokens[idx].nesting == 1 else "</span>"


_MD_EMAIL = parser()
_MD_EMAIL.add_render_rule("spoiler_open", _email_spoiler)
_MD_EMAIL.add_render_rule("spoiler_close", _email_spoiler)
_MD_EMAIL.add_render_rule("html_block", _email_raw_html)
_MD_EMAIL.add_render_rule("html_inline", _email_raw_html)
_MD_EMAIL.add_render_rule("image", _email_image)


def to_email_html(markdown: str, *, base_url: str | None = None) -> str:
    """Markdown → HTML for email bodies; raw HTML in the post is shown as text."""
    tokens = _MD_EMAIL.parse(markdown)
    for tok in tokens:
        for child in tok.children or ():
            if child.type in ("link_open", "image"):
                attr = "href" if child.type == "link_open" else "src"
                target = absolute_link(str(child.attrs.get(attr, "")), base_url)
                child.attrs[attr] = target or "#"
    return str(_MD_EMAIL.renderer.render(tokens, _MD_EMAIL.options, {}))


_EMAIL_TAGS = {
    "b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s",
    "strike": "s", "del": "s", "code": "code", "pre": "pre",
}  # fmt: skip
_QUOTE = '<blockquote style="margin:0 0 0 8px;padding-left:12px;border-left:3px solid #ccc">'


def telegram_to_email(markup: str) -> tuple[str, str]:
    """Valid Telegram HTML → (email HTML, plain text); link targets are re-checked."""
    html_out: list[str] = []
    text_out: list[str] = []
    closers: list[tuple[str, str]] = []  # per open tag: (html closer, text suffix)
    in_pre = 0
    for raw, visible, name, closing in atoms(markup):
        if not name:
            html_out.append("<br>\n" if visible == "\n" and not in_pre else raw)
            text_out.append(visible)
            continue
        if closing:
            closer, suffix = closers.pop()
            html_out.append(closer)
            text_out.append(suffix)
            in_pre -= name == "pre"
            continue
        in_pre += name == "pre"
        if name == "a":
            m = re.search(r'href\s*=\s*"([^"]*)"', raw) or re.search(r"href\s*=\s*'([^']*)'", raw)
            target = absolute_link(html.unescape(m.group(1)), None) if m else None
            if target:
                html_out.append(f'<a href="{escape(target, quote=True)}">')
                closers.append(("</a>", f" ({target})"))
            else:
                closers.append(("", ""))
        elif name == "blockquote":
            html_out.append(_QUOTE)
            closers.append(("</blockquote>", ""))
        elif name in ("tg-spoiler", "span"):
            html_out.append(_SPOILER)
            closers.append(("</span>", ""))
        elif name in _EMAIL_TAGS:
            html_out.append(f"<{_EMAIL_TAGS[name]}>")
            closers.append((f"</{_EMAIL_TAGS[name]}>", ""))
        else:
            closers.append(("", ""))
    return "".join(html_out), "".join(text_out).strip()
