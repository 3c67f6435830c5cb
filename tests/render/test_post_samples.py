"""Sample posts as Jekyll sites write them (tests/render/posts/) → what readers get: golden files.

Each sample holds one class of what readers used to see as markup or syntax: figures with
captions, quotes with <cite>, embeds in an `.html` post, a table of contents include with
attribute lists, reference links, entities in titles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.models import Kind, Post
from bot.render.renderer import Renderer
from bot.render.splitter import visible_text
from bot.settings import Site, load_settings
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site
from tests.render.test_renderer import assert_golden, assert_valid, dump_messages

SAMPLES = Path(__file__).parent / "posts"
POSTS = sorted(p.name for p in (SAMPLES / "_posts").iterdir())
# What no reader may see: markup, kramdown syntax, undecoded entities.
MARKUP = ("<figure", "<cite", "<span", "<kbd", "<iframe", "<blockquote class", "<script",
          "{:", "{::", "* TOC", "][", "&nbsp;", "&mdash;", "&amp;amp;", "<!--")  # fmt: skip


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(load_settings(site_dir=SAMPLES, public_url="https://herald.example.com"))


@pytest.fixture(scope="module")
def renderer(site: Site) -> Renderer:
    return Renderer(site, public_url="https://herald.example.com")


def read(site: Site, name: str) -> Post:
    path = SAMPLES / "_posts" / name
    return parse_post(name, path.read_bytes(), site)


@pytest.mark.parametrize("name", POSTS)
def test_sample_post_golden(site: Site, renderer: Renderer, name: str) -> None:
    """Each sample's Telegram messages and email text are the reviewed ones, valid for the
    Bot API, with no markup or kramdown syntax left for a reader to see."""
    post = read(site, name)
    messages = renderer.post_messages(post, Kind.POST)
    assert_valid(messages)
    email = renderer.post_email(post, Kind.POST)
    assert_golden(f"posts/{name}.txt", dump_messages(messages) + "=== email\n" + email.text)
    shown = "".join(visible_text(m.text) for m in messages)
    for syntax in MARKUP:
        assert syntax not in shown, syntax
        assert syntax not in email.text, syntax
        assert syntax.replace("<", "&lt;") not in email.html, syntax


def test_entities_in_titles_are_read(site: Site, renderer: Renderer) -> None:
    """A title's entities are the characters the site shows, on every channel."""
    post = read(site, "2026-11-20-river-figures.md")
    assert post.title == "Floods & storms — the week in pictures"
    assert renderer.post_email(post, Kind.POST).subject == post.title
    digest = renderer.digest_messages([post], post.date.date())[0].text
    assert ">Floods &amp; storms — the week in pictures</a>" in digest


def test_html_post_is_html(site: Site) -> None:
    """An `.html` post is read as HTML; a Markdown post as kramdown."""
    assert read(site, "2026-11-22-storm-videos.html").format == "html"
    assert read(site, "2026-11-24-reading-list.md").format == "kramdown"
