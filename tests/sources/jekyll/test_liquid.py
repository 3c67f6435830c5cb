"""Liquid in post bodies renders as Jekyll would; what cannot render is dropped and logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.settings import Site, load_settings
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A site with a baseurl, an include, a page and two posts to link to."""
    (tmp_path / "_config.yml").write_text(
        "title: The Paper\nurl: https://ex.com\nbaseurl: /blog\n"
        "timezone: America/Los_Angeles\nauthor: {name: Desk}\n",
        encoding="utf-8",
    )
    (tmp_path / "_includes").mkdir()
    (tmp_path / "_includes" / "hello.html").write_text(
        "Hi {{ include.who }} on {{ page.title }}!", encoding="utf-8"
    )
    (tmp_path / "_posts" / "world").mkdir(parents=True)
    (tmp_path / "_posts" / "2024-01-02-other.md").write_text(
        "---\ntitle: Other\ncategories: [Sport]\n---\nx\n", encoding="utf-8"
    )
    (tmp_path / "_posts" / "world" / "2024-01-03-far.md").write_text(
        "---\ntitle: Far\npermalink: /far/:title/\n---\nx\n", encoding="utf-8"
    )
    (tmp_path / "about.md").write_text("---\ntitle: About\n---\nabout\n", encoding="utf-8")
    (tmp_path / "contact").mkdir()
    (tmp_path / "contact" / "index.html").write_text("<p>c</p>", encoding="utf-8")
    return load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))


def body_of(site: Site, body: str, front: str = "title: Page Title") -> str:
    raw = f"---\n{front}\n---\n{body}".encode()
    return parse_post("2024-01-05-this-post.md", raw, site).body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ site.title }} at {{ site.url }}{{ site.baseurl }}", "The Paper at https://ex.com/blog"),
        ("{{ site.author.name }}", "Desk"),
        ("{{ page.title }} / {{ page.url }}", "Page Title / /2024/01/05/this-post.html"),
        ("{{ page.date | date: '%Y-%m-%d %H:%M' }}", "2024-01-05 00:00"),
        ("{{ page.custom }}", "42"),
        ("{% raw %}{{ not rendered }} {% if %}{% endraw %}", "{{ not rendered }} {% if %}"),
        ("{% highlight python linenos %}\nprint('{{ page.title }}')\n{% endhighlight %}",
         "```python\nprint('Page Title')\n```"),
        ("{% highlight text %}\n```\ninner\n```\n{% endhighlight %}",
         "````text\n```\ninner\n```\n````"),
        ("{% link about.md %}", "https://ex.com/blog/about.html"),
        ("{% link contact/index.html %}", "https://ex.com/blog/contact/"),
        ("{% link _posts/2024-01-02-other.md %}", "https://ex.com/blog/sport/2024/01/02/other.html"),
        ("{% post_url 2024-01-02-other %}", "https://ex.com/blog/sport/2024/01/02/other.html"),
        ("{% post_url world/2024-01-03-far %} {% post_url 2024-01-03-far %}",
         "https://ex.com/blog/far/far/ https://ex.com/blog/far/far/"),
        ('{% include hello.html who="Ann" %}', "Hi Ann on Page Title!"),
        ("{% include hello.html who=page.title %}", "Hi Page Title on Page Title!"),
        ("{% assign n = 3 %}{% for i in (1..n) %}{{ i }}{% endfor %}", "123"),
        ("{% if page.title == 'Page Title' %}yes{% else %}no{% endif %}", "yes"),
        ("{% capture x %}cap{% endcapture %}{{ x | upcase }}", "CAP"),
        ("{{ '/img/a b.png' | relative_url }}", "/blog/img/a%20b.png"),
        ("{{ 'feed.xml' | absolute_url }}", "https://ex.com/blog/feed.xml"),
        ("{{ 'https://other.org/x' | absolute_url }}", "https://other.org/x"),
        ("{{ page.date | date_to_string }}", "05 Jan 2024"),
        ("{{ page.date }}", "2024-01-05 00:00:00 -0800"),
        ("{{ page.date | date_to_long_string: 'ordinal', 'US' }}", "January 5th, 2024"),
        ("{{ page.date | date_to_xmlschema }}", "2024-01-05T00:00:00-08:00"),
        ("{{ page.date | date_to_rfc822 }}", "Fri, 05 Jan 2024 00:00:00 -0800"),
        ("{{ 'Hello, World & Co!' | slugify }}", "hello-world-co"),
        ("{{ 'Hello, World!' | slugify: 'pretty' }}", "hello,-world!"),
        ("{{ '<a href=\"x\">' | xml_escape }}", "&lt;a href=&quot;x&quot;&gt;"),
        ("{{ page.tags | jsonify }}", '["a", "b"]'),
        ("{{ '**bold**' | markdownify }}", "**bold**"),
        ("{{ 'one two  three' | number_of_words }}", "3"),
        ("{{ page.tags | array_to_sentence_string }}", "a and b"),
        ("{{ page.tags | sort | reverse | join: ',' }}", "b,a"),
        ("{% assign w = site.items | where: 'kind', 'x' %}{{ w.size }}", "0"),
        ("Plain {{ nothing_here }}text", "Plain text"),
    ],
)  # fmt: skip
def test_liquid_renders_like_jekyll(site: Site, body: str, expected: str) -> None:
    """Site and page variables, Jekyll tags and filters render to what the site shows."""
    front = "title: Page Title\ncustom: 42\ntags: [a, b]"
    assert body_of(site, body, front) == expected


@pytest.mark.parametrize(
    ("body", "expected", "problem"),
    [
        ("a {% gist 12345 %} b", "a  b", "gist"),
        ("a {% include missing.html %} b", "a  b", "missing.html"),
        ("a {% include ../_config.yml %} b", "a  b", "not found"),
        ("a {{ x | no_such_filter }} b", "a  b", "no_such_filter"),
        ("a {% link nope.md %} b", "a  b", "nope.md"),
        ("a {% post_url 1999-01-01-none %} b", "a  b", "1999-01-01-none"),
        ("a {% if x %} b", "a  b", "never closed"),
        ("a {% endfor %} b", "a  b", "closes nothing"),
        ("a {{ broken\n\nnext para", "a \n\nnext para", "expected"),
        ("a {% for %}x{% endfor %} b", "a  b", "missing expression"),
        ("a {% raw %} b", "a  b", "raw"),
        ("a {% if true %}{% for y in z %}c{% endif %} d", "a c d", "never closed"),
        ("a {{ 'x' | }} b", "a  b", "expected"),
        ("a {{ 'x' | to_integer }} b", "a  b", "to_integer: could not convert"),
        ("a {{ 'inf' | to_integer }} b", "a  b", "to_integer: cannot convert float infinity"),
        ("a {{ 'soon' | date_to_string }} b", "a  b", "not a date"),
        ("a {{ page.tags | pop: 'x' }} b", "a  b", "pop: invalid literal"),
    ],
)
def test_unrenderable_liquid_is_dropped_and_logged_once(
    site: Site, body: str, expected: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Broken or unknown Liquid vanishes from the body, with one log line naming the file."""
    with caplog.at_level(logging.WARNING, logger="bot.sources.jekyll.liquid"):
        assert body_of(site, body) == expected
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.sources.jekyll.liquid"]
    assert len(lines) == 1
    assert "_posts/2024-01-05-this-post.md" in lines[0] and problem in lines[0]


def test_no_liquid_means_no_log(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A body without Liquid passes through untouched and logs nothing."""
    text = "Prices rose 5% {not liquid} and 50% {off} %}"
    with caplog.at_level(logging.DEBUG, logger="bot.sources.jekyll.liquid"):
        assert body_of(site, text) == text
    assert [r for r in caplog.records if r.name == "bot.sources.jekyll.liquid"] == []


def test_include_relative(site: Site) -> None:
    """`include_relative` reads a file next to the post."""
    (site.posts_dir / "snippet.md").write_text("Snip {{ include.n }}", encoding="utf-8")
    assert body_of(site, "{% include_relative snippet.md n=2 %}") == "Snip 2"


def test_liquid_excerpt_comes_from_rendered_body(site: Site) -> None:
    """The excerpt shows rendered Liquid, not its source."""
    raw = b"---\ntitle: T\n---\n{{ site.title }} reports.\n\nMore."
    post = parse_post("2024-01-05-a.md", raw, site)
    assert post.excerpt == "The Paper reports."


@pytest.mark.parametrize(
    ("body", "expected", "limit"),
    [
        ("before {% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %} "
         "after", "before x after", "loop iteration limit"),
        ("a {{ page.title }} " + "{% for i in (1..60000) %}{% endfor %}" * 3 + "b",
         "a  b", "over 100,000 in one post"),
        ("{% assign x = '" + "x" * 100 + "' %}{% for i in (1..90000) %}{{ x }}{% endfor %}end",
         "end", "output stream limit"),
        ("{% assign x = 'x' %}" + "{% assign x = x | append: x %}" * 23 + "{{ x | size }} end",
         "end", "append: a result over 4,000,000 characters"),
        ("a {{ (1..200000) | join: ',' }} b", "a  b", "join: over 100,000 items"),
    ],
    ids=["nested-loops", "sequential-loops", "output", "doubling", "range-filter"],
)  # fmt: skip
def test_liquid_bombs_are_cut_off_and_logged_once(
    site: Site, body: str, expected: str, limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Liquid over a resource limit stops there: the text stays, the Liquid goes, one log line."""
    with caplog.at_level(logging.WARNING, logger="bot.sources.jekyll.liquid"):
        assert body_of(site, body) == expected
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.sources.jekyll.liquid"]
    assert len(lines) == 1
    assert "_posts/2024-01-05-this-post.md" in lines[0] and limit in lines[0]


def test_links_to_posts_under_site_folders(site: Site) -> None:
    """`post_url news/…` and `link news/_posts/…` find a post under `news/_posts/`."""
    (site.root / "news" / "_posts").mkdir(parents=True)
    (site.root / "news" / "_posts" / "2024-01-04-near.md").write_text(
        "---\ntitle: Near\n---\nx\n", encoding="utf-8"
    )
    body = "{% post_url news/2024-01-04-near %} {% link news/_posts/2024-01-04-near.md %}"
    url = "https://ex.com/blog/news/2024/01/04/near.html"
    assert body_of(site, body) == f"{url} {url}"
