"""Rules every backend keeps alike, in one place."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

from bot.choices import topic_key
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


def topic_patterns(topics: Collection[str]) -> list[str]:
    """LIKE patterns (backslash escapes) matching a stored topics text (`;a;b;`, as
    `bot.choices.topics_text` writes it) that holds one of `topics`."""
    keys = sorted({topic_key(t) for t in topics} - {""})
    escaped = (k.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for k in keys)
    return [f"%;{k};%" for k in escaped]


def topics_sql(matches: str) -> str:
    """Who wants a post of some topics, as a condition on `subscribers`: those who chose no
    topic, or whose topics `matches` (the backend's test against `topic_patterns`)."""
    return f"(topics = '' OR {matches})"


# The payload revision of a row's parts after a write-back: that of the parts sent in this
# turn (from the old `parts_done` to the new), the older one where earlier parts went out
# before; as it was when none went out now.
SENT_REV = (
    "CASE WHEN {new} IS NULL OR {parts} <= {old}parts_done THEN {old}sent_rev"
    " WHEN {old}parts_done > 0 THEN {least}({old}sent_rev, {new}) ELSE {new} END"
)


def ids_text(ids: Sequence[int]) -> str:
    """Telegram message ids as `outbox_items.message_ids` holds them: "501,502", in part order."""
    return ",".join(str(i) for i in ids)


def ids_of(text: str | None) -> tuple[int, ...]:
    """The message ids of a stored `message_ids`."""
    return tuple(int(i) for i in (text or "").split(",") if i)


# The day a digest by hand (`herald digest`) asks readers to be due before: later than any,
# so every reader with the digest on is due, whatever day their last digest was.
BY_HAND_DAY = "9999-12-31"
