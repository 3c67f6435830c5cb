"""Quiet hours at delivery: which messages arrive without a sound."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.choices import in_quiet, zone
from bot.models import ClaimedItem, Kind

# What waits politely: news that is not urgent. A breaking alert rings whatever the hour,
# a confirmation is one the reader asked for just now, a correction fixes what they have.
QUIET_KINDS = frozenset({Kind.POST, Kind.DIGEST, Kind.BROADCAST})


def silent(item: ClaimedItem, now: datetime, site_tz: ZoneInfo) -> bool:
    """Whether the row's messages go with disable_notification: its kind may be quiet and
    aware `now` falls in the reader's quiet hours, in their zone (else the site's)."""
    return item.kind in QUIET_KINDS and in_quiet(now, item.quiet, zone(item.tz, site_tz))
