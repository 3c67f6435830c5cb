"""The small tree of errors that crosses module boundaries."""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class ConfigError(HeraldError):
    """A setting or template is wrong; the message says which and how to fix it."""


class PostError(HeraldError):
    """A post file cannot be read or parsed; the message gives the reason."""


class DeliveryError(HeraldError):
    """A send failed; subclasses say whether trying again can help."""


class TransientError(DeliveryError):
    """Worth retrying, after `retry_after_s` if the far side said so."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TimedOutError(TransientError):
    """No answer in time: the far side may have acted, so a resend may duplicate.

    `retry_after_s` is how long the call waited: a floor for the next try (an earlier
    resend would only add a duplicate), not the far side asking us to slow down.
    """


class RelayError(TransientError):
    """The mail server failed, not an address: it refused us (greeting, EHLO, AUTH, MAIL
    FROM, DATA, every recipient alike), broke off, or never answered. All email waits and
    is tried again later; no recipient is blamed and no attempt is spent."""


class InsecureAuthError(RelayError):
    """The mail server offers no TLS, so the SMTP password is not sent; the message names
    the fix (TLS, or `auth_without_tls=true` in HERALD_SMTP_URL for a trusted link)."""


class PermanentError(DeliveryError):
    """Retrying cannot help; `deactivate` marks the recipient blocked/bounced."""

    def __init__(self, message: str, deactivate: bool = False) -> None:
        super().__init__(message)
        self.deactivate = deactivate


class ChatMigratedError(DeliveryError):
    """A Telegram group became a supergroup; resend to `new_chat_id`."""

    def __init__(self, message: str, new_chat_id: int) -> None:
        super().__init__(message)
        self.new_chat_id = new_chat_id


class ImageError(PermanentError):
    """Telegram could not fetch or use a message's image; the text alone may still go."""


class DeleteRefusedError(PermanentError):
    """Telegram will not delete the message (older than its 48 hours): edit it instead."""
