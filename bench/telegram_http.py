"""Messages/s through BotTransport: PTB's HTTPXRequest vs our AiohttpRequest.

Runs the fake Bot API in a separate process (rate limits off, no bookkeeping) so the
server does not share the client's event loop, then sends N sendMessage calls to N chats
in paid mode with a fixed number of concurrent workers.

    .venv/bin/python bench/telegram_http.py [--messages 4000] [--concurrency 16 64 128]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import telegram
from telegram.request import BaseRequest, HTTPXRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.models import TelegramMessage  # noqa: E402
from bot.transports.aiohttp_request import AiohttpRequest  # noqa: E402
from bot.transports.telegram import BotTransport  # noqa: E402
from tests.fakes.bot_api import TOKEN  # noqa: E402

MESSAGE = TelegramMessage(
    method="sendMessage",
    text='<b>New post</b>: <a href="https://example.org/p">A title &amp; more</a>',
    button_text="Read",
    button_url="https://example.org/p",
)


def make_request(kind: str, pool: int) -> BaseRequest:
    if kind == "httpx":
        return HTTPXRequest(connection_pool_size=pool, pool_timeout=30.0)
    return AiohttpRequest(connection_pool_size=pool, pool_timeout=30.0)


async def run(base_url: str, kind: str, concurrency: int, messages: int) -> float:
    """Send `messages` messages to as many chats; return messages/s."""
    request = make_request(kind, concurrency)
    async with telegram.Bot(TOKEN, base_url=base_url, request=request) as bot:
        transport = BotTransport(bot, paid=True)
        chats = iter(range(1, messages + 1))

        async def worker() -> None:
            for chat in chats:
                await transport.send(str(chat), MESSAGE)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        return messages / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 128])
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.bot_api", "--no-limits"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        print(f"fake Bot API at {base_url} (separate process), {args.messages} messages each")
        print(f"{'request':<10}{'concurrency':>12}{'msg/s':>10}")
        for kind in ("httpx", "aiohttp"):
            for concurrency in args.concurrency:
                rate = asyncio.run(run(base_url, kind, concurrency, args.messages))
                print(f"{kind:<10}{concurrency:>12}{rate:>10.0f}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
