"""The embedded uvicorn over real sockets: forwarded-for trust, connection and time limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.errors import ConfigError
from tests.support.web import web_settings
from tests.web.serving import served


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
