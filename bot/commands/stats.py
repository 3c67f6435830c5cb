"""`herald stats`: subscribers, deliveries, recent jobs and failed sends, as text."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from bot.models import Channel, OutboxStatus, Status
from bot.settings import Settings
from bot.store import gather_stats, open_store

LEFT = (Status.PENDING, Status.UNSUBSCRIBED, Status.BLOCKED, Status.BOUNCED)
RECENT_JOBS = RECENT_FAILED = 5


async def stats(settings: Settings, out: TextIO) -> int:
    """Subscribers per channel, preference and status; deliveries, recent jobs, failed sends."""
    async with open_store(settings.database_url) as store:
        report = await gather_stats(store, jobs=RECENT_JOBS, failed=RECENT_FAILED)
    out.write("subscribers  active  breaking  daily  every-post  " + "  ".join(LEFT) + "\n")
    for channel in Channel:
        p = report.preferences[channel]
        left = "  ".join(f"{report.subscribers.get((channel, s), 0):>{len(s)}}" for s in LEFT)
        out.write(
            f"{channel.value:<11}  {p.active:>6}  {p.breaking:>8}  {p.daily:>5}"
            f"  {p.every_post:>10}  {left}\n"
        )
    totals = report.outbox
    out.write("deliveries   " + "  ".join(f"{k} {v}" for k, v in totals.items()) + "\n")
    r = report.reports
    out.write(f"bounces      hard {r.hard}  soft {r.soft}  complaints {r.complaints}\n")
    fixes = report.corrections
    out.write(
        f"corrections  posts corrected {fixes.corrected}  withdrawn {fixes.withdrawn}"
        f"  messages edited {fixes.edited}  waiting {fixes.pending}\n"
    )
    if report.jobs:
        out.write("recent jobs\n")
    for job in report.jobs:
        c = job.counts
        state = "finished" if job.finished_at else "running"
        waiting = c[OutboxStatus.QUEUED] + c[OutboxStatus.SENDING]
        out.write(
            f"  #{job.id:<5} {job.kind:<9} {state:<8} sent {c[OutboxStatus.SENT]}/{job.total}"
            f"  waiting {waiting}  failed {c[OutboxStatus.FAILED]}"
            f"  cancelled {c[OutboxStatus.CANCELLED]}  {job.created_at[:19]}  {job.title}\n"
        )
    out.write(f"failed sends {totals[OutboxStatus.FAILED]}\n")
    for item in report.failed:
        out.write(
            f"  failed: {item.job_key} → {item.channel}:{item.address}"
            f" after {item.attempts} attempt(s): {item.last_error}\n"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `herald stats`."""
    p = sub.add_parser("stats", help="subscribers and delivery figures")
    p.set_defaults(func=lambda args, settings: asyncio.run(stats(settings, sys.stdout)))
