"""uvicorn embedded in Herald's event loop: bound to HERALD_WEB_LISTEN, stopped by an event."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from bot.errors import ConfigError
from bot.settings import Settings


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop, without signal handlers of its own: `herald run` owns them."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn ≥0.29 swaps SIGINT/SIGTERM handlers here and re-raises them on exit;
        # the app's stop event is our only way to stop.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._started_event is not None and self.started:
            self._started_event.set()


def bind(settings: Settings) -> socket.socket:
    """A listening socket on HERALD_WEB_LISTEN, or ConfigError saying why it cannot be."""
    host, port = settings.listen_host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"HERALD_WEB_LISTEN={settings.web_listen!r}: cannot listen there ({exc.strerror}); "
            "choose a free host:port"
        ) from exc


def forwarded_allow_ips(settings: Settings) -> list[str]:
    """HERALD_TRUSTED_PROXIES for uvicorn, each IPv4 network also in its IPv6-mapped form."""
    allowed = []
    for network in settings.trusted_proxy_networks:
        allowed.append(str(network))
        if network.version == 4:
            # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
            allowed.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
    return allowed


async def serve(
    app: Starlette,
    settings: Settings,
    stop_event: asyncio.Event,
    *,
    sock: socket.socket | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Serve `app` on `sock` (else HERALD_WEB_LISTEN) until `stop_event` is set."""
    listener = sock if sock is not None else bind(settings)
    proxies = forwarded_allow_ips(settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        # X-Forwarded-For (and -Proto) only from HERALD_TRUSTED_PROXIES; uvicorn's default
        # would believe anyone on 127.0.0.1, and so let one client pose as many.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        # Paths carry tokens; keep them out of the logs.
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = EmbeddedServer(config, started)

    async def stop_when_asked() -> None:
        await stop_event.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[listener])
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        if sock is None:
            listener.close()
