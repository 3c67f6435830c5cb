"""Per-recipient email: fill the links into a rendered EmailMessage and build the MIME message."""

from __future__ import annotations

import base64
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
    Kind,
    OutgoingMail,
)

_PLACEHOLDER = re.compile(
    "|".join(re.escape(p) for p in (UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER))
)
_LINE_MAX = 78  # the policy refolds (its own way) any header line longer than this
_WORD_MAX = 75  # RFC 2047: the longest encoded word
# RFC 2047 5(3): the characters a Q-encoded word may show as they are, even in a phrase.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
FEEDBACK_SENDER = "herald"  # Feedback-ID's last field: who sends, for Gmail's feedback loop


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


def _q_len(data: bytes) -> int:
    return sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in data)


def _q(data: bytes) -> str:
    return "".join(chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in data)


def encoded_words(text: str, first_max: int) -> list[str]:
    """`text` as RFC 2047 encoded words, the first at most `first_max` characters long.

    Every space is inside a word: decoders drop the whitespace between two encoded words,
    which is how Python 3.11's own folding loses the space in some long subjects.
    """
    data = text.encode()
    use_q = _q_len(data) <= 4 * -(-len(data) // 3)
    head = "=?utf-8?q?" if use_q else "=?utf-8?b?"
    chunks: list[bytes] = []
    chunk = b""
    room = min(first_max, _WORD_MAX) - len(head) - 2
    for char in text:
        grown = chunk + char.encode()
        size = _q_len(grown) if use_q else 4 * -(-len(grown) // 3)
        if size > room and chunk:  # a character is never split across two words
            chunks.append(chunk)
            grown, room = char.encode(), _WORD_MAX - len(head) - 2
        chunk = grown
    chunks.append(chunk)
    if use_q:
        return [f"{head}{_q(c)}?=" for c in chunks]
    return [f"{head}{base64.b64encode(c).decode('ascii')}?=" for c in chunks]


def _plain_lines(text: str, first_max: int) -> list[str] | None:
    """`text` folded at single spaces into lines that fit, or None if a word cannot fit."""
    lines: list[str] = []
    room = first_max
    while len(text) > room:
        cut = text.rfind(" ", 1, room + 1)
        if cut < 0:
            return None
        lines.append(text[:cut])
        text, room = text[cut:], _LINE_MAX  # the continuation line starts with that space
    lines.append(text)
    return lines


def _is_plain(text: str) -> bool:
    """Printable ASCII that no decoder could mistake for encoded words or re-space."""
    return (
        all(" " <= c <= "~" for c in text)
        and "=?" not in text
        and "  " not in text
        and text == text.strip(" ")
    )


def fold_unstructured(name: str, text: str) -> str:
    """The value of header `name` folded (CRLF + space) so it decodes to exactly `text`."""
    first_max = _LINE_MAX - len(name) - 2
    lines = _plain_lines(text, first_max) if _is_plain(text) else None
    if lines is None:
        lines = encoded_words(text, first_max) if text else [""]
    return "\r\n ".join(lines)


def list_id(site_title: str, domain: str) -> str:
    """The List-Id value: the site's title as a phrase (quoted or encoded), <list.domain>."""
    label = f"<list.{domain}>"
    # The title is the site's data: line breaks become spaces, control characters go.
    title = " ".join(site_title.split())
    title = "".join(ch for ch in title if unicodedata.category(ch) != "Cc")
    first_max = _LINE_MAX - len("List-Id") - 2
    if not title:
        return label
    if _is_plain(title):
        quoted = '"' + title.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) + 1 + len(label) <= first_max:
            return f"{quoted} {label}"
    words = encoded_words(title, first_max)
    room = first_max if len(words) == 1 else _LINE_MAX - 1
    if len(words[-1]) + 1 + len(label) <= room:
        words[-1] += " " + label
    else:
        words.append(label)
    return "\r\n ".join(words)


def _ascii_domain(domain: str) -> str:
    """The domain as DNS has it (IDNA), for List-Id, Feedback-ID and the DKIM d= tag."""
    try:
        return domain.lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise HeaderInjectionError(
            f"refusing to send: the domain {domain[:60]!r} of HERALD_MAIL_FROM is not a "
            "valid domain name"
        ) from exc


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
    kind: Kind = Kind.POST,
) -> MimeMessage:
    """One recipient's complete email: headers, then text/plain and text/html alternatives.

    Mail to a subscriber names its list (List-Id) and offers one-click unsubscribe; the
    opt-in confirmation (Kind.CONFIRM) goes to someone not subscribed yet, so it does not.
    """
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
    domain = _ascii_domain(sender.domain or "localhost")

    mime = MimeMessage(policy=SMTP)
    mime["From"] = sender
    mime["To"] = recipient
    # Folded here, as is: the policy's own folding can drop a space between encoded words.
    mime.set_raw("Subject", fold_unstructured("Subject", subject))
    mime["Date"] = format_datetime(now)
    mime["Message-ID"] = make_msgid(domain=domain)
    if kind is not Kind.CONFIRM:
        mime.set_raw("List-Id", list_id(msg.site_title, domain))
        mime["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mime["Feedback-ID"] = f"{kind.value}:{domain}:{FEEDBACK_SENDER}"
    # Text first, HTML last: clients show the last alternative they can display.
    mime.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mime.add_alternative(page, subtype="html", charset="utf-8", cte="quoted-printable")
    return mime


def outgoing(mime: MimeMessage) -> OutgoingMail:
    """A complete message as SMTP sends it: envelope from its From, to its To."""
    sender = mime["From"].addresses[0].addr_spec
    recipient = mime["To"].addresses[0].addr_spec
    return OutgoingMail(mail_from=sender, to=recipient, data=mime.as_bytes(policy=SMTP))
