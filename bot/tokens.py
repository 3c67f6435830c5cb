"""Signed, expiring tokens for the links in emails (confirm, unsubscribe, preferences)."""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.errors import HeraldError


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


# How long a link keeps working. Unsubscribe links must outlive any old email in an inbox.
MAX_AGE_S: dict[Purpose, int] = {
    Purpose.CONFIRM: 7 * 24 * 3600,
    Purpose.UNSUBSCRIBE: 5 * 365 * 24 * 3600,
    Purpose.PREFERENCES: 5 * 365 * 24 * 3600,
}


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
        age = MAX_AGE_S[purpose] if max_age_s is None else max_age_s
        try:
            value = self._serializers[purpose].loads(token, max_age=age)
        except SignatureExpired as exc:
            raise TokenError("this link has expired") from exc
        except BadSignature as exc:
            raise TokenError("this link is not valid") from exc
        if not isinstance(value, int):
            raise TokenError("this link is not valid")
        return value
