"""Prometheus figures for `GET /metrics`: one registry per app, updated by the parts that act."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from bot.models import Channel, ReportKind, Status

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Counters other modules bump (posts, jobs, sends, failures) and a subscriber gauge."""

    def __init__(self) -> None:
        # A registry of our own, never prometheus_client's global one: every app (and every
        # test) starts from zero and two apps in one process do not clash.
        self.registry = CollectorRegistry(auto_describe=True)
        self.posts_seen = Counter(
            "herald_posts_seen",
            "New posts the watcher has seen since start.",
            registry=self.registry,
        )
        self.jobs = Counter(
            "herald_jobs",
            "Messages queued in the outbox, by channel and kind.",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.sends = Counter(
            "herald_sends",
            "Messages delivered, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.failures = Counter(
            "herald_send_failures",
            "Failed delivery attempts, by channel and whether a retry can help.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "herald_subscribers",
            "Subscribers by channel and status, read from the database at scrape time.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.up = Gauge(
            "herald_up",
            "1 while a part works, 0 while it is down (as GET /healthz reports it).",
            ["part"],
            registry=self.registry,
        )
        self.web_subscribe = Counter(
            "herald_web_subscribe_requests",
            "POST /subscribe answers, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.mail_reports = Counter(
            "herald_mail_reports",
            "Bounces (hard, soft) and complaints the bounce listener recorded, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.mail_reports_dropped = Counter(
            "herald_mail_reports_dropped",
            "Mail on the bounce listener that was dropped: no report, or it named nobody.",
            registry=self.registry,
        )
        for channel in Channel:
            self.sends.labels(channel.value)
        for kind in ReportKind:
            self.mail_reports.labels(kind.value)

    def post_seen(self, count: int = 1) -> None:
        """The watcher found `count` new posts."""
        self.posts_seen.inc(count)

    def job_queued(self, channel: str, kind: str, count: int = 1) -> None:
        """`count` (message, recipient) jobs entered the outbox."""
        self.jobs.labels(channel, kind).inc(count)

    def sent(self, channel: str) -> None:
        """One message was delivered."""
        self.sends.labels(channel).inc()

    def failed(self, channel: str, reason: str) -> None:
        """One delivery attempt failed; `reason` is e.g. `transient` or `permanent`."""
        self.failures.labels(channel, reason).inc()

    def mail_report(self, kind: ReportKind) -> None:
        """The bounce listener recorded a bounce or complaint for a subscriber."""
        self.mail_reports.labels(kind.value).inc()

    def mail_report_dropped(self) -> None:
        """The bounce listener dropped a mail (an auto-reply, or one naming nobody)."""
        self.mail_reports_dropped.inc()

    def set_subscribers(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the subscriber gauge with (channel, status) → count; absent pairs are 0."""
        for channel in Channel:
            for status in Status:
                value = counts.get((channel.value, status.value), 0)
                self.subscribers.labels(channel.value, status.value).set(value)
        for (channel_name, status_name), value in counts.items():
            self.subscribers.labels(channel_name, status_name).set(value)

    def set_up(self, parts: Mapping[str, bool]) -> None:
        """Part name → whether it works, from a health report."""
        for part, up in parts.items():
            self.up.labels(part).set(1 if up else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of every figure."""
        return generate_latest(self.registry)
