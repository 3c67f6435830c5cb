"""Front matter `defaults:` in `_config.yml`, applied to posts as Jekyll 4 applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.models import Post
from bot.settings import load_settings
from bot.sources.jekyll import defaults
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site

DEFAULTS = """\
url: https://ex.com
defaults:
  - values: {layout: default, author: Desk}
  - scope: {type: posts}
    values: {permalink: "/:year/:title/", categories: [Posts]}
  - scope: {path: "news", type: posts}
    values: {permalink: "/news/:title/", categories: [News], breaking: true}
  - scope: {path: "_posts/sport"}
    values: {categories: Sport Results, layout: sport}
  - scope: {path: "_posts/*/archive"}
    values: {published: false}
  - scope: {path: "", type: pages}
    values: {permalink: /pages/:title/}
  - scope: {path: "_posts/opinion", type: post}
    values: {tags: [opinion], extra: {a: 1, b: 2}, date: 2020-01-01 10:00:00}
  - scope: {path: "/_posts/never"}
    values: {breaking: true}
  - not a set
"""


def read(tmp_path: Path, rel: str, front: str = "title: T", config: str = DEFAULTS) -> Post:
    """The post at `rel` (Herald's key for it) in a site with `config`, read from disk.

    Its body shows `layout` and `extra`, which only Liquid sees.
    """
    (tmp_path / "_config.yml").write_text(config, encoding="utf-8")
    path = tmp_path / (rel if "_posts/" in rel else f"_posts/{rel}")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "{{ page.layout }}|{{ page.extra.a }}{{ page.extra.b }}\n"
    path.write_text(f"---\n{front}\n---\n\n{body}", encoding="utf-8")
    site = load_site(load_settings(site_dir=tmp_path, site_url=None, timezone=None))
    return parse_post(rel, path.read_bytes(), site)


@pytest.mark.parametrize(
    ("rel", "front", "url", "categories", "layout"),
    [
        # Every post: the type scope gives the permalink and a category.
        ("2026-11-25-a.md", "title: T", "/2026/a/", ("Posts",), "default"),
        # A path scope is a prefix of the path Jekyll knows the post by.
        # Between sets a value is replaced, not joined: the longer path's categories win.
        ("news/_posts/2026-11-25-a.md", "title: T", "/news/a/", ("news", "News"), "default"),
        ("sport/2026-11-25-a.md", "title: T", "/2026/a/", ("Sport", "Results"), "sport"),
        # Front matter wins over every default; categories are a union, folder first.
        ("news/_posts/2026-11-25-a.md", "permalink: /own/\ncategories: [Mine, News]\nlayout: x",
         "/own/", ("news", "News", "Mine"), "x"),
        # A null in front matter keeps the default.
        ("2026-11-25-a.md", "layout:", "/2026/a/", ("Posts",), "default"),
    ],
)  # fmt: skip
def test_defaults_by_path_and_type(
    tmp_path: Path, rel: str, front: str, url: str, categories: tuple[str, ...], layout: str
) -> None:
    """Permalink, categories and layout come from every matching set, the post's own last."""
    post = read(tmp_path, rel, front)
    assert post.url == "https://ex.com" + url
    assert post.categories == categories
    assert post.body.startswith(layout + "|")


def test_defaults_make_a_post_breaking(tmp_path: Path) -> None:
    """`breaking: true` from a scope is the post's, as the breaking rules read it."""
    post = read(tmp_path, "news/_posts/2026-11-25-a.md")
    assert (post.breaking, post.label) == (True, "Breaking")
    assert not read(tmp_path, "2026-11-25-b.md").breaking


def test_glob_scope(tmp_path: Path) -> None:
    """A scope path with `*` is a glob of the site: `_posts/*/archive` holds drafts."""
    assert read(tmp_path, "2024/archive/2024-01-01-old.md").published is False
    assert read(tmp_path, "2024/2024-01-01-new.md").published is True


def test_deep_merge_tags_and_dates(tmp_path: Path) -> None:
    """Mappings merge key by key, tags are replaced, and a default date beats the file name's."""
    post = read(tmp_path, "opinion/2026-11-25-a.md", "extra: {b: 3}")
    assert post.body == "default|13"
    assert post.tags == ("opinion",)
    assert post.date.year == 2020
    assert read(tmp_path, "opinion/2026-11-25-a.md", "tags: [own]").tags == ("own",)


def test_scope_path_with_a_leading_slash_never_matches(tmp_path: Path) -> None:
    """Jekyll compares a scope path as written, so `/_posts/never` matches no post."""
    assert not read(tmp_path, "never/2026-11-25-a.md").breaking


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ({"path": "_posts/a"}, {"path": "_posts"}, "first"),
        ({"path": "_posts"}, {"path": "_posts/a"}, "second"),
        ({"path": "_posts", "type": "posts"}, {"path": "_posts"}, "first"),
        ({"path": "_posts"}, {"path": "_posts", "type": "posts"}, "second"),
        ({"path": "_posts"}, {"path": "_posts"}, "second"),
        ({"type": "post"}, {"type": "posts"}, "second"),
    ],
)
def test_precedence_of_sets(first: dict[str, str], second: dict[str, str], winner: str) -> None:
    """A longer scope path wins; at equal length one with a type wins; else the later set."""
    sets = defaults.valid_sets(
        [{"scope": first, "values": {"k": "first"}}, {"scope": second, "values": {"k": "second"}}]
    )
    assert defaults.for_path(sets, "_posts/a/2026-11-25-x.md") == {"k": winner}


def test_no_defaults_leave_front_matter_as_it_is(tmp_path: Path) -> None:
    """Without `defaults:`, a post is read from its front matter alone."""
    post = read(tmp_path, "2026-11-25-a.md", "categories: Local News", "url: https://ex.com\n")
    assert (post.url, post.categories) == (
        "https://ex.com/local/news/2026/11/25/a.html",
        ("Local", "News"),
    )
