"""Markdown → Telegram HTML and the splitter, checked with the Bot API's own parsing rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.render.email_markup import telegram_to_email
from bot.render.markup import shorten, to_plain_text, to_telegram_html
from bot.render.splitter import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    MarkupError,
    split_html,
    utf16_len,
    validate,
    visible_len,
    visible_text,
)
from tests.fakes.tg_html import check

BASE = "https://news.example.com/2026/11/22/post.html"

CASES = [
    ("**bold** _it_ ~~gone~~ `x<y`", "<b>bold</b> <i>it</i> <s>gone</s> <code>x&lt;y</code>"),
    ("# Title *here*\n\ntext", "<b>Title <i>here</i></b>\n\ntext"),
    ("- one\n- two", "• one\n• two"),
    ("3. three\n4. four", "3. three\n4. four"),
    ("- a\n  - b", "• a\n  • b"),
    ("[minutes](/m.html)", '<a href="https://news.example.com/m.html">minutes</a>'),
    ("[rel](x.html)", '<a href="https://news.example.com/2026/11/22/x.html">rel</a>'),
    ("![a chart](/c.png)", '<a href="https://news.example.com/c.png">a chart</a>'),
    ("[![pic](/p.png)](https://x.org/)", '<a href="https://x.org/">pic</a>'),
    ("before <script>alert(1)</script> after", "before after"),
    ("a <b>raw</b> & b", "a <b>raw</b> &amp; b"),
    ("before<!--more-->after", "beforeafter"),
    ("> quoted\n> > nested", "<blockquote>quoted\n\nnested</blockquote>"),
    ("```py\nif a<b:\n```", '<pre><code class="language-py">if a&lt;b:</code></pre>'),
    ("line one\nline two", "line one line two"),
    ('[q](https://x.org/?a=1&b="2")', '<a href="https://x.org/?a=1&amp;b=%222%22">q</a>'),
    ("---", "⁂"),
    ("a ||hidden **b**|| c", "a <tg-spoiler>hidden <b>b</b></tg-spoiler> c"),
    ("a || b", "a || b"),
    ("[js](javascript:alert(1))", "[js](javascript:alert(1))"),
    # raw HTML in Markdown (kramdown passes it through) is read as HTML, never shown as markup
    (
        'Press <kbd>Ctrl</kbd> in <span class="x">**bold**</span>',
        "Press <code>Ctrl</code> in <b>bold</b>",
    ),
    ("A&nbsp;B &mdash; <cite>C</cite>", "A\u00a0B — <i>C</i>"),
    (
        '<figure>\n<img src="/f.jpg" alt="Flood">\n<figcaption>The river</figcaption>\n</figure>',
        '<a href="https://news.example.com/f.jpg">Flood</a>\n<i>The river</i>',
    ),
    (
        '<iframe src="https://www.youtube.com/embed/x1" title="Clip"></iframe>',
        '▶ <a href="https://www.youtube.com/watch?v=x1">Clip</a>',
    ),
    ("<div>\n\n*Markdown* inside\n\n</div>", "<i>Markdown</i> inside"),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_markdown_becomes_telegram_html(source: str, expected: str) -> None:
    """Each Markdown construct becomes the Telegram tag (or escaped text) a reader expects."""
    html = to_telegram_html(source, base_url=BASE)
    assert html == expected
    check(html)


def test_html_post_is_read_as_html() -> None:
    """An `.html` post's text is HTML: Markdown syntax in it stays text, tags are formatting."""
    source = "<p>**not bold** <b>bold</b></p>\n\n<p>next &amp; last</p>"
    assert to_telegram_html(source, base_url=BASE, fmt="html") == (
        "**not bold** <b>bold</b>\n\nnext &amp; last"
    )
    assert to_plain_text(source, fmt="html") == "**not bold** bold\n\nnext & last"


def test_plain_text_keeps_link_targets() -> None:
    """The plain-text rendering shows link targets, since a text email cannot hide them."""
    assert to_plain_text("Read [this](/a.html) **now**", base_url=BASE) == (
        "Read this (https://news.example.com/a.html) now"
    )


def test_split_prefers_paragraphs_then_sentences() -> None:
    """A long text is cut at a blank line when one is near the limit, else after a sentence."""
    para = "Alpha beta gamma. " * 10
    html = f"{para.strip()}\n\n{para.strip()}"
    parts = split_html(html, limit=len(para) + 20)
    assert [visible_text(p) for p in parts] == [para.strip(), para.strip()]
    parts = split_html(para.strip(), limit=60)
    assert all(visible_text(p).endswith(".") for p in parts)


def test_split_closes_and_reopens_tags() -> None:
    """A cut inside bold or a link closes it at the end of one part and reopens it in the next."""
    html = '<b>bold <a href="https://x.org/">' + "word " * 40 + "</a></b>"
    parts = split_html(html, limit=50)
    assert len(parts) > 2
    for part in parts:
        check(part)
        assert part.startswith('<b><a href="https://x.org/">') or part.startswith("<b>bold")
        assert part.endswith("</a></b>")


def test_split_never_cuts_an_entity() -> None:
    """Entities count as one character and are never cut in half."""
    html = "&amp;" * 30
    parts = split_html(html, limit=7)
    assert all(p == "&amp;" * 7 or p.startswith("&amp;") for p in parts)
    assert "".join(parts) == html


def test_split_counts_utf16_like_telegram() -> None:
    """Emoji outside the BMP count twice, as Telegram counts them."""
    html = "😀" * 600
    parts = split_html(html, limit=CAPTION_LIMIT)
    assert [utf16_len(visible_text(p)) for p in parts] == [1024, 176]


def test_validate_refuses_what_telegram_refuses() -> None:
    """Unsupported tags, unbalanced tags, bare ampersands and overlong text are refused."""
    for bad in ("<div>x</div>", "<b>x", "a & b", "<b>x</i>", "x" * 4097):
        with pytest.raises(MarkupError):
            validate(bad)
    validate('<b>ok</b> &amp; <a href="https://x.org/">link</a>')


def test_shorten_cuts_at_a_word() -> None:
    """Summaries end at a word boundary with an ellipsis."""
    assert shorten("one two three four", 12) == "one two…"
    assert shorten("short", 12) == "short"


def test_telegram_html_to_email() -> None:
    """An admin's Telegram HTML becomes email HTML with line breaks and a text twin with links."""
    html, text = telegram_to_email('<b>Hi</b> &amp; co\n<a href="https://x.org/">site</a>')
    assert html == '<b>Hi</b> &amp; co<br>\n<a href="https://x.org/">site</a>'
    assert text == "Hi & co\nsite (https://x.org/)"


# -- property tests: hostile input always gives valid, complete messages -------------------
_PIECES = st.sampled_from(
    [
        "**", "*", "_", "__", "`", "```", "~~", "[", "](", ")", "![", "<script>", "</b>",
        "<b>", "&", "&amp;", "&#", "&lt", ";", "\n", "\n\n", "> ", "- ", "1. ", "# ", "|",
        "---", "😀", "👨‍👩‍👧", "שלום עולם", "\u200f", "مرحبا", "e\u0301", " ", ".", "! ",
        "http://x.org/?a=1&b=2", "<!--", "-->", "||", "    ", "\t", "<", ">", '"', "'",
    ]
)  # fmt: skip
_MARKDOWN = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=60).map("".join)
# Inline and block HTML as posts carry it, broken and unbalanced as often as not.
_HTML_PIECES = st.sampled_from(
    [
        '<span class="x">', "</span>", "<kbd>", "</kbd>", "<cite>", "</cite>", "<em>", "</i>",
        '<a href="/x">', '<a href="javascript:x()">', "</a>", '<img src="/i.png" alt="pic">',
        "<br>", "<figure>", "</figure>", "<figcaption>", "</figcaption>", "<q>", "</q>",
        '<iframe src="https://www.youtube.com/embed/x"></iframe>', '<video src="/v.mp4">',
        '<blockquote class="twitter-tweet"><p>', "</blockquote>", "<blockquote>", "<pre>",
        "</pre>", "<code>", "</code>", "<table><tr><th>", "<td>", "</td></tr></table>",
        "&nbsp;", "&mdash;", "&amp;", "&#x1F600;", "&bogus;", "<tg-spoiler>", "<u>", "<div>",
        "</div>", "<p>", "</p>", "<ul><li>", "<li>", "</li></ul>", "<h2>", "</h2>", "<hr>",
        "<style>", "</style>", "<del>", '<span class="tg-spoiler">', "{: .lead}", "{:toc}",
        '[ref]', '[ref]: /r.html "R"', "--", "...", '"q"', "it's", "<<", ">>",
        '<a href="http://[x">', "<![", "<!-- c -->",
    ]
)  # fmt: skip
_WITH_HTML = st.lists(st.one_of(_HTML_PIECES, _PIECES, st.text(max_size=8)), max_size=60).map(
    "".join
)
# What hides text on purpose; a source without any of them shows all of its words.
_HIDING = (
    "```",
    "~~~",
    "](",
    "<!",
    "<?",
    "<script>",
    "<style>",
    "<iframe",
    "<video",
    "twitter-tweet",
)
# A `<` that random text turns into the start of some other tag hides what follows, in
# browsers too (`<e😀 …>` is an element named `e😀`).
_STRAY_TAG = re.compile(
    r"</?(?!(?:span|kbd|cite|em|i|a|img|br|figure|figcaption|q|iframe|video|blockquote|pre"
    r"|code|table|tr|th|td|tg-spoiler|u|div|p|ul|li|h2|hr|style|del|script|b)[\s>])[A-Za-z]"
)
_NON_SPACE = re.compile(r"\s+")


def _assert_complete(whole: str, parts: list[str], first: int, rest: int) -> None:
    for k, part in enumerate(parts):
        check(part, caption=k == 0 and first == CAPTION_LIMIT)
        assert visible_len(part) <= (first if k == 0 else rest)
    joined = "".join(visible_text(p) for p in parts)
    assert _NON_SPACE.sub("", joined) == _NON_SPACE.sub("", visible_text(whole))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_MARKDOWN)
def test_any_markdown_renders_valid_telegram_html(source: str) -> None:
    """Random and hostile Markdown always renders to HTML the Bot API accepts."""
    html = to_telegram_html(source, base_url=BASE)
    check(html, caption=True)  # caption=True: an empty result is allowed here
    # Text is never lost, except where Markdown or HTML hides it on purpose: fence info
    # strings, link targets (the link is kept), HTML comments and scripts.
    if not any(hidden in source for hidden in ("```", "~~~", "](", "<!--", "<script>")):
        for word in ("script", "😀", "שלום"):
            if word in source:
                assert word in visible_text(html)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_WITH_HTML, fmt=st.sampled_from(["markdown", "kramdown", "html"]))
def test_any_inline_html_renders_valid_telegram_html(source: str, fmt: str) -> None:
    """Random inline HTML, in each post format, always renders to HTML the Bot API accepts,
    never shows a tag as text, and loses no word that nothing hides on purpose."""
    html = to_telegram_html(source, base_url=BASE, fmt=fmt, definitions=source + "\n\n[x]: /x")
    check(html, caption=True)
    shown = visible_text(html)
    # Markdown shows code, escaped and indented text as typed; otherwise no tag is ever text.
    if fmt == "html" or not any(literal in source for literal in ("`", "\\", "    ", "\t")):
        plain = to_plain_text(source, base_url=BASE, fmt=fmt)
        for tag in ("<span", "<kbd", "<cite", "<figure", "<iframe", "<div", "<u>", "&nbsp;"):
            assert tag not in shown
            assert tag not in plain
    if not any(hidden in source for hidden in _HIDING) and not _STRAY_TAG.search(source):
        for word in ("😀", "שלום"):
            if word in source:
                assert word in shown


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_MARKDOWN, repeat=st.integers(1, 40), limit=st.integers(8, 300))
@example(source="        000", repeat=1, limit=8)  # a part of nothing but blanks
def test_split_keeps_every_character(source: str, repeat: int, limit: int) -> None:
    """Split parts are each valid and within the limit, and together hold all the text."""
    html = to_telegram_html((source + "\n\n") * repeat, base_url=BASE)
    if not visible_text(html).strip():
        return
    parts = split_html(html, limit=limit, first_limit=limit // 2 + 2)
    _assert_complete(html, parts, limit // 2 + 2, limit)


def test_fifty_kilobyte_body_splits_within_limits() -> None:
    """A 50 KB post with formatting becomes a caption ≤ 1024 and messages ≤ 4096, text intact."""
    para = "Some **bold words** and a [link](/x.html) & *more*; العربية 😀 text. " * 12
    source = "\n\n".join([para] * 60)
    assert len(source.encode()) > 50_000
    html = to_telegram_html(source, base_url=BASE)
    parts = split_html(html, limit=MESSAGE_LIMIT, first_limit=CAPTION_LIMIT)
    _assert_complete(html, parts, CAPTION_LIMIT, MESSAGE_LIMIT)
    assert len(parts) > 10


def test_one_huge_paragraph_without_spaces_still_splits() -> None:
    """Text with no boundary at all is cut hard, still valid and complete."""
    html = to_telegram_html("**" + "x" * 20_000 + "**")
    parts = split_html(html)
    _assert_complete(html, parts, MESSAGE_LIMIT, MESSAGE_LIMIT)
