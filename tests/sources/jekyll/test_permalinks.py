"""Each permalink placeholder and style, as Jekyll 4's UrlDrop fills it."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.settings import Site
from bot.sources.jekyll.reader import parse_post

# Sunday 4 January 2026, 09:05:07 in Berlin; ISO week 1 of 2026.
FRONT = "date: 2026-01-04 09:05:07 +0100\ncategories: [Local News, World]"
REL = "sub/2026-01-04-Hello-World.md"


def url_of(permalink: str, front: str = FRONT, rel: str = REL) -> str:
    site = Site(
        root=Path("/nonexistent"),
        url="https://ex.com",
        tz=ZoneInfo("Europe/Berlin"),
        permalink=permalink,
        title="T",
    )
    post = parse_post(rel, f"---\n{front}\n---\n\nBody.\n".encode(), site)
    return post.url.removeprefix("https://ex.com")


@pytest.mark.parametrize(
    ("placeholder", "value"),
    [
        ("year", "2026"),
        ("month", "01"),
        ("day", "04"),
        ("hour", "09"),
        ("minute", "05"),
        ("second", "07"),
        ("i_month", "1"),
        ("i_day", "4"),
        ("short_year", "26"),
        ("short_month", "Jan"),
        ("long_month", "January"),
        ("short_day", "Sun"),
        ("long_day", "Sunday"),
        ("w_year", "2026"),
        ("week", "01"),
        ("w_day", "7"),
        ("y_day", "004"),
        ("title", "Hello-World"),
        ("slug", "hello-world"),
        ("name", "2026-01-04-hello-world"),
        ("categories", "local%20news/world"),
        ("slugified_categories", "local-news/world"),
        ("path", "sub/2026-01-04-Hello-World"),
        ("collection", "posts"),
        ("output_ext", ".html"),
    ],
)
def test_each_placeholder(placeholder: str, value: str) -> None:
    """`/x/:name/` comes out with the value Jekyll's UrlDrop gives that placeholder."""
    assert url_of(f"/x/:{placeholder}/") == f"/x/{value}/"


@pytest.mark.parametrize(
    ("style", "url"),
    [
        ("date", "/local%20news/world/2026/01/04/Hello-World.html"),
        ("pretty", "/local%20news/world/2026/01/04/Hello-World/"),
        ("ordinal", "/local%20news/world/2026/004/Hello-World.html"),
        ("weekdate", "/local%20news/world/2026/W01/Sun/Hello-World.html"),
        ("none", "/local%20news/world/Hello-World.html"),
    ],
)
def test_each_builtin_style(style: str, url: str) -> None:
    """The five built-in styles, `weekdate` with its `Sun` as Jekyll writes it."""
    assert url_of(style) == url


def test_week_year_differs_from_the_year_at_new_year() -> None:
    """`:w_year` and `:week` are ISO: 1 January 2027 is in week 53 of 2026."""
    assert url_of("/:w_year/W:week/:short_day/", "date: 2027-01-01", REL) == "/2026/W53/Fri/"
