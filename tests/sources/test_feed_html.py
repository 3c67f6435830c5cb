"""Feed HTML → Markdown, as a table: what readers then see through the Telegram formatter."""

from __future__ import annotations

import pytest

from bot.render.markup import to_telegram_html
from bot.sources.feed_html import (
    escape_markdown,
    first_image,
    first_paragraph,
    html_text,
    html_to_markdown,
)

BASE = "https://news.test/2026/01/post.html"


@pytest.mark.parametrize(
    ("html", "shown"),
    [
        ("<p>A <strong>b</strong> <em>c</em> <del>d</del></p>", "A <b>b</b> <i>c</i> <s>d</s>"),
        ("<p>Fish &amp; chips &lt;3 &nbsp;ok</p>", "Fish &amp; chips &lt;3 ok"),
        (
            '<p><a href="/x">rel</a> <a href="javascript:x()">js</a></p>',
            '<a href="https://news.test/x">rel</a> js',
        ),
        (
            "<p>*not em* _nor_ [this](x) `code` ||spoil||</p>",
            "*not em* _nor_ [this](x) `code` ||spoil||",
        ),
        (
            "<p>- not a list</p><p>1. nor this</p><p># nor a heading</p>",
            "- not a list\n\n1. nor this\n\n# nor a heading",
        ),
        ("<h2>Title</h2><p>text</p>", "<b>Title</b>\n\ntext"),
        ("<ul><li>one<li>two</ul><ol start='3'><li>three</ol>", "• one\n• two\n\n3. three"),
        ("<blockquote><p>said</p></blockquote>", "<blockquote>said</blockquote>"),
        (
            '<pre><code class="language-py">a < b\n  c</code></pre>',
            '<pre><code class="language-py">a &lt; b\n  c</code></pre>',
        ),
        ("<p>x <code>a*b</code></p>", "x <code>a*b</code>"),
        ("<p>one<br>two</p>", "one\ntwo"),
        ("<p>a</p><script>alert(1)</script><style>p{}</style><!-- c --><p>b</p>", "a\n\nb"),
        (
            "<figure><img src='/i.jpg' alt='Alt'><figcaption>Cap</figcaption></figure>",
            '<a href="https://news.test/i.jpg">Alt</a>\n\n<i>Cap</i>',
        ),
        (
            "<iframe src='https://video.test/e/1' title='Clip'></iframe>",
            '<a href="https://video.test/e/1">Clip</a>',
        ),
        (
            "<table><tr><th>a</th><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>",
            "a · b\n\nc · d",
        ),
        ("<div><p>unclosed <b>bold<p>next</div>", "unclosed <b>bold</b>\n\nnext"),
        ("plain words, no tags", "plain words, no tags"),
    ],
    ids=[
        "emphasis",
        "entities",
        "links",
        "markdown-ish text",
        "line starts",
        "heading",
        "lists",
        "quote",
        "code block",
        "inline code",
        "br",
        "dropped",
        "figure",
        "embed",
        "table",
        "unclosed",
        "text",
    ],
)
def test_html_is_shown_as_the_site_shows_it(html: str, shown: str) -> None:
    """Each kind of HTML maps onto Telegram formatting or its text, never literal markup."""
    assert to_telegram_html(html_to_markdown(html, base_url=BASE)) == shown


def test_escaped_text_reads_back_literally() -> None:
    """Any punctuation Markdown knows comes back as typed."""
    text = r"a*b_c [d](e) <f> #g !h |i| ~j~ &k; \l `m` 1. n"
    assert to_telegram_html(escape_markdown(text)) == (
        r"a*b_c [d](e) &lt;f&gt; #g !h |i| ~j~ &amp;k; \l `m` 1. n"
    )


def test_first_paragraph_skips_pictures_and_captions() -> None:
    """The excerpt is the first <p> with text, not a figure that comes before it."""
    html = (
        "<figure><img src='/a.jpg'><figcaption>Cap</figcaption></figure>"
        "<p>Lead <b>in</b>.</p><p>More</p>"
    )
    assert first_paragraph(html) == "Lead **in**."


def test_first_image_and_text() -> None:
    """The first <img> is found (made absolute) and a title's tags are reduced to its text."""
    assert first_image("<p>x<img src='/a.jpg'><img src='/b.jpg'></p>", base_url=BASE) == (
        "https://news.test/a.jpg"
    )
    assert first_image("<p>none</p>") is None
    assert html_text("A <b>bold</b>\n &amp; title") == "A bold & title"
