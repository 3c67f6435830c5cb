"""Every bot reply rendered with sample data, so `herald check` can validate each one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bot.models import (
    Channel,
    CorrectionCounts,
    FailedItem,
    JobProgress,
    OutboxStatus,
    Post,
    PreferenceCounts,
    ReportCounts,
    Status,
    Subscriber,
)

Reply = Callable[..., str]  # renders templates/telegram/bot/<name> with keyword context

ANSWER_KINDS = (
    "saved",
    "topics_changed",
    "not_subscribed",
    "group_admin_only",
    "refusal",
    "already_sent",
    "already_cancelled",
    "sent",
    "cancelled",
    "expired",
    "failed",
    "resent",
    "nothing_to_resend",
)


def sample_replies(text: Reply) -> dict[str, str]:
    """Every bot reply rendered with sample data, by name (for `herald check` and tests)."""
    sub = Subscriber(
        id=1,
        channel=Channel.TELEGRAM,
        address="1",
        breaking=True,
        daily=False,
        every_post=True,
        status=Status.ACTIVE,
    )
    post = Post(
        path="p.md",
        slug="p",
        title="A & <b>",
        date=datetime(2000, 1, 1, tzinfo=UTC),
        url="https://x/p",
        body="",
        excerpt="",
    )
    figures = {s.value: 1 for s in Status}
    prefs = PreferenceCounts(active=3, breaking=2, daily=1, every_post=0)
    channels = [{"label": "Telegram", "prefs": prefs, **figures}]
    counts = dict(zip(OutboxStatus, (1, 0, 5, 1, 0), strict=True))
    delivery = {s.value: n for s, n in counts.items()} | {"blocked": 2, "bounced": 1}
    job = JobProgress(
        id=3,
        key="post:3",
        kind="breaking",
        title="A & <b>",
        created_at="2000-01-01T00:00:00",
        finished_at=None,
        counts=counts,
    )
    failed = FailedItem(
        id=9,
        job_id=3,
        job_key="post:3",
        channel="telegram",
        address="-100",
        attempts=8,
        last_error="gave up: <502> & more",
    )
    out: dict[str, str] = {}
    for group in (False, True):
        g = "group" if group else "private"
        out[f"welcome/{g}"] = text("welcome.html", group=group)
        out[f"settings/{g}"] = text(
            "settings.html",
            sub=sub,
            group=group,
            digest_time="08:00",
            zone="Europe/London",
            topics=["A & <b>", "b"],
        )
        out[f"topics/{g}"] = text("topics.html", group=group, chosen=["A & <b>"], offered=True)
        out[f"topics/{g}/none"] = text("topics.html", group=group, chosen=[], offered=False)
        for kind in ("shown", "set", "off", "bad"):
            zone, quiet = "Europe/London", None if kind == "off" else "22:00-07:00"
            out[f"quiet/{g}/{kind}"] = text(
                "quiet.html", kind=kind, quiet=quiet, zone=zone, group=group, given="<x>"
            )
        for kind in ("shown", "set", "default", "bad"):
            own = dict(zone="Europe/London", own=kind == "set", group=group, given="<x>")
            out[f"digest_time/{g}/{kind}"] = text(
                "digest_time.html", kind=kind, at="18:30", daily=group, **own
            )
            out[f"timezone/{g}/{kind}"] = text("timezone.html", kind=kind, digest_at="18:30", **own)
        out[f"not_subscribed/{g}"] = text("not_subscribed.html", group=group)
        for was in (False, True):
            out[f"stop/{g}/{was}"] = text("stop.html", was_subscribed=was, group=group)
        for admin in (False, True):
            out[f"help/{g}/{admin}"] = text("help.html", admin=admin, group=group)
    out["latest/none"] = text("latest.html", posts=[])
    out["latest/some"] = text("latest.html", posts=[post, post])
    out["group_admin_only"] = text("group_admin_only.html")
    out["refusal"] = text("refusal.html", command="stats")
    out["broadcast_usage"] = text("broadcast_usage.html")
    out["broadcast_confirm"] = text("broadcast_confirm.html", recipients=2, parts=2)
    out["broadcast_sent"] = text("broadcast_sent.html", recipients=1)
    out["broadcast_cancelled"] = text("broadcast_cancelled.html")
    out["broadcast_invalid"] = text("broadcast_invalid.html", reason="x < y & z")
    out["stats"] = text(
        "stats.html",
        channels=channels,
        delivery=delivery,
        jobs=[job, job],
        failed=[failed],
        reports=ReportCounts(hard=1, soft=4, complaints=2),
        corrections=CorrectionCounts(corrected=2, withdrawn=1, edited=30, pending=4),
    )
    out["stats/empty"] = text(
        "stats.html",
        channels=channels,
        delivery=dict.fromkeys(delivery, 0),
        jobs=[],
        failed=[],
        reports=ReportCounts(),
        corrections=CorrectionCounts(),
    )
    out["resend_queued"] = text("resend_queued.html", count=2)
    out["error"] = text("error.html")
    return out


def sample_plain(text: Reply) -> dict[str, str]:
    """Button labels and callback answers (plain text, not HTML) rendered with sample data."""
    out = {f"answer/{kind}": text("answer.txt", kind=kind, count=2) for kind in ANSWER_KINDS}
    for name in ("breaking", "daily", "every_post", "send", "cancel", "resend"):
        for on in (False, True):
            out[f"button/{name}/{on}"] = text("button.txt", name=name, on=on)
    for on in (False, True):
        out[f"button/topic/{on}"] = text("button.txt", name="topic", topic="A & <b>", on=on)
        out[f"button/all_topics/{on}"] = text("button.txt", name="all_topics", on=on)
    for admin in (False, True):
        out[f"commands/{admin}"] = text("commands.txt", admin=admin)
    return out
