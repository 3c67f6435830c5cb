"""The figures of /stats and `herald stats`, gathered in one place from any backend."""

from __future__ import annotations

from bot.models import Channel, OutboxStatus, StatsReport, Status
from bot.store.interface import Store


async def gather_stats(store: Store, *, jobs: int, failed: int) -> StatsReport:
    """Subscribers, preferences, outbox totals, the newest `jobs` and `failed` rows, the
    bounces and complaints received, and the corrections sent."""
    counts = await store.subscribers.counts()
    totals = await store.outbox.totals()
    return StatsReport(
        subscribers={(Channel(c), Status(s)): n for (c, s), n in counts.items()},
        preferences=await store.subscribers.preference_counts(),
        outbox=totals,
        jobs=await store.outbox.progress(jobs),
        failed=await store.outbox.failed(failed) if totals[OutboxStatus.FAILED] else [],
        reports=await store.subscribers.report_counts(),
        corrections=await store.outbox.correction_counts(),
    )
