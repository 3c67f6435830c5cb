"""The outbox folder transport: every file a reader lists there is a whole message."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from bot.models import TelegramMessage
from bot.transports.files import FilesTelegram


async def test_a_listing_of_the_folder_never_shows_a_message_being_written(tmp_path: Path) -> None:
    """A script that lists outbox/telegram while Herald writes sees only whole .html files."""
    folder = tmp_path / "telegram"
    folder.mkdir()
    text = "<b>Breaking</b> " + "x" * 200_000
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for p in folder.iterdir():
                if not p.name.startswith("."):
                    seen.append(p.name)
                    with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                        assert p.read_text(encoding="utf-8") == text

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        transport = FilesTelegram(folder)
        for _ in range(30):
            await transport.send("42", TelegramMessage(method="sendMessage", text=text))
    finally:
        done.set()
        await asyncio.to_thread(watcher.join)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 30 and all(n.endswith("-42-sendMessage.html") for n in names)
    assert all(n.endswith(".html") for n in seen)
