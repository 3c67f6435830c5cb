"""Where other files of the site are published: `{% link %}` and `{% post_url %}`."""

from __future__ import annotations

import re

from bot.errors import PostError
from bot.settings import Site
from bot.sources.jekyll import defaults as jekyll_defaults
from bot.sources.jekyll import permalinks
from bot.sources.jekyll import rules as jekyll


def post_keys(site: Site) -> list[str]:
    """The keys (see rules.site_path) of every file in the site's `_posts/` folders."""
    _, posts_dirs = jekyll.site_folders(site.root, site.config)
    keys: list[str] = []
    for folder in posts_dirs:
        for path in sorted(p for p in (site.root / folder).rglob("*") if p.is_file()):
            key = jekyll.post_key(path.relative_to(site.root).as_posix())
            if key is not None:
                keys.append(key)
    return keys


def _post_name(key: str) -> str:
    """How `post_url` names a post: `news/_posts/2026-x.md` and `_posts/news/2026-x.md`
    are both `news/2026-x` (PostComparer)."""
    above, sep, below = key.rpartition(f"{jekyll.POSTS_DIR}/")
    return (above + below if sep else key).rsplit(".", 1)[0]


def find_post(site: Site, name: str) -> str:
    """The key of the post `post_url` names, or PostError."""
    wanted = name.strip().strip("/").removeprefix("_posts/")
    keys = post_keys(site)
    for key in keys:
        if _post_name(key) == wanted:
            return key
    base = wanted.rsplit("/", 1)[-1]
    for key in keys:
        if key.rsplit("/", 1)[-1].rsplit(".", 1)[0] == base:
            return key
    raise PostError(f"no post named {name!r} under _posts/")


def post_file_url(site: Site, rel: str) -> str:
    """The site-relative URL of another post file (keyed `rel`), read from disk."""
    text = jekyll.decode((site.root / jekyll.site_path(rel)).read_bytes())
    front = jekyll.load_front_matter(jekyll.split_front_matter(text)[0])
    data = jekyll_defaults.post_data(site.defaults, rel, front)
    parts = jekyll.split_filename(rel.rsplit("/", 1)[-1])
    if parts is None:
        raise PostError(f"{rel} is not named like a post")
    when = jekyll.parse_date(data.get("date") or parts[0], site.tz)
    return permalinks.post_path_url(rel, data, when, site)[0]


def link_url(site: Site, target: str) -> str:
    """`{% link %}`: a post under `_posts/` or a page, as an absolute URL."""
    target = target.strip().lstrip("/")
    key = jekyll.post_key(target)
    if key is not None:
        return site.url + post_file_url(site, key)
    path = (site.root / target).resolve()
    if not path.is_relative_to(site.root.resolve()) or not path.is_file():
        raise ValueError(f"could not find {target!r} in the site")
    text = jekyll.decode(path.read_bytes())
    if text.startswith("---"):
        permalink = jekyll.load_front_matter(jekyll.split_front_matter(text)[0]).get("permalink")
        if permalink:
            return site.url + permalinks.fill_permalink(str(permalink), {})
    stem, dot, ext = target.rpartition(".")
    if not dot:
        stem, ext = target, ""
    out_ext = permalinks.output_ext("." + ext, site) if ext else ""
    if stem.rsplit("/", 1)[-1] == "index" and out_ext == ".html":
        url = "/" + stem.removesuffix("index")
    elif out_ext == ".html" and permalinks.permalink_template(site.permalink).endswith("/"):
        url = f"/{stem}/"
    else:
        url = f"/{stem}{out_ext}"
    return site.url + permalinks.escape_path(re.sub(r"/+", "/", url))
