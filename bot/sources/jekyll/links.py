"""Where other files of the site are published: `{% link %}` and `{% post_url %}`."""

from __future__ import annotations

import re

from bot.errors import PostError
from bot.settings import Site
from bot.sources.jekyll import defaults as jekyll_defaults
from bot.sources.jekyll import permalinks
from bot.sources.jekyll import rules as jekyll


def find_post(site: Site, name: str) -> str:
    """The path under `_posts/` of the post `post_url` names, or PostError."""
    wanted = name.strip().strip("/").removeprefix("_posts/")
    candidates = sorted(p for p in site.posts_dir.rglob("*") if p.is_file())
    rels = [p.relative_to(site.posts_dir).as_posix() for p in candidates]
    for rel in rels:
        if rel.rsplit(".", 1)[0] == wanted:
            return rel
    base = wanted.rsplit("/", 1)[-1]
    for rel in rels:
        if rel.rsplit("/", 1)[-1].rsplit(".", 1)[0] == base:
            return rel
    raise PostError(f"no post named {name!r} under _posts/")


def post_file_url(site: Site, rel: str) -> str:
    """The site-relative URL of another post file, read from disk."""
    text = jekyll.decode((site.posts_dir / rel).read_bytes())
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
    if target.startswith("_posts/"):
        return site.url + post_file_url(site, target.removeprefix("_posts/"))
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
