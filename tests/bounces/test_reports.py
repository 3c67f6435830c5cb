"""Reading mail on the bounce listener: real-shaped DSNs, ARF complaints and what is dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.bounces.reports import bounce_kind, read_report
from bot.models import ReportKind
from tests.fakes.mail_reports import sample

VERP = "bounce+Tok.en.sig@bounces.example.org"
LINK = "https://news.example.org/unsubscribe/Unsub.tok.en"
HARD, SOFT, COMPLAINT = ReportKind.HARD, ReportKind.SOFT, ReportKind.COMPLAINT


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("postfix-hard", HARD, "5.1.1"),
        ("postfix-soft", SOFT, "4.2.2"),
        ("exim-hard", HARD, "5.0.0"),
        ("exim-soft", SOFT, "4.0.0"),
        ("gmail-hard", HARD, "5.1.1"),
        ("gmail-soft", SOFT, "4.2.2"),
    ],
)
def test_each_delivery_report_is_read_as_hard_or_soft(
    name: str, kind: ReportKind, status: str
) -> None:
    """Postfix, Exim and Gmail reports give the kind, the failed address and the status."""
    report = read_report(sample(name, return_path=VERP, unsubscribe_url=LINK))
    assert report.kind is kind
    assert report.recipients == ("reader@example.com",)
    assert status in report.reason
    assert "Unsub.tok.en" in report.tokens


def test_postfix_report_carries_the_envelope_sender_and_the_arrival_date() -> None:
    """Postfix names the original envelope sender and when it took the email."""
    report = read_report(sample("postfix-hard", return_path=VERP))
    assert report.return_paths == (VERP,)
    assert report.sent_at == datetime(2026, 1, 12, 9, 0, 3, tzinfo=UTC)


def test_an_auto_submitted_header_does_not_hide_a_bounce() -> None:
    """Postfix and Gmail mark their reports Auto-Submitted: still bounces, not auto-replies."""
    assert b"Auto-Submitted: auto-replied" in sample("postfix-hard")
    assert read_report(sample("postfix-hard")).kind is HARD


def test_a_yahoo_complaint_names_the_reader_and_the_return_path() -> None:
    """ARF from Yahoo: a complaint with Original-Rcpt-To and Original-Mail-From."""
    report = read_report(sample("yahoo-complaint", return_path=VERP, recipient="reader@yahoo.com"))
    assert report.kind is COMPLAINT
    assert report.recipients == ("reader@yahoo.com",)
    assert report.return_paths == (VERP,)


def test_a_redacted_aol_complaint_still_carries_the_unsubscribe_link() -> None:
    """AOL hides the reader's address; the returned email's List-Unsubscribe still names them."""
    report = read_report(sample("aol-complaint-redacted", unsubscribe_url=LINK))
    assert report.kind is COMPLAINT
    assert report.tokens == ("Unsub.tok.en",)
    assert report.return_paths == ()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("out-of-office", "an auto-reply"),
        ("plain-reply", "neither a delivery report nor a complaint"),
        ("gmail-delay", "no failure (action: delayed)"),
    ],
)
def test_everything_else_is_dropped_with_a_reason(name: str, reason: str) -> None:
    """Auto-replies, replies and delay warnings are no bounce: dropped, and the reason says so."""
    report = read_report(sample(name, return_path=VERP))
    assert report.kind is None
    assert reason in report.reason


def test_a_feedback_report_that_is_not_a_complaint_is_dropped() -> None:
    """A DMARC failure report (Feedback-Type: auth-failure) says nothing about the reader."""
    raw = sample("yahoo-complaint").replace(b"Feedback-Type: abuse", b"Feedback-Type: auth-failure")
    report = read_report(raw)
    assert report.kind is None and "auth-failure" in report.reason


def test_mail_that_is_not_mime_at_all_is_dropped() -> None:
    """Garbage bytes are read as plain mail and dropped, never an exception."""
    assert read_report(b"\x00\xff not a message\r\n\r\n\r\n").kind is None


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        ("5.1.1", "", HARD),
        ("5.1.10", "smtp; 550 5.1.10 null MX", HARD),
        ("5.2.1", "", HARD),
        ("5.4.4", "", HARD),
        ("4.2.2", "", SOFT),
        ("4.4.1", "", SOFT),
        ("5.2.2", "smtp; 552 5.2.2 mailbox full", SOFT),
        ("5.3.4", "", SOFT),
        ("5.7.1", "smtp; 550 5.7.1 message rejected as spam", SOFT),
        ("5.7.26", "smtp; 550 5.7.26 unauthenticated email", SOFT),
        ("5.0.0", "smtp; 550 5.1.1 user unknown", HARD),
        ("5.0.0", "smtp; 550 5.7.1 blocked by policy", SOFT),
        ("5.0.0", "", HARD),
        ("4.0.0", "smtp; 452 4.2.2 Mailbox full", SOFT),
        ("", "smtp; 550 no such user", HARD),
        ("", "", SOFT),
    ],
)
def test_status_codes_map_to_hard_and_soft(status: str, diagnostic: str, kind: ReportKind) -> None:
    """5.x.x is hard unless it blames the message or sender; 4.x.x and unknown are soft."""
    assert bounce_kind(status, diagnostic) is kind
