"""Post files → Post, by Jekyll's rules: fields, dates, links, breaking, broken files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.errors import ConfigError, PostError
from bot.settings import Site, load_settings
from bot.sources.jekyll.reader import breaking_rules, is_post_filename, is_post_path, parse_post
from bot.sources.jekyll.site import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "site"


def make_site(
    *,
    permalink: str = "date",
    tz: str = "UTC",
    url: str = "https://ex.com",
    config: dict[str, Any] | None = None,
    root: Path = Path("/nonexistent"),
    separator: str = "\n\n",
) -> Site:
    """A Site as load_site would build it, without touching the disk."""
    return Site(
        root=root,
        url=url,
        tz=ZoneInfo(tz),
        permalink=permalink,
        title="T",
        config=config or {},
        excerpt_separator=separator,
    )


def post_bytes(front: str, body: str = "Body.\n") -> bytes:
    return f"---\n{front}\n---\n\n{body}".encode()


def example_site() -> Site:
    return load_site(load_settings(site_dir=EXAMPLE, site_url=None, timezone=None))


def test_sample_breaking_post_from_the_demo_site() -> None:
    """The sample post is breaking, labelled, dated in London time, linked as Jekyll does."""
    site = example_site()
    rel = "2025-11-11-syria-joins-coalition.md"
    post = parse_post(rel, (site.posts_dir / rel).read_bytes(), site)
    assert post.title == "Syria to join US-led coalition to defeat IS group after Trump meeting"
    assert (post.breaking, post.label, post.published) == (True, "Breaking", True)
    assert post.date == datetime(2025, 11, 11, 1, 7, 21, tzinfo=ZoneInfo("Europe/London"))
    assert post.url == "https://news.example.com/news/2025/11/11/syria-joins-coalition.html"
    assert post.image == (
        "https://news.example.com/assets/images/8c4430206a70401f45907bca2f459514.jpg"
    )
    assert post.excerpt.startswith("Ahmed al-Sharaa, once branded a terrorist")
    assert (post.author, post.categories, post.tags) == ("badely", ("News",), ())
    assert (post.path, post.slug) == (rel, "syria-joins-coalition")
    assert post.body.startswith("Experts revealed")


@pytest.mark.parametrize(
    ("rel", "url", "published", "excerpt_start"),
    [
        (
            "2026-11-20-city-council-approves-budget.md",
            "https://news.example.com/local/politics/2026/11/20/city-council-approves-budget.html",
            True,
            "The budget passed 7–2",
        ),
        (
            "2026-11-21-draft-weekend-weather.md",
            "https://news.example.com/weather/2026/11/21/draft-weekend-weather.html",
            False,
            "A draft:",
        ),
        (
            "world/2026-11-22-summit-ends-with-agreement.md",
            "https://news.example.com/world/2026/11/22/summit-ends-with-agreement.html",
            True,
            "Delegates from 120 countries",
        ),
    ],
)
def test_demo_site_posts(rel: str, url: str, published: bool, excerpt_start: str) -> None:
    """Every demo post parses with the link the demo site publishes and its draft state."""
    site = example_site()
    post = parse_post(rel, (site.posts_dir / rel).read_bytes(), site)
    assert (post.url, post.published) == (url, published)
    assert post.excerpt.startswith(excerpt_start)
    assert "{{" not in post.body and "{%" not in post.body


def test_demo_post_details() -> None:
    """Space-separated tags split, `<!--more-->` ends the excerpt, `{{ site.url }}` renders."""
    site = example_site()
    summit = "world/2026-11-22-summit-ends-with-agreement.md"
    post = parse_post(summit, (site.posts_dir / summit).read_bytes(), site)
    assert post.tags == ("climate", "summit")
    assert post.excerpt == (
        "Delegates from 120 countries agreed on Friday to cut methane emissions by a third\n"
        "by 2035."
    )
    assert post.image == "https://news.example.com/assets/images/summit.jpg"
    assert post.date.utcoffset() is not None and post.date.hour == 17  # 18:05+01:00 in London
    budget = "2026-11-20-city-council-approves-budget.md"
    post = parse_post(budget, (site.posts_dir / budget).read_bytes(), site)
    assert "(https://news.example.com/minutes/2026-11-20.html)" in post.body


@pytest.mark.parametrize(
    ("permalink", "front", "rel", "tz", "expected"),
    [
        ("date", "categories: [News]", "2026-11-25-flood-warning.md", "UTC",
         "/news/2026/11/25/flood-warning.html"),
        ("pretty", "categories: [News]", "2026-11-25-flood-warning.md", "UTC",
         "/news/2026/11/25/flood-warning/"),
        ("ordinal", "categories: [News]", "2026-11-25-flood-warning.md", "UTC",
         "/news/2026/329/flood-warning.html"),
        ("weekdate", "categories: [News]", "2026-11-25-flood-warning.md", "UTC",
         "/news/2026/W48/Wed/flood-warning.html"),
        ("none", "categories: [News]", "2026-11-25-flood-warning.md", "UTC",
         "/news/flood-warning.html"),
        ("date", "title: x", "2026-11-25-flood-warning.md", "UTC",
         "/2026/11/25/flood-warning.html"),
        ("date", "date: 2013-05-06 02:12:52 +0200", "2013-05-06-tz.md", "America/Los_Angeles",
         "/2013/05/05/tz.html"),
        ("date", "date: 2026-07-01T23:30:00Z", "2026-07-01-late.md", "Europe/Berlin",
         "/2026/07/02/late.html"),
        ("date", "categories: Local News", "2026-11-25-a.md", "UTC",
         "/local/news/2026/11/25/a.html"),
        ("date", "categories: ['Local News']", "2026-11-25-a.md", "UTC",
         "/local%20news/2026/11/25/a.html"),
        ("date", "category: World", "2026-11-25-a.md", "UTC", "/world/2026/11/25/a.html"),
        ("date", "categories: [Sport, sport]", "2026-11-25-a.md", "UTC",
         "/sport/2026/11/25/a.html"),
        ("date", "title: x", "2026-11-25-Flood-Warning.md", "UTC",
         "/2026/11/25/Flood-Warning.html"),
        ("date", "title: x", "2026-11-25-café-ouvert.md", "UTC",
         "/2026/11/25/caf%C3%A9-ouvert.html"),
        ("date", "title: x", "2026-11-25-what?.md", "UTC", "/2026/11/25/what.html"),
        ("date", "title: x", "2026-11-25-q&a+more.md", "UTC", "/2026/11/25/q&a+more.html"),
        ("date", "slug: Custom Slug", "2026-11-25-a.md", "UTC", "/2026/11/25/Custom-Slug.html"),
        ("/:year/:i_month/:i_day/:slug/", "slug: Custom Slug", "2026-01-05-a.md", "UTC",
         "/2026/1/5/custom-slug/"),
        ("date", "title: x", "world/2026-11-25-sub.md", "UTC", "/2026/11/25/sub.html"),
        ("date", "title: x", "2026-11-25-page.html", "UTC", "/2026/11/25/page.html"),
        ("date", "title: x", "2026-11-25-long.markdown", "UTC", "/2026/11/25/long.html"),
        ("/:short_year/:short_month/:title:output_ext", "title: x", "2026-11-25-a.md", "UTC",
         "/26/Nov/a.html"),
        ("/archive/:path/", "title: x", "world/2026-11-25-a.md", "UTC",
         "/archive/world/2026-11-25-a/"),
        ("/:categories/:title", "title: x", "2026-11-25-a.md", "UTC", "/a"),
        ("date", "permalink: /special/:title/", "2026-11-25-a.md", "UTC", "/special/a/"),
        ("pretty", "permalink: /about-us.html", "2026-11-25-a.md", "UTC", "/about-us.html"),
        ("/:hour-:minute-:second/:name", "date: 2026-11-25 07:08:09", "2026-11-25-a.md", "UTC",
         "/07-08-09/2026-11-25-a"),
    ],
)  # fmt: skip
def test_links_follow_jekyll_permalinks(
    permalink: str, front: str, rel: str, tz: str, expected: str
) -> None:
    """The link is the site URL plus Jekyll's permalink, escaped and in the site's zone."""
    site = make_site(permalink=permalink, tz=tz)
    post = parse_post(rel, post_bytes(front), site)
    assert post.url == "https://ex.com" + expected


def test_collection_permalink_and_baseurl(tmp_path: Path) -> None:
    """`collections.posts.permalink` beats `permalink`, and the baseurl stays in links."""
    (tmp_path / "_config.yml").write_text(
        "url: https://ex.com\nbaseurl: /blog\npermalink: date\n"
        "collections:\n  posts:\n    permalink: /news/:title/\n",
        encoding="utf-8",
    )
    site = load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))
    post = parse_post("2026-11-25-a.md", post_bytes("title: A", "Text"), site)
    assert post.url == "https://ex.com/blog/news/a/"


@pytest.mark.parametrize(
    ("front", "tz", "expected"),
    [
        ("title: x", "Europe/London", datetime(2026, 11, 25, tzinfo=ZoneInfo("Europe/London"))),
        ("date: 2026-07-01T10:00:00", "Europe/London",
         datetime(2026, 7, 1, 11, tzinfo=ZoneInfo("Europe/London"))),
        ("date: '2026-07-01 10:00'", "Europe/Berlin",
         datetime(2026, 7, 1, 10, tzinfo=ZoneInfo("Europe/Berlin"))),
        ("date: 2026-07-01 10:00:00 +0200", "UTC",
         datetime(2026, 7, 1, 8, tzinfo=ZoneInfo("UTC"))),
        ("date: 2026-07-01 10:00:00 -05:00", "UTC",
         datetime(2026, 7, 1, 15, tzinfo=ZoneInfo("UTC"))),
        ("date: 2026-07-01", "Asia/Tokyo", datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Tokyo"))),
        ("date: 2026-07-01T10:00:00.5Z", "UTC", datetime(2026, 7, 1, 10, tzinfo=ZoneInfo("UTC"))),
    ],
)  # fmt: skip
def test_dates(front: str, tz: str, expected: datetime) -> None:
    """Dates come from front matter or the file name; an unquoted timestamp is UTC (Jekyll)."""
    post = parse_post("2026-11-25-a.md", post_bytes(front), make_site(tz=tz))
    assert post.date == expected
    assert post.date.tzinfo is not None


@pytest.mark.parametrize(
    ("front", "rel", "title"),
    [
        ("date: 2026-11-25", "2026-11-25-flood-warning.md", "Flood Warning"),
        ("title: ''", "2026-11-25-flood-warning.md", "Flood Warning"),
        ("title: 2026", "2026-11-25-x.md", "2026"),
        ("title: '  Spaced  '", "2026-11-25-x.md", "Spaced"),
        ("slug: other", "2026-11-25-river-LEVELS-rise.md", "River Levels Rise"),
    ],
)
def test_titles(front: str, rel: str, title: str) -> None:
    """A missing title comes from the file name, titleized as Jekyll does."""
    assert parse_post(rel, post_bytes(front), make_site()).title == title


@pytest.mark.parametrize(
    ("front", "categories", "tags"),
    [
        ("categories: [A, B]\ntags: [x, y]", ("A", "B"), ("x", "y")),
        ("categories: A B\ntags: x y", ("A", "B"), ("x", "y")),
        ("category: Big News\ntag: one tag", ("Big News",), ("one tag",)),
        ("categories: [A]\ncategory: B", ("A", "B"), ()),
        ("tags: [a, b]\ntag: c", (), ("c",)),
        ("tags: [a, a, 3]", (), ("a", "3")),
        ("categories:\ntags:", (), ()),
    ],
)
def test_categories_and_tags(
    front: str, categories: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    """Categories and tags are lists or space-separated strings, singular keys included."""
    post = parse_post("2026-11-25-a.md", post_bytes(front), make_site())
    assert (post.categories, post.tags) == (categories, tags)


@pytest.mark.parametrize(
    ("front", "published"),
    [
        ("title: x", True),
        ("published: false", False),
        ("published: true", True),
        ("published: 'false'", True),  # a string is truthy to Jekyll
        ("published:", False),
    ],
)
def test_published(front: str, published: bool) -> None:
    """`published: false` makes a draft, as in Jekyll."""
    assert parse_post("2026-11-25-a.md", post_bytes(front), make_site()).published is published


@pytest.mark.parametrize(
    ("front", "breaking", "title", "label"),
    [
        ("title: Calm day", False, "Calm day", None),
        ("title: Storm\nbreaking: true", True, "Storm", "Breaking"),
        ("title: Storm\nbreaking: 'yes'", True, "Storm", "Breaking"),
        ("title: Storm\nbreaking: false", False, "Storm", None),
        ("title: Storm\ntags: [weather, BREAKING]", True, "Storm", "Breaking"),
        ("title: Storm\ncategories: Breaking world", True, "Storm", "Breaking"),
        ("title: 'Breaking: Storm hits'", True, "Storm hits", "Breaking"),
        ("title: 'BREAKING:Storm hits'", True, "Storm hits", "Breaking"),
        ("title: 'Breaking:'", True, "Breaking:", "Breaking"),
        ("title: Breakingly calm", False, "Breakingly calm", None),
    ],
)
def test_breaking_rules(front: str, breaking: bool, title: str, label: str | None) -> None:
    """Breaking by flag, tag, category or title prefix; the prefix becomes the label."""
    post = parse_post("2026-11-25-a.md", post_bytes(front), make_site())
    assert (post.breaking, post.title, post.label) == (breaking, title, label)


@pytest.mark.parametrize(
    ("conf", "front", "breaking", "title", "label"),
    [
        ({"title_prefixes": ["Urgent:"]}, "title: 'Urgent: Fire'", True, "Fire", "Breaking"),
        ({"title_prefixes": ["Urgent:"]}, "title: 'Breaking: Fire'", False, "Breaking: Fire",
         None),
        ({"strip_prefix": False}, "title: 'Breaking: Fire'", True, "Breaking: Fire", "Breaking"),
        ({"label": "Eilmeldung"}, "title: x\nbreaking: true", True, "x", "Eilmeldung"),
        ({"tags": ["alert"]}, "title: x\ntags: [Alert]", True, "x", "Breaking"),
        ({"tags": ["alert"]}, "title: x\ntags: [breaking]", False, "x", None),
        ({"categories": []}, "title: x\ncategories: breaking", False, "x", None),
        ({"field": "urgent"}, "title: x\nurgent: true", True, "x", "Breaking"),
        ({"enabled": False}, "title: 'Breaking: x'\nbreaking: true", False, "Breaking: x", None),
    ],
)  # fmt: skip
def test_breaking_rules_are_configurable(
    conf: dict[str, Any], front: str, breaking: bool, title: str, label: str | None
) -> None:
    """`herald.breaking` in _config.yml changes what counts as breaking and how it shows."""
    site = make_site(config={"herald": {"breaking": conf}})
    post = parse_post("2026-11-25-a.md", post_bytes(front), site)
    assert (post.breaking, post.title, post.label) == (breaking, title, label)


@pytest.mark.parametrize("conf", ["yes", {"tags": 5}, {"title_prefixes": 3}])
def test_bad_breaking_config(conf: object) -> None:
    """A malformed `herald.breaking` is a ConfigError that names the key."""
    with pytest.raises(ConfigError, match=r"herald\.breaking"):
        breaking_rules(make_site(config={"herald": {"breaking": conf}}))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"---\ntitle: x\x00\x01\n---\n", "binary"),
        ("---\ntitle: café\n---\n".encode("latin-1"), "not valid UTF-8 — save the file as UTF-8"),
        (b"Just text, no front matter.\n", "no front matter"),
        (b"--- title\n---\n", "no front matter"),
        (b"---\ntitle: half\ndate: 2026-", "not closed"),
        (b"---\r\ntitle: half\r\n", "not closed"),
        (b"---\ntitle: ok\ntags: [a, b\n---\nBody", "bad YAML in front matter at line"),
        (b"---\ntitle: 'unterminated\n---\nBody", "bad YAML"),
        (b"---\n- a\n- b\n---\nBody", "not a mapping"),
        (b"---\njust a string\n---\nBody", "not a mapping"),
        (b"---\ndate: next tuesday\n---\nBody", "not a date"),
        (b"---\ndate: 2026-02-29 25:00:00\n---\nBody", "hour out of range"),
        (b"---\ndate: '0001-01-01 00:00 +0500'\n---\nBody", "out of range"),
        (b"---\ndate: '9999-12-31 23:59 -0500'\n---\nBody", "out of range"),
        (b"---\ndate: '2026-01-01 00:00 +99:99'\n---\nBody", "utc_offset out of range"),
    ],
)
def test_broken_files_name_the_reason(raw: bytes, reason: str) -> None:
    """A broken file raises PostError whose message says what is wrong."""
    with pytest.raises(PostError, match=reason):
        parse_post("2026-11-25-a.md", raw, make_site())


def test_yaml_error_names_the_file_line() -> None:
    """The YAML error's line number counts from the top of the file."""
    raw = b"---\ntitle: ok\nauthor: me\ntags: [a, b\n---\nBody"
    with pytest.raises(PostError, match=r"line [45]\b"):
        parse_post("2026-11-25-a.md", raw, make_site())


def laughs(levels: int) -> str:
    """Billion-laughs front matter: each anchor holds ten aliases of the one before."""
    lines = ["lol1: &lol1 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(2, levels + 1):
        lines.append(f"lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 10)}]")
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("front", "body", "reason"),
    [
        (laughs(9), "Body.", "too many YAML aliases: expanded they would repeat over 1,000,000"),
        (laughs(6), "{{ page.lol6 }}", "too many YAML aliases"),
        (laughs(6), "{% for a in page.lol6 %}{% for b in a %}{{ b }}{% endfor %}{% endfor %}",
         "too many YAML aliases"),
        ("one: &one x\nmany: [" + ", ".join(["*one"] * 101) + "]", "Body.",
         r"too many YAML aliases \(over 100\)"),
        ("categories: &c [news, *c]", "Body.", r"alias inside its own anchor \(\*c\)"),
        ("excerpt: " + "x" * 70_000, "Body.", "front matter is 68 KB, over the 64 KB limit"),
    ],
    ids=["billion-laughs", "laughs-in-output", "laughs-in-loop", "101-aliases", "recursive",
         "70-kb"],
)  # fmt: skip
def test_front_matter_bombs_are_broken_posts(front: str, body: str, reason: str) -> None:
    """Front matter that would expand without bound is refused, before it is built, with why."""
    with pytest.raises(PostError, match=reason):
        parse_post("2026-11-25-a.md", post_bytes(front, body), make_site())


def test_a_few_yaml_anchors_and_aliases_still_work() -> None:
    """Anchors, aliases and merge keys in ordinary front matter read as YAML means them."""
    front = (
        "title: Shared\nbase: &base {kind: news, size: 2}\nbox:\n  <<: *base\n  size: 3\n"
        "tags: &t [a, b]\nkeywords: *t\nnote: '2 * 3 = 6'"
    )
    body = "{{ page.box.kind }} {{ page.box.size }} {{ page.keywords | join: '+' }}"
    post = parse_post("2026-11-25-a.md", post_bytes(front, body), make_site())
    assert (post.title, post.tags, post.body) == ("Shared", ("a", "b"), "news 3 a+b")


def test_bad_file_name_is_an_error() -> None:
    """A file not named YYYY-MM-DD-title is not a post."""
    with pytest.raises(PostError, match="file name"):
        parse_post("notes.md", post_bytes("title: x"), make_site())


def test_bom_and_crlf_work() -> None:
    """A UTF-8 BOM and Windows line endings are read like any other post."""
    raw = "\ufeff---\r\ntitle: Windows post\r\n---\r\n\r\nFirst para.\r\n\r\nSecond.\r\n"
    post = parse_post("2026-11-25-a.md", raw.encode("utf-8"), make_site())
    assert (post.title, post.excerpt, post.body) == ("Windows post", "First para.", post.body)
    assert "\r" not in post.body and post.body == "First para.\n\nSecond."


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("2026-11-25-flood-warning.md", True),
        ("2026-11-25-flood-warning.markdown", True),
        ("2026-11-25-flood-warning.html", True),
        ("2026-11-25-flood-warning.MD", True),
        ("2026-1-5-short.md", True),
        ("2026-11-25-flood-warning.md.swp", False),
        (".2026-11-25-flood-warning.md.swp", False),
        ("2026-11-25-flood-warning.md~", False),
        ("2026-11-25-flood-warning.md.part", False),
        (".2026-11-25-hidden.md", False),
        ("_2026-11-25-under.md", False),
        ("#2026-11-25-emacs.md#", False),
        ("flood-warning.md", False),
        ("2026-11-25-notes.txt", False),
        ("2026-11-25-.md", False),
    ],
)
def test_is_post_filename(name: str, ok: bool) -> None:
    """Only `YYYY-MM-DD-title` Markdown/HTML files count; editor temp files never do."""
    assert is_post_filename(name) is ok


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("world/2026-11-25-a.md", True),
        ("a/b/2026-11-25-a.md", True),
        (".git/2026-11-25-a.md", False),
        ("_old/2026-11-25-a.md", False),
    ],
)
def test_is_post_path(rel: str, ok: bool) -> None:
    """Posts in subfolders count, except under hidden or underscore folders (as in Jekyll)."""
    assert is_post_path(rel) is ok


def test_markdown_ext_setting_is_honoured() -> None:
    """A site's `markdown_ext` decides which extensions are posts."""
    site = make_site(config={"markdown_ext": "md,txt"})
    assert is_post_filename("2026-11-25-a.txt", site)
    assert not is_post_filename("2026-11-25-a.markdown", site)
    assert parse_post("2026-11-25-a.txt", post_bytes("x: 1"), site).url.endswith("/a.html")


@pytest.mark.parametrize(
    ("front", "image"),
    [
        ("title: x", None),
        ("image: assets/a.jpg", "https://ex.com/blog/assets/a.jpg"),
        ("image: /assets/a.jpg", "https://ex.com/blog/assets/a.jpg"),
        ("image: /assets/my photo.jpg", "https://ex.com/blog/assets/my%20photo.jpg"),
        ("image: https://cdn.example.org/a.jpg", "https://cdn.example.org/a.jpg"),
        ("image: //cdn.example.org/a.jpg", "https://cdn.example.org/a.jpg"),
        ("image:\n  path: /a.png", "https://ex.com/blog/a.png"),
        ("image: ''", None),
    ],
)  # fmt: skip
def test_images_are_absolute(front: str, image: str | None) -> None:
    """Images become absolute URLs under the site URL; absolute URLs stay as they are."""
    site = make_site(url="https://ex.com/blog")
    assert parse_post("2026-11-25-a.md", post_bytes(front), site).image == image


@pytest.mark.parametrize(
    ("front", "body", "separator", "excerpt"),
    [
        ("excerpt: Own words.", "First.\n\nSecond.", "\n\n", "Own words."),
        ("title: x", "First line\nstill first.\n\nSecond.", "\n\n", "First line\nstill first."),
        ("title: x", "Lead <!--more--> rest", "<!--more-->", "Lead"),
        ("title: x", "No marker here.\n\nAt all.", "<!--more-->", "No marker here.\n\nAt all."),
        ("excerpt_separator: ~~~", "Lead~~~rest\n\nmore", "\n\n", "Lead"),
    ],
)
def test_excerpts(front: str, body: str, separator: str, excerpt: str) -> None:
    """The excerpt is the front matter's, else the text before the excerpt separator."""
    site = make_site(separator=separator)
    assert parse_post("2026-11-25-a.md", post_bytes(front, body), site).excerpt == excerpt


@pytest.mark.parametrize(
    ("front", "author"),
    [
        ("author: Jane", "Jane"),
        ("author: [Jane, Joe]", "Jane, Joe"),
        ("author:\n  name: Jane", "Jane"),
        ("title: x", None),
    ],
)
def test_authors(front: str, author: str | None) -> None:
    """The author is a name, a list of names, or a mapping with a name."""
    assert parse_post("2026-11-25-a.md", post_bytes(front), make_site()).author == author


def test_fingerprint_survives_rename() -> None:
    """A renamed file with the same title and day keeps its identity."""
    site = make_site()
    one = parse_post("2026-11-25-a.md", post_bytes("title: Same"), site)
    two = parse_post("world/2026-11-25-b.md", post_bytes("title: Same"), site)
    assert one.fingerprint == two.fingerprint


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("news/_posts/2026-11-25-a.md", True),
        ("news/world/_posts/sub/2026-11-25-a.md", True),
        ("_drafts/_posts/2026-11-25-a.md", False),
        (".git/_posts/2026-11-25-a.md", False),
        ("node_modules/x/_posts/2026-11-25-a.md", False),
        ("vendor/bundle/_posts/2026-11-25-a.md", False),
        ("news/_posts/_old/2026-11-25-a.md", False),
        ("news/_posts/notes.md", False),
    ],
)
def test_posts_under_site_folders(rel: str, ok: bool) -> None:
    """`<folder>/_posts/` counts where Jekyll walks the folder (not `_`, `.` or excluded)."""
    assert is_post_path(rel) is ok


@pytest.mark.parametrize(
    ("rel", "front", "categories", "url"),
    [
        ("news/_posts/2026-11-25-a.md", "title: x", ("news",), "/news/2026/11/25/a.html"),
        ("news/world/_posts/2026-11-25-a.md", "categories: [Extra]",
         ("news", "world", "Extra"), "/news/world/extra/2026/11/25/a.html"),
        ("News/_posts/sub/2026-11-25-a.md", "category: news", ("News", "news"),
         "/news/2026/11/25/a.html"),
        ("world/2026-11-25-a.md", "title: x", (), "/2026/11/25/a.html"),
    ],
)  # fmt: skip
def test_the_folder_above_posts_is_a_category(
    rel: str, front: str, categories: tuple[str, ...], url: str
) -> None:
    """`news/_posts/x.md` is in `news` (and in its link); `_posts/world/x.md` is not in `world`."""
    post = parse_post(rel, post_bytes(front), make_site())
    assert (post.categories, post.url, post.path) == (categories, "https://ex.com" + url, rel)


def test_path_placeholder_of_a_folder_post() -> None:
    """`:path` drops the first `_posts` as Jekyll's cleaned_relative_path does."""
    site = make_site(permalink="/archive/:path/")
    assert parse_post("news/_posts/2026-11-25-a.md", post_bytes("x: 1"), site).url == (
        "https://ex.com/archive/news/2026-11-25-a/"
    )
