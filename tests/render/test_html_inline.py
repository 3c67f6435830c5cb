"""HTML inside posts → the Bot API's tags, plain text and clean email HTML, read as a browser."""

from __future__ import annotations

import pytest

from bot.render.html_inline import image_sources, to_email_html, to_telegram, to_text
from tests.fakes.tg_html import check

BASE = "https://news.example.com/2026/11/22/post.html"
SITE = "https://news.example.com"

CASES = [
    # inline formatting: Telegram's own tags, the rest reduced to its text
    ('<span class="x">a</span> <kbd>Ctrl</kbd>+<kbd>C</kbd>', "a <code>Ctrl</code>+<code>C</code>"),
    ("<strong>b</strong> <em>i</em> <cite>c</cite> <ins>u</ins> <del>d</del>",
     "<b>b</b> <i>i</i> <i>c</i> <u>u</u> <s>d</s>"),
    ("<strike>s</strike> <sup>2</sup> <abbr title='x'>abbr</abbr> <mark>m</mark>",
     "<s>s</s> 2 abbr m"),
    ('<tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">t</span>',
     "<tg-spoiler>s</tg-spoiler> <tg-spoiler>t</tg-spoiler>"),
    ("<q>quoted</q>", "“quoted”"),
    ("<i>outer <em>inner</em></i>", "<i>outer inner</i>"),
    # entities decoded, then escaped again only where Telegram needs it
    ("A&nbsp;B &mdash; C &amp; D &lt;tag&gt; &#8230;", "A\u00a0B — C &amp; D &lt;tag&gt; …"),
    # blocks become lines
    ("<p>one</p><p>two</p><div>three</div><div>four</div>", "one\n\ntwo\n\nthree\nfour"),
    ("a<br>b<hr>c", "a\nb\n\n⁂\n\nc"),
    ("<ul><li>one<li>two</ul><ol start='3'><li>c</li><li>d</li></ol>",
     "• one\n• two\n\n3. c\n4. d"),
    ("<table><tr><th>a<th>b<tr><td>1<td>2</table>", "<b>a</b> | <b>b</b>\n1 | 2"),
    ("<dl><dt>Term</dt><dd>Meaning</dd></dl>", "Term\nMeaning"),
    ("<h2>Head</h2><p>text</p>", "<b>Head</b>\n\ntext"),
    # figures, images
    (
        '<figure><img src="/i.jpg" alt="A flood"><figcaption>Water rises</figcaption></figure>',
        '<a href="https://news.example.com/i.jpg">A flood</a>\n<i>Water rises</i>',
    ),
    ('<p>See <img src="c.png"> here</p>',
     'See <a href="https://news.example.com/2026/11/22/c.png">🖼</a> here'),
    ('<a href="/x"><img src="/p.png" alt="pic"></a>', '<a href="https://news.example.com/x">pic</a>'),
    # quotes with <cite>
    ("<blockquote><p>Words.</p><cite>Ann Author</cite></blockquote>",
     "<blockquote>Words.\n\n<i>Ann Author</i></blockquote>"),
    ("<blockquote>a<blockquote>nested</blockquote></blockquote>",
     "<blockquote>a\n\nnested</blockquote>"),
    # embeds: a link line with their source
    (
        '<p>Watch:</p><iframe src="https://www.youtube.com/embed/abc_1" title="Flood footage">'
        "</iframe>",
        'Watch:\n\n▶ <a href="https://www.youtube.com/watch?v=abc_1">Flood footage</a>',
    ),
    ('<iframe src="https://player.vimeo.com/video/42"></iframe>',
     '▶ <a href="https://vimeo.com/42">vimeo.com</a>'),
    ('<video controls><source src="/v/clip.mp4" type="video/mp4">No video.</video>',
     '▶ <a href="https://news.example.com/v/clip.mp4">clip.mp4</a>'),
    (
        '<blockquote class="twitter-tweet"><p lang="en">Levels are rising &amp; fast</p>'
        '&mdash; Ann (@ann) <a href="https://twitter.com/ann/status/123">May 1, 2026</a>'
        '</blockquote><script async src="https://platform.twitter.com/widgets.js"></script>',
        '▶ <a href="https://twitter.com/ann/status/123">Levels are rising &amp; fast</a>',
    ),
    # dropped: scripts, styles, comments, navigation (a table of contents), forms
    ("<p>a<script>x()</script><style>p{}</style><!-- note -->b</p>", "ab"),
    ('<nav class="toc"><ul><li><a href="#a">A</a></li></ul></nav><p>Text</p>', "Text"),
    ("<form><input name=q><button>Go</button></form>after", "after"),
    # links: made absolute, unsafe ones and nested ones reduced to their text
    ('<a href="javascript:alert(1)">x</a> <a href="#top">top</a>',
     'x <a href="https://news.example.com/2026/11/22/post.html#top">top</a>'),
    ('<a href="/1">x <a href="/2">y</a></a>', '<a href="https://news.example.com/1">x y</a>'),
    # code: text only inside, the language kept
    ('<pre><code class="language-py">if a &lt; b:\n    <b>pass</b>\n</code></pre>',
     '<pre><code class="language-py">if a &lt; b:\n    pass</code></pre>'),
    (
        '<div class="language-ruby highlighter-rouge"><div class="highlight">'
        '<pre class="highlight"><code><span class="k">def</span> x\n</code></pre></div></div>',
        '<pre><code class="language-ruby">def x</code></pre>',
    ),
    ("<pre>\nkeep  spaces\n</pre>", "<pre>keep  spaces</pre>"),
    # broken HTML is read as browsers read it: every tag balanced
    ("<b>bold <i>both</b> after", "<b>bold <i>both</i></b> after"),
    ("<p>unclosed <em>em", "unclosed <i>em</i>"),
    ("</div>stray</span> text", "stray text"),
]  # fmt: skip


@pytest.mark.parametrize(("html", "expected"), CASES)
def test_html_becomes_telegram_html(html: str, expected: str) -> None:
    """Each kind of HTML maps onto Telegram's tags or its text, never shown as markup."""
    out = to_telegram(html, base_url=BASE)
    assert out == expected
    check(out)


def test_plain_text_shows_link_targets_once() -> None:
    """Plain text names each link's target, except where the link text already is it."""
    html = '<p>Read <a href="/a">this</a>.</p><p>Or <a href="https://x.org/">https://x.org/</a></p>'
    assert to_text(html, base_url=SITE) == (
        "Read this (https://news.example.com/a).\n\nOr https://x.org/"
    )


def test_plain_text_of_embeds_and_images() -> None:
    """Images and embeds keep their label and their address in plain text."""
    html = '<img src="/a.png" alt="Chart"><iframe src="https://maps.example.org/e?x=1"></iframe>'
    assert to_text(html, base_url=SITE) == (
        "Chart (https://news.example.com/a.png)\n▶ maps.example.org (https://maps.example.org/e?x=1)"
    )


def test_email_html_keeps_common_tags_only() -> None:
    """Email HTML keeps formatting and styles, drops scripts, classes and handlers, and balances."""
    html = (
        '<div class="note" onclick="steal()"><b>Bold<i> both</div>'
        '<script>x()</script><p style="color:red">red</p><img src="/i.png" alt="pic">'
        '<a href="javascript:x()">bad</a> <a href="/ok" class="btn">ok</a>'
        "<custom-el>text</custom-el>"
    )
    assert to_email_html(html, base_url=SITE, image_style="max-width:100%") == (
        "<div><b>Bold<i> both</i></b></div>"
        '<p style="color:red">red</p>'
        '<img src="https://news.example.com/i.png" alt="pic" style="max-width:100%">'
        'bad <a href="https://news.example.com/ok">ok</a>text'
    )


def test_email_html_makes_embeds_links() -> None:
    """An embed in an email is a paragraph with a link to its source."""
    html = '<figure><iframe src="https://www.youtube.com/embed/v1" title="Clip"></iframe></figure>'
    assert to_email_html(html) == (
        '<figure><p><a href="https://www.youtube.com/watch?v=v1">▶ Clip</a></p></figure>'
    )


def test_image_sources_lists_every_img() -> None:
    """Every <img> source is found, as written, for `herald check` to look for the file."""
    html = '<p><img src="/a.jpg"> <img alt="none"></p><figure><img src="b.png"></figure>'
    assert image_sources(html) == ["/a.jpg", "b.png"]


def test_deeply_nested_html_still_renders() -> None:
    """Thousands of unclosed tags (a broken post) give their text, not a RecursionError."""
    html = "<div>" * 5000 + "deep" + "<b><i>" * 3000 + " text"
    assert to_text(html) == "deep text"
    check(to_telegram(html))
    assert "deep" in to_email_html(html)
