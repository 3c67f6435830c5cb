"""A post file's bytes → `Post`, exactly as Jekyll would publish it.

Breaking rules come from `_config.yml`, all keys optional (defaults shown)::

    herald:
      breaking:
        enabled: true                 # false: no post is ever breaking
        field: breaking               # front matter key; a true value makes the post breaking
        tags: [breaking]              # any of these tags (case-insensitive) → breaking
        categories: [breaking]        # any of these categories (case-insensitive) → breaking
        title_prefixes: ["Breaking:"] # a title starting with one (case-insensitive) → breaking
        strip_prefix: true            # show the title without the prefix
        label: Breaking               # Post.label of every breaking post
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.errors import ConfigError, PostError
from bot.models import Post
from bot.settings import Site
from bot.sources.jekyll import defaults as jekyll_defaults
from bot.sources.jekyll import liquid, permalinks
from bot.sources.jekyll import rules as jekyll

_TEMP_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", ".part", ".crdownload", ".bak", ".orig")
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_ABSOLUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class BreakingRules:
    """When a post is breaking news; see the module docstring for the config keys."""

    enabled: bool = True
    field: str = "breaking"
    tags: frozenset[str] = frozenset({"breaking"})
    categories: frozenset[str] = frozenset({"breaking"})
    title_prefixes: tuple[str, ...] = ("Breaking:",)
    strip_prefix: bool = True
    label: str = "Breaking"

    def apply(
        self, data: dict[str, Any], title: str, categories: tuple[str, ...], tags: tuple[str, ...]
    ) -> tuple[bool, str, str | None]:
        """(breaking, title as shown, label) of a post."""
        if not self.enabled:
            return False, title, None
        breaking = _truthy(data.get(self.field)) if self.field else False
        breaking |= any(t.casefold() in self.tags for t in tags)
        breaking |= any(c.casefold() in self.categories for c in categories)
        for prefix in self.title_prefixes:
            if prefix and title.casefold().startswith(prefix.casefold()):
                breaking = True
                rest = title[len(prefix) :].strip()
                if self.strip_prefix and rest:
                    title = rest
                break
        return breaking, title, (self.label or None) if breaking else None


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return value is True or value == 1


def _names(value: object, key: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"_config.yml herald.breaking.{key} must be a list of names")
    return frozenset(v.casefold() for v in value)


def breaking_rules(site: Site) -> BreakingRules:
    """The breaking rules from `_config.yml` `herald.breaking`, or ConfigError."""
    herald = site.config.get("herald")
    conf = herald.get("breaking") if isinstance(herald, dict) else None
    if conf is None:
        return _DEFAULT_RULES
    if not isinstance(conf, dict):
        raise ConfigError("_config.yml herald.breaking must be a mapping of settings")
    rules = BreakingRules()
    prefixes = conf.get("title_prefixes", list(rules.title_prefixes))
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    if not isinstance(prefixes, list):
        raise ConfigError("_config.yml herald.breaking.title_prefixes must be a list")
    return BreakingRules(
        enabled=conf.get("enabled", True) is not False,
        field=str(conf.get("field", rules.field) or ""),
        tags=_names(conf.get("tags", list(rules.tags)), "tags"),
        categories=_names(conf.get("categories", list(rules.categories)), "categories"),
        title_prefixes=tuple(str(p) for p in prefixes),
        strip_prefix=conf.get("strip_prefix", True) is not False,
        label=str(conf.get("label", rules.label) or ""),
    )


_DEFAULT_RULES = BreakingRules()


def is_post_filename(name: str, site: Site | None = None) -> bool:
    """True for names Jekyll reads as posts: `YYYY-MM-DD-title.md` (Markdown or HTML)."""
    base = name.rsplit("/", 1)[-1]
    if not base or base[0] in "._#~" or base.endswith("~") or base.endswith(_TEMP_SUFFIXES):
        return False
    parts = jekyll.split_filename(base)
    if parts is None or not parts[1]:
        return False
    config = site.config if site is not None else {}
    return parts[2].lower() in jekyll.markdown_exts(config) | jekyll.HTML_EXTS


def is_post_path(rel_path: str, site: Site | None = None) -> bool:
    """Like is_post_filename for a post's key (see rules.site_path): a path under `_posts/`,
    or `news/_posts/…` below site folders Jekyll reads; hidden/underscore folders skipped."""
    parts = rel_path.split("/")
    folders = parts[:-1]
    if jekyll.POSTS_DIR in folders:
        at = folders.index(jekyll.POSTS_DIR)
        config = site.config if site is not None else {}
        if not at or not jekyll.walked_path(config, "/".join(folders[:at])):
            return False
        folders = folders[at + 1 :]
    if any(p[:1] in {".", "_", "#", "~"} for p in folders if p):
        return False
    return is_post_filename(parts[-1], site)


def absolute_image(value: object, site: Site) -> str | None:
    """An image from front matter as an absolute URL: relative paths join Site.url."""
    if isinstance(value, dict):  # jekyll-seo-tag style: image: {path: …}
        value = value.get("path") or value.get("url")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _ABSOLUTE_RE.match(text):
        return text
    if text.startswith("//"):
        return site.url.split("//", 1)[0] + text
    return site.url + "/" + quote(text.lstrip("/"), safe="/%:@!$&'()*+,;=~-._?#")


def _author(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if v)
    if value is None:
        return None
    return str(value).strip() or None


def _excerpt(data: dict[str, Any], body: str, site: Site) -> str:
    own = data.get("excerpt")
    if own is not None and str(own).strip():
        return str(own).strip()
    separator = str(data.get("excerpt_separator") or site.excerpt_separator)
    # Jekyll's excerpt is everything before the separator, or the whole body.
    return body.strip().partition(separator)[0].strip()


def parse_post(rel_path: str, raw: bytes, site: Site) -> Post:
    """Parse one post file or raise PostError with a reason.

    `rel_path` is the path under the site's `_posts/`, or, for a post under another
    folder's `_posts/`, its whole path in the site (`news/_posts/…`: see rules.site_path).
    """
    parts = jekyll.split_filename(rel_path.rsplit("/", 1)[-1])
    if parts is None:
        raise PostError("file name must look like YYYY-MM-DD-title.md")
    day, file_slug, ext = parts
    yaml_text, body = jekyll.split_front_matter(jekyll.decode(raw))
    data = jekyll_defaults.post_data(site.defaults, rel_path, jekyll.load_front_matter(yaml_text))
    stamp = data.get("date")
    when = jekyll.parse_date(stamp if stamp is not None else day, site.tz).astimezone(site.tz)
    url_path, _ = permalinks.post_path_url(rel_path, data, when, site)
    fm_title = data.get("title")
    # A page shows its title as HTML: entities (`&amp;`, `&mdash;`) read as their characters.
    title = html.unescape(str(fm_title).strip()) if fm_title is not None else ""
    title = title or jekyll.titleize(file_slug)
    categories = jekyll.categories_of(data)
    tags = jekyll.tags_of(data)
    breaking, shown_title, label = breaking_rules(site).apply(data, title, categories, tags)
    # Publisher#can_be_published?: `published` false or null (an empty value) is a draft.
    published = data.get("published", True) not in (False, None)
    if "{{" in body or "{%" in body:
        page = {
            **data,
            "title": title,
            "date": jekyll.RubyTime.of(when),
            "url": url_path,
            "id": url_path.rsplit(".", 1)[0] if "." in url_path.rsplit("/", 1)[-1] else url_path,
            "slug": str(data.get("slug") or file_slug),
            "categories": list(categories),
            "tags": list(tags),
            "path": jekyll.site_path(rel_path),
            "collection": "posts",
            "ext": ext,
        }
        body = liquid.render(body, site=site, page=page, path=jekyll.site_path(rel_path))
    body = body.strip()
    return Post(
        path=rel_path,
        slug=file_slug,
        title=shown_title,
        date=when,
        url=site.url + url_path,
        body=body,
        excerpt=_excerpt(data, body, site),
        author=_author(data.get("author")),
        categories=categories,
        tags=tags,
        image=absolute_image(data.get("image"), site),
        published=published,
        breaking=breaking,
        label=label,
        format="html" if ext.lower() in jekyll.HTML_EXTS else "kramdown",
    )


def read_post_file(path: Path, rel: str, site: Site) -> Post:
    """The post in the file at `path` (keyed `rel`), or PostError saying why not."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PostError(f"cannot be read ({exc.strerror or exc})") from exc
    return parse_post(rel, raw, site)
