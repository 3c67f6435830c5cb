"""Per-recipient emails: headers, both parts, links filled in, injection refused, size."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP, default

import pytest

from bot.delivery.bulkmail import BulkMail
from bot.delivery.mail import HeaderInjectionError, fill, personalize
from bot.models import EmailMessage, Kind
from bot.render.renderer import Renderer
from bot.settings import load_settings
from bot.sources.jekyll.site import load_site
from tests.render.test_renderer import DEMO_SITE, make_post

NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
UNSUB = "https://herald.example.com/unsubscribe/tok.en-1?x=1&y=2"
PREFS = "https://herald.example.com/preferences/tok.en-1"


@pytest.fixture
def renderer() -> Renderer:
    settings = load_settings(site_dir=DEMO_SITE, public_url="https://herald.example.com")
    return Renderer(load_site(settings), public_url=settings.public_base)


def send(msg: EmailMessage, kind: Kind = Kind.BREAKING, **changes: str) -> MimeMessage:
    """Personalise, serialise as SMTP would, and parse back as a mail client would."""
    args = {
        "to": "Ann Reader <ann@example.org>",
        "mail_from": "The Daily Herald <news@news.example.com>",
        "unsubscribe_url": UNSUB,
        "preferences_url": PREFS,
    } | changes
    mime = personalize(msg, now=NOW, kind=kind, **args)
    return parse(mime.as_bytes(policy=SMTP))


def parse(data: bytes) -> MimeMessage:
    """Bytes back to a message with the standard email package, as a mail client reads it."""
    parsed = message_from_bytes(data, policy=default)
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


TRICKY_SUBJECTS = [
    "Ärger über München – Eilmeldung",
    "Breaking: 🚨 Flood warning 🌊 for the valley",
    "東京で地震 速報 マグニチュード 6.1 の揺れ",
    "Привет мир: новости сегодня, очень длинный заголовок статьи про погоду и политику",
    # Python 3.11's folding drops the space between "Ägypten" and "Ökonomie" here.
    "Überschwemmung Ärger Öl Übung Ägypten Ökonomie Über alles Ärger über München – "
    "Eilmeldung mit sehr langem Text",
    "Café & “quotes” ünd “mehr” — ein sehr langer Betreff, der über die Zeilenlänge "
    "hinausgeht und noch weiter geht, bis er zweimal gefaltet werden muss",
    "=?utf-8?q?looks_encoded?= but is plain text",
    "Two  spaces,  kept",
    "A long plain ASCII subject " + "that folds " * 12,
    "Supercalifragilisticexpialidocious" * 3,
    "ünïcode_with_underscores and ?question=marks?",
]


@pytest.mark.parametrize("subject", TRICKY_SUBJECTS)
def test_subject_decodes_to_exactly_the_text(subject: str) -> None:
    """Emoji, CJK, umlauts, long and look-alike subjects read back exactly, on both paths,
    and no header line is longer than 78 characters."""
    msg = EmailMessage(subject=subject, html="<p>x</p>", text="x\n", site_title="Site")
    slow = personalize(
        msg, to="a@example.org", mail_from="News <news@example.org>", now=NOW,
        unsubscribe_url=UNSUB, preferences_url=PREFS,
    ).as_bytes(policy=SMTP)  # fmt: skip
    bulk = BulkMail(msg, mail_from="News <news@example.org>", now=NOW)
    fast = bulk.render(to="a@example.org", unsubscribe_url=UNSUB, preferences_url=PREFS)
    for data in (slow, fast):
        assert parse(data)["Subject"] == subject
        head = data.partition(b"\r\n\r\n")[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        (Kind.BREAKING, lambda r: r.post_email(make_post(), Kind.BREAKING)),
        (Kind.POST, lambda r: r.post_email(make_post(), Kind.POST)),
        (Kind.DIGEST, lambda r: r.digest_email([make_post()], date(2026, 11, 22))),
        (Kind.BROADCAST, lambda r: r.broadcast_email("<b>Hello</b> readers")),
    ],
)
def test_subscriber_mail_names_its_list(
    renderer: Renderer, kind: Kind, make: Callable[[Renderer], EmailMessage]
) -> None:
    """Alerts, notices, digests and broadcasts carry List-Id (the site's title, the From
    domain), Feedback-ID (kind:site:herald) and both one-click unsubscribe headers."""
    parsed = send(make(renderer), kind=kind)
    assert parsed["List-Id"] == '"The Daily Herald" <list.news.example.com>'
    assert parsed["Feedback-ID"] == f"{kind.value}:news.example.com:herald"
    assert parsed["List-Unsubscribe"] == f"<{UNSUB}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_confirmation_offers_no_unsubscribe_headers(renderer: Renderer) -> None:
    """The opt-in confirmation goes to someone not subscribed yet: no List-Unsubscribe,
    List-Unsubscribe-Post or List-Id, though its body still links "do not email me"."""
    parsed = send(renderer.confirm_email("https://herald.example.com/confirm/x"), Kind.CONFIRM)
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert header not in parsed, header
    assert parsed["Feedback-ID"] == "confirm:news.example.com:herald"
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and UNSUB in text.get_content()  # type: ignore[attr-defined]


def test_confirmation_on_the_fast_path_has_no_unsubscribe_headers(renderer: Renderer) -> None:
    """The fan-out fast path leaves the list headers off the confirmation too."""
    msg = renderer.confirm_email("https://herald.example.com/confirm/x")
    bulk = BulkMail(msg, mail_from="News <news@example.org>", now=NOW, kind=Kind.CONFIRM)
    parsed = parse(bulk.render(to="a@example.org", unsubscribe_url=UNSUB, preferences_url=PREFS))
    assert "List-Unsubscribe" not in parsed and "List-Id" not in parsed


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("The Daily Herald", '"The Daily Herald"'),
        ('Say "hi" \\ there', '"Say \\"hi\\" \\\\ there"'),
        ("Ärger über München – Eilmeldung", "Ärger über München – Eilmeldung"),
        ("Evil\r\nBcc: all@example.org", '"Evil Bcc: all@example.org"'),
        ("Nul\x00 and\ttab", '"Nul and tab"'),
        ("東京ニュース 🌊", "東京ニュース 🌊"),
        ("A very long site title " * 6, "A very long site title " * 5 + "A very long site title"),
        ("", ""),
    ],
)
def test_list_id_carries_the_site_title_safely(title: str, shown: str) -> None:
    """The site's title (user data) is quoted or encoded in List-Id: line breaks cannot
    start a header, and non-ASCII titles decode to the text."""
    msg = EmailMessage(subject="Hi", html="<p>x</p>", text="x\n", site_title=title)
    parsed = send(msg, mail_from="News <news@münchen.example>")
    label = "<list.xn--mnchen-3ya.example>"
    assert parsed["List-Id"] == (f"{shown} {label}" if shown else label)
    assert "Bcc" not in parsed
