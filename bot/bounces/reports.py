"""Mail on the bounce listener → what it says: a delivery report (RFC 3464), a complaint
(RFC 5965 ARF), or something to drop (an auto-reply, a delay warning, plain mail).

Pure: bytes in, a frozen `Report` out. Which subscriber it names is decided by the
listener, which can check tokens and ask the store.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from bot.models import ReportKind

DELIVERY_STATUS = {"message/delivery-status", "message/global-delivery-status"}
FEEDBACK_REPORT = "message/feedback-report"
ORIGINAL = {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
# ARF feedback types that mean a reader complained; others (auth-failure: a DMARC
# failure report, not-spam, virus, other) say nothing about that reader's wishes.
COMPLAINT_TYPES = {"abuse", "fraud"}
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_UNSUBSCRIBE = re.compile(r"/unsubscribe/([A-Za-z0-9_\-.]+)")
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|autoreply|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|vacation)",
    re.I,
)


@dataclass(frozen=True)
class Report:
    """What one inbound mail says; `kind` None means it is dropped, `reason` says why.

    `return_paths`: envelope senders of the original email found inside the report (VERP
    addresses to read a token from); `tokens`: unsubscribe tokens from the original's
    List-Unsubscribe; `recipients`: the addresses it names (Final-Recipient of the failed
    deliveries, Original-Rcpt-To, the original To); `sent_at`: its Arrival-Date.
    """

    kind: ReportKind | None
    reason: str
    recipients: tuple[str, ...] = ()
    return_paths: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    sent_at: datetime | None = None


def bounce_kind(status: str, diagnostic: str = "") -> ReportKind:
    """A failed delivery's enhanced status code (RFC 3463) → hard or soft.

    5.x.x is hard, 4.x.x soft, except 5.x.x codes that blame the message or the sender
    rather than the address (mailbox full, message too big, content, policy such as
    DMARC): those count as soft, so a broken signature cannot bounce a whole list at once.
    A non-specific X.0.0 defers to the code in the Diagnostic-Code when there is one.
    """
    found = _STATUS.search(status)
    detail = _STATUS.search(diagnostic)
    if found is not None and found.group(2, 3) == ("0", "0") and detail is not None:
        found = detail
    if found is None:
        found = detail
    if found is None:
        smtp = re.search(r"\b([245])\d\d\b", diagnostic)
        return ReportKind.HARD if smtp is not None and smtp.group(1) == "5" else ReportKind.SOFT
    klass, subject, code = found.group(1), found.group(2), found.group(3)
    if klass != "5":
        return ReportKind.SOFT
    if subject in {"6", "7"} or (subject, code) in {("2", "2"), ("2", "3"), ("3", "4"), ("4", "7")}:
        return ReportKind.SOFT
    return ReportKind.HARD


def read_report(raw: bytes) -> Report:
    """Classify one inbound mail (its bytes as received)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            return _delivery_status(message)
        if report_type == "feedback-report":
            return _feedback(message)
        return Report(None, f"a report of type {report_type or 'unknown'!r}")
    if _auto_reply(message):
        return Report(None, "an auto-reply")
    return Report(None, "neither a delivery report nor a complaint")


def _delivery_status(message: Message) -> Report:
    part = _part(message, DELIVERY_STATUS)
    if part is None:
        return Report(None, "a delivery report without its delivery-status part")
    blocks = _blocks(part)
    if not blocks:
        return Report(None, "a delivery report with no fields")
    per_message, recipients = blocks[0], blocks[1:]
    failed, actions = [], []
    for block in recipients:
        action = _value(block, "Action").lower()
        actions.append(action or "none")
        if action == "failed":
            kind = bounce_kind(_value(block, "Status"), _value(block, "Diagnostic-Code"))
            address = _typed_address(block, "Final-Recipient") or _typed_address(
                block, "Original-Recipient"
            )
            failed.append((kind, address, _value(block, "Status")))
    if not failed:
        return Report(None, f"a delivery report with no failure (action: {', '.join(actions)})")
    kind = ReportKind.HARD if any(k is ReportKind.HARD for k, _, _ in failed) else ReportKind.SOFT
    statuses = ", ".join(sorted({s or "no status" for _, _, s in failed}))
    original = _original(message)
    paths = [_typed_address(per_message, "X-Postfix-Sender"), *_headers(original, "Return-Path")]
    return Report(
        kind,
        f"a {kind.value} bounce ({statuses})",
        recipients=_unique(a for _, a, _ in failed),
        return_paths=_unique(paths),
        tokens=_unsubscribe_tokens(original),
        sent_at=_date(_value(per_message, "Arrival-Date")),
    )


def _feedback(message: Message) -> Report:
    part = _part(message, {FEEDBACK_REPORT})
    blocks = _blocks(part) if part is not None else []
    if not blocks:
        return Report(None, "a feedback report without its feedback-report part")
    fields = blocks[0]
    feedback = _value(fields, "Feedback-Type").lower()
    if feedback not in COMPLAINT_TYPES:
        return Report(None, f"a feedback report of type {feedback or 'unknown'!r}")
    original = _original(message)
    named = [
        *_addresses(fields.get_all("Original-Rcpt-To") or []),
        *_addresses(fields.get_all("Removal-Recipient") or []),
        *_addresses(_headers(original, "To")),
    ]
    paths = [*_addresses(fields.get_all("Original-Mail-From") or [])]
    paths += _headers(original, "Return-Path")
    return Report(
        ReportKind.COMPLAINT,
        f"a complaint ({feedback})",
        recipients=_unique(named),
        return_paths=_unique(paths),
        tokens=_unsubscribe_tokens(original),
        sent_at=_date(_value(fields, "Arrival-Date")),
    )


def _auto_reply(message: Message) -> bool:
    auto = _value(message, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if any(message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond")):
        return True
    if _value(message, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_value(message, "Subject")))


def _part(message: Message, types: set[str]) -> Message | None:
    return next((p for p in message.walk() if p.get_content_type() in types), None)


def _original(message: Message) -> Message | None:
    """The returned original email (or its headers) inside a report."""
    part = _part(message, ORIGINAL)
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):  # message/rfc822: parsed already
        inner = payload[0] if payload else None
        return inner if isinstance(inner, Message) else None
    return HeaderParser(policy=email.policy.compat32).parsestr(_text(part))


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a delivery-status or feedback-report part, in order."""
    payload = part.get_payload()
    if isinstance(payload, list):  # message/delivery-status: parsed into blocks already
        return [b for b in payload if isinstance(b, Message)]
    parser = HeaderParser(policy=email.policy.compat32)
    text = _text(part).replace("\r\n", "\n")
    return [parser.parsestr(b.strip() + "\n") for b in re.split(r"\n\s*\n", text) if b.strip()]


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode(part.get_content_charset() or "utf-8", errors="replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _value(block: Message | None, name: str) -> str:
    """One field's value, unfolded, without RFC 822 comments at its end; "" when absent."""
    value = block.get(name) if block is not None else None
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return re.sub(r"\s*\([^)]*\)\s*$", "", text)


def _typed_address(block: Message | None, name: str) -> str:
    """`rfc822; someone@example.org` → `someone@example.org` ("" when absent)."""
    value = _value(block, name)
    kind, sep, address = value.partition(";")
    if not sep:
        address = kind
    return address.strip().strip("<>").strip()


def _headers(message: Message | None, name: str) -> list[str]:
    return [str(v) for v in (message.get_all(name) or [])] if message is not None else []


def _addresses(values: Iterable[str]) -> list[str]:
    return [addr for _, addr in getaddresses([str(v) for v in values]) if "@" in addr]


def _unsubscribe_tokens(original: Message | None) -> tuple[str, ...]:
    links = " ".join(_headers(original, "List-Unsubscribe"))
    return _unique(m.group(1) for m in _UNSUBSCRIBE.finditer(links))


def _date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_cleaned(values)))


def _cleaned(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        text = value.strip().strip("<>").strip()
        if text:
            yield text
