"""A delivery-only process for the crash test: `python -m tests.crash_child [--until-drained]`.

Reads HERALD_* from the environment like `herald run`, delivers the outbox, and (with
--until-drained) exits 0 once nothing is queued or sending. SIGTERM stops it gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bot.delivery import open_delivery
from bot.settings import load_settings
from bot.store import open_store


async def main(until_drained: bool) -> int:
    settings = load_settings()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        open_store(settings.database_path) as store,
        open_delivery(store, settings) as delivery,
    ):
        task = asyncio.create_task(delivery.run(stop))
        print("ready", flush=True)
        while until_drained and not stop.is_set():
            totals = await store.outbox.totals()
            if totals["queued"] == 0 and totals["sending"] == 0:
                stop.set()
            await asyncio.sleep(0.1)
        await task
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(asyncio.run(main("--until-drained" in sys.argv)))
