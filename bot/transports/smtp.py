"""Email over SMTP: a small pool of long-lived aiosmtplib connections.

One SMTP connection carries one mail transaction at a time, so throughput comes from
several connections used side by side, each reused for many messages.
"""

from __future__ import annotations

import asyncio
import logging
import re
from types import TracebackType

import aiosmtplib

from bot.errors import (
    DeliveryError,
    InsecureAuthError,
    PermanentError,
    RelayError,
    TransientError,
)
from bot.models import OutgoingMail
from bot.settings import SmtpConfig, parse_smtp_url

__all__ = ["SmtpConfig", "SmtpPool", "parse_smtp_url", "translate"]

log = logging.getLogger(__name__)

QUIT_TIMEOUT_S = 2.0  # closing: a server that will not say goodbye is hung up on
# Which command an answer refused, for the error message (subclasses before their bases).
_STAGES = (
    (aiosmtplib.SMTPConnectResponseError, "the connection (greeting)"),
    (aiosmtplib.SMTPHeloError, "EHLO"),
    (aiosmtplib.SMTPAuthenticationError, "AUTH (check the user and password)"),
    (aiosmtplib.SMTPSenderRefused, "MAIL FROM (check HERALD_MAIL_FROM)"),
    (aiosmtplib.SMTPDataError, "the message (DATA)"),
)
# An RFC 3463 enhanced status code at the start of an answer's text: class.subject.detail.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def _refusal(exc: aiosmtplib.SMTPRecipientsRefused) -> tuple[int, str]:
    if exc.recipients:
        return exc.recipients[0].code, exc.recipients[0].message
    return 450, str(exc)


def about_address(code: int, text: str) -> bool:
    """Whether a RCPT refusal is plainly about the address (RFC 3463 classes X.1 addressing
    and X.2 mailbox), rather than a policy or system answer the server may give everyone."""
    enhanced = _ENHANCED.match(text)
    if enhanced:
        return enhanced.group(2) in ("1", "2")
    return code in (450, 550, 551, 552, 553)


def translate(exc: BaseException, *, server: str = "SMTP server") -> DeliveryError:
    """aiosmtplib's errors as ours: a refused recipient is the address's (4xx retry, 5xx
    bounce); anything else (greeting, EHLO, AUTH, MAIL FROM, DATA, connection, time) is the
    server's: RelayError."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        code, text = _refusal(exc)
        message = f"SMTP {code} {text}".strip()
        if 500 <= code < 600:
            return PermanentError(message, deactivate=True)
        return TransientError(message)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        stage = next((name for kind, name in _STAGES if isinstance(exc, kind)), "a command")
        return RelayError(f"{server} refused {stage}: SMTP {exc.code} {exc.message}".strip())
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts subclass it too
        return RelayError(f"{server} did not answer in time ({exc or 'no answer'})")
    return RelayError(f"{server} unreachable or broke off: {type(exc).__name__}: {exc}")


class SmtpPool:
    """`send(message)` over up to `pool_size` reused connections (a MailTransport)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.server = f"SMTP server {config.host}:{config.port}"
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
        # No credentials for aiosmtplib: it would log in over whatever the connection is.
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.use_tls,
            start_tls=c.start_tls,
            validate_certs=c.validate_certs,
            timeout=c.timeout_s,
        )
        await client.connect()
        try:
            if c.username is not None:
                if client.get_transport_info("sslcontext") is None and not c.auth_without_tls:
                    raise InsecureAuthError(
                        f"{self.server} offers no TLS (STARTTLS), so Herald will not send it "
                        "the password: use smtps://…:465 or a server with STARTTLS, or, only "
                        "for a relay on a trusted link, add ?auth_without_tls=true to "
                        "HERALD_SMTP_URL"
                    )
                await client.login(c.username, c.password or "")
        except BaseException:
            client.close()
            raise
        self.connections_opened += 1
        return client

    async def send(self, mail: OutgoingMail) -> None:
        """Send one complete email: RelayError if the server failed; TransientError or
        PermanentError if it refused this recipient."""
        client = await self._idle.get()
        try:
            async with asyncio.timeout(self.config.message_timeout_s):
                reused = client is not None and client.is_connected
                if client is None or not reused:
                    client = await self._connect()
                try:
                    await _sendmail(client, mail)
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
                    # The server closed a connection that sat idle: one try on a fresh one.
                    client.close()
                    client = await self._connect()
                    await _sendmail(client, mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            assert client is not None  # refused at RCPT: connected, transaction reset
            error = await self._blame(client, mail, exc)
            raise error from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if not isinstance(exc, aiosmtplib.SMTPResponseException):
                # No clean answer: the connection is in an unknown state; open a new one.
                _hang_up(client)
                client = None
            raise translate(exc, server=self.server) from exc
        except BaseException:
            # Cut short mid-command (delivery stopping): nobody knows where the dialogue is.
            _hang_up(client)
            client = None
            raise
        finally:
            self._idle.put_nowait(client)

    async def _blame(
        self, client: aiosmtplib.SMTP, mail: OutgoingMail, exc: aiosmtplib.SMTPRecipientsRefused
    ) -> DeliveryError:
        """The address's error, or RelayError when the server refuses any recipient alike.

        A policy answer (a blocked IP, say) may come at RCPT for every recipient; blaming
        each address would bounce the whole list. So such a refusal is checked with one
        more RCPT, for our own envelope sender, in an empty transaction that is then reset.
        """
        code, text = _refusal(exc)
        error = translate(exc, server=self.server)
        if about_address(code, text):
            return error
        try:
            async with asyncio.timeout(self.config.timeout_s):
                probe = await _probe(client, mail.mail_from)
        except BaseException as probe_exc:
            if not isinstance(probe_exc, aiosmtplib.SMTPResponseException):
                client.close()  # no clean answer (or cut short): a fresh connection next time
            if not isinstance(probe_exc, aiosmtplib.SMTPException | OSError | TimeoutError):
                raise
            return translate(probe_exc, server=self.server)
        if probe is not None and probe[0] == code and _status(probe[1]) == _status(text):
            return RelayError(f"{self.server} refuses every recipient alike: SMTP {code} {text}")
        return error

    async def close(self) -> None:
        """QUIT every idle connection, all at once and briefly."""
        idle = []
        while not self._idle.empty():
            idle.append(self._idle.get_nowait())
        await asyncio.gather(*(_quit(client) for client in idle))


async def _sendmail(client: aiosmtplib.SMTP, mail: OutgoingMail) -> None:
    await client.sendmail(mail.mail_from, [mail.to], mail.data)


async def _probe(client: aiosmtplib.SMTP, address: str) -> tuple[int, str] | None:
    """The server's answer to RCPT TO `address` (None: accepted); no mail is sent."""
    await client.mail(address)
    try:
        await client.rcpt(address)
    except aiosmtplib.SMTPRecipientRefused as exc:
        return exc.code, exc.message
    finally:
        await client.rset()
    return None


def _status(text: str) -> str:
    enhanced = _ENHANCED.match(text)
    return enhanced.group(0) if enhanced else ""


def _hang_up(client: aiosmtplib.SMTP | None) -> None:
    if client is not None:
        client.close()


async def _quit(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit(timeout=QUIT_TIMEOUT_S)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
