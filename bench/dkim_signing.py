"""DKIM figures: per-recipient signing cost, and email fan-out with signing on vs off.

(Not bench/dkim.py: a script's folder comes first on sys.path, and that name would hide
dkimpy's `dkim` package.)

    .venv/bin/python bench/dkim_signing.py [--emails 1000] [--pool 8] [--rounds 200]

1. per recipient: stamping one recipient's bytes on the fan-out path (BulkMail.render)
   beside signing them (Signer.sign, dkimpy), for an alert and a 50-post digest, with a
   2048-bit key (what to generate) and a 1024-bit one (the smallest receivers accept).
2. fan-out: a broadcast to `--emails` addresses through the real delivery (open_delivery:
   SQLite outbox, claims, the aiosmtplib pool) to an aiosmtpd Sink in its own process,
   HERALD_DKIM_KEY_FILE unset and then set, in the same run; beside each, the event
   loop's worst stall while it ran (signing runs in a thread so the loop keeps serving).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.delivery import smtp_sink  # noqa: E402
from bot.delivery.bulkmail import BulkMail  # noqa: E402
from bot.delivery.dkim import Signer, load_key  # noqa: E402
from bot.delivery.loop import DeliveryConfig  # noqa: E402
from bot.delivery.setup import open_delivery  # noqa: E402
from bot.models import Channel, EmailMessage, Kind  # noqa: E402
from bot.outbox.publish import Publisher  # noqa: E402
from bot.render.renderer import Renderer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources.jekyll.site import load_site  # noqa: E402
from bot.store import Store, open_store  # noqa: E402
from tests.support.delivery import make_post  # noqa: E402

MAIL_FROM = "The Daily Herald <news@news.example.org>"
LINKS = {
    "unsubscribe_url": "https://news.example.org/unsubscribe/MTIz.abcdefghijklmnop",
    "preferences_url": "https://news.example.org/preferences/MTIz.qrstuvwxyzabcdef",
}


def make_key(folder: Path, bits: int) -> Path:
    path = folder / f"dkim-{bits}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(path), str(bits)], check=True, capture_output=True
    )
    return path


def settings_for(tmp: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "site_dir": ROOT / "examples" / "site",
        "database_url": f"sqlite:///{tmp / 'herald.db'}",
        "outbox_dir": tmp / "outbox",
        "secret_key": "bench",
        "site_url": "https://news.example.org",
        "mail_from": MAIL_FROM,
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


def per_call_us(fn: Callable[[int], object], rounds: int) -> float:
    """Median of five batches, microseconds per call."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for n in range(rounds):
            fn(n)
        batches.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(batches)


def stamp_one(bulk: BulkMail, n: int) -> bytes:
    return bulk.render(to=f"reader{n}@example.org", **LINKS)


def sign_one(signer: Signer, data: bytes, n: int) -> bytes:
    return signer.sign(data)


def per_recipient(messages: dict[str, EmailMessage], keys: dict[int, Path], rounds: int) -> None:
    for name, message in messages.items():
        bulk = BulkMail(message, mail_from=MAIL_FROM, now=datetime.now(UTC), kind=Kind.BREAKING)
        sample = bulk.render(to="reader0@example.org", **LINKS)
        stamp = per_call_us(partial(stamp_one, bulk), rounds)
        line = f"{name:7} {len(sample) / 1024:5.0f} KB: stamp {stamp:7.0f} µs"
        for bits, path in keys.items():
            signer = Signer(load_key(path, selector="herald", mail_from=MAIL_FROM))
            sign = per_call_us(partial(sign_one, signer, sample), max(rounds // 4, 10))
            line += f" | sign RSA-{bits} {sign / 1000:6.2f} ms"
        print(line)


async def drained(store: Store) -> None:
    while True:
        totals = await store.outbox.totals()
        if totals["queued"] + totals["sending"] == 0:
            return
        await asyncio.sleep(0.05)


async def loop_stalls(stop: asyncio.Event, out: list[float]) -> None:
    """How late a 10 ms sleep wakes up, sample after sample, until `stop`."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append(time.perf_counter() - start - 0.01)


async def fan_out(port: int, count: int, pool: int, key: Path | None) -> tuple[float, float]:
    """A broadcast to `count` addresses through open_delivery: (msg/s, worst loop stall ms)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(
            Path(tmp), smtp_url=f"smtp://127.0.0.1:{port}?pool={pool}", dkim_key_file=key
        )
        config = DeliveryConfig(mail_workers=2 * pool, telegram_workers=8)
        async with (
            open_store(settings.database_path) as store,
            open_delivery(store, settings, config=config) as delivery,
        ):
            publisher = Publisher(
                store,
                Renderer(load_site(settings), public_url=settings.public_base),
                stand_ins=settings.stand_in_channels,
                channel=None,
                wake=delivery.notify,
            )
            for n in range(count):
                await store.subscribers.upsert(Channel.EMAIL, f"reader{n}@example.org")
            stop, stalls = asyncio.Event(), []
            running = asyncio.create_task(delivery.run(stop))
            ticker = asyncio.create_task(loop_stalls(stop, stalls))
            start = time.perf_counter()
            await publisher.broadcast("<b>Broadcast</b>: hello readers", admin_id=1)
            await drained(store)
            took = time.perf_counter() - start
            stop.set()
            await asyncio.gather(running, ticker)
            totals = await store.outbox.totals()
    assert totals["sent"] == count + 1, totals  # the readers and the Telegram outbox stand-in
    return count / took, max(stalls) * 1000


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as keys_dir:
        keys = {bits: make_key(Path(keys_dir), bits) for bits in (2048, 1024)}
        renderer = Renderer(load_site(settings_for(Path(keys_dir))), public_url="https://x.org")
        posts = [make_post(n + 1) for n in range(50)]
        messages = {
            "alert": renderer.post_email(make_post(1, breaking=True), Kind.BREAKING),
            "digest": renderer.digest_email(posts, date(2026, 1, 1)),
        }
        print("== per recipient: fan-out bytes stamped, then signed (median of 5 batches)")
        per_recipient(messages, keys, args.rounds)
        print(f"== fan-out: broadcast to {args.emails} addresses, pool of {args.pool}, Sink")
        with smtp_sink() as port:
            off, off_stall = await fan_out(port, args.emails, args.pool, None)
            print(f"unsigned {off:7.1f} msg/s, worst loop stall {off_stall:5.1f} ms")
            on, on_stall = await fan_out(port, args.emails, args.pool, keys[2048])
            print(f"signed   {on:7.1f} msg/s, worst loop stall {on_stall:5.1f} ms (RSA-2048)"
                  f"  → {off / on:.1f}x slower")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
