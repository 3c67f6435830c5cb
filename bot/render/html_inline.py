"""HTML fragments → the Bot API's tags, plain text or clean email HTML; pure functions.

A post carries HTML two ways: kramdown passes raw HTML through a Markdown post (Markdown
is rendered to HTML first, see `markup`), and an `.html` post is HTML throughout. Either
is read here the way a browser reads it, with the stdlib parser, and mapped onto what the
channel supports or reduced to its text: scripts, styles, comments and page navigation
are dropped, entities decoded, images and embeds (iframes, videos, a tweet's blockquote)
become links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    }
)  # fmt: skip
# Never shown: code, styling, page furniture (a table of contents is the site's navigation).
DROPPED = frozenset(
    {
        "script", "style", "noscript", "template", "head", "title", "svg", "math", "canvas",
        "nav", "form", "button", "select", "datalist", "textarea", "input", "map", "link",
        "meta",
    }
)  # fmt: skip
# Block elements and the newlines around them (2: a blank line, as between paragraphs).
BLOCKS = {
    "p": 2, "figure": 2, "dl": 2, "address": 2, "div": 1, "section": 1, "article": 1,
    "header": 1, "footer": 1, "main": 1, "aside": 1, "details": 1, "summary": 1,
    "dt": 1, "dd": 1, "center": 1, "caption": 1, "fieldset": 1, "legend": 1, "body": 1,
    "html": 1, "picture": 0,
}  # fmt: skip
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
LISTS = frozenset({"ul", "ol", "menu"})
# Inline formatting → the Bot API's tag.
INLINE = {
    "b": "b", "strong": "b", "i": "i", "em": "i", "cite": "i", "var": "i", "dfn": "i",
    "u": "u", "ins": "u", "s": "s", "del": "s", "strike": "s", "tg-spoiler": "tg-spoiler",
}  # fmt: skip
CODE = frozenset({"code", "kbd", "samp", "tt"})
EMBEDS = frozenset({"iframe", "video", "audio", "embed", "object"})
# Blockquotes that a script turns into an embedded post; without it they are a link.
EMBED_QUOTES = frozenset(
    {
        "twitter-tweet", "twitter-video", "instagram-media", "tiktok-embed", "bluesky-embed",
        "mastodon-embed", "threads-embed", "reddit-embed-bq",
    }
)  # fmt: skip
# An element's start implicitly ends an open <p> (HTML's optional end tags, the common ones).
_CLOSES_P = (
    frozenset(BLOCKS) | HEADINGS | LISTS | {"pre", "blockquote", "hr", "table", "figcaption", "li"}
) - {"picture"}
_P_SCOPE = frozenset({"li", "td", "th", "blockquote", "div", "figure", "section", "article"})
# Tag → (tags that end it implicitly, tags that bound the search for it).
_IMPLIED = {
    "li": (frozenset({"li"}), LISTS),
    "dt": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "dd": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "tr": (frozenset({"tr"}), frozenset({"table", "thead", "tbody", "tfoot"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "option": (frozenset({"option"}), frozenset({"select"})),
}
_SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tg"})
_WS = re.compile(r"[ \t\n\r\f]+")
_LANG = re.compile(r"[^A-Za-z0-9_+#.-]+")
_YOUTUBE = re.compile(r"^https?://(?:www\.)?youtube(?:-nocookie)?\.com/embed/([\w-]+)")
_VIMEO = re.compile(r"^https?://player\.vimeo\.com/video/(\d+)")
_LABEL_CHARS = 100
_MAX_DEPTH = 100  # elements nested deeper are flattened: the writers recurse


def escape(text: str, *, quote: bool = False) -> str:
    """Escape text for Telegram HTML (and any HTML); `quote` also escapes `"` for attributes."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def absolute_link(href: str, base_url: str | None) -> str | None:
    """An absolute, safe link target, or None when the link cannot be offered."""
    href = href.strip()
    if not href:
        return None
    try:
        if base_url and not urlsplit(href).scheme:
            href = urljoin(base_url, href)
        return href if urlsplit(href).scheme.lower() in _SAFE_SCHEMES else None
    except ValueError:  # not a URL at all (`http://[`)
        return None


@dataclass
class Node:
    """One element of parsed HTML; text nodes are plain strings, entities already decoded."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    """HTML → a tree, tolerating unclosed and stray tags as browsers do; comments dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _CLOSES_P:
            self._close_implied(frozenset({"p"}), _P_SCOPE)
        if tag in _IMPLIED:
            self._close_implied(*_IMPLIED[tag])
        if len(self.stack) > _MAX_DEPTH and tag not in VOID:
            return  # deeper than any page needs: its content joins the element around it
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack[-1].tag == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "br":  # `</br>` is read as `<br>`, as browsers do
            self.handle_starttag("br", [])
            return
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)

    def parse_html_declaration(self, i: int) -> int:
        """`<![…>` that is not CDATA is a bogus comment to browsers; the stdlib raises on it."""
        try:
            return super().parse_html_declaration(i)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return len(self.rawdata) if end < 0 else end + 1

    def _close_implied(self, tags: frozenset[str], scope: frozenset[str]) -> None:
        """Close the innermost open element in `tags`, unless an element in `scope` comes first."""
        for depth in range(len(self.stack) - 1, 0, -1):
            name = self.stack[depth].tag
            if name in tags:
                del self.stack[depth:]
                return
            if name in scope:
                return


def parse(html: str) -> Node:
    """The element tree of an HTML fragment."""
    builder = _TreeBuilder()
    start = html.find("<!--")
    while start >= 0:
        end = html.find("-->", start + 4)
        if end < 0:
            html = html[:start]  # a comment never closed runs to the end, as browsers read it
            break
        start = html.find("<!--", end + 3)
    builder.feed(html)
    builder.close()
    return builder.root


def text_of(node: Node | str) -> str:
    """The text inside a node as written (images count as their alt text); nothing dropped."""
    if isinstance(node, str):
        return node
    if node.tag in DROPPED:
        return ""
    if node.tag == "br":
        return "\n"
    if node.tag == "img":
        return node.attrs.get("alt", "")
    return "".join(text_of(c) for c in node.children)


def _visible(node: Node) -> bool:
    """True when the node shows anything: text, an image, an embed."""
    if node.tag in DROPPED:
        return False
    if node.tag in EMBEDS or node.tag in ("img", "hr"):
        return True
    return any((c.strip() if isinstance(c, str) else _visible(c)) for c in node.children)


def _walk(node: Node) -> Iterator[Node]:
    for child in node.children:
        if isinstance(child, Node):
            yield child
            yield from _walk(child)


def image_sources(html: str) -> list[str]:
    """Every `<img>` source in the HTML, as written."""
    return [n.attrs["src"] for n in _walk(parse(html)) if n.tag == "img" and n.attrs.get("src")]


def _embed_quote(node: Node) -> bool:
    return node.tag == "blockquote" and bool(node.classes & EMBED_QUOTES)


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or url
    except ValueError:
        host = url
    return host.removeprefix("www.")


def embed(node: Node, base_url: str | None) -> tuple[str, str] | None:
    """(link target, label) of an embed (iframe, video, audio, a tweet), or None without one."""
    if _embed_quote(node):
        links = [n.attrs.get("href", "") for n in _walk(node) if n.tag == "a"]
        src = (
            node.attrs.get("cite")
            or node.attrs.get("data-instgrm-permalink")
            or node.attrs.get("data-embed-url")
            or next((h for h in reversed(links) if "/status/" in h), "")
            or (links[-1] if links else "")
        )
        para = next((n for n in _walk(node) if n.tag == "p"), node)
        text = " ".join(text_of(para).split())
    else:
        src = node.attrs.get("src") or node.attrs.get("data") or node.attrs.get("data-src", "")
        if not src:
            src = next((n.attrs.get("src", "") for n in _walk(node) if n.tag == "source"), "")
        text = ""
    target = absolute_link(src, base_url)
    if target is None:
        return None
    if m := _YOUTUBE.match(target):
        target = f"https://www.youtube.com/watch?v={m.group(1)}"
    elif m := _VIMEO.match(target):
        target = f"https://vimeo.com/{m.group(1)}"
    label = " ".join((node.attrs.get("title") or node.attrs.get("aria-label") or text).split())
    if not label and node.tag in ("video", "audio"):
        label = urlsplit(target).path.rsplit("/", 1)[-1]
    label = label or _host(target)
    if len(label) > _LABEL_CHARS:
        cut = label[: _LABEL_CHARS - 1]
        label = (cut[: cut.rfind(" ")] if " " in cut else cut).rstrip(" ,;:.-–—") + "…"
    return target, label


def _language(node: Node) -> str:
    """A code language named by a `language-*` (or `lang-*`) class, cleaned for Telegram."""
    for cls in node.attrs.get("class", "").split():
        if cls.startswith(("language-", "lang-")):
            return _LANG.sub("", cls.split("-", 1)[1])
    return node.attrs.get("data-lang", "") and _LANG.sub("", node.attrs["data-lang"])


class _TelegramWriter:
    """Walks the tree once, writing Telegram HTML (or plain text when `plain`)."""

    def __init__(self, base_url: str | None, plain: bool) -> None:
        self.base_url = base_url
        self.plain = plain
        self.out: list[str] = []
        self.pending = 0  # newlines owed before the next visible content
        self.space = False  # a collapsed space owed before the next visible content
        self.fresh = True  # nothing visible yet in the current block container
        self.trail = 0  # newlines at the end of what is written
        self.last = ""  # the last visible character written
        self.after_prefix = False  # just after a list marker: a paragraph starts on its line
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.cells: list[int] = []  # per open table row: cells written so far
        self.quote_depth = 0
        self.in_link = False
        self.languages: list[str] = []  # code languages named by enclosing elements
        self.formats: list[str] = []  # the formatting tags open (b, i, …)

    # -- low level ---------------------------------------------------------
    def flush(self) -> None:
        """Write the newlines or the space owed before new content."""
        if self.pending and not self.fresh:
            need = self.pending - self.trail
            if need > 0:
                self.out.append("\n" * need)
                self.trail += need
                self.last = "\n"
        elif self.space and not self.fresh and self.last not in ("", "\n", " "):
            self.out.append(" ")
            self.trail, self.last = 0, " "
        self.pending = 0
        self.space = False

    def text(self, s: str) -> None:
        if not s:
            return
        self.flush()
        self.out.append(s if self.plain else escape(s))
        self.fresh = self.after_prefix = False
        body = s.rstrip("\n")
        self.trail = (self.trail if not body else 0) + len(s) - len(body)
        self.last = s[-1]

    def words(self, s: str) -> None:
        """Text as a browser shows it: runs of whitespace become one space."""
        s = _WS.sub(" ", s)
        if not s:
            return
        if s[0] == " ":
            self.space = True
        self.text(s.strip(" "))
        if s[-1] == " ":
            self.space = True

    def open_tag(self, html: str) -> None:
        self.flush()
        if not self.plain:
            self.out.append(html)

    def close_tag(self, html: str) -> None:
        if not self.plain:
            self.out.append(html)

    def block(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def start_block(self, newlines: int) -> None:
        """Separate a new block from what is before it, unless it follows a list marker."""
        if not self.after_prefix:
            self.block(newlines)

    # -- elements ----------------------------------------------------------
    def children(self, node: Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.words(child)
            else:
                self.element(child)

    def element(self, node: Node) -> None:
        tag = node.tag
        if tag in DROPPED:
            return
        if tag == "br":
            self.text("\n")
        elif tag == "hr":
            self.block(2)
            self.text("⁂")
            self.block(2)
        elif tag in HEADINGS:
            self.start_block(2)
            self.wrap("b", node)
            self.block(2)
        elif tag in LISTS:
            self.list(node)
        elif tag == "li":
            self.item(node)
        elif tag == "blockquote":
            self.quote(node)
        elif tag == "pre":
            self.pre(node)
        elif tag in ("table", "tr", "td", "th"):
            self.table_part(node)
        elif tag == "a":
            self.link(node)
        elif tag == "img":
            self.image(node)
        elif tag in EMBEDS:
            self.embed(node)
        elif tag in CODE:
            self.code(node)
        elif tag == "q":
            self.words("“")
            self.children(node)
            self.text("”")
        elif tag in INLINE or (tag == "span" and "tg-spoiler" in node.classes):
            self.wrap(INLINE.get(tag, "tg-spoiler"), node)
        elif tag == "figcaption":
            self.start_block(1)
            self.wrap("i", node)
            self.block(1)
        elif tag in BLOCKS:
            newlines = min(BLOCKS[tag], 1) if self.lists else BLOCKS[tag]
            language = _language(node)
            self.languages.append(language)
            self.start_block(newlines)
            self.children(node)
            self.block(newlines)
            self.languages.pop()
        else:  # span, sup, small, abbr, mark, custom elements: their text
            self.children(node)

    def wrap(self, name: str, node: Node) -> None:
        if name in self.formats or not _visible(node):  # <i> inside <i> says nothing more
            self.children(node)
            return
        self.open_tag(f"<{name}>")
        self.formats.append(name)
        self.children(node)
        self.formats.pop()
        self.close_tag(f"</{name}>")

    def link_to(self, target: str, label: str) -> None:
        self.open_tag(f'<a href="{escape(target, quote=True)}">')
        self.words(label)
        self.close_tag("</a>")
        if self.plain and label.strip() != target:
            self.text(f" ({target})")

    def link(self, node: Node) -> None:
        target = None if self.in_link else absolute_link(node.attrs.get("href", ""), self.base_url)
        if target is None or not _visible(node):
            self.children(node)
            return
        self.open_tag(f'<a href="{escape(target, quote=True)}">')
        self.in_link = True
        self.children(node)
        self.in_link = False
        self.close_tag("</a>")
        shown = " ".join(text_of(node).split())
        if self.plain and shown not in (target, target.removeprefix("mailto:")):
            self.text(f" ({target})")

    def image(self, node: Node) -> None:
        alt = " ".join((node.attrs.get("alt") or node.attrs.get("title") or "").split())
        src = node.attrs.get("src") or node.attrs.get("data-src") or ""
        target = absolute_link(src, self.base_url)
        if self.in_link or target is None:
            self.words(alt)
            return
        self.link_to(target, alt or "🖼")

    def embed(self, node: Node) -> None:
        found = embed(node, self.base_url)
        if found is None:
            return
        target, label = found
        self.start_block(1)
        self.text("▶ ")
        if self.in_link:
            self.words(label)
        else:
            self.link_to(target, label)
        self.block(1)

    def code(self, node: Node) -> None:
        body = text_of(node).replace("\n", " ")
        if not body.strip():
            self.words(body)
            return
        self.open_tag("<code>")
        self.text(body)
        self.close_tag("</code>")

    def list(self, node: Node) -> None:
        self.block(1 if self.lists else 2)
        start = node.attrs.get("start", "1")
        number = int(start) if start.isdigit() else 1
        self.lists.append([number] if node.tag == "ol" else [])
        self.children(node)
        self.lists.pop()
        self.block(1 if self.lists else 2)

    def item(self, node: Node) -> None:
        self.block(1)
        if not self.lists:
            prefix = "• "
        else:
            counters = self.lists[-1]
            indent = "  " * (len(self.lists) - 1)
            if counters:
                counters[0] += 1
            prefix = f"{indent}{counters[0] - 1}. " if counters else f"{indent}• "
        self.text(prefix)
        self.after_prefix = True
        self.children(node)

    def quote(self, node: Node) -> None:
        if _embed_quote(node):
            self.embed(node)
            return
        if not _visible(node):
            return
        if self.in_link or self.quote_depth:  # Telegram nests neither
            self.quote_depth += 1
            self.start_block(2)
            self.children(node)
            self.block(2)
            self.quote_depth -= 1
            return
        self.quote_depth = 1
        self.block(2)
        self.flush()
        self.open_tag("<blockquote>")
        self.fresh = True
        self.children(node)
        self.quote_depth = 0
        self.pending, self.space = 0, False
        self.close_tag("</blockquote>")
        self.fresh = False
        self.block(2)

    def pre(self, node: Node) -> None:
        body = text_of(node).rstrip("\n")
        if node.children and isinstance(node.children[0], str):
            body = body.removeprefix("\n")  # as browsers do, right after the <pre> tag
        code = next((c for c in node.children if isinstance(c, Node) and c.tag in CODE), None)
        lang = (
            (_language(code) if code is not None else "")
            or _language(node)
            or next((x for x in reversed(self.languages) if x), "")
        )
        if self.in_link:
            self.words(body)
            return
        if self.quote_depth == 0:
            self.block(2)
        self.flush()
        self.open_tag(f'<pre><code class="language-{lang}">' if lang else "<pre>")
        self.fresh = True
        self.text(body or " ")
        self.close_tag("</code></pre>" if lang else "</pre>")
        self.block(2)

    def table_part(self, node: Node) -> None:
        tag = node.tag
        if tag == "table":
            self.block(2)
            self.children(node)
            self.block(2)
        elif tag == "tr":
            self.block(1)
            self.cells.append(0)
            self.children(node)
            self.cells.pop()
            self.block(1)
        else:  # td, th
            if self.cells:
                if self.cells[-1]:
                    self.space = False
                    self.text(" | ")
                self.cells[-1] += 1
            if tag == "th":
                self.wrap("b", node)
            else:
                self.children(node)

    def render(self, root: Node) -> str:
        self.children(root)
        text = "".join(self.out)
        return text.strip() if self.plain else text


def to_telegram(html: str, *, base_url: str | None = None) -> str:
    """HTML → Telegram HTML using only the Bot API's tags; relative links join `base_url`."""
    return _TelegramWriter(base_url, plain=False).render(parse(html))


def to_text(html: str, *, base_url: str | None = None) -> str:
    """HTML → readable plain text; links become `text (url)`."""
    return _TelegramWriter(base_url, plain=True).render(parse(html))


# -- email: the same tree, kept as HTML but only what every mail client shows -------------
_EMAIL_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "u", "ins", "s", "del", "strike", "code", "kbd", "samp",
        "pre", "blockquote", "p", "br", "hr", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5",
        "h6", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "sup", "sub",
        "small", "mark", "abbr", "dl", "dt", "dd", "cite", "q", "var", "dfn", "span", "div",
        "figure", "figcaption", "details", "summary", "img",
    }
)  # fmt: skip
_EMAIL_RENAME = {
    "tg-spoiler": "span", "tt": "code", "font": "span", "center": "div", "section": "div",
    "article": "div", "header": "div", "footer": "div", "main": "div", "aside": "div",
    "address": "div",
}  # fmt: skip
_EMAIL_ATTRS = {
    "a": ("href",), "img": ("src", "alt", "width", "height"), "ol": ("start",),
    "td": ("colspan", "rowspan"), "th": ("colspan", "rowspan"),
}  # fmt: skip
_ANY_ATTRS = ("style", "dir", "lang", "title")


class _EmailWriter:
    """Serializes the tree as balanced HTML of common tags: no scripts, classes or ids."""

    def __init__(self, base_url: str | None, image_style: str) -> None:
        self.base_url = base_url
        self.image_style = image_style
        self.out: list[str] = []
        self.in_link = False

    def children(self, node: Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.out.append(escape(child))
            else:
                self.element(child)

    def attributes(self, node: Node, name: str) -> str | None:
        """The attributes kept, as HTML; None when the element cannot be kept (a bad link)."""
        kept: list[str] = []
        for key in (*_EMAIL_ATTRS.get(name, ()), *_ANY_ATTRS):
            value = node.attrs.get(key)
            if key in ("href", "src"):
                value = absolute_link(value or "", self.base_url)
                if value is None:
                    return None
            if key == "style" and name == "img" and not value:
                value = self.image_style
            if value:
                kept.append(f' {key}="{escape(value, quote=True)}"')
        return "".join(kept)

    def element(self, node: Node) -> None:
        tag = node.tag
        if tag in DROPPED:
            return
        if tag in EMBEDS or _embed_quote(node):
            found = embed(node, self.base_url)
            if found is not None:
                target, label = found
                self.out.append(
                    f'<p><a href="{escape(target, quote=True)}">▶ {escape(label)}</a></p>'
                )
            return
        name = _EMAIL_RENAME.get(tag, tag)
        attrs = self.attributes(node, name) if name in _EMAIL_TAGS else None
        if attrs is None or (name == "a" and self.in_link):
            if tag == "img":
                self.out.append(escape(node.attrs.get("alt", "")))
            self.children(node)
            return
        self.out.append(f"<{name}{attrs}>")
        if name in VOID:
            return
        self.in_link |= name == "a"
        self.children(node)
        self.in_link &= name != "a"
        self.out.append(f"</{name}>")


def to_email_html(html: str, *, base_url: str | None = None, image_style: str = "") -> str:
    """HTML → balanced email HTML of common tags; links checked, embeds made links."""
    writer = _EmailWriter(base_url, image_style)
    writer.children(parse(html))
    return "".join(writer.out)
