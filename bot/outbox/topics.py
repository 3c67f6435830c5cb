"""The topics a reader may choose from: the site's own list, else what its posts use."""

from __future__ import annotations

from typing import Any

from bot.choices import topic_key
from bot.settings import Site
from bot.store import PostLog

# As many as a keyboard of toggle buttons shows comfortably (two per row).
TOPIC_LIMIT = 24


def configured_topics(site: Site) -> list[str] | None:
    """`herald.topics` in _config.yml (a list or a space-separated string), or None."""
    herald: Any = site.config.get("herald")
    raw = herald.get("topics") if isinstance(herald, dict) else None
    if raw is None:
        return None
    items = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        name = " ".join(str(item).split())
        if name and topic_key(name) not in seen:
            seen.add(topic_key(name))
            out.append(name)
    return out


async def topic_offer(site: Site, posts: PostLog, *, limit: int = TOPIC_LIMIT) -> list[str]:
    """The topics offered, as shown: `herald.topics` when set, else the categories and tags
    of the posts seen, most used first; at most `limit`."""
    configured = configured_topics(site)
    if configured is not None:
        return configured[:limit]
    return [name for name, _ in await posts.topic_counts(limit)]
