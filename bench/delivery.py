"""Delivery figures, each beside a naive baseline measured in the same run.

The fake Bot API and the SMTP server run in separate processes on loopback, so they do not
share this process's event loop (or its memory figures). Everything else is the real thing:
SQLite outbox, claims, pacer, PTB + the aiohttp request layer, the aiosmtplib pool.

    .venv/bin/python bench/delivery.py [--free-chats 300] [--paid-chats 4000] [--emails 2000]

1. free limit: HERALD_TELEGRAM_RATE=30 against Telegram's limits (30/s, 1/s per chat);
   baseline: a plain loop of sendMessage per subscriber.
2. paid ceiling: 4,000 chats at HERALD_TELEGRAM_RATE=1000 (limits on) and 5000 (limits
   off, the process's own ceiling); peak RSS of this process; baseline: the plain loop.
3. publish → first alert latency, idle delivery loop, five runs.
4. email fan-out to 2,000 addresses through the pool; baseline: one connection per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import telegram
from telegram.error import RetryAfter, TelegramError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.delivery.loop import Delivery, DeliveryConfig  # noqa: E402
from bot.delivery.mail import personalize  # noqa: E402
from bot.delivery.pacing import Pacer, is_paid  # noqa: E402
from bot.delivery.setup import workers_for  # noqa: E402
from bot.errors import DeliveryError, TransientError  # noqa: E402
from bot.models import Channel  # noqa: E402
from bot.outbox.publish import Publisher  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402
from bot.store import Store, open_store  # noqa: E402
from bot.tokens import Purpose, Tokens  # noqa: E402
from bot.transports.files import FilesMail, FilesTelegram  # noqa: E402
from bot.transports.smtp import SmtpPool, parse_smtp_url  # noqa: E402
from bot.transports.telegram import BotTransport, make_bot  # noqa: E402
from tests.fakes.bot_api import TOKEN  # noqa: E402
from tests.support.delivery import make_post  # noqa: E402

NAIVE_TEXT = "<b>Broadcast</b>: hello readers"
UNSUB, PREFS = Purpose.UNSUBSCRIBE, Purpose.PREFERENCES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fake_bot_api(limits: bool) -> Iterator[str]:
    args = [] if limits else ["--no-limits"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.bot_api", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c",
         "aiosmtpd.handlers.Sink"],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Clocked:
    """Wraps a transport: when each send finished, and which errors came back."""

    inner: object
    times: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    throttled: int = 0

    async def send(self, *args: object) -> None:
        try:
            await self.inner.send(*args)  # type: ignore[attr-defined]
        except DeliveryError as exc:
            self.errors[type(exc).__name__] += 1
            if isinstance(exc, TransientError) and exc.retry_after_s is not None:
                self.throttled += 1
            raise
        self.times.append(time.perf_counter())

    def __getattr__(self, name: str) -> object:
        # Let the delivery loop find the SMTP pool's fast path (send_raw), clocked too.
        if name != "send_raw" or not hasattr(self.inner, "send_raw"):
            raise AttributeError(name)

        async def send_raw(*args: object) -> None:
            await self.inner.send_raw(*args)  # type: ignore[attr-defined]
            self.times.append(time.perf_counter())

        return send_raw

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def settings_for(tmp: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "site_dir": ROOT / "examples" / "site",
        "database_url": f"sqlite:///{tmp / 'herald.db'}",
        "outbox_dir": tmp / "outbox",
        "secret_key": "bench",
        "site_url": "https://news.example.org",
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def delivering(
    settings: Settings, telegram_t: object, mail_t: object, rate: float
) -> AsyncIterator[tuple[Store, Publisher, Delivery]]:
    async with open_store(settings.database_path) as store:
        delivery = Delivery(
            store,
            telegram=telegram_t,  # type: ignore[arg-type]
            mail=mail_t,  # type: ignore[arg-type]
            tokens=Tokens("bench"),
            mail_from=settings.mail_from,
            public_url=settings.public_base,
            pacer=Pacer(rate),
            config=DeliveryConfig(telegram_workers=workers_for(rate), mail_workers=16),
        )
        publisher = Publisher(
            store,
            Renderer(load_site(settings), public_url=settings.public_base),
            stand_ins=settings.stand_in_channels,
            channel=settings.telegram_channel,
            wake=delivery.notify,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(delivery.run(stop))
        try:
            yield store, publisher, delivery
        finally:
            stop.set()
            await task


async def drained(store: Store) -> None:
    while True:
        totals = await store.outbox.totals()
        if totals["queued"] + totals["sending"] == 0:
            return
        await asyncio.sleep(0.05)


async def telegram_fan_out(base_url: str, chats: int, rate: float) -> tuple[float, int, float]:
    """Broadcast to `chats` chats through Herald: (msg/s, 429s, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(
            Path(tmp), telegram_token=TOKEN, telegram_api_url=base_url,
            telegram_rate=min(rate, 1000), smtp_url="smtp://127.0.0.1:1",
        )  # fmt: skip
        async with make_bot(settings) as bot:
            clocked = Clocked(BotTransport(bot, paid=is_paid(rate)))
            async with delivering(settings, clocked, FilesMail(Path(tmp)), rate) as (
                store,
                publisher,
                _,
            ):
                for chat in range(1, chats + 1):
                    await store.subscribers.upsert(Channel.TELEGRAM, str(chat), daily=False)
                start = time.perf_counter()
                await publisher.broadcast(NAIVE_TEXT, admin_id=1)
                await drained(store)
                took = time.perf_counter() - start
    assert len(clocked.times) == chats, (len(clocked.times), clocked.errors)
    return clocked.rate(), clocked.throttled, took


async def naive_loop(base_url: str, chats: int, paid: bool) -> tuple[float, int, int]:
    """The baseline: `for chat in subscribers: await bot.send_message(...)`, PTB defaults."""
    sent = too_many = 0
    async with telegram.Bot(TOKEN, base_url=base_url) as bot:
        start = time.perf_counter()
        for chat in range(100_001, 100_001 + chats):
            try:
                await bot.send_message(
                    chat, NAIVE_TEXT, parse_mode="HTML", allow_paid_broadcast=paid or None
                )
                sent += 1
            except RetryAfter:
                too_many += 1
            except TelegramError:
                pass
        took = time.perf_counter() - start
    return chats / took, sent, too_many


async def first_alert_latency(base_url: str, runs: int = 5) -> list[float]:
    """Seconds from Publisher.announce() to the first alert's answer, idle loop."""
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(
            Path(tmp), telegram_token=TOKEN, telegram_api_url=base_url, telegram_rate=25,
            smtp_url="smtp://127.0.0.1:1",
        )  # fmt: skip
        async with make_bot(settings) as bot:
            clocked = Clocked(BotTransport(bot))
            async with delivering(settings, clocked, FilesMail(Path(tmp)), 25) as (
                store,
                publisher,
                _,
            ):
                for chat in range(1, 51):
                    await store.subscribers.upsert(Channel.TELEGRAM, str(chat))
                for n in range(runs):
                    await asyncio.sleep(1.5)  # idle, as between posts
                    before = len(clocked.times)
                    start = time.perf_counter()
                    await publisher.announce(make_post(n + 1, breaking=True), post_id=n + 1)
                    while len(clocked.times) == before:  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
                    out.append(clocked.times[before] - start)
                    await drained(store)
    return out


async def email_fan_out(port: int, count: int, pool: int) -> float:
    """Digest-sized broadcast to `count` addresses through Herald's SMTP pool: msg/s."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"smtp://127.0.0.1:{port}?pool={pool}"
        settings = settings_for(Path(tmp), smtp_url=url)
        async with SmtpPool(parse_smtp_url(url)) as smtp:
            clocked = Clocked(smtp)
            async with delivering(settings, FilesTelegram(Path(tmp)), clocked, 25) as (
                store,
                publisher,
                _,
            ):
                for n in range(count):
                    await store.subscribers.upsert(Channel.EMAIL, f"reader{n}@example.org")
                start = time.perf_counter()
                await publisher.broadcast(NAIVE_TEXT, admin_id=1)
                await drained(store)
                took = time.perf_counter() - start
    assert len(clocked.times) == count + 0, (len(clocked.times), clocked.errors)
    return count / took


async def naive_email(port: int, count: int, settings: Settings) -> float:
    """The baseline: the same personalised emails, one SMTP connection per message."""
    renderer = Renderer(load_site(settings), public_url=settings.public_base)
    message = renderer.broadcast_email(NAIVE_TEXT)
    tokens = Tokens("bench")
    start = time.perf_counter()
    for n in range(count):
        mime = personalize(
            message,
            to=f"reader{n}@example.org",
            mail_from=settings.mail_from,
            unsubscribe_url=f"{settings.public_base}/unsubscribe/{tokens.make(UNSUB, n)}",
            preferences_url=f"{settings.public_base}/preferences/{tokens.make(PREFS, n)}",
            now=datetime.now(UTC),
        )
        await aiosmtplib.send(mime, hostname="127.0.0.1", port=port, start_tls=False)
    return count / (time.perf_counter() - start)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    print("== Telegram, free limit: HERALD_TELEGRAM_RATE=30, fake enforces 30/s and 1/s/chat")
    with fake_bot_api(limits=True) as url:
        rate, too_many, took = await telegram_fan_out(url, args.free_chats, 30)
        print(f"herald   {rate:7.1f} msg/s sustained, {too_many} x 429, {args.free_chats} chats "
              f"in {took:.1f}s")  # fmt: skip
        naive, ok, naive_429 = await naive_loop(url, args.free_chats, paid=False)
        print(f"naive    {naive:7.1f} calls/s, only {ok} of {args.free_chats} accepted, "
              f"{naive_429} x 429 (plain sendMessage loop)")  # fmt: skip
    print(f"== Telegram, paid mode: {args.paid_chats} chats")
    with fake_bot_api(limits=True) as url:
        rate, too_many, took = await telegram_fan_out(url, args.paid_chats, 1000)
        print(f"herald   {rate:7.1f} msg/s at HERALD_TELEGRAM_RATE=1000 (limits on), "
              f"{too_many} x 429, {took:.1f}s incl. fan-out planning")  # fmt: skip
    with fake_bot_api(limits=False) as url:
        rate, too_many, took = await telegram_fan_out(url, args.paid_chats, 5000)
        print(f"herald   {rate:7.1f} msg/s at HERALD_TELEGRAM_RATE=5000 (limits off: own ceiling)"
              f", {took:.1f}s")  # fmt: skip
        print(f"peak RSS {rss_mb():7.1f} MB (this process: store, PTB, delivery)")
        naive, _, _ = await naive_loop(url, args.paid_chats, paid=True)
        print(f"naive    {naive:7.1f} msg/s (plain sendMessage loop, PTB's default httpx)")
    print("== publish → first alert (idle loop, 50 subscribers)")
    with fake_bot_api(limits=True) as url:
        lat = await first_alert_latency(url)
        median_ms, max_ms = statistics.median(lat) * 1000, max(lat) * 1000
        print(f"herald   median {median_ms:.0f} ms, max {max_ms:.0f} ms over {len(lat)} posts")
    print(f"== email: {args.emails} addresses, aiosmtpd Sink in its own process")
    with smtp_sink() as port:
        pooled = await email_fan_out(port, args.emails, args.pool)
        print(f"herald   {pooled:7.1f} msg/s (pool of {args.pool} connections, personalised MIME)")
        with tempfile.TemporaryDirectory() as tmp:
            naive = await naive_email(port, args.emails, settings_for(Path(tmp)))
        print(f"naive    {naive:7.1f} msg/s (one connection per message)  → {pooled / naive:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--free-chats", type=int, default=300)
    parser.add_argument("--paid-chats", type=int, default=4000)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
