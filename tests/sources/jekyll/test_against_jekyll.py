"""Herald against real Jekyll 4: a small site built by Debian's `jekyll`, post by post.

The site's layout prints each post's path, URL and `excerpt | strip_html` into its page;
the test reads every built page back and compares it with what `parse_post` makes of the
same file: the same posts, the same links, the same excerpt text. Where `jekyll` (or Ruby)
is missing the tests skip, saying how to install it; `.ci/run` installs it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from markdown_it import MarkdownIt

from bot.settings import Site, load_settings
from bot.sources.jekyll import ruby_time
from bot.sources.jekyll import rules as jekyll
from bot.sources.jekyll.links import post_keys
from bot.sources.jekyll.reader import is_post_path, parse_post
from bot.sources.jekyll.site import load_site

INSTALL = "apt-get install jekyll (Debian's Jekyll 4 and Ruby; .ci/run installs it)"
ZONE = "America/Los_Angeles"

CONFIG = f"""\
title: Compare
url: https://ex.test
baseurl: /paper
timezone: {ZONE}
future: true
permalink: date
exclude: [skipped]
defaults:
  - values: {{layout: herald}}
  - scope: {{type: posts}}
    values: {{categories: [Posts]}}
  - scope: {{path: desk}}
    values: {{permalink: "/desk/:year/:short_month/:short_day/:title/", categories: [Desk]}}
  - scope: {{path: "_posts/2024/*"}}
    values: {{permalink: "/archive/:i_month-:i_day/:slug:output_ext"}}
  - scope: {{path: "_posts/quiet"}}
    values: {{published: false}}
"""

LAYOUT = """\
HERALD-PATH:{{ page.path }}
HERALD-URL:{{ page.url }}
HERALD-EXCERPT:{{ page.excerpt | strip_html }}:HERALD-END
"""

EVERY_PLACEHOLDER = (
    "/:year/:month/:day/:hour/:minute/:second/:i_month/:i_day/:short_year/:short_month/"
    ":long_month/:short_day/:long_day/:w_year/:week/:w_day/:y_day/:categories/"
    ":slugified_categories/:title/:slug/:name/:path/:collection/x:output_ext"
)

# path in the site → front matter lines (without the `---`) and body. The bodies avoid
# quotes and dashes: kramdown's typography is another test's business.
POSTS: dict[str, tuple[str, str]] = {
    # Dates: each form YAML and Ruby's Time.parse give a post.
    "_posts/2026-07-01-unquoted.md": ("date: 2026-07-01 03:30:00", "Unquoted is UTC."),
    "_posts/2026-07-01-quoted.md": ('date: "2026-07-01 03:30:00"', "Quoted is local."),
    "_posts/2026-07-01-date-only.md": ("date: 2026-07-01", "Midnight, local."),
    "_posts/2026-07-01-offset.md": ("date: 2026-07-01 03:30:00 +02:00", "With an offset."),
    "_posts/2026-07-01-no-colon.md": ("date: 2026-07-01 06:30:00 -0500", "Offset, no colon."),
    "_posts/2026-07-01-fraction.md": ("date: 2026-07-01T06:59:59.999Z", "A fraction."),
    "_posts/2023-01-29-jekyllrb.md": ("date: 2023-01-29 18:30:22 2023 -0800", "As on jekyllrb."),
    "_posts/2026-07-04-words.md": ("date: July 4, 2026 11:45 PM", "In words."),
    "_posts/2026-07-05-rfc.md": ('date: "Sun, 05 Jul 2026 03:00:00 GMT"', "Mail style."),
    "_posts/2026-07-06-zone.md": ("date: 2026-07-06 23:00:00 EDT", "A zone name."),
    "_posts/2026-12-31-new-year.md": ('date: "2026-12-31 23:30 EST"', "Across the year."),
    "_posts/2026-02-30-rolled.md": ("title: Rolled", "A day past the end of the month."),
    "_posts/2026-03-01-rolled-front.md": ("date: 2026-02-30 10:00:00", "Rolled in YAML."),
    # Placeholders and styles in a post's own permalink.
    "_posts/2027-01-01-Every-Thing.md": (
        f"permalink: {EVERY_PLACEHOLDER}\ncategories: [Local News, World]",
        "All of them.",
    ),
    "_posts/2026-01-04-weekdate.md": (
        "permalink: /:categories/:year/W:week/:short_day/:title:output_ext",
        "Week date.",
    ),
    "_posts/2026-11-25-pretty.md": ("permalink: /:categories/:year/:title/", "Pretty."),
    "_posts/world/2026-11-26-sub.md": ("slug: Own Slug", "A subfolder of _posts."),
    # Defaults: by type, path, glob; front matter over them; published from a scope.
    "desk/_posts/2026-07-08-desk-note.md": ("title: Desk note", "From the desk."),
    "desk/_posts/2026-07-09-own-link.md": ("permalink: /own/:title/", "Its own link."),
    "_posts/2024/q1/2024-01-02-old.md": ("categories: Archive", "Globbed."),
    "_posts/quiet/2026-07-10-held.md": ("title: Held", "Unpublished by default."),
    "_posts/quiet/2026-07-11-shown.md": ("published: true", "Published after all."),
    # Folders: nested categories; folders Jekyll does not read.
    "world/europe/_posts/2026-07-12-nested.md": ("categories: [Extra]", "Nested folders."),
    "skipped/_posts/2026-07-13-excluded.md": ("title: Excluded", "Never built."),
    "_hidden/_posts/2026-07-14-hidden.md": ("title: Hidden", "Never built."),
    "node_modules/pkg/_posts/2026-07-15-module.md": ("title: Module", "Never built."),
    # Drafts and excerpts.
    "_posts/2026-07-16-null.md": ("published:", "Null is a draft too (Publisher)."),
    "_posts/2026-07-17-draft.md": ("published: false", "A draft."),
    "_posts/2026-07-18-excerpt.md": (
        "title: Excerpt",
        "A **bold** claim, an _aside_, a [link](https://example.org) and `code`.\n\n"
        "The second paragraph.",
    ),
    "_posts/2026-07-19-separator.md": (
        "excerpt_separator: <!--more-->",
        "Lead one.\n\nLead two.\n<!--more-->\nThe rest.",
    ),
    "_posts/2026-07-20-own-excerpt.md": ("excerpt: Written by hand", "Not the excerpt."),
    "_posts/2026-07-21-data.md": (
        "title: Data",
        "Edited by {{ site.data.desk.editor }} for {{ site.data.team.people[1].name }} "
        "at {{ site.data.links.home }}.\n\nMore.",
    ),
}


def write_site(root: Path) -> None:
    """The site: config, layout, `_data/` and every post of POSTS."""
    (root / "_layouts").mkdir(parents=True)
    (root / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "_layouts" / "herald.html").write_text(LAYOUT, encoding="utf-8")
    (root / "_data" / "team").mkdir(parents=True)
    (root / "_data" / "desk.yml").write_text("editor: Ann Lee\n", encoding="utf-8")
    (root / "_data" / "team" / "people.csv").write_text("name\nAnn\nBo\n", encoding="utf-8")
    (root / "_data" / "links.json").write_text('{"home": "/start"}', encoding="utf-8")
    for rel, (front, body) in POSTS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\n{front}\n---\n\n{body}\n", encoding="utf-8")


def jekyll_build(source: Path, dest: Path) -> dict[str, tuple[str, str]]:
    """`jekyll build`, then path → (URL, excerpt text) of every post page it wrote."""
    command = shutil.which("jekyll")
    if command is None:
        pytest.skip(f"Debian's jekyll is not installed: {INSTALL}")
    done = subprocess.run(
        [command, "build", "--quiet", "--safe", "-s", str(source), "-d", str(dest)],
        capture_output=True,
        text=True,
        timeout=600,  # a safety net against a hung build, not a measure
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built: dict[str, tuple[str, str]] = {}
    marker = re.compile(r"HERALD-PATH:(.*)\nHERALD-URL:(.*)\nHERALD-EXCERPT:(.*?):HERALD-END", re.S)
    for page in dest.rglob("*"):
        if page.is_file() and (found := marker.search(page.read_text(encoding="utf-8"))):
            path, url, excerpt = found.groups()
            built[path] = (url, text_of(excerpt))
    return built


def text_of(markup: str) -> str:
    """HTML as text: entities decoded, white space collapsed (both sides are compared so)."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", "", markup)).split())


def herald_posts(site: Site) -> Iterator[tuple[str, tuple[str, str]]]:
    """path → (URL, excerpt text) of every post Herald finds and would publish."""
    markdown = MarkdownIt("commonmark")
    for key in post_keys(site):
        if not is_post_path(key, site):
            continue
        path = jekyll.site_path(key)
        post = parse_post(key, (site.root / path).read_bytes(), site)
        if post.published:
            url = post.url.removeprefix(site.url)
            yield path, (url, text_of(markdown.render(post.excerpt)))


def test_every_post_has_the_url_and_excerpt_jekyll_gives_it(tmp_path: Path) -> None:
    """Every post Jekyll builds, and only those, has Jekyll's URL and excerpt in Herald."""
    write_site(tmp_path / "site")
    built = jekyll_build(tmp_path / "site", tmp_path / "built")
    site = load_site(load_settings(site_dir=tmp_path / "site", site_url=None, timezone=None))
    herald = dict(herald_posts(site))
    assert sorted(herald) == sorted(built)
    differing = {path: (herald[path], built[path]) for path in built if herald[path] != built[path]}
    assert differing == {}
    # The site really exercises what it is meant to (a guard against a silent no-op).
    assert built["_posts/2026-07-01-unquoted.md"][0] == "/posts/2026/06/30/unquoted.html"
    assert built["desk/_posts/2026-07-08-desk-note.md"][0] == "/desk/2026/Jul/Wed/desk-note/"
    assert built["_posts/2026-07-21-data.md"][1] == "Edited by Ann Lee for Bo at /start."


DATES = [
    "2023-01-29 18:30:22 2023 -0800", "2026-07-01 10:00", "2026-7-1 9:05", "July 1, 2026",
    "1 July 2026 10:00", "Jul 1 2026 10:00 PM", "2026/07/01 10:00:00", "2026-07-01T10:00:00Z",
    "2026-07-01 10:00:00 UTC", "2026-07-01 10:00:00 +02:00", "2026-07-01 10:00:00 +2",
    "2026-07-01 10:00:00 PST", "2026-07-01 10:00:00 PDT", "2026-07-01 10:00:00 CEST",
    "Wed, 01 Jul 2026 10:00:00 GMT", "Wednesday 2026-07-01 10am", "20260701T100000",
    "2026-07-01 10:00:00.123456 -05:00", "01/07/2026", "12/25/2026", "29.01.2023",
    "2026-07-01 10:00:00 Europe/Berlin", "2026-02-30", "2026-02-31 23:00", "10:00 2026-07-01",
    "2026-07-01 10h30", "2026-07-01 12am", "2026-07-01 3:04:05 p.m.", "Jan 2026", "Jan 29",
    "29th", "10:00", "Sun Jan 29 18:30:22 2023", "2026-W27-3", "2026-182", "H30.04.01",
    "1 Jan 99", "1 Jan 68", "Jan 1 '99", "2026-07-01 24:00", "20260701100000 [-5:EST]",
    "Monday, January 5th 2026 at 9:30am", "5 Jan 2026 9.30", "2026-07-01 10:00:00 -03",
    "next tuesday", "2026-13-01", "2026-07-01 25:00", "2026", "garbage",
]  # fmt: skip


@pytest.mark.parametrize("zone", ["UTC", ZONE, "Europe/Berlin"])
def test_time_parse_matches_ruby(zone: str) -> None:
    """ruby_time.parse reads each date string as Ruby's own Time.parse does, in each zone."""
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip(f"Ruby is not installed: {INSTALL}")
    now = datetime(2026, 3, 15, 12, 34, 56, tzinfo=ZoneInfo("UTC"))
    script = (
        "require 'time'; require 'json'; now = Time.at(Integer(ARGV[0]))\n"
        "puts(JSON.parse(STDIN.read).map { |s| begin; "
        "Time.parse(s, now).localtime.strftime('%Y-%m-%d %H:%M:%S.%6N %z'); "
        "rescue ArgumentError; 'refused'; end }.to_json)"
    )
    done = subprocess.run(
        [ruby, "-e", script, str(int(now.timestamp()))],
        input=json.dumps(DATES),
        capture_output=True,
        text=True,
        env={"TZ": zone, "PATH": "/usr/bin:/bin"},
        timeout=600,  # a safety net, not a measure
        check=True,
    )
    tz = ZoneInfo(zone)
    ours = []
    for text in DATES:
        try:
            when = ruby_time.parse(text, tz, now).astimezone(tz)
            ours.append(when.strftime("%Y-%m-%d %H:%M:%S.%f %z"))
        except ruby_time.TimeParseError:
            ours.append("refused")
    assert dict(zip(DATES, ours, strict=True)) == dict(
        zip(DATES, json.loads(done.stdout), strict=True)
    )
