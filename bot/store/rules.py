"""Rules every backend keeps alike, in one place."""

from __future__ import annotations

from datetime import timedelta

from bot.models import Audience

# An email's outbox row is marked sent a little after its return path was signed: a row
# sent this soon after a bounced email is that email's own, not a later one that arrived.
SAME_SEND = timedelta(minutes=2)

# Who a fan-out reaches, as a condition on `subscribers` (active ones only, by the caller).
AUDIENCE_SQL = {
    Audience.EVERY_POST: "every_post",
    Audience.BREAKING: "(every_post OR breaking)",
    Audience.DAILY: "daily",
    Audience.EVERYONE: "TRUE",
}
# Subscribers planned per transaction by a fan-out: the first rows go out meanwhile.
FAN_OUT_BATCH = 20_000
