"""Per-recipient email: fill the links into a rendered EmailMessage and build the MIME message."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid

from bot.errors import PermanentError
from bot.models import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    EmailMessage,
    OutgoingMail,
)

_PLACEHOLDER = re.compile(
    "|".join(re.escape(p) for p in (UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER))
)


class HeaderInjectionError(PermanentError):
    """A header value carries line breaks or control characters; sending it is refused."""


def _clean(name: str, value: str) -> str:
    """The value itself, or HeaderInjectionError if it could smuggle in another header."""
    for ch in value:
        if ch in "\r\n\x00" or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise HeaderInjectionError(
                f"refusing to send: the {name} header contains a line break or control "
                f"character ({value[:60]!r}); remove it from the data it came from"
            )
    return value


def _single_address(name: str, value: str) -> Address:
    """Exactly one address, or HeaderInjectionError naming the header."""
    found = getaddresses([_clean(name, value)])
    problem = len(found) != 1 or "@" not in found[0][1]
    if not problem:
        try:
            return Address(display_name=found[0][0], addr_spec=found[0][1])
        except (ValueError, IndexError):
            problem = True
    raise HeaderInjectionError(
        f"refusing to send: the {name} header must be exactly one email address, not {value[:60]!r}"
    )


def preview_links(public_url: str) -> dict[str, str]:
    """Stand-in links for a message shown to an operator rather than sent to a reader."""
    base = public_url.rstrip("/")
    return {
        "unsubscribe_url": f"{base}/unsubscribe/PREVIEW",
        "preferences_url": f"{base}/preferences/PREVIEW",
    }


def fill(msg: EmailMessage, *, unsubscribe_url: str, preferences_url: str) -> tuple[str, str]:
    """(html, text) with this recipient's links filled in; no re-rendering, just replacement."""
    raw = {UNSUBSCRIBE_PLACEHOLDER: unsubscribe_url, PREFERENCES_PLACEHOLDER: preferences_url}
    escaped = {k: html.escape(v, quote=True) for k, v in raw.items()}
    # One pass over the (large) HTML: a single copy however many links it holds.
    page = _PLACEHOLDER.sub(lambda m: escaped[m.group(0)], msg.html)
    text = _PLACEHOLDER.sub(lambda m: raw[m.group(0)], msg.text)
    return page, text


def personalize(
    msg: EmailMessage,
    *,
    to: str,
    mail_from: str,
    unsubscribe_url: str,
    preferences_url: str,
    now: datetime,
) -> MimeMessage:
    """One recipient's complete email: headers, then text/plain and text/html alternatives."""
    sender = _single_address("From", mail_from)
    recipient = _single_address("To", to)
    subject = _clean("Subject", msg.subject)
    _clean("List-Unsubscribe", unsubscribe_url)
    if not unsubscribe_url.startswith(("https://", "http://")):
        raise HeaderInjectionError(
            f"refusing to send: the unsubscribe link {unsubscribe_url[:60]!r} is not an "
            "http(s) URL; check HERALD_PUBLIC_URL"
        )
    page, text = fill(msg, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url)
    domain = sender.domain or "localhost"

    mime = MimeMessage(policy=SMTP)
    mime["From"] = sender
    mime["To"] = recipient
    mime["Subject"] = subject
    mime["Date"] = format_datetime(now)
    mime["Message-ID"] = make_msgid(domain=domain)
    mime["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Text first, HTML last: clients show the last alternative they can display.
    mime.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mime.add_alternative(page, subtype="html", charset="utf-8", cte="quoted-printable")
    return mime


def outgoing(mime: MimeMessage) -> OutgoingMail:
    """A complete message as SMTP sends it: envelope from its From, to its To."""
    sender = mime["From"].addresses[0].addr_spec
    recipient = mime["To"].addresses[0].addr_spec
    return OutgoingMail(mail_from=sender, to=recipient, data=mime.as_bytes(policy=SMTP))
