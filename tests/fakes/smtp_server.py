"""A real aiosmtpd server on 127.0.0.1 (ephemeral port) that records mail and injects faults.

Faults are per address (`faults[address]`, answered at RCPT once each) or for the whole
server while set: `greeting`, `mail_answer`, `rcpt_answer`, `data_answer` (each an SMTP
answer line), and `hold_data` (DATA is never answered until released).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import subprocess
from collections import defaultdict
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Recorder:
    """aiosmtpd handler: stores every accepted message; `faults[address]` answers RCPT first."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.data_faults: list[str] = []
        self.delay_s = 0.0
        # Server-wide faults, answered to everyone while set.
        self.greeting: str | None = None
        self.mail_answer: str | None = None
        self.rcpt_answer: str | None = None  # `{address}` is filled in
        self.data_answer: str | None = None
        self.hold_data = False  # DATA waits for `released`, never answering before
        self.data_started = asyncio.Event()
        self.released = asyncio.Event()
        self.refused = 0  # server-wide faults answered so far
        self.logins: list[tuple[str, str, str]] = []  # (mechanism, user, password) received

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail_answer is not None:
            self.refused += 1
            return self.mail_answer
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        queue = self.faults.get(address)
        if queue:
            return queue.pop(0)
        if self.rcpt_answer is not None:
            self.refused += 1
            return self.rcpt_answer.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_faults:
            return self.data_faults.pop(0)
        if self.data_answer is not None:
            self.refused += 1
            return self.data_answer
        if self.hold_data:
            self.data_started.set()
            await self.released.wait()
            return "451 4.3.0 gave up"
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

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((mechanism, data.login.decode(), data.password.decode()))
        return AuthResult(success=True)


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP, able to refuse a client at the greeting."""

    def __init__(self, handler: Recorder, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.recorder = handler

    async def _handle_client(self) -> None:
        if self.recorder.greeting is None:
            await super()._handle_client()
            return
        self.recorder.refused += 1
        await self.push(self.recorder.greeting)
        assert self.transport is not None
        self.transport.close()


class SmtpServer:
    """`async with SmtpServer() as s:` → `s.url` for HERALD_SMTP_URL, `s.handler` records.

    `auth=True` offers AUTH on the plain connection (no STARTTLS), as a careless server would;
    with `tls` (a server-side SSLContext) it offers STARTTLS, and AUTH only after it.
    """

    def __init__(self, *, auth: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.handler = Recorder()
        self.connections = 0
        self.auth = auth
        self.tls = tls
        self._server: asyncio.Server | None = None
        self.port = 0

    def _factory(self) -> Callable[[], SMTP]:
        def make() -> SMTP:
            self.connections += 1
            if self.tls is not None:
                return _FaultySMTP(
                    self.handler,
                    hostname="fake.smtp.local",
                    tls_context=self.tls,
                    authenticator=self.handler.authenticate,
                )
            if self.auth:
                return _FaultySMTP(
                    self.handler,
                    hostname="fake.smtp.local",
                    auth_require_tls=False,
                    authenticator=self.handler.authenticate,
                )
            return _FaultySMTP(self.handler, hostname="fake.smtp.local")

        return make

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory(), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @staticmethod
    def self_signed(folder: Path) -> ssl.SSLContext | None:
        """A server context with a throwaway self-signed certificate; None without openssl."""
        if shutil.which("openssl") is None:
            return None
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=fake.smtp.local", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self.handler.released.set()  # a held DATA answers, so its connection can end
        self._server.close()
        # Handlers of open client connections end when the clients QUIT or close.
        await asyncio.wait_for(self._server.wait_closed(), 5)
