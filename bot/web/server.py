"""uvicorn embedded in Herald's event loop: bound to HERALD_WEB_LISTEN, stopped by an event.

Also what keeps slow or many clients from exhausting the process: a deadline for each
request head and body, a cap on open connections below the open-file limit (the oldest
waiting connection makes room for a new one), and one log line per interval, not a
traceback per attempt, when `accept()` runs out of file descriptors all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.errors import ConfigError
from bot.settings import Settings

try:
    import resource
except ImportError:  # not on Windows: no open-file limit to stay under
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    """How many connections the web endpoint holds and how long it waits for a client."""

    max_connections: int = 1000  # and never more than half the open-file limit
    header_timeout_s: float = 10.0  # from connecting (or the previous answer) to a full head
    body_timeout_s: float = 10.0  # from the head to the whole body
    keep_alive_s: int = 5  # an idle connection between requests
    backlog: int = 256  # connections the kernel queues before we accept them
    accept_error_interval_s: float = 60.0


def open_file_limit() -> int | None:
    """The soft RLIMIT_NOFILE (`ulimit -n`, systemd's LimitNOFILE), None when unlimited."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(limits: ServerLimits) -> int:
    """`max_connections`, lowered to half the open-file limit so files stay for the rest."""
    files = open_file_limit()
    if files is None:
        return limits.max_connections
    return max(1, min(limits.max_connections, files // 2))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with request deadlines and a connection cap that evicts.

    uvicorn has no deadline for a request head or body: a client that sends half a request
    (or nothing) holds its connection, and a file descriptor, forever. A full server makes
    room by closing the connection that has waited longest for its client; only when every
    connection is busy with a request is the newcomer turned away with a 503.
    """

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owed: Literal["head", "body"] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None  # loop time; None while a request runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()
        if len(self.connections) > connection_cap(self.limits):
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_deadline(None)
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Keep the deadline for what the client owes now: a request head, a body, or nothing."""
        if self.transport.is_closing():
            self._set_deadline(None)
        elif self.cycle is None or self.cycle.response_complete:
            self._set_deadline("head")
        elif self.cycle.more_body and not self.cycle.disconnected:
            self._set_deadline("body")
        else:  # the request is in; the app's time is not the client's fault
            self._set_deadline(None)

    def _set_deadline(self, owed: Literal["head", "body"] | None) -> None:
        if owed == self._owed:
            return  # a deadline runs from when the debt began, not from the last byte
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._owed = owed
        self.waiting_since = self.loop.time() if owed == "head" else None
        if owed is not None:
            timeout_s = (
                self.limits.header_timeout_s if owed == "head" else self.limits.body_timeout_s
            )
            self._deadline = self.loop.call_later(timeout_s, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        self.transport.close()

    def _make_room(self) -> None:
        # Connections closed a moment ago stay in the set until their connection_lost.
        others = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11Protocol) and c is not self and not c.transport.is_closing()
        ]
        if len(others) < connection_cap(self.limits):
            return
        waiting = [c for c in others if c.waiting_since is not None]
        if waiting:
            min(waiting, key=lambda c: c.waiting_since or 0.0).transport.close()
        else:
            self.transport.write(_BUSY)
            self.transport.close()


def _protocol_with(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, bound to `limits`."""
    return type("HeraldH11Protocol", (GuardedH11Protocol,), {"limits": limits})


class AcceptErrorLog:
    """A loop exception handler: a failing `accept()` is one warning per interval.

    asyncio reports every failed `accept()` (out of file descriptors, say) with a
    traceback and retries a second later, for as long as the shortage lasts; everything
    else goes on to the handler that was there before.
    """

    def __init__(
        self,
        previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.previous = previous
        self.interval_s = interval_s
        self.clock = clock
        self._last_logged: float | None = None
        self._unlogged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_EXHAUSTED:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self.clock()
        if self._last_logged is not None and now - self._last_logged < self.interval_s:
            self._unlogged += 1
            return
        exc = context.get("exception")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        files = open_file_limit()
        if files is not None:
            reason += f"; open-file limit {files}"
        where = _address(context.get("socket"))
        if self._last_logged is None:
            log.warning(
                "cannot accept connections on %s (%s); asyncio retries every second, "
                "and this is logged at most every %gs",
                where,
                reason,
                self.interval_s,
            )
        else:
            log.warning(
                "cannot accept connections on %s (%s): %d failures since the report %.0fs ago",
                where,
                reason,
                self._unlogged + 1,
                now - self._last_logged,
            )
        self._last_logged, self._unlogged = now, 0


def _address(sock: object) -> str:
    """`host:port` of a listening socket, for a log line; `?` when there is none."""
    try:
        host, port, *_ = sock.getsockname()  # type: ignore[attr-defined]
    except (AttributeError, OSError, TypeError, ValueError):
        return "?"
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


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
    limits: ServerLimits | None = None,
) -> None:
    """Serve `app` on `sock` (else HERALD_WEB_LISTEN) until `stop_event` is set."""
    limits = limits or ServerLimits()
    listener = sock if sock is not None else bind(settings)
    proxies = forwarded_allow_ips(settings)
    config = uvicorn.Config(
        app,
        http=_protocol_with(limits),
        timeout_keep_alive=limits.keep_alive_s,
        backlog=limits.backlog,
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

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    accept_errors = AcceptErrorLog(previous, limits.accept_error_interval_s)
    loop.set_exception_handler(accept_errors)
    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[listener])
    finally:
        if loop.get_exception_handler() is accept_errors:
            loop.set_exception_handler(previous)
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        if sock is None:
            listener.close()
