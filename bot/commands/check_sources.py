"""`herald check` for the post sources other than files: the git remote and the feed."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bot.settings import Settings, zone
from bot.sources.feed import FeedUnavailable, fetch_feed, http_session, parse_feed
from bot.sources.git import SiteClone
from bot.sources.jekyll.reader import BreakingRules


async def source_problems(settings: Settings) -> list[str]:
    """One sentence per source setting that cannot work: remote, branch, secret, feed."""
    problems: list[str] = []
    if settings.site_git is not None:
        with tempfile.TemporaryDirectory() as scratch:
            clone = SiteClone(
                settings.site_git.get_secret_value(),
                Path(scratch),
                branch=settings.site_branch,
                timeout_s=30.0,
            )
            problem = await clone.remote_problem()
        if problem is not None:
            problems.append(f"HERALD_SITE_GIT: {problem}")
        if settings.webhook_secret is None:
            problems.append(
                "HERALD_WEBHOOK_SECRET is unset, so POST /hooks/git refuses every push hook "
                "(401); set a long random secret here and in the repository's webhook"
            )
    if settings.feed_url is not None:
        problems += await _feed_problems(settings, settings.feed_url)
    return problems


async def _feed_problems(settings: Settings, url: str) -> list[str]:
    try:
        async with http_session() as session:
            fetched = await fetch_feed(session, url)
    except FeedUnavailable as exc:
        return [f"HERALD_FEED_URL: the feed {exc}"]
    parsed = parse_feed(
        fetched.body,
        url=fetched.url or url,
        tz=zone(settings.timezone or "UTC"),
        rules=BreakingRules(),
        now=datetime.now(UTC),
        content_type=fetched.content_type,
    )
    if parsed.problem is not None:
        return [f"HERALD_FEED_URL: {url} {parsed.problem}"]
    return []
