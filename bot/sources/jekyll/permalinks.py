"""Jekyll's permalinks, ported: the site-relative URL a post is published at.

Each function mirrors a named piece of Jekyll 4 (`Configuration`, `URL`, `Drops::UrlDrop`)
so that a link Herald sends is the URL the site publishes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.errors import PostError
from bot.settings import Site
from bot.sources.jekyll import rules as jekyll

# Configuration#style_to_permalink
STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_PLACEHOLDER_RE = re.compile(r":([a-z_]+)")
_URL_SAFE = "-._~!$&'()*+,;=:@/"
_PLAIN_PATH_RE = re.compile(r"^[a-zA-Z0-9./-]+$")


def permalink_template(style: str) -> str:
    """A permalink style name (`date`, `pretty`, …) as its pattern; patterns unchanged."""
    return STYLES.get(style.strip(), style)


def escape_path(value: str) -> str:
    """URL.escape_path: percent-encode what may not appear in a URL path."""
    if not value or _PLAIN_PATH_RE.match(value):
        return value
    return quote(value, safe=_URL_SAFE)


@dataclass(frozen=True)
class UrlParts:
    """What Jekyll's UrlDrop knows about a post."""

    rel_path: str  # relative to the site (Document#relative_path): `_posts/…` or `news/_posts/…`
    file_slug: str
    slug: str | None  # front matter `slug`
    categories: tuple[str, ...]
    date: datetime  # in the site's time zone
    ext: str  # of the source file, with its dot
    output_ext: str

    def placeholders(self) -> Mapping[str, str]:
        """Every `:name` a permalink pattern may use, computed only when asked for."""
        return _Placeholders(self)


_DATE_FORMATS = {
    "year": "%Y",
    "month": "%m",
    "day": "%d",
    "hour": "%H",
    "minute": "%M",
    "second": "%S",
    "short_year": "%y",
    "w_year": "%G",
    "week": "%V",
    "w_day": "%u",
    "y_day": "%j",
}

# Ruby's strftime names months and days in English whatever the locale; Python's follows it.
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class _Placeholders(Mapping[str, str]):
    """Drops::UrlDrop as a lazy mapping: a 10,000-post scan only pays for what it uses."""

    _NAMES = (
        *_DATE_FORMATS,
        *("collection", "name", "title", "slug", "categories", "i_day", "i_month"),
        *("long_month", "short_month", "long_day", "short_day"),
        *("slugified_categories", "path", "output_ext"),
    )

    def __init__(self, parts: UrlParts) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[str]:
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)

    def __contains__(self, key: object) -> bool:
        return key in self._NAMES

    def __getitem__(self, key: str) -> str:
        p, d = self.parts, self.parts.date
        if key in _DATE_FORMATS:
            return d.strftime(_DATE_FORMATS[key])
        base_slug = p.slug if p.slug is not None else p.file_slug
        # Document#cleaned_relative_path: without the extension and the first `_posts`.
        path = p.rel_path[: len(p.rel_path) - len(p.ext)].replace(jekyll.POSTS_DIR, "", 1)
        values: dict[str, Callable[[], str]] = {
            "collection": lambda: "posts",
            "name": lambda: jekyll.slugify(path.rsplit("/", 1)[-1]),
            "title": lambda: jekyll.slugify(base_slug, "pretty", cased=True),
            "slug": lambda: jekyll.slugify(base_slug),
            "categories": lambda: "/".join(dict.fromkeys(str(c).lower() for c in p.categories)),
            "i_day": lambda: str(d.day),
            "i_month": lambda: str(d.month),
            "long_month": lambda: _MONTH_NAMES[d.month - 1],
            "short_month": lambda: _MONTH_NAMES[d.month - 1][:3],  # Jan..Dec
            "long_day": lambda: _DAY_NAMES[d.weekday()],
            "short_day": lambda: _DAY_NAMES[d.weekday()][:3],  # Mon..Sun
            "slugified_categories": lambda: "/".join(
                dict.fromkeys(jekyll.slugify(str(c)) for c in p.categories)
            ),
            "path": lambda: path.rstrip("."),
            "output_ext": lambda: p.output_ext,
        }
        if key not in values:
            raise KeyError(key)
        return values[key]()


def fill_permalink(template: str, values: Mapping[str, str]) -> str:
    """URL#generate_url_from_drop then #sanitize_url: the site-relative URL."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        for key in (name, name[:-1]) if name.endswith("_") else (name,):
            if key in values:
                return escape_path(values[key]) + match.group(0)[len(key) + 1 :]
        raise PostError(f"permalink {template!r} uses unknown placeholder :{name}")

    url = "/" + _PLACEHOLDER_RE.sub(replace, template)
    url = url.replace("..", "/").replace("./", "")
    return re.sub(r"/+", "/", url)


def output_ext(ext: str, site: Site) -> str:
    """What a source extension becomes once built: Markdown → .html, others unchanged."""
    low = ext.lower()
    return ".html" if low in jekyll.markdown_exts(site.config) or low == ".html" else ext


def post_path_url(
    rel_path: str, data: Mapping[str, Any], when: datetime, site: Site
) -> tuple[str, str]:
    """(site-relative URL, file slug) of a post from its key, its data and its date.

    `data` is the post's data as defaults.post_data builds it (front matter over defaults).
    """
    parts = jekyll.split_filename(rel_path.rsplit("/", 1)[-1])
    if parts is None:
        raise PostError("file name must look like YYYY-MM-DD-title.md")
    _, file_slug, ext = parts
    slug = data.get("slug")
    url_parts = UrlParts(
        rel_path=jekyll.site_path(rel_path),
        file_slug=file_slug,
        slug=None if slug is None else str(slug),
        categories=jekyll.categories_of(data),
        date=when.astimezone(site.tz),
        ext=ext,
        output_ext=output_ext(ext, site),
    )
    own = data.get("permalink")
    template = str(own) if own else permalink_template(site.permalink)
    return fill_permalink(template, url_parts.placeholders()), file_slug
