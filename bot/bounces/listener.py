"""The bounce listener: an SMTP server in Herald's event loop for HERALD_BOUNCE_DOMAIN.

Delivery reports and complaints come back to the VERP return path `bounce+<token>@domain`;
the listener takes mail for that domain only (it never relays), reads each with
`reports.read_report`, finds the subscriber it names and writes the outcome to the store.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.addresses import normalize_email
from bot.bounces.reports import Report, read_report
from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.models import Channel, Subscriber
from bot.store import Store
from bot.tokens import Purpose, TokenError, Tokens, return_path_token

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024  # a report with the original attached fits well within
MAX_CONNECTIONS = 32
MAX_RECIPIENTS = 10  # one report goes to one return path; a few spare
IDLE_TIMEOUT_S = 60.0
SOFT_LIMIT = 3  # soft bounces in a row before an address counts as bounced


@dataclass(frozen=True)
class Named:
    """The subscriber a report names, how it was found, and when the bounced email left."""

    subscriber: Subscriber
    found_by: str
    sent_at: datetime | None


class BounceHandler:
    """aiosmtpd's handler: RCPT for the bounce domain only, DATA read and recorded."""

    def __init__(
        self, store: Store, tokens: Tokens, domain: str, *, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.domain = domain.lower()
        self.metrics = metrics

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept a recipient at the bounce domain; refuse every other (no relaying)."""
        _, at, host = address.rpartition("@")
        if not at or host.lower() != self.domain:
            return f"550 5.7.1 Relaying denied: this server takes mail for {self.domain} only"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Read the mail and record what it says; 250 even when it is dropped."""
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        sender = str(envelope.mail_from or "<>")
        try:
            report = read_report(data)
        except Exception:  # a mail no parser can read is dropped, not retried for days
            log.warning("bounces: dropped unreadable mail from %s", sender, exc_info=True)
            self._dropped()
            return "250 OK"
        try:
            await self.record(report, envelope.rcpt_tos, sender=sender, now=datetime.now(UTC))
        except Exception:
            # The sender keeps the report and tries again: nothing is lost to a locked database.
            log.exception("bounces: could not record %s from %s", report.reason, sender)
            return "451 4.3.0 Temporary failure; try again later"
        return "250 OK"

    async def record(
        self, report: Report, rcpt_tos: Sequence[str], *, sender: str, now: datetime
    ) -> None:
        """Write what `report` says about the subscriber it names, or log that it is dropped."""
        if report.kind is None:
            log.info("bounces: dropped mail from %s: %s", sender, report.reason)
            self._dropped()
            return
        named = await self.named(report, rcpt_tos, now=now)
        if named is None:
            log.info("bounces: dropped %s from %s: it names no subscriber", report.reason, sender)
            self._dropped()
            return
        sub = named.subscriber
        moved = await self.store.subscribers.record_report(
            sub.id, report.kind, sent_at=named.sent_at, now=now, soft_limit=SOFT_LIMIT
        )
        if self.metrics is not None:
            self.metrics.mail_report(report.kind)
        if moved is None:
            log.info("bounces: %s for %s (by %s)", report.reason, sub.address, named.found_by)
            return
        cancelled = await self.store.outbox.cancel_subscriber(sub.id, moved.value)
        log.info(
            "bounces: %s for %s (by %s): %s; %d queued messages cancelled",
            report.reason,
            sub.address,
            named.found_by,
            moved.value,
            cancelled,
        )

    async def named(
        self, report: Report, rcpt_tos: Sequence[str], *, now: datetime
    ) -> Named | None:
        """The email subscriber a report is about: by a valid return-path token, else an
        unsubscribe token in the original, else an address it names that is a subscriber's.

        A forged or stale token is ignored (the addresses may still name someone).
        """
        for address in (*rcpt_tos, *report.return_paths):
            token = return_path_token(address, self.domain)
            if token is None:
                continue
            try:
                sub_id, signed_at = self.tokens.read_signed(Purpose.BOUNCE, token)
            except TokenError as exc:
                log.info("bounces: ignoring the return path %s: %s", address, exc)
                continue
            if (sub := await self._email_subscriber(sub_id)) is not None:
                return Named(sub, "return path", signed_at)
        sent_at = min(report.sent_at, now) if report.sent_at is not None else None
        for token in report.tokens:
            try:
                sub_id = self.tokens.read(Purpose.UNSUBSCRIBE, token)
            except TokenError:
                continue
            if (sub := await self._email_subscriber(sub_id)) is not None:
                return Named(sub, "unsubscribe link", sent_at)
        for address in report.recipients:
            try:
                stored = normalize_email(address)
            except ValueError:
                continue
            if (sub := await self.store.subscribers.get(Channel.EMAIL, stored)) is not None:
                return Named(sub, "recipient address", sent_at)
        return None

    async def _email_subscriber(self, subscriber_id: int) -> Subscriber | None:
        sub = await self.store.subscribers.get_by_id(subscriber_id)
        return sub if sub is not None and sub.channel is Channel.EMAIL else None

    def _dropped(self) -> None:
        if self.metrics is not None:
            self.metrics.mail_report_dropped()


class _Busy(asyncio.Protocol):
    """Every connection over the limit: told to come back later, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(b"421 4.7.0 Too many connections; try again later\r\n")
        transport.close()


class _Connection(SMTP):
    """aiosmtpd's SMTP session, counted while it is open."""

    def __init__(self, listener: BounceListener, handler: BounceHandler, **options: object):
        super().__init__(handler, **options)  # type: ignore[arg-type]
        self._listener = listener

    def connection_lost(self, error: Exception | None) -> None:
        self._listener._open.discard(self)
        super().connection_lost(error)


class BounceListener:
    """Serves `handler` on `host:port` (port 0: any free one) until stopped."""

    def __init__(
        self,
        handler: BounceHandler,
        host: str,
        port: int,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.max_message_bytes = max_message_bytes
        self.idle_timeout_s = idle_timeout_s
        self._open: set[_Connection] = set()

    @property
    def sessions(self) -> int:
        """SMTP sessions open now."""
        return len(self._open)

    def _protocol(self) -> asyncio.BaseProtocol:
        if len(self._open) >= self.max_connections:
            return _Busy()
        connection = _Connection(
            self,
            self.handler,
            data_size_limit=self.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.handler.domain,
            timeout=self.idle_timeout_s,
            loop=asyncio.get_running_loop(),
        )
        self._open.add(connection)
        return connection

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        """Listen until `stop`; then close the listening socket and every open session."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = await loop.create_server(self._protocol, self.host, self.port, family=family)
        except OSError as exc:
            raise ConfigError(
                f"HERALD_BOUNCE_LISTEN={self.host}:{self.port}: cannot listen there"
                f" ({exc.strerror}); choose a free host:port"
            ) from exc
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("bounces: taking mail for %s on %s:%d", self.handler.domain, self.host, self.port)
        if started is not None:
            started.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for connection in list(self._open):
                if connection.transport is not None:
                    connection.transport.close()
            await server.wait_closed()
