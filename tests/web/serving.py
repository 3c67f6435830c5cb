"""The web app served by the real embedded uvicorn on an ephemeral port, for socket tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.metrics import Metrics
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Tokens
from bot.web.routes import create_app, serve
from tests.support.web import SECRET, RecordingPublisher, web_settings


@dataclass
class Served:
    """A running web endpoint: its base URL and port, and what sits behind it."""

    base_url: str
    port: int
    settings: Settings
    store: Store
    tokens: Tokens
    publisher: RecordingPublisher


@contextlib.asynccontextmanager
async def served(
    tmp_path: Path,
    *,
    dual_stack: bool = False,
    serve_options: dict[str, Any] | None = None,
    **settings_extra: object,
) -> AsyncIterator[Served]:
    """Serve the app (default limiter) on 127.0.0.1:0, or [::]:0 for IPv6 and IPv4 alike."""
    if dual_stack:
        listener = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    settings = web_settings(tmp_path, public_url=base, **settings_extra)
    stop, started = asyncio.Event(), asyncio.Event()
    async with open_store(settings.database_path) as store:
        tokens, publisher = Tokens(SECRET), RecordingPublisher()
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=tokens,
            publisher=publisher,
            metrics=Metrics(),
        )
        task = asyncio.create_task(
            serve(app, settings, stop, sock=listener, started=started, **(serve_options or {}))
        )
        try:
            await asyncio.wait_for(started.wait(), 20)
            yield Served(base, port, settings, store, tokens, publisher)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
