"""A post's text → Telegram HTML (the Bot API's small tag set) and → plain text; pure functions.

A post's text comes in three formats: `markdown` (CommonMark, as a feed's entries are
turned into), `kramdown` (a Jekyll Markdown post: kramdown's own syntax and typography,
see `kramdown`) and `html` (a Jekyll `.html` post). Markdown is rendered to HTML with raw
HTML passed through, as kramdown does, and that HTML is read as a browser reads it and
mapped onto what the channel supports (`html_inline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from bot.render import html_inline, kramdown
from bot.render.html_inline import absolute_link as absolute_link
from bot.render.html_inline import escape as escape

FORMATS = frozenset({"markdown", "kramdown", "html"})


def _spoiler(state: StateInline, silent: bool) -> bool:
    """`||hidden||` → a spoiler, Telegram's (and Discord's) own Markdown for one."""
    start = state.pos
    if not state.src.startswith("||", start):
        return False
    end = state.src.find("||", start + 2)
    if end < 0 or end == start + 2 or end > state.posMax:
        return False
    if not silent:
        state.push("spoiler_open", "tg-spoiler", 1)
        old_max = state.posMax
        state.pos, state.posMax = start + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("spoiler_close", "tg-spoiler", -1)
    state.pos = end + 2
    return True


def parser() -> MarkdownIt:
    """A CommonMark parser with raw HTML, tables, strikethrough, `||spoilers||` and, for
    parses through `parse` with fmt="kramdown", kramdown's span syntax and typography."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.inline.ruler.before("emphasis", "spoiler", _spoiler)
    if hasattr(md.inline, "add_terminator_char"):  # markdown-it-py ≥ 4: let "|" stop text
        md.inline.add_terminator_char("|")
    kramdown.install(md)
    return md


_MD = parser()


def _references(md: MarkdownIt, source: str, fmt: str) -> dict[str, Any]:
    """The link reference definitions (`[id]: url "title"`) anywhere in `source`."""
    env: dict[str, Any] = {}
    md.parse(kramdown.prepare(source) if fmt == "kramdown" else source, env)
    refs = env.get("references", {})
    return dict(refs) if isinstance(refs, Mapping) else {}


def parse(
    md: MarkdownIt, source: str, *, fmt: str = "markdown", definitions: str | None = None
) -> tuple[list[Token], dict[str, Any]]:
    """Markdown → markdown-it tokens and env; `definitions`: text whose link reference
    definitions also apply (the whole post, for its excerpt, as Jekyll does)."""
    env: dict[str, Any] = {}
    if definitions and definitions != source and "[" in source:
        env["references"] = _references(md, definitions, fmt)
    if fmt == "kramdown":
        source = kramdown.prepare(source)
        env[kramdown.ENV_KEY] = True
    return md.parse(source, env), env


def to_html(source: str, *, fmt: str = "markdown", definitions: str | None = None) -> str:
    """A post's text as the HTML its site shows (raw HTML in Markdown passed through)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown text format {fmt!r}")
    if fmt == "html":
        return source
    tokens, env = parse(_MD, source, fmt=fmt, definitions=definitions)
    return str(_MD.renderer.render(tokens, _MD.options, env))


def to_telegram_html(
    source: str,
    *,
    base_url: str | None = None,
    fmt: str = "markdown",
    definitions: str | None = None,
) -> str:
    """A post's text → Telegram HTML using only the Bot API's tags (b, i, u, s, a, code, pre,
    blockquote, tg-spoiler); `fmt` is markdown, kramdown or html."""
    html = to_html(source, fmt=fmt, definitions=definitions)
    return html_inline.to_telegram(html, base_url=base_url)


def to_plain_text(
    source: str,
    *,
    base_url: str | None = None,
    fmt: str = "markdown",
    definitions: str | None = None,
) -> str:
    """A post's text → readable plain text; links become `text (url)`."""
    html = to_html(source, fmt=fmt, definitions=definitions)
    return html_inline.to_text(html, base_url=base_url)


def image_sources(source: str, *, fmt: str = "markdown") -> list[str]:
    """Every image source named in the text (Markdown images and `<img>`), as written."""
    return html_inline.image_sources(to_html(source, fmt=fmt))


def shorten(text: str, limit: int) -> str:
    """Collapse whitespace and cut at a word boundary to at most `limit` characters, with …."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"
