"""A real SMTP server (aiosmtpd) on 127.0.0.1, port 0, in the test's own event loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class SmtpSink:
    """Accepts every message and keeps it parsed in `.messages`; `.url` for HERALD_SMTP_URL."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self._arrived:
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            self._arrived.notify_all()
        return "250 OK"

    async def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout_s: float = 10.0
    ) -> EmailMessage:
        """The first received message matching `predicate`, waiting for it to arrive."""

        def find() -> EmailMessage | None:
            return next((m for m in self.messages if predicate(m)), None)

        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found

    def to(self, address: str) -> list[EmailMessage]:
        """Every received message addressed to `address`."""
        return [m for m in self.messages if address in str(m.get("To", ""))]

    async def __aenter__(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", loop=loop, enable_SMTPUTF8=True),
            "127.0.0.1",
            0,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        *rest: Any,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
