"""Per-recipient emails: headers, both parts, links filled in, injection refused, size."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP, default

import pytest

from bot.delivery.mail import HeaderInjectionError, fill, personalize
from bot.models import EmailMessage, Kind
from bot.render.renderer import Renderer
from bot.settings import load_settings, load_site
from tests.render.test_renderer import DEMO_SITE, make_post

NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
UNSUB = "https://herald.example.com/unsubscribe/tok.en-1?x=1&y=2"
PREFS = "https://herald.example.com/preferences/tok.en-1"


@pytest.fixture
def renderer() -> Renderer:
    settings = load_settings(site_dir=DEMO_SITE, public_url="https://herald.example.com")
    return Renderer(load_site(settings), public_url=settings.public_base)


def send(msg: EmailMessage, **changes: str) -> MimeMessage:
    """Personalise, serialise as SMTP would, and parse back as a mail client would."""
    args = {
        "to": "Ann Reader <ann@example.org>",
        "mail_from": "The Daily Herald <news@news.example.com>",
        "unsubscribe_url": UNSUB,
        "preferences_url": PREFS,
    } | changes
    mime = personalize(msg, now=NOW, **args)
    parsed = message_from_bytes(mime.as_bytes(policy=SMTP), policy=default)
    assert isinstance(parsed, MimeMessage)
    return parsed


def test_headers_are_complete(renderer: Renderer) -> None:
    """Every email carries From, To, Subject, Date, Message-ID and one-click unsubscribe headers."""
    parsed = send(renderer.post_email(make_post(title="Café & “quotes”"), Kind.BREAKING))
    assert parsed["From"] == "The Daily Herald <news@news.example.com>"
    assert parsed["To"] == "Ann Reader <ann@example.org>"
    assert parsed["Subject"] == "Breaking: Café & “quotes”"
    assert parsed["Date"] == "Sun, 22 Nov 2026 18:00:00 +0000"
    assert parsed["Message-ID"].endswith("@news.example.com>")
    assert parsed["List-Unsubscribe"] == f"<{UNSUB}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_text_part_first_then_html_with_links_filled(renderer: Renderer) -> None:
    """The body is multipart/alternative, plain text first, and both parts carry the links."""
    parsed = send(renderer.post_email(make_post(), Kind.BREAKING))
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, page = (p.get_content() for p in parts)  # type: ignore[attr-defined]
    assert UNSUB in text and PREFS in text
    assert UNSUB.replace("&", "&amp;") in page and PREFS in page
    assert "{{" not in text + page
    assert "Climate summit ends with agreement on methane" in text + page


def test_fill_is_plain_replacement(renderer: Renderer) -> None:
    """Personalisation replaces placeholders only; the rest of the rendered email is untouched."""
    msg = renderer.digest_email([make_post()], date(2026, 11, 22))
    page, text = fill(msg, unsubscribe_url=UNSUB, preferences_url=PREFS)
    placeholder_html = msg.html.replace("{{UNSUBSCRIBE_URL}}", "").replace(
        "{{PREFERENCES_URL}}", ""
    )
    escaped = UNSUB.replace("&", "&amp;")
    assert page.replace(escaped, "").replace(PREFS, "") == placeholder_html
    assert text.count(UNSUB) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"to": "ann@example.org\r\nBcc: all@example.org"},
        {"to": "ann@example.org\nBcc: all@example.org"},
        {"to": "ann@example.org, bob@example.org"},
        {"to": "not an address"},
        {"mail_from": "News <news@x.org>\r\nReply-To: evil@x.org"},
        {"unsubscribe_url": "https://h.example/u\r\nBcc: x@y.z"},
        {"unsubscribe_url": "javascript:alert(1)"},
    ],
)
def test_header_injection_is_refused(renderer: Renderer, changes: dict[str, str]) -> None:
    """Line breaks, extra addresses or odd links in header values are refused with a reason."""
    with pytest.raises(HeaderInjectionError, match="refusing to send"):
        send(renderer.confirm_email("https://herald.example.com/confirm/x"), **changes)


def test_subject_with_line_break_is_refused() -> None:
    """A subject that would start a new header is refused rather than sent."""
    msg = EmailMessage(subject="Hi\r\nBcc: all@example.org", html="<p>x</p>", text="x")
    with pytest.raises(HeaderInjectionError, match="Subject"):
        send(msg)


def test_big_digest_stays_under_gmail_clip(renderer: Renderer) -> None:
    """Even a 300-post day makes a sent digest whose HTML is under 102 KB."""
    posts = [
        make_post(title=f"Story {n} " * 10, excerpt="Long words here. " * 200) for n in range(300)
    ]
    parsed = send(renderer.digest_email(posts, date(2026, 11, 22)))
    page = parsed.get_body(preferencelist=("html",))
    assert page is not None
    html = page.get_content()  # type: ignore[attr-defined]
    assert len(html.encode()) < 102_000
    assert "more on the site" in html
