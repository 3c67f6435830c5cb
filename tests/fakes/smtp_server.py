"""A real aiosmtpd server on 127.0.0.1 (ephemeral port) that records mail and injects faults."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import defaultdict
from collections.abc import Callable
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class Recorder:
    """aiosmtpd handler: stores every accepted message; `faults[address]` answers RCPT first."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.data_faults: list[str] = []
        self.delay_s = 0.0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        queue = self.faults.get(address)
        if queue:
            return queue.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_faults:
            return self.data_faults.pop(0)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted"

    def to(self) -> list[str]:
        """The To address of every accepted message, in order."""
        return [str(m["To"]) for m in self.messages]


class SmtpServer:
    """`async with SmtpServer() as s:` → `s.url` for HERALD_SMTP_URL, `s.handler` records."""

    def __init__(self) -> None:
        self.handler = Recorder()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    def _factory(self) -> Callable[[], SMTP]:
        def make() -> SMTP:
            self.connections += 1
            return SMTP(self.handler, hostname="fake.smtp.local")

        return make

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory(), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers of open client connections end when the clients QUIT or close.
        await asyncio.wait_for(self._server.wait_closed(), 5)
