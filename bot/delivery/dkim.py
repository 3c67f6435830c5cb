"""DKIM: each recipient's message signed (RSA-SHA256, relaxed/relaxed) for the From domain.

The key is read and checked once, at start (`load_key`); `Signer.sign` then costs one
body hash and one RSA signature per message, with no re-rendering. `SignedMail` wraps the
mail transport, so every email Herald sends (SMTP or the outbox files) is signed.
"""

from __future__ import annotations

import asyncio
import base64
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType

import dkim
import dkim.crypto

from bot.errors import ConfigError, PermanentError
from bot.models import OutgoingMail
from bot.settings import Settings
from bot.transports import MailTransport

# What a receiver must be able to trust: who, to whom, what, when, the MIME structure, and
# the list headers Gmail and Yahoo act on (one-click unsubscribe, List-Id, Feedback-ID).
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
)
# Named once more than they occur (RFC 6376 8.15): a copy added on the way, say a second
# From or List-Unsubscribe, breaks the signature instead of riding on it. A header a
# message lacks (the confirmation has no List-Unsubscribe) cannot be added either.
OVERSIGNED = ("From", "To", "Subject", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")
MIN_BITS = 1024  # receivers ignore shorter keys; 2048 is what to generate
_RSA_OID = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_PEM = re.compile(
    rb"-----BEGIN (?:RSA )?PRIVATE KEY-----\n.*?\n-----END (?:RSA )?PRIVATE KEY-----", re.DOTALL
)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _der_int(n: int) -> bytes:
    return _der(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))  # a leading 0 keeps it positive


def public_key_der(modulus: int, exponent: int) -> bytes:
    """The RSA public key as DER SubjectPublicKeyInfo, what a DKIM record's p= holds."""
    rsa_key = _der(0x30, _der_int(modulus) + _der_int(exponent))
    algorithm = _der(0x30, _RSA_OID + b"\x05\x00")
    return _der(0x30, algorithm + _der(0x03, b"\x00" + rsa_key))


def mail_domain(mail_from: str) -> str:
    """The domain of HERALD_MAIL_FROM as DNS has it (IDNA): the signature's d=."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2].lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ConfigError(
            f"HERALD_MAIL_FROM: {domain!r} is not a domain name DKIM can sign for"
        ) from exc


@dataclass(frozen=True)
class DkimKey:
    """A checked private key with the domain and selector it signs for."""

    domain: str
    selector: str
    pem: bytes
    bits: int
    public_der: bytes

    @property
    def record_name(self) -> str:
        """Where receivers look the public key up."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_value(self) -> str:
        """The TXT record to publish at `record_name`."""
        return f"v=DKIM1; k=rsa; p={base64.b64encode(self.public_der).decode('ascii')}"


def load_key(path: Path, *, selector: str, mail_from: str) -> DkimKey:
    """The key in `path`, or ConfigError naming HERALD_DKIM_KEY_FILE and what is wrong."""

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"HERALD_DKIM_KEY_FILE={str(path)!r}: {reason}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from exc
    data = data.replace(b"\r\n", b"\n")
    found = _PEM.search(data)
    if found is None:
        why = "it is encrypted" if b"ENCRYPTED" in data else "it holds no PEM RSA private key"
        raise refuse(f"{why}; make one with: openssl genrsa -out dkim.pem 2048 (unencrypted, RSA)")
    pem = found.group(0) + b"\n"
    try:
        key = dkim.crypto.parse_pem_private_key(pem)
    except (dkim.crypto.UnparsableKeyError, ValueError) as exc:
        raise refuse(f"the RSA private key cannot be parsed ({exc})") from exc
    bits = int(key["modulus"]).bit_length()
    if bits < MIN_BITS:
        raise refuse(f"the key has {bits} bits; receivers need at least {MIN_BITS}, use 2048")
    return DkimKey(
        domain=mail_domain(mail_from),
        selector=selector,
        pem=pem,
        bits=bits,
        public_der=public_key_der(int(key["modulus"]), int(key["publicExponent"])),
    )


def key_from_settings(settings: Settings) -> DkimKey | None:
    """The key HERALD_DKIM_KEY_FILE names, checked; None when it is not set."""
    if settings.dkim_key_file is None:
        return None
    return load_key(
        settings.dkim_key_file, selector=settings.dkim_selector, mail_from=settings.mail_from
    )


class Signer:
    """Signs complete messages with one key: a DKIM-Signature header put on top."""

    def __init__(self, key: DkimKey) -> None:
        self.key = key
        self._domain = key.domain.encode("ascii")
        self._selector = key.selector.encode("ascii")
        self._headers = [h.lower().encode("ascii") for h in SIGNED_HEADERS + OVERSIGNED]

    def sign(self, message: bytes) -> bytes:
        """`message` (CRLF line ends) with its DKIM-Signature header first."""
        try:
            signer = dkim.DKIM(message, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
            header = signer.sign(
                self._selector,
                self._domain,
                self.key.pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=self._headers,
            )
        except dkim.DKIMException as exc:
            raise PermanentError(f"DKIM signing failed: {exc}") from exc
        return bytes(header) + message

    def sign_mail(self, mail: OutgoingMail) -> OutgoingMail:
        """The same mail, its data signed."""
        return replace(mail, data=self.sign(mail.data))


class SignedMail:
    """A MailTransport that signs each message, then hands it to the transport it wraps.

    An RSA signature is milliseconds of pure-Python big-number maths holding the GIL. It
    runs on one thread of its own: the event loop gets the GIL back between its steps and
    keeps serving (Telegram, the web), where one signing thread per mail worker would
    starve it. `close` stops that thread.
    """

    def __init__(self, transport: MailTransport, signer: Signer) -> None:
        self.transport = transport
        self.signer = signer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkim")

    async def send(self, mail: OutgoingMail) -> None:
        """Sign `mail` and send it; errors are the wrapped transport's."""
        loop = asyncio.get_running_loop()
        signed = await loop.run_in_executor(self._thread, self.signer.sign_mail, mail)
        await self.transport.send(signed)

    def close(self) -> None:
        """Stop the signing thread once what it has begun is signed."""
        self._thread.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> SignedMail:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
