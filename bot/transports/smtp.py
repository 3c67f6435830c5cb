"""Email over SMTP: a small pool of long-lived aiosmtplib connections.

One SMTP connection carries one mail transaction at a time, so throughput comes from
several connections used side by side, each reused for many messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from bot.errors import ConfigError, PermanentError, TransientError
from bot.models import OutgoingMail

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 4
# Errors carrying a server answer: the transaction was reset and the connection is usable.
_ANSWERED = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect, from HERALD_SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps://: TLS from the first byte
    start_tls: bool | None = None  # None: upgrade when the server offers it
    validate_certs: bool = True
    pool_size: int = DEFAULT_POOL_SIZE
    timeout_s: float = 30.0

    def __repr__(self) -> str:
        # The password never reaches a log line.
        return f"SmtpConfig({self.host}:{self.port}, tls={self.use_tls}, starttls={self.start_tls})"


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"HERALD_SMTP_URL: {name}={value!r} must be true or false")


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:587?starttls=true` or `smtps://user:pass@host:465` → SmtpConfig.

    Query options: `starttls`, `verify` (certificates), `pool` (connections), `timeout`.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError(
            "HERALD_SMTP_URL must look like smtp://user:pass@host:587?starttls=true "
            "or smtps://user:pass@host:465"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "smtps"
    start_tls = _flag("starttls", query["starttls"]) if "starttls" in query else None
    if use_tls and start_tls:
        raise ConfigError("HERALD_SMTP_URL: smtps:// is TLS already; drop starttls=true")
    try:
        port = parts.port or (465 if use_tls else 587 if start_tls else 25)
        pool = int(query.get("pool", DEFAULT_POOL_SIZE))
        timeout_s = float(query.get("timeout", 30))
    except ValueError as exc:
        raise ConfigError(f"HERALD_SMTP_URL: {exc}") from exc
    if not 1 <= pool <= 64:
        raise ConfigError("HERALD_SMTP_URL: pool must be between 1 and 64 connections")
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=False if use_tls else start_tls,
        validate_certs=_flag("verify", query.get("verify", "true")),
        pool_size=pool,
        timeout_s=timeout_s,
    )


def translate(exc: Exception) -> TransientError | PermanentError:
    """aiosmtplib's errors as ours: 4xx and connection trouble retry; 5xx for the address don't."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        code = exc.recipients[0].code if exc.recipients else 450
        text = exc.recipients[0].message if exc.recipients else str(exc)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, exc.message
    else:
        return TransientError(f"SMTP connection: {type(exc).__name__}: {exc}")
    message = f"SMTP {code} {text}".strip()
    if 500 <= code < 600 and not isinstance(
        exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPAuthenticationError
    ):
        return PermanentError(message, deactivate=True)
    # 4xx, and our own sender or login refused: not the recipient's fault; try later.
    return TransientError(message)


class SmtpPool:
    """`send(message)` over up to `pool_size` reused connections (a MailTransport)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(config.pool_size):
            self._idle.put_nowait(None)  # a slot; connected on first use
        self.connections_opened = 0

    async def __aenter__(self) -> SmtpPool:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            use_tls=c.use_tls,
            start_tls=c.start_tls,
            validate_certs=c.validate_certs,
            timeout=c.timeout_s,
        )
        await client.connect()
        self.connections_opened += 1
        return client

    async def send(self, mail: OutgoingMail) -> None:
        """Send one complete email; TransientError or PermanentError if it was not accepted."""
        await self._transaction(
            lambda client: client.sendmail(mail.mail_from, [mail.to], mail.data)
        )

    async def _transaction(self, mail: Callable[[aiosmtplib.SMTP], Awaitable[object]]) -> None:
        client = await self._idle.get()
        try:
            reused = client is not None and client.is_connected
            if client is None or not reused:
                client = await self._connect()
            try:
                await mail(client)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed a connection that sat idle: one try on a fresh one.
                client = await self._connect()
                await mail(client)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if not isinstance(exc, _ANSWERED):
                # No clean answer: the connection is in an unknown state; open a new one.
                await _drop(client)
                client = None
            raise translate(exc) from exc
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        """QUIT every idle connection."""
        while not self._idle.empty():
            await _drop(self._idle.get_nowait())


async def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
