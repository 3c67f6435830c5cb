"""The site as Jekyll reads it: `_config.yml`, front matter defaults and `_data/`, with settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.errors import ConfigError
from bot.settings import DEFAULT_PERMALINK, Settings, Site, zone
from bot.sources.jekyll import data as jekyll_data
from bot.sources.jekyll import defaults as jekyll_defaults


def read_site_config(root: Path) -> dict[str, Any]:
    """`_config.yml` as a dict; a missing file is an empty config."""
    path = root / "_config.yml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a YAML mapping of settings")
    return data


def load_site(settings: Settings) -> Site:
    """Combine settings with `_config.yml`: settings win where both speak."""
    root = settings.site_dir
    if not root.is_dir() and settings.site_git is not None:
        raise ConfigError(
            f"the clone of HERALD_SITE_GIT in {str(root)!r} is not there yet; `herald run` makes it"
        )
    if not root.is_dir():
        raise ConfigError(
            f"HERALD_SITE_DIR={str(root)!r} is not a directory; point it at the Jekyll site root"
        )
    config = read_site_config(root)
    url = settings.site_url
    if url is None:
        url = str(config.get("url") or "") + str(config.get("baseurl") or "")
    url = url.rstrip("/")
    if not url:
        url = "http://localhost:4000"
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ConfigError(
            f"site URL {url!r} is not absolute; set HERALD_SITE_URL or `url` in _config.yml"
        )
    tz = zone(settings.timezone or str(config.get("timezone") or "UTC"))
    collections = config.get("collections")
    permalink = config.get("permalink") or DEFAULT_PERMALINK
    if isinstance(collections, dict):
        posts_conf = collections.get("posts")
        if isinstance(posts_conf, dict) and posts_conf.get("permalink"):
            permalink = posts_conf["permalink"]
    separator = config.get("excerpt_separator")
    return Site(
        root=root,
        url=url,
        tz=tz,
        permalink=str(permalink),
        title=str(config.get("title") or "News"),
        config=config,
        excerpt_separator=str(separator) if separator else "\n\n",
        defaults=jekyll_defaults.valid_sets(config.get("defaults")),
        data=jekyll_data.read_data(root, config),
    )
