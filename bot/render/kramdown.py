"""kramdown's own syntax and typography, as Jekyll's default Markdown converter shows a post.

`prepare` works on the source, leaving fenced code alone: block attribute lists
(`{: .lead}`), attribute list definitions, `{:toc}` with the list it replaces, extensions
(`{::options /}`, `{::comment}`, `{::nomarkdown}`), abbreviation definitions and
end-of-block markers go, and an HTML block marked `markdown="1"` has its Markdown read.
`install` adds a markdown-it rule for what lives inside a paragraph: span attribute lists,
header ids (`## Title {#id}`) and typography as kramdown's parser makes it (smart quotes,
`--` → –, `---` → —, `...` → …, `<<` → «), never inside code, HTML or autolinks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

ENV_KEY = "kramdown"  # set in a parse's env to apply the rule `install` adds

_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})")
_PREFIX = re.compile(r"^(?:[ \t]*>)*[ \t]*")  # a line's blockquote markers and indentation
_BLOCK_IAL = re.compile(r"\{:(?!:)((?:\\\}|[^}])+)\}[ \t]*")  # also `{:name: …}` definitions
_ABBREVIATION = re.compile(r"\*\[[^\]\n]+\]:.*")
_END_OF_BLOCK = re.compile(r"\^[ \t]*")
_LIST_ITEM = re.compile(r"^(?:[ \t]*>)*[ \t]*(?:[*+-]|\d+[.)])[ \t]")
_MARKDOWN_HTML = re.compile(
    r"^[ \t]*<([A-Za-z][\w-]*)\b[^>]*\smarkdown=(['\"]?)(?:1|block|span)\2[^>]*>[ \t]*$"
)
_HTML_BLOCK = re.compile(r"^ {0,3}<([A-Za-z][\w:-]*)(?=[\s/>]|$)")
# kramdown's span-level elements: a line starting with one is a paragraph, not an HTML block.
_SPAN_HTML = frozenset(
    {
        "a", "abbr", "acronym", "b", "big", "bdo", "br", "button", "cite", "code", "del", "dfn",
        "em", "i", "img", "input", "ins", "kbd", "label", "mark", "option", "q", "rb", "rbc",
        "rp", "rt", "rtc", "ruby", "samp", "select", "small", "span", "strong", "sub", "sup",
        "tt", "u", "var",
    }
)  # fmt: skip
_VOID_HTML = frozenset(
    {"area", "base", "col", "embed", "hr", "link", "meta", "param", "source", "track", "wbr"}
)
_EXTENSIONS = (
    re.compile(r"\{::comment\}.*?\{:/(?:comment)?\}\n?", re.S),  # a comment: gone with its text
    re.compile(r"\{::\w+(?:\\\}|[^}])*?/\}"),  # {::options … /}
    re.compile(r"\{::\w+(?:\\\}|[^}])*\}|\{:/\w*\}"),  # {::nomarkdown} … {:/}: the text stays
)
_SPAN_IAL = re.compile(r"\{:(?!:)(?:\\\}|[^}])+\}")
_HTML_TAG = re.compile(r"^<(/?)([A-Za-z][\w-]*)")
# HTML elements whose content kramdown leaves as it is (its parser's raw content model).
_RAW_HTML = frozenset(
    {"script", "style", "math", "option", "textarea", "pre", "code", "kbd", "samp", "var"}
)
_HEADER_ID = re.compile(r"[\t ]\{#[A-Za-z][\w:-]*\}[ \t]*$")

# Smart quotes: kramdown's rules (lib/kramdown/parser/kramdown/smart_quotes.rb, from
# RubyPants), tried in order where a quote (with the character before it) is found.
_SQ_PUNCT = r"""[!"#$%'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_SQ_CLOSE = r"[^ \\\t\r\n\[{(-]"
_A = re.ASCII
# A substitution: a group's text (int), a quote ("“"), or (side, group holding the quote).
_Subst = int | str | tuple[str, int]
_SQ_RULES: tuple[tuple[re.Pattern[str], tuple[_Subst, ...]], ...] = (
    (re.compile(r"""(["'])(?=[_*]{1,2}\S)""", _A), (("l", 1),)),
    (re.compile(rf"""(["'])(?={_SQ_PUNCT}(?!\.\.)\B)""", _A), (("r", 1),)),
    (re.compile(r"""(\s?)"'(?=\w)""", _A), (1, "“", "‘")),
    (re.compile(r"""(\s?)'"(?=\w)""", _A), (1, "‘", "“")),
    (re.compile(r"""(\s?)'(?=\d\ds)""", _A), (1, "’")),
    (re.compile(r"""(\s)(['"])(?=\w)""", _A), (1, ("l", 2))),
    (re.compile(rf"""({_SQ_CLOSE})(['"])""", _A), (1, ("r", 2))),
    (re.compile(r"""(["'])(?=\s|s\b|$)""", _A | re.M), (("r", 1),)),
    (re.compile(r"(.?)'", _A | re.S), (1, "‘")),
    (re.compile(r'(.?)"', _A | re.S), (1, "“")),
)
_QUOTES = {("l", '"'): "“", ("l", "'"): "‘", ("r", '"'): "”", ("r", "'"): "’"}
_SYMBOLS = {
    "---": "—", "--": "–", "...": "…", "<< ": "«\u00a0", " >>": "\u00a0»", "<<": "«", ">>": "»",
}  # fmt: skip
# What kramdown's span parser finds first: a quote (with the character before it) or a symbol.
_TYPOGRAPHY = re.compile(r"""(?P<quote>[^\\]?["'])|---|--|\.\.\.|<< | >>|<<|>>""")


def _outside_fences(source: str) -> list[tuple[bool, list[str]]]:
    """The source's lines in runs: (True, lines) for fenced code, (False, lines) for the rest."""
    runs: list[tuple[bool, list[str]]] = []
    fence: str | None = None
    for line in source.split("\n"):
        in_code = fence is not None
        if fence is None:
            m = _FENCE.match(line)
            if m:
                fence, in_code = m.group(1), True
        elif re.match(rf"^[ \t>]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", line):
            fence = None
        if not runs or runs[-1][0] != in_code:
            runs.append((in_code, []))
        runs[-1][1].append(line)
    return runs


def _drop_toc_list(out: list[str]) -> None:
    """Remove the list just written (the placeholder `{:toc}` replaces with the contents)."""
    start = len(out)
    while start > 0 and out[start - 1].strip():
        start -= 1
    if start < len(out) and _LIST_ITEM.match(out[start]):
        del out[start:]


def _html_end(lines: list[str], start: int, name: str) -> int:
    """The line holding the end tag that matches the start tag `name` on `lines[start]`."""
    if name in _VOID_HTML:
        return start
    tag = re.compile(rf"<(/?){re.escape(name)}(?=[\s/>])([^>]*)>", re.I)
    depth = 0
    for k in range(start, len(lines)):
        for m in tag.finditer(lines[k]):
            depth += -1 if m.group(1) else 0 if m.group(2).endswith("/") else 1
            if depth <= 0:
                return k
    return len(lines) - 1  # never closed: kramdown reads the rest as HTML too


def _block_lines(lines: list[str], out: list[str], html_blocks: list[str]) -> None:
    k = 0
    while k < len(lines):
        line = lines[k]
        k += 1
        prefix = _PREFIX.match(line)
        assert prefix is not None  # the pattern matches the empty string
        rest = line[prefix.end() :]
        quote = prefix.group().rstrip() if ">" in prefix.group() else ""
        ial = _BLOCK_IAL.fullmatch(rest)
        if ial:
            if "toc" in ial.group(1).split():
                _drop_toc_list(out)
            out.append(quote)  # an attribute list ends the block before it, as in kramdown
        elif _ABBREVIATION.fullmatch(rest) or _END_OF_BLOCK.fullmatch(rest):
            out.append(quote)
        elif m := _MARKDOWN_HTML.match(line):
            out.extend((line, ""))  # a blank line after the tag: CommonMark reads what follows
            html_blocks.append(m.group(1).lower())
        elif html_blocks and rest.lower().startswith(f"</{html_blocks[-1]}"):
            out.extend(("", line))
            html_blocks.pop()
        elif (m := _HTML_BLOCK.match(line)) and m.group(1).lower() not in _SPAN_HTML:
            # kramdown keeps block-level HTML as it is, up to its end tag, blank lines and
            # all: CommonMark's HTML block ends at a blank line, so none is left inside.
            end = _html_end(lines, k - 1, m.group(1).lower())
            if out and out[-1].strip():
                out.append("")
            out.extend(ln if ln.strip() else "<!-- -->" for ln in lines[k - 1 : end + 1])
            out.append("")
            k = end + 1
        else:
            out.append(line)


def prepare(source: str) -> str:
    """kramdown Markdown as CommonMark, its block-level syntax removed; see the module doc."""
    out: list[str] = []
    html_blocks: list[str] = []
    for in_code, lines in _outside_fences(source):
        if in_code:
            out.extend(lines)
            continue
        text = "\n".join(lines)
        for pattern in _EXTENSIONS:
            text = pattern.sub("", text)
        _block_lines(text.split("\n"), out, html_blocks)
    return "\n".join(out)


def smarten(text: str, following: str = "") -> str:
    """kramdown's typography in one run of text; `following` is the source after it."""
    full = text + following
    end = len(text)
    out: list[str] = []
    pos = 0
    while pos < end:
        m = _TYPOGRAPHY.search(full, pos, end)
        if m is None:
            break
        out.append(full[pos : m.start()])
        pos = m.end()
        if m.group("quote") is None:
            out.append(_SYMBOLS[m.group()])
            continue
        for rule, substs in _SQ_RULES:
            r = rule.match(full, m.start())
            if r is None or r.end() > end:
                continue
            for subst in substs:
                if isinstance(subst, int):
                    out.append(r.group(subst))
                elif isinstance(subst, tuple):
                    out.append(_QUOTES[subst[0], r.group(subst[1])])
                else:
                    out.append(subst)
            pos = r.end()
            break
        else:  # unreachable: the last rules match any quote
            out.append(m.group())
    out.append(full[pos:end])
    return "".join(out)


def _source_of(tokens: Sequence[Token]) -> str:
    """Roughly the Markdown the next few inline tokens came from: context for smart quotes."""
    parts: list[str] = []
    for tok in tokens[:4]:
        if tok.type in ("text", "html_inline"):
            parts.append(tok.content)
        elif tok.type == "code_inline":
            parts.append(tok.markup + tok.content + tok.markup)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif tok.type in ("link_open", "image"):
            parts.append("![" if tok.type == "image" else "[")
        elif tok.type == "link_close":
            parts.append("]")
        else:  # emphasis, strikethrough, spoilers, escapes and entities: their markup
            parts.append(tok.markup)
    return "".join(parts)


def _span(children: list[Token], *, heading: bool) -> list[Token]:
    """An inline token's children with span attribute lists removed and typography applied."""
    for prev, tok in itertools.pairwise(children):
        if tok.type == "html_inline" and prev.type == "text":
            opening = len(prev.content) - len(prev.content.rstrip("<"))
            if opening % 2:  # `<<tag>>`: kramdown reads `<<` as « first, so no tag follows
                tok.type = "text"
    out: list[Token] = []
    autolink = False
    raw: list[str] = []  # the raw-content HTML elements open, innermost last
    k = 0
    while k < len(children):
        tok = children[k]
        if tok.type == "link_open":
            autolink = tok.markup == "autolink"
        elif tok.type == "link_close":
            autolink = False
        elif tok.type == "html_inline" and (m := _HTML_TAG.match(tok.content)):
            name = m.group(2).lower()
            if m.group(1) and name in raw:
                del raw[raw.index(name) :]
            elif not m.group(1) and name in _RAW_HTML and not tok.content.endswith("/>"):
                raw.append(name)
        starts_run = tok.type == "text" or (
            tok.type == "softbreak" and k + 1 < len(children) and children[k + 1].type == "text"
        )
        if not starts_run or autolink or raw:
            out.append(tok)
            k += 1
            continue
        end = k
        while end < len(children) and children[end].type in ("text", "softbreak"):
            end += 1
        run = "".join("\n" if t.type == "softbreak" else t.content for t in children[k:end])
        run = _SPAN_IAL.sub("", run)
        if heading and end == len(children):
            run = _HEADER_ID.sub("", run)
        run = smarten(run, _source_of(children[end:]))
        for n, piece in enumerate(run.split("\n")):
            if n:
                out.append(Token("softbreak", "br", 0))
            if piece:
                out.append(Token("text", "", 0, content=piece))
        k = end
    return out


def _rule(state: StateCore) -> None:
    if not state.env.get(ENV_KEY):
        return
    for k, tok in enumerate(state.tokens):
        if tok.type == "inline" and tok.children:
            heading = k > 0 and state.tokens[k - 1].type == "heading_open"
            tok.children = _span(tok.children, heading=heading)


def install(md: MarkdownIt) -> None:
    """Add the span-level rule to a parser; it applies to parses whose env sets ENV_KEY."""
    md.core.ruler.before("text_join", "kramdown", _rule)
