"""Markdown and Telegram HTML → email HTML (and plain text); pure functions."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from bot.render import html_inline
from bot.render.markup import absolute_link, escape, parse, parser, to_telegram_html
from bot.render.splitter import atoms, split_html, visible_len

_SPOILER = '<span style="background:#d0d0d0;color:#d0d0d0">'
_IMAGE_STYLE = "max-width:100%;height:auto;border:0"


def _email_raw_html(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    content = tokens[idx].content  # kept as HTML: to_email_html cleans the whole body after
    return "" if content.lstrip().startswith("<!--") else content


def _email_image(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    tok = tokens[idx]
    if not tok.attrs.get("src"):  # not a source we offer: the words the author gave it
        return escape(tok.content)
    src, alt = escape(str(tok.attrs["src"]), quote=True), escape(tok.content, quote=True)
    return f'<img src="{src}" alt="{alt}" style="{_IMAGE_STYLE}">'


def _email_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A link whose target is not offered loses its tags: the text part has no URL for it."""
    tok = tokens[idx]
    stack: list[bool] = env.setdefault("links", [])
    if tok.nesting == 1:
        stack.append(bool(tok.attrs.get("href")))
    keep = stack[-1] if stack else False
    if tok.nesting == -1 and stack:
        stack.pop()
    return self.renderToken(tokens, idx, options, env) if keep else ""


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
_MD_EMAIL.add_render_rule("link_open", _email_link)
_MD_EMAIL.add_render_rule("link_close", _email_link)


def to_email_html(
    markdown: str,
    *,
    base_url: str | None = None,
    fmt: str = "markdown",
    definitions: str | None = None,
) -> str:
    """A post's text (`fmt`: markdown, kramdown or html; see markup.parse) → HTML for email
    bodies; raw HTML in it is kept to common tags (html_inline.to_email_html)."""
    if fmt == "html":
        return html_inline.to_email_html(markdown, base_url=base_url, image_style=_IMAGE_STYLE)
    tokens, env = parse(_MD_EMAIL, markdown, fmt=fmt, definitions=definitions)
    for tok in tokens:
        for child in tok.children or ():
            if child.type in ("link_open", "image"):
                attr = "href" if child.type == "link_open" else "src"
                target = absolute_link(str(child.attrs.get(attr, "")), base_url)
                if target:
                    child.attrs[attr] = target
                else:
                    child.attrs.pop(attr, None)
    rendered = str(_MD_EMAIL.renderer.render(tokens, _MD_EMAIL.options, env))
    return html_inline.to_email_html(rendered, base_url=base_url, image_style=_IMAGE_STYLE)


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


_TRAILING = re.compile(r"[ ,;:.\-–—]+((?:</[a-z-]+>)*)$")


def summary(
    markdown: str,
    *,
    base_url: str | None,
    limit: int,
    fmt: str = "markdown",
    definitions: str | None = None,
) -> tuple[str, str]:
    """The first paragraph, at most `limit` characters, as (email HTML, text); links stay links."""
    html = to_telegram_html(markdown, base_url=base_url, fmt=fmt, definitions=definitions)
    kept: list[str] = []
    depth = newlines = 0
    seen = space = False  # whitespace after visible text: one space before the next character
    for raw, visible, name, closing in atoms(html):
        if name:
            depth += -1 if closing else 1
            kept.append(raw if closing or not space else f" {raw}")
            space = space and closing
        elif visible.isspace():
            newlines += visible == "\n"
            if depth == 0 and newlines >= 2:
                break  # a blank line outside any tag: the first paragraph is over
            space = seen
        else:
            kept.append(f" {raw}" if space else raw)
            seen, space, newlines = True, False, 0
    first = "".join(kept)
    if visible_len(first) > limit:
        first = _TRAILING.sub(r"\1", split_html(first, limit=limit - 1)[0]) + "…"
    html_out, text_out = telegram_to_email(first.strip())
    return html_out.strip(), text_out
