"""kramdown's syntax and typography as Jekyll's default converter shows a post (fmt="kramdown")."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from bot.render import html_inline
from bot.render.kramdown import prepare, smarten
from bot.render.markup import to_plain_text, to_telegram_html
from tests.fakes.tg_html import check

BASE = "https://news.example.com/2026/11/22/post.html"

PREPARED = [
    ("A paragraph.\n{: .lead}\nNext.", "A paragraph.\n\nNext."),
    ("{:ref: .important}\nText\n{: ref #id key='v'}", "\nText\n"),
    ("> quote\n> {: .note}", "> quote\n>"),
    ("* TOC\n{:toc}\n\n## One", "\n\n## One"),
    ("Intro\n\n1. seed list\n{: toc}\n\n## One", "Intro\n\n\n\n## One"),
    ("{::options parse_block_html=\"true\" /}\nText", "\nText"),
    ("a {::comment}hidden{:/comment} b", "a  b"),
    ("a\n{::comment}\nhidden\n{:/comment}\nb", "a\nb"),
    ("{::nomarkdown}<b>x</b>{:/nomarkdown}", "<b>x</b>"),
    ("*[HTML]: Hyper Text Markup Language\nSome HTML.", "\nSome HTML."),
    ("para\n^\nnext", "para\n\nnext"),
    ('<div markdown="1">\n**md**\n</div>', '<div markdown="1">\n\n**md**\n\n</div>'),
    # block HTML stays HTML to its end tag, blank lines and all, as kramdown keeps it
    ("<div>\n\n**raw**\n\n</div>\nafter", "<div>\n<!-- -->\n**raw**\n<!-- -->\n</div>\n\nafter"),
    # fenced code is left as written
    ("```\n{: .lead}\n{::comment}x{:/comment}\n```",
     "```\n{: .lead}\n{::comment}x{:/comment}\n```"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), PREPARED)
def test_prepare_removes_block_syntax(source: str, expected: str) -> None:
    """kramdown's block-level syntax is removed from the source before CommonMark reads it."""
    assert prepare(source) == expected


# Each result below is what kramdown 2.4 (Jekyll 4's converter) shows for the same text.
RENDERED = [
    ('He said "hello" -- and left...', "He said “hello” – and left…"),
    ("It's the '80s --- again", "It’s the ’80s — again"),
    ("\"'Nested' quotes\"", "“‘Nested’ quotes”"),
    ('"*emphasis*" and "**strong**"', "“<i>emphasis</i>” and “<b>strong</b>”"),
    ("<<guillemets>> and << spaced >>", "«guillemets» and «\u00a0spaced\u00a0»"),
    ('<<<span class="x">tag</span>>>', "«tag»"),
    ("rock 'n' roll, Custer's, the boys' room", "rock ‘n’ roll, Custer’s, the boys’ room"),
    ('Code `"x" -- y` and <code>"a" -- b</code>',
     'Code <code>"x" -- y</code> and <code>"a" -- b</code>'),
    ("```\n\"fenced\" -- code\n```", '<pre>"fenced" -- code</pre>'),
    ("<https://example.org/a--b> stays",
     '<a href="https://example.org/a--b">https://example.org/a--b</a> stays'),
    (r"Escaped \"quotes\" and \-\- dashes", 'Escaped "quotes" and -- dashes'),
    ("## A title {#title-id}\n\nText", "<b>A title</b>\n\nText"),
    ("Lead.\n{: .lead}\n\nNext", "Lead.\n\nNext"),
    ('[Site](/a){:target="_blank"} and *em*{: .x}',
     '<a href="https://news.example.com/a">Site</a> and <i>em</i>'),
    ("![Chart](/c.png){: .center}", '<a href="https://news.example.com/c.png">Chart</a>'),
    ("| a | b |\n|---|---|\n| 1 | 2 |\n{: .table}", "<b>a</b> | <b>b</b>\n1 | 2"),
    ("Read [the report][r] and [Other].\n\n[r]: /r.html\n[other]: https://o.org/",
     'Read <a href="https://news.example.com/r.html">the report</a> and '
     '<a href="https://o.org/">Other</a>.'),
    ('<div class="note">\n\n**raw** "html"\n\n</div>', '**raw** "html"'),
    ('<div class="note" markdown="1">\n**Note:** "md"\n</div>', "<b>Note:</b> “md”"),
    ('Say <span class="x">**bold** "q"</span>', "Say <b>bold</b> “q”"),
    ("Text {::comment}hidden{:/comment}shown", "Text shown"),
    ("*[HTML]: Hyper Text\nSome HTML here.", "Some HTML here."),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), RENDERED)
def test_kramdown_renders_as_jekyll_shows_it(source: str, expected: str) -> None:
    """kramdown syntax never reaches a reader; typography is kramdown's, never inside code."""
    html = to_telegram_html(source, base_url=BASE, fmt="kramdown")
    assert html == expected
    check(html)


def test_toc_placeholder_and_its_list_are_dropped() -> None:
    """`{:toc}` and the list it stands on are gone: the site's contents are navigation."""
    html = to_telegram_html("* TOC\n{:toc}\n\n## One\n\nBody", fmt="kramdown")
    assert html == "<b>One</b>\n\nBody"


def test_excerpt_links_resolve_with_the_body_definitions() -> None:
    """An excerpt's reference links use the definitions further down the post, as Jekyll's do."""
    body = 'See [the map][m] and [Flood].\n\nMore.\n\n[m]: /map.html "Map"\n[flood]: https://f.org/'
    excerpt = body.split("\n\n")[0]
    expected = (
        'See <a href="https://news.example.com/map.html">the map</a> and '
        '<a href="https://f.org/">Flood</a>.'
    )
    assert to_telegram_html(excerpt, base_url=BASE, fmt="kramdown", definitions=body) == expected
    assert (
        to_telegram_html(excerpt, base_url=BASE, fmt="kramdown") == "See [the map][m] and [Flood]."
    )
    assert to_plain_text(excerpt, base_url=BASE, fmt="kramdown", definitions=body) == (
        "See the map (https://news.example.com/map.html) and Flood (https://f.org/)."
    )


def test_commonmark_text_keeps_its_characters() -> None:
    """Text that is not kramdown (a feed's entry) keeps straight quotes and double hyphens."""
    source = 'He said "hi" -- {: .x} it\'s'
    assert to_telegram_html(source) == 'He said "hi" -- {: .x} it\'s'


SMART = [
    ("'Tis", "‘Tis"),
    ('"Hi," she said.', "“Hi,” she said."),
    ("x' y", "x’ y"),
    ("1960's", "1960’s"),
    ('a "b" c', "a “b” c"),
    ("<< a >>", "«\u00a0a\u00a0»"),
    ("---", "—"),
    ("a--b", "a–b"),
    ("....", "….")
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), SMART)
def test_smarten_follows_kramdown(text: str, expected: str) -> None:
    """Quotes, dashes, ellipses and guillemets are replaced by kramdown's own rules."""
    assert smarten(text) == expected


_KRAMDOWN = """
require 'json'
require 'kramdown'
require 'kramdown-parser-gfm'
opts = {input: 'GFM', auto_ids: true, entity_output: 'as_char', toc_levels: (1..6).to_a,
        smart_quotes: 'lsquo,rsquo,ldquo,rdquo', hard_wrap: false, footnote_nr: 1,
        show_warnings: false, syntax_highlighter: nil, gfm_quirks: [:paragraph_end]}
puts JSON.generate(JSON.parse(STDIN.read).map { |s| Kramdown::Document.new(s, opts).to_html })
"""


def _real_kramdown(sources: list[str]) -> list[str]:
    """Each source through real kramdown with Jekyll 4's settings, or a skip saying how."""
    how = "install Debian's jekyll (apt-get install jekyll) to compare with real kramdown"
    if shutil.which("ruby") is None:
        pytest.skip(f"ruby is missing: {how}")
    done = subprocess.run(
        ["ruby", "-e", _KRAMDOWN], input=json.dumps(sources), capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"kramdown is missing ({done.stderr.strip()[:80]}): {how}")
    return [str(html) for html in json.loads(done.stdout)]


def test_same_text_as_real_kramdown() -> None:
    """Every sample reads the same through Herald as through real kramdown and the same HTML
    reader: Herald's kramdown is Jekyll's."""
    sources = [source for source, _ in RENDERED]
    for source, html in zip(sources, _real_kramdown(sources), strict=True):
        theirs = html_inline.to_telegram(html, base_url=BASE)
        assert to_telegram_html(source, base_url=BASE, fmt="kramdown") == theirs, source
