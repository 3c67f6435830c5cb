"""Markdown → Telegram HTML (the Bot API's small tag set) and → plain text; pure functions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

# Raw HTML is parsed as tokens so comments (e.g. `<!--more-->`) can be dropped; the rest is
# shown as the literal text the author typed.


def _spoiler(state: StateInline, silent: bool) -> bool:
    """`||hidden||` → a spoiler, Telegram's (and Discord's) own Markdown for one."""
    start = state.pos
    if not state.src.startswith("||", start):
        return False
    end = state.src.find("||", start + 2)
    if end < 0 or end == start + 2 or end > state.posMax:
        return False
    if not silent:
        state.push("spoiler_open", "span", 1)
        old_max = state.posMax
        state.pos, state.posMax = start + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("spoiler_close", "span", -1)
    state.pos = end + 2
    return True


def parser() -> MarkdownIt:
    """A CommonMark parser with tables, strikethrough and `||spoilers||`."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.inline.ruler.before("emphasis", "spoiler", _spoiler)
    if hasattr(md.inline, "add_terminator_char"):  # markdown-it-py ≥ 4: let "|" stop text
        md.inline.add_terminator_char("|")
    return md


_MD = parser()
_SAFE_SCHEMES = {"http", "https", "mailto", "tg"}
_LANG = re.compile(r"[^A-Za-z0-9_+#.-]+")
_INLINE_TAGS = {"strong": "b", "em": "i", "s": "s", "spoiler": "tg-spoiler"}


def escape(text: str, *, quote: bool = False) -> str:
    """Escape text for Telegram HTML (and any HTML); `quote` also escapes `"` for attributes."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def absolute_link(href: str, base_url: str | None) -> str | None:
    """An absolute, safe link target, or None when the link cannot be offered."""
    href = href.strip()
    if not href:
        return None
    if base_url and not urlsplit(href).scheme:
        href = urljoin(base_url, href)
    return href if urlsplit(href).scheme.lower() in _SAFE_SCHEMES else None


class _Writer:
    """Walks markdown-it tokens once, writing Telegram HTML (or plain text when `plain`)."""

    def __init__(self, base_url: str | None, plain: bool) -> None:
        self.base_url = base_url
        self.plain = plain
        self.out: list[str] = []
        self.pending = 0  # newlines owed before the next visible content
        self.fresh = True  # nothing visible yet in the current block container
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.quote_depth = 0
        self.link_stack: list[str | None] = []  # per open link: its target, if emitted

    # -- low level ---------------------------------------------------------
    def text(self, s: str) -> None:
        if not s:
            return
        if self.pending and not self.fresh:
            self.out.append("\n" * self.pending)
        self.pending = 0
        self.fresh = False
        self.out.append(s if self.plain else escape(s))

    def tag(self, s: str) -> None:
        if self.plain:
            return
        if s[1] != "/" and self.pending and not self.fresh:
            # An opening tag starts new content: the owed separation goes before it.
            self.out.append("\n" * self.pending)
            self.pending = 0
        self.out.append(s)

    def block_end(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def open_container(self, html: str) -> None:
        """Start a block that wraps others (blockquote, pre): separate it, then open it."""
        if self.pending and not self.fresh:
            self.out.append("\n" * self.pending)
        self.pending = 0
        self.tag(html)
        self.fresh = True

    # -- inline ------------------------------------------------------------
    def inline(self, children: Sequence[Token]) -> None:
        for tok in children:
            kind = tok.type
            if kind == "text":
                self.text(tok.content)
            elif kind == "softbreak":
                self.text(" ")
            elif kind == "hardbreak":
                self.text("\n")
            elif kind == "code_inline":
                self.tag("<code>")
                self.text(tok.content)
                self.tag("</code>")
            elif kind.endswith("_open") and kind[:-5] in _INLINE_TAGS:
                self.tag(f"<{_INLINE_TAGS[kind[:-5]]}>")
            elif kind.endswith("_close") and kind[:-6] in _INLINE_TAGS:
                self.tag(f"</{_INLINE_TAGS[kind[:-6]]}>")
            elif kind == "link_open":
                self.link_open(str(tok.attrs.get("href", "")))
            elif kind == "link_close":
                self.link_close()
            elif kind == "image":
                self.image(tok)
            elif kind == "html_inline" and not tok.content.startswith("<!--"):
                self.text(tok.content)

    def link_open(self, href: str) -> None:
        target = None if any(self.link_stack) else absolute_link(href, self.base_url)
        self.link_stack.append(target)
        if target is not None:
            self.tag(f'<a href="{escape(target, quote=True)}">')

    def link_close(self) -> None:
        target = self.link_stack.pop()
        if target is not None:
            self.tag("</a>")
            if self.plain:
                self.text(f" ({target})")

    def image(self, tok: Token) -> None:
        alt = tok.content.strip()
        target = absolute_link(str(tok.attrs.get("src", "")), self.base_url)
        if any(self.link_stack) or target is None:
            self.text(alt)
            return
        self.link_open(target)
        self.text(alt or "🖼")
        self.link_close()

    # -- blocks ------------------------------------------------------------
    def list_prefix(self) -> str:
        counters = self.lists[-1]
        indent = "  " * (len(self.lists) - 1)
        if not counters:
            return f"{indent}• "
        counters[0] += 1
        return f"{indent}{counters[0] - 1}. "

    def render(self, tokens: Sequence[Token]) -> str:
        for tok in tokens:
            kind = tok.type
            if kind == "inline":
                self.inline(tok.children or ())
            elif kind == "paragraph_close":
                self.block_end(1 if self.lists else 2)
            elif kind == "heading_open":
                self.tag("<b>")
            elif kind == "heading_close":
                self.tag("</b>")
                self.block_end(2)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                start = tok.attrs.get("start", 1)
                self.block_end(1 if self.lists else 2)
                self.lists.append([int(start)] if kind == "ordered_list_open" else [])
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
                self.block_end(1 if self.lists else 2)
            elif kind == "list_item_open":
                self.block_end(1)
                self.text(self.list_prefix())
            elif kind == "blockquote_open":
                self.quote_depth += 1
                if self.quote_depth == 1:
                    self.block_end(2)
                    self.open_container("<blockquote>")
            elif kind == "blockquote_close":
                self.quote_depth -= 1
                if self.quote_depth == 0:
                    self.pending = 0
                    self.tag("</blockquote>")
                    self.fresh = False
                    self.block_end(2)
            elif kind in ("fence", "code_block"):
                self.code_block(tok)
            elif kind == "html_block":
                if not tok.content.lstrip().startswith("<!--"):
                    self.text(tok.content.strip("\n"))
                    self.block_end(2)
            elif kind == "hr":
                self.block_end(2)
                self.text("⁂")
                self.block_end(2)
            elif kind == "tr_close":
                self.block_end(1)
            elif kind in ("th_open", "td_open"):
                if self.out and not self.out[-1].endswith("\n") and self.pending == 0:
                    self.text(" | ")
                if kind == "th_open":
                    self.tag("<b>")
            elif kind == "th_close":
                self.tag("</b>")
            elif kind == "table_close":
                self.block_end(2)
        return "".join(self.out).strip() if self.plain else "".join(self.out)

    def code_block(self, tok: Token) -> None:
        lang = _LANG.sub("", tok.info.split()[0]) if tok.info.strip() else ""
        body = tok.content.rstrip("\n")
        if self.quote_depth == 0:
            self.block_end(2)
        if self.pending and not self.fresh:
            self.out.append("\n" * self.pending)
            self.pending = 0
        self.tag(f'<pre><code class="language-{lang}">' if lang else "<pre>")
        self.fresh = True
        self.text(body or " ")
        self.tag("</code></pre>" if lang else "</pre>")
        self.block_end(2)


def to_telegram_html(markdown: str, *, base_url: str | None = None) -> str:
    """Markdown → Telegram HTML using only b, i, s, a, code, pre and blockquote."""
    return _Writer(base_url, plain=False).render(_MD.parse(markdown))


def to_plain_text(markdown: str, *, base_url: str | None = None) -> str:
    """Markdown → readable plain text; links become `text (url)`."""
    return _Writer(base_url, plain=True).render(_MD.parse(markdown))


def image_sources(markdown: str) -> list[str]:
    """Every image source named in the Markdown, as written."""
    found: list[str] = []
    for tok in _MD.parse(markdown):
        found.extend(str(c.attrs.get("src", "")) for c in tok.children or () if c.type == "image")
    return found


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
