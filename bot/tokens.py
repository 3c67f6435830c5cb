"""Signed, expiring tokens for the links in emails (confirm, unsubscribe, preferences) and
for the VERP return path of every email (`bounce+<token>@domain`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.errors import HeraldError


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"  # the envelope sender: a report sent back to it names its subscriber


# How long a link keeps working. Unsubscribe links must outlive any old email in an inbox.
MAX_AGE_S: dict[Purpose, int] = {
    Purpose.CONFIRM: 7 * 24 * 3600,
    Purpose.UNSUBSCRIBE: 5 * 365 * 24 * 3600,
    Purpose.PREFERENCES: 5 * 365 * 24 * 3600,
    # A delivery report comes within days (a relay gives up after about five); older is stale.
    Purpose.BOUNCE: 30 * 24 * 3600,
}
RETURN_PATH_PREFIX = "bounce+"


class TokenError(HeraldError):
    """A token that is forged, tampered with, expired or meant for another purpose."""


class Tokens:
    """Signs subscriber ids for one purpose each; a token for one purpose fails for another."""

    def __init__(self, secret: str) -> None:
        self._serializers = {
            p: URLSafeTimedSerializer(secret, salt=f"herald-{p.value}") for p in Purpose
        }

    def make(self, purpose: Purpose, subscriber_id: int) -> str:
        return str(self._serializers[purpose].dumps(subscriber_id))

    def link(self, base_url: str, purpose: Purpose, subscriber_id: int) -> str:
        """`{base_url}/{purpose}/{token}`: the signed link the web endpoint answers."""
        return f"{base_url.rstrip('/')}/{purpose.value}/{self.make(purpose, subscriber_id)}"

    def read(self, purpose: Purpose, token: str, *, max_age_s: int | None = None) -> int:
        """The subscriber id a token carries, or TokenError."""
        return self.read_signed(purpose, token, max_age_s=max_age_s)[0]

    def read_signed(
        self, purpose: Purpose, token: str, *, max_age_s: int | None = None
    ) -> tuple[int, datetime]:
        """The subscriber id a token carries and when it was signed (to the second), or
        TokenError. The signature is compared in constant time (itsdangerous uses
        `hmac.compare_digest`)."""
        age = MAX_AGE_S[purpose] if max_age_s is None else max_age_s
        try:
            value, signed_at = self._serializers[purpose].loads(
                token, max_age=age, return_timestamp=True
            )
        except SignatureExpired as exc:
            raise TokenError("this link has expired") from exc
        except BadSignature as exc:
            raise TokenError("this link is not valid") from exc
        if not isinstance(value, int):
            raise TokenError("this link is not valid")
        return value, signed_at

    def return_path(self, subscriber_id: int, domain: str) -> str:
        """The VERP envelope sender `bounce+<token>@domain` of one subscriber's email."""
        return f"{RETURN_PATH_PREFIX}{self.make(Purpose.BOUNCE, subscriber_id)}@{domain}"


def return_path_token(address: str, domain: str) -> str | None:
    """The token of a VERP address `bounce+<token>@domain` (domain in any case), else None."""
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or host.lower() != domain.lower() or not local.startswith(RETURN_PATH_PREFIX):
        return None
    return local.removeprefix(RETURN_PATH_PREFIX) or None
