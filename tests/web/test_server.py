"""The embedded uvicorn over real sockets: forwarded-for trust, connection and time limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from pathlib import Path

import httpx
import pytest

from bot.errors import ConfigError
from bot.web.server import AcceptErrorLog, ServerLimits
from tests.support.acceptance import Herald
from tests.support.web import web_settings
from tests.web.serving import served

EOF_DEADLINE_S = 40.0  # far above the 10 s default deadlines: two busy cores

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def form(i: int) -> dict[str, str]:
    """A valid sign-up form for a distinct address."""
    return {"email": f"reader{i}@example.com", "breaking": "on", "daily": "on"}


async def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_ip_limit(
    tmp_path: Path,
) -> None:
    """With no trusted proxy, 30 spoofed X-Forwarded-For addresses still share one limit of 5."""
    async with served(tmp_path) as web, httpx.AsyncClient(base_url=web.base_url) as client:
        codes = []
        for i in range(30):
            spoofed = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            response = await client.post("/subscribe", data=form(i), headers=spoofed)
            codes.append(response.status_code)
    assert codes == [200] * 5 + [429] * 25
    assert len(web.publisher.confirmations) == 5


@pytest.mark.parametrize("dual_stack", [False, True])
async def test_clients_behind_a_trusted_proxy_get_their_own_limits(
    tmp_path: Path, dual_stack: bool
) -> None:
    """From a configured proxy network, the right-most untrusted X-Forwarded-For is the key."""
    # The "proxy" connects from 127.0.0.5, inside the trusted 127.0.0.4/30 (as is .6, a
    # second proxy in the chain); what clients wrote on the left is not believed. On a
    # dual-stack listener the proxy's address arrives as ::ffff:127.0.0.5.
    proxies = "192.0.2.1, 127.0.0.4/30"
    async with served(tmp_path, dual_stack=dual_stack, trusted_proxies=proxies) as web:
        proxy = httpx.AsyncHTTPTransport(local_address="127.0.0.5")
        async with httpx.AsyncClient(transport=proxy, base_url=web.base_url) as client:
            codes: dict[int, list[int]] = {}
            for client_no in range(3):
                for i in range(6):
                    chain = f"10.9.9.{i}, 198.51.100.{client_no + 1}, 127.0.0.6"
                    response = await client.post(
                        "/subscribe",
                        data=form(client_no * 10 + i),
                        headers={"X-Forwarded-For": chain},
                    )
                    codes.setdefault(client_no, []).append(response.status_code)
    assert codes == {n: [200] * 5 + [429] for n in range(3)}


async def test_ipv4_clients_of_a_dual_stack_listener_get_their_own_limits(
    tmp_path: Path,
) -> None:
    """IPv4 peers seen as ::ffff:a.b.c.d are limited per address, not as one shared /64."""
    codes: dict[str, list[int]] = {}
    async with served(tmp_path, dual_stack=True) as web:
        for n, local in enumerate(("127.0.0.2", "127.0.0.3")):
            transport = httpx.AsyncHTTPTransport(local_address=local)
            async with httpx.AsyncClient(transport=transport, base_url=web.base_url) as client:
                for i in range(6):
                    response = await client.post("/subscribe", data=form(n * 10 + i))
                    codes.setdefault(local, []).append(response.status_code)
    assert codes == {local: [200] * 5 + [429] for local in ("127.0.0.2", "127.0.0.3")}


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.example.com", "10.0.0.0/40"])
def test_a_bad_trusted_proxy_is_a_config_error_naming_the_variable(
    tmp_path: Path, value: str
) -> None:
    """HERALD_TRUSTED_PROXIES accepts only IP addresses and networks, and says so."""
    with pytest.raises(ConfigError, match="HERALD_TRUSTED_PROXIES"):
        web_settings(tmp_path, trusted_proxies=value)


async def half_sent(port: int, data: bytes, host: str = "127.0.0.1") -> Conn:
    """A connection that sent `data` (part of a request, or nothing) and then went quiet."""
    reader, writer = await asyncio.open_connection(host, port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def closed_by_server(conn: Conn, deadline_s: float = EOF_DEADLINE_S) -> bytes:
    """What the server sent before closing the connection; fails if it stays open."""
    reader, _ = conn
    try:
        return await asyncio.wait_for(reader.read(), deadline_s)
    except ConnectionResetError:
        return b""


async def hang_up(conns: list[Conn]) -> None:
    """Close the client side of every connection."""
    for _, writer in conns:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_silent_and_half_sent_requests_are_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends nothing, half a request head, or half a body is disconnected."""
    async with served(tmp_path) as web:
        head = b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
        body = head + b"Content-Type: application/x-www-form-urlencoded\r\n"
        body += b"Content-Length: 100\r\n\r\nemail=slow"
        conns = [await half_sent(web.port, data) for data in (b"", head, body)]
        try:
            answers = await asyncio.gather(*(closed_by_server(c) for c in conns))
        finally:
            await hang_up(conns)
        assert answers == [b"", b"", b""]
        async with httpx.AsyncClient(base_url=web.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
    assert web.publisher.confirmations == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_full_server_drops_its_longest_waiting_connections_first(tmp_path: Path) -> None:
    """At the connection cap a new client is served and the oldest half-sent ones are closed."""
    limits = ServerLimits(max_connections=10, header_timeout_s=600)
    async with served(tmp_path, serve_options={"limits": limits}) as web:
        conns = [await half_sent(web.port, b"GET / HTTP/1.1\r\n") for _ in range(30)]
        try:
            oldest = await asyncio.gather(*(closed_by_server(c) for c in conns[:20]))
            assert oldest == [b""] * 20
            async with httpx.AsyncClient(base_url=web.base_url) as client:
                for _ in range(3):
                    assert (await client.get("/healthz")).text == "ok\n"
        finally:
            await hang_up(conns)


async def test_healthz_answers_while_half_sent_requests_fill_the_open_file_limit(
    tmp_path: Path,
) -> None:
    """`herald run` under `ulimit -n 256` answers /healthz with 400 half-sent requests held."""
    herald = Herald(tmp_path)
    async with herald.run() as running:
        assert running.proc is not None
        resource.prlimit(running.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
        # All at once: more arrive together than there are files to accept them with.
        opened = await asyncio.gather(
            *(half_sent(herald.port, b"GET /healthz HTTP/1.1\r\n") for _ in range(400)),
            return_exceptions=True,
        )
        conns = [c for c in opened if not isinstance(c, BaseException)]
        try:
            answered = await healthz_within(herald.public_url, EOF_DEADLINE_S)
        finally:
            await hang_up(conns)
        assert answered, running.log
        assert "Traceback" not in running.log
        assert await running.stop() == 0


async def healthz_within(base_url: str, deadline_s: float) -> bool:
    """True once GET /healthz answers 200; tries again after each failure until the deadline."""
    give_up = time.monotonic() + deadline_s
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        while time.monotonic() < give_up:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return True
    return False


class Clock:
    """A clock the test sets by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_repeated_accept_errors_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing accept() logs one warning per interval, with a count; other errors pass on."""
    passed_on: list[dict[str, object]] = []
    clock = Clock()
    handler = AcceptErrorLog(lambda loop, ctx: passed_on.append(ctx), 60.0, clock)
    loop = asyncio.new_event_loop()
    listening = socket.create_server(("127.0.0.1", 0))
    where = f"127.0.0.1:{listening.getsockname()[1]}"
    exhausted = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(24, "Too many open files"),
        "socket": listening,
    }
    try:
        with caplog.at_level(logging.WARNING, logger="bot.web.server"):
            for _ in range(100):
                handler(loop, exhausted)
                clock.now += 0.5
            clock.now += 30.0
            handler(loop, exhausted)
            handler(loop, {"message": "something else"})
    finally:
        listening.close()
        loop.close()
    lines = [r for r in caplog.records if r.name == "bot.web.server"]
    assert [r.exc_info for r in lines] == [None, None]
    assert f"on {where} (Too many open files" in lines[0].getMessage()
    assert "100 failures since the report 80s ago" in lines[1].getMessage()
    assert passed_on == [{"message": "something else"}]
