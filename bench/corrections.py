"""A correction of a post announced to 10,000 chats, beside its announcement in the same run.

The fake Bot API runs in its own process on loopback with Telegram's limits (30/s free,
1000/s with allow_paid_broadcast, 1/s per chat); everything else is the real thing: the
SQLite outbox, the publisher's fan-out, the Corrector, the pacer, PTB and its request layer.

    .venv/bin/python bench/corrections.py [--chats 10000] [--rate 1000]

1. baseline: the post's announcement to every chat (Publisher.announce, then delivery);
2. the correction: its title changes; the Corrector queues one edit per chat (seconds to
   queue), then delivery edits them (edits/s, the most in any one second against
   HERALD_TELEGRAM_RATE, 429s). Every chat's message is checked to be edited once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.delivery import fake_bot_api  # noqa: E402
from bot.delivery.loop import Delivery, DeliveryConfig  # noqa: E402
from bot.delivery.pacing import Pacer, is_paid  # noqa: E402
from bot.delivery.setup import workers_for  # noqa: E402
from bot.errors import DeliveryError, TransientError  # noqa: E402
from bot.models import Channel, Kind, TelegramMessage  # noqa: E402
from bot.outbox.corrections import Corrector  # noqa: E402
from bot.outbox.publish import Publisher  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402
from bot.store import ImportRow, Store, open_store  # noqa: E402
from bot.tokens import Tokens  # noqa: E402
from bot.transports.files import FilesMail  # noqa: E402
from bot.transports.telegram import BotTransport, make_bot  # noqa: E402
from tests.fakes.bot_api import TOKEN  # noqa: E402
from tests.support.delivery import make_post  # noqa: E402


@dataclass
class Clocked:
    """Wraps the Bot API transport: when each call succeeded (by method), and the 429s."""

    inner: BotTransport
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    throttled: int = 0

    async def send(
        self,
        chat_id: str,
        message: TelegramMessage,
        *,
        message_id: int | None = None,
        silent: bool = False,
    ) -> int | None:
        try:
            answer = await self.inner.send(chat_id, message, message_id=message_id, silent=silent)
        except DeliveryError as exc:
            self.errors[type(exc).__name__] += 1
            if isinstance(exc, TransientError) and exc.retry_after_s is not None:
                self.throttled += 1
            raise
        self.times.setdefault(message.method, []).append(time.perf_counter())
        return answer

    async def __aenter__(self) -> Clocked:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)


def max_in_a_second(times: Sequence[float]) -> int:
    """The most calls in any one-second window."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class Figures:
    queue_s: float  # until every row was queued
    total_s: float  # until the last was sent
    calls: int
    per_s: float
    peak: int  # most in any one second
    too_many: int  # 429s


async def drained(store: Store) -> None:
    while True:
        totals = await store.outbox.totals()
        if totals["queued"] + totals["sending"] == 0:
            return
        await asyncio.sleep(0.05)


async def measured(
    store: Store, clocked: Clocked, methods: set[str], work: asyncio.Future[object]
) -> Figures:
    """Run `work` (which queues rows) and then delivery to the end; figures of `methods`."""
    before = {m: len(clocked.times.get(m, [])) for m in methods}
    throttled = clocked.throttled
    start = time.perf_counter()
    await work
    queue_s = time.perf_counter() - start
    await drained(store)
    total_s = time.perf_counter() - start
    times = sorted(t for m in methods for t in clocked.times.get(m, [])[before[m] :])
    per_s = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Figures(
        queue_s, total_s, len(times), per_s, max_in_a_second(times), clocked.throttled - throttled
    )


def settings_for(tmp: Path, base_url: str, rate: float) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        site_dir=ROOT / "examples" / "site",
        database_url=f"sqlite:///{tmp / 'herald.db'}",
        outbox_dir=tmp / "outbox",
        secret_key="bench",
        site_url="https://news.example.org",
        telegram_token=TOKEN,
        telegram_api_url=base_url,
        telegram_rate=rate,
        smtp_url="smtp://127.0.0.1:1",
    )


async def run(base_url: str, chats: int, rate: float) -> tuple[Figures, Figures, int]:
    """(announcement, correction, chats whose message shows the correction)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), base_url, rate)
        async with (
            make_bot(settings) as bot,
            open_store(settings.database_path) as store,
            Clocked(BotTransport(bot, paid=is_paid(rate))) as clocked,
        ):
            delivery = Delivery(
                store,
                telegram=clocked,
                mail=FilesMail(Path(tmp)),
                tokens=Tokens("bench"),
                mail_from=settings.mail_from,
                public_url=settings.public_base,
                pacer=Pacer(rate),
                config=DeliveryConfig(telegram_workers=workers_for(rate), mail_workers=4),
            )
            renderer = Renderer(load_site(settings), public_url=settings.public_base)
            publisher = Publisher(store, renderer, wake=delivery.notify)
            corrector = Corrector(publisher)
            await store.subscribers.import_rows(
                ImportRow(Channel.TELEGRAM, str(100_001 + n), True, False) for n in range(chats)
            )
            post = make_post(1, breaking=True)
            now = datetime.now(UTC)
            (post_id, post), *_ = await store.posts.record([post], announced=True, now=now)
            stop = asyncio.Event()
            task = asyncio.create_task(delivery.run(stop))
            try:
                sends = {"sendMessage", "sendPhoto"}
                announce = asyncio.ensure_future(publisher.announce(post, post_id))
                baseline = await measured(store, clocked, sends, announce)
                await store.posts.mark_announced(post_id)
                fixed = replace(post, title="Post number 1, corrected")
                await store.posts.record([fixed], announced=True, now=datetime.now(UTC))
                edits = {"editMessageText", "editMessageCaption", "editMessageMedia"}
                correct = asyncio.ensure_future(corrector.correct_all(datetime.now(UTC)))
                correction = await measured(store, clocked, edits, correct)
            finally:
                stop.set()
                await task
            rows = await store.outbox.correction_counts()
            assert rows.pending == 0, rows
            return baseline, correction, rows.edited


def line(name: str, f: Figures, rate: float, what: str) -> str:
    return (
        f"{name:<11} queued in {f.queue_s:5.2f} s, {f.calls} {what} in {f.total_s:6.1f} s: "
        f"{f.per_s:6.1f}/s, at most {f.peak} in a second (rate {rate:g}), {f.too_many} x 429"
    )


async def main(args: argparse.Namespace) -> None:
    print(f"== a post to {args.chats} chats, then its correction (rate {args.rate:g})")
    with fake_bot_api(limits=True) as url:
        baseline, correction, edited = await run(url, args.chats, args.rate)
    print(line("announce", baseline, args.rate, "sends"))
    print(line("correction", correction, args.rate, "edits"))
    assert correction.calls == edited == args.chats, (correction.calls, edited)
    print(
        f"every chat's alert edited once ({edited} rows sent); kind {Kind.EDIT.value} goes"
        f" {baseline.per_s / max(correction.per_s, 0.001):.1f}x slower than the announcement"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000)
    asyncio.run(main(parser.parse_args()))
