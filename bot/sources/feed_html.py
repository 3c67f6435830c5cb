"""A feed entry's HTML → the Markdown a `Post` carries; pure functions over the stdlib parser.

The renderers read `Post.body`/`excerpt` as Markdown and show raw HTML as literal text, so
HTML from a feed is mapped onto Markdown (headings, emphasis, links, lists, quotes, code,
images) or reduced to its text; scripts, styles and comments are dropped, entities decoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
DROPPED = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "object", "svg", "math"}
)
BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "aside",
        "nav",
        "figure",
        "figcaption",
        "details",
        "summary",
        "address",
        "dl",
        "dt",
        "dd",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "center",
        "body",
        "html",
    }
)
# An open <p> ends where one of these starts (HTML's implied end tags, the common ones).
CLOSES_P = BLOCKS | {"ul", "ol", "pre", "blockquote", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
HEADINGS = {f"h{n}": n for n in range(1, 7)}
EMPHASIS = {"strong": "**", "b": "**", "em": "*", "i": "*", "s": "~~", "del": "~~", "strike": "~~"}
MEDIA = frozenset({"iframe", "video", "audio"})
_P_STOPS = CLOSES_P | {"li", "td", "th"}
_LISTS = frozenset({"ul", "ol"})

# ASCII punctuation Markdown (CommonMark, tables, ~~, ||spoilers||) could read as syntax.
_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])(?=\s|$)", re.M)
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _destination(url: str) -> str:
    """A link target for `[text](<url>)`: nothing in it can end the brackets."""
    return "".join(url.split()).replace("<", "%3C").replace(">", "%3E")


def escape_markdown(text: str) -> str:
    """Text that Markdown shows exactly as written."""
    text = _SPECIAL.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)


@dataclass
class Node:
    """One element of the parsed HTML (text nodes are plain strings)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    """HTML → a small tree, tolerating unclosed and stray tags as browsers do."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack = [self.root]
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping:
            self.dropping += tag not in VOID
            return
        if tag in DROPPED:
            self.dropping = 1
            return
        if tag in CLOSES_P:
            self._close_implied("p", stop=_P_STOPS)
        if tag == "li":
            self._close_implied("li", stop=_LISTS)
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and not self.dropping and self.stack[-1].tag == tag:
            self.stack.pop()
        elif tag not in VOID and self.dropping:
            self.dropping -= 1

    def handle_endtag(self, tag: str) -> None:
        if self.dropping:
            self.dropping -= tag not in VOID
            return
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.stack[-1].children.append(data)

    def _close_implied(self, tag: str, stop: frozenset[str]) -> None:
        """Close an open `tag` (and the inline elements inside it) unless `stop` comes first."""
        for depth in range(len(self.stack) - 1, 0, -1):
            name = self.stack[depth].tag
            if name == tag:
                del self.stack[depth:]
                return
            if name in stop:
                return


def parse_html(html: str) -> Node:
    """The element tree of an HTML fragment."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


class _Converter:
    """Walks the tree once, writing Markdown blocks."""

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url

    def link(self, href: str) -> str | None:
        href = href.strip()
        if not href or href.startswith(("javascript:", "data:", "#")):
            return None
        return urljoin(self.base_url, href) if self.base_url else href

    def blocks(self, nodes: list[Node | str]) -> list[str]:
        """Block-level Markdown of a list of nodes: runs of inline content become paragraphs."""
        out: list[str] = []
        run: list[Node | str] = []

        def flush() -> None:
            text = self.inline(run).strip()
            if text:
                out.append(text)
            run.clear()

        for node in nodes:
            if isinstance(node, str) or not self.is_block(node):
                run.append(node)
                continue
            flush()
            out.extend(self.block(node))
        flush()
        return out

    def is_block(self, node: Node) -> bool:
        if node.tag in BLOCKS or node.tag in HEADINGS:
            return True
        if node.tag in {"ul", "ol", "pre", "blockquote", "hr", "li"}:
            return True
        if node.tag == "img":
            return False
        return any(isinstance(c, Node) and self.is_block(c) for c in node.children)

    def block(self, node: Node) -> list[str]:
        tag = node.tag
        if tag in HEADINGS:
            text = self.inline(node.children).strip()
            return [f"{'#' * HEADINGS[tag]} {text}"] if text else []
        if tag in {"ul", "ol"}:
            return self.list_block(node)
        if tag == "li":  # an item outside a list
            return self.list_block(Node("ul", children=[node]))
        if tag == "blockquote":
            inner = "\n\n".join(self.blocks(node.children))
            return ["\n".join(f"> {line}".rstrip() for line in inner.split("\n"))] if inner else []
        if tag == "pre":
            return [self.code_block(node)]
        if tag == "hr":
            return ["* * *"]
        if tag == "tr":
            cells = [self.inline(c.children).strip() for c in node.children if isinstance(c, Node)]
            row = " · ".join(c for c in cells if c)
            return [row] if row else []
        if tag == "figcaption":
            text = self.inline(node.children).strip()
            return [f"*{text}*"] if text else []
        return self.blocks(node.children)

    def list_block(self, node: Node) -> list[str]:
        ordered = node.tag == "ol"
        number = int(node.attrs.get("start", "1")) if node.attrs.get("start", "").isdigit() else 1
        items: list[str] = []
        for child in node.children:
            if isinstance(child, str):
                if child.strip():
                    items.append(f"- {escape_markdown(child.strip())}")
                continue
            if child.tag != "li":
                items.extend(self.block(child) if self.is_block(child) else [self.inline([child])])
                continue
            marker = f"{number}. " if ordered else "- "
            number += 1
            body = "\n\n".join(self.blocks(child.children)) or ""
            first, *rest = body.split("\n")
            pad = " " * len(marker)
            items.append("\n".join([marker + first, *(pad + ln if ln else ln for ln in rest)]))
        return ["\n".join(items)] if items else []

    def code_block(self, node: Node) -> str:
        code = node.children[0] if len(node.children) == 1 else None
        lang = ""
        if isinstance(code, Node) and code.tag == "code":
            for cls in code.attrs.get("class", "").split():
                if cls.startswith(("language-", "lang-")):
                    lang = cls.split("-", 1)[1]
        text = self.text_of(node).strip("\n")
        fence = "```"
        while fence in text:
            fence += "`"
        return f"{fence}{lang}\n{text}\n{fence}"

    def text_of(self, node: Node | str) -> str:
        if isinstance(node, str):
            return node
        if node.tag == "br":
            return "\n"
        return "".join(self.text_of(c) for c in node.children)

    def inline(self, nodes: list[Node | str]) -> str:
        parts: list[str] = []
        for node in nodes:
            if isinstance(node, str):
                parts.append(escape_markdown(_SPACES.sub(" ", node)))
            else:
                parts.append(self.inline_node(node))
        return "".join(parts)

    def inline_node(self, node: Node) -> str:
        tag = node.tag
        if tag == "br":
            return "\\\n"
        if tag == "img":
            src = self.link(node.attrs.get("src", ""))
            alt = escape_markdown(_SPACES.sub(" ", node.attrs.get("alt", "")).strip())
            return f"![{alt}](<{_destination(src)}>)" if src else alt
        if tag in MEDIA:
            src = self.link(node.attrs.get("src", ""))
            inner = self.inline(node.children).strip()
            label = escape_markdown(node.attrs.get("title", "").strip()) or inner or "▶"
            return f"[{label}](<{_destination(src)}>)" if src else inner
        if tag == "code":
            text = _SPACES.sub(" ", self.text_of(node))
            ticks = "`"
            while ticks in text:
                ticks += "`"
            pad = " " if text.startswith("`") or text.endswith("`") else ""
            return f"{ticks}{pad}{text}{pad}{ticks}" if text.strip() else text
        inner = self.inline(node.children)
        if tag == "a":
            href = self.link(node.attrs.get("href", ""))
            if href is None or not inner.strip():
                return inner
            return f"[{inner.strip()}](<{_destination(href)}>)"
        mark = EMPHASIS.get(tag)
        if mark is None or not inner.strip():
            return inner
        # Delimiters hug the text: `** x **` is not emphasis in Markdown.
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        return f"{lead}{mark}{inner.strip()}{mark}{trail}"


@dataclass(frozen=True)
class Converted:
    """An HTML value read once: its Markdown, its lead paragraph and its first image."""

    markdown: str
    lead: str  # the first <p> with text (else the first block with text), as Markdown
    image: str | None  # the first <img>'s source, made absolute


def _find(node: Node, wanted: Callable[[Node], bool]) -> Node | None:
    """The first element under `node`, in document order, for which `wanted` is true."""
    for child in node.children:
        if isinstance(child, Node):
            if wanted(child):
                return child
            found = _find(child, wanted)
            if found is not None:
                return found
    return None


def convert(html: str, *, base_url: str | None = None) -> Converted:
    """HTML as Markdown that the renderers show as the site does; relative links join `base_url`."""
    root = parse_html(html)
    conv = _Converter(base_url)
    blocks = [b for b in conv.blocks(root.children) if b.strip()]
    markdown = _BLANK_LINES.sub("\n\n", "\n\n".join(blocks)).strip()
    para = _find(root, lambda n: n.tag == "p" and bool(conv.text_of(n).strip()))
    if para is not None:
        lead = "\n\n".join(conv.blocks(para.children)).strip()
    else:
        lead = next((b.strip() for b in blocks if not b.lstrip().startswith("![")), "")
    img = _find(root, lambda n: n.tag == "img" and bool(n.attrs.get("src", "").strip()))
    image = conv.link(img.attrs["src"]) if img is not None else None
    return Converted(markdown, lead, image)


def html_to_markdown(html: str, *, base_url: str | None = None) -> str:
    """HTML as Markdown that the renderers show as the site does; relative links join `base_url`."""
    return convert(html, base_url=base_url).markdown


def text_to_markdown(text: str) -> str:
    """Plain text (a feed's `text` content) as Markdown that shows it literally."""
    paragraphs = (p.strip() for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(escape_markdown(" ".join(p.split())) for p in paragraphs if p)


def first_image(html: str, *, base_url: str | None = None) -> str | None:
    """The first `<img>`'s source, made absolute, or None."""
    return convert(html, base_url=base_url).image


def html_text(html: str) -> str:
    """The visible text of an HTML fragment (a title), whitespace collapsed."""
    conv = _Converter(None)
    return " ".join(conv.text_of(parse_html(html)).split())


def first_paragraph(html: str, *, base_url: str | None = None) -> str:
    """The first `<p>` with text, as Markdown (an excerpt); else the first block with text."""
    return convert(html, base_url=base_url).lead
