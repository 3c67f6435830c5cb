"""Posts, digests and broadcasts rendered from templates/ for Telegram and email."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.delivery.mail import fill
from bot.models import EmailMessage, Kind, Post, TelegramMessage
from bot.render.markup import to_telegram_html
from bot.render.renderer import DARK, LIGHT, Renderer
from bot.render.splitter import CAPTION_LIMIT, MESSAGE_LIMIT, visible_len, visible_text
from bot.settings import Settings, Site, load_settings
from bot.sources.jekyll.site import load_site
from tests.fakes.tg_html import check
from tests.render.test_markup import _MARKDOWN, _PIECES

GOLDEN = Path(__file__).parent / "golden"
DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "site"
# HERALD_UPDATE_GOLDEN=1 rewrites the golden files after a deliberate template change.
UPDATE = os.environ.get("HERALD_UPDATE_GOLDEN") == "1"
DAY = date(2026, 11, 22)


def make_post(**changes: object) -> Post:
    post = Post(
        path="world/2026-11-22-summit-ends-with-agreement.md",
        slug="summit-ends-with-agreement",
        title="Climate summit ends with agreement on methane",
        date=datetime(2026, 11, 22, 17, 5, tzinfo=UTC),
        url="https://news.example.com/world/2026/11/22/summit-ends-with-agreement.html",
        body="Delegates agreed.",
        excerpt=(
            "Delegates from **120 countries** agreed on Friday to cut methane emissions by a "
            "third by 2035. The deal includes money for [satellites](/sat.html) & repairs.\n\n"
            "* Methane cut: one third by 2035\n* Monitoring fund: $2 billion"
        ),
        author="Foreign desk",
        categories=("World",),
        tags=("climate", "summit"),
        image="https://news.example.com/assets/images/summit.jpg",
    )
    return replace(post, **changes)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return load_settings(site_dir=DEMO_SITE, public_url="https://herald.example.com")


@pytest.fixture
def site(settings: Settings) -> Site:
    return load_site(settings)


@pytest.fixture
def renderer(site: Site, settings: Settings) -> Renderer:
    return Renderer(site, public_url=settings.public_base)


def dump_messages(messages: tuple[TelegramMessage, ...]) -> str:
    out = []
    for k, m in enumerate(messages, start=1):
        out.append(
            f"=== {k:02d} {m.method} photo={m.photo} button={m.button_text!r} {m.button_url}"
        )
        out.append(m.text)
    return "\n".join(out) + "\n"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    # A missing golden file fails too: a test that wrote its own expectation could not fail.
    assert path.exists(), f"{path} is missing: create it with HERALD_UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), f"differs from {path}"


def assert_valid(messages: tuple[TelegramMessage, ...]) -> None:
    assert messages
    for m in messages:
        check(m.text, caption=m.method == "sendPhoto")
        assert visible_len(m.text) <= (CAPTION_LIMIT if m.photo else MESSAGE_LIMIT)


def test_breaking_alert_golden(renderer: Renderer) -> None:
    """The sample post's breaking alert is exactly the reviewed Telegram HTML and email text."""
    post = make_post(breaking=True)
    messages = renderer.post_messages(post, Kind.BREAKING)
    assert_valid(messages)
    assert_golden("breaking.telegram.html", dump_messages(messages))
    assert_golden("breaking.email.txt", renderer.post_email(post, Kind.BREAKING).text)


def test_every_post_notice_golden(renderer: Renderer) -> None:
    """A plain post without image becomes one sendMessage with the label and a button."""
    post = make_post(image=None, label="Analysis")
    messages = renderer.post_messages(post, Kind.POST)
    assert [m.method for m in messages] == ["sendMessage"]
    assert messages[0].text.startswith("<b>ANALYSIS</b>")
    assert_golden("post.telegram.html", dump_messages(messages))


def test_digest_golden(renderer: Renderer) -> None:
    """The daily digest lists each post as a link, breaking ones marked."""
    posts = [make_post(breaking=True), make_post(title="Second & last", url="https://n.ex/2")]
    assert_golden("digest.telegram.html", dump_messages(renderer.digest_messages(posts, DAY)))
    assert_golden("digest.email.txt", renderer.digest_email(posts, DAY).text)


def test_hostile_title_is_escaped_everywhere(renderer: Renderer) -> None:
    """A title with markup and ampersands is shown literally on both channels, never as HTML."""
    post = make_post(title='<script>alert("x")</script> & <b>co</b>', excerpt="x <img src=y>")
    messages = renderer.post_messages(post, Kind.BREAKING)
    assert_valid(messages)
    assert "<script>" not in messages[0].text
    assert "&lt;script&gt;" in messages[0].text
    email = renderer.post_email(post, Kind.BREAKING)
    assert "<script>" not in email.html and "<img src=y>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert email.subject == 'Breaking: <script>alert("x")</script> & <b>co</b>'


_TITLES = st.lists(st.one_of(_PIECES, st.text(min_size=1, max_size=20)), min_size=1, max_size=12)


def _squash(text: str) -> str:
    return "".join(text.split())


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    title=_TITLES.map("".join),
    excerpt=_MARKDOWN,
    repeat=st.sampled_from([1, 3, 200]),
    image=st.booleans(),
    kind=st.sampled_from([Kind.BREAKING, Kind.POST]),
)
def test_any_post_renders_valid_complete_messages(
    renderer: Renderer, title: str, excerpt: str, repeat: int, image: bool, kind: Kind
) -> None:
    """Hostile titles and Markdown, up to tens of KB, give valid messages that lose no text."""
    body = "\n\n".join([excerpt] * repeat)
    post = make_post(title=title, excerpt=body, image=make_post().image if image else None)
    messages = renderer.post_messages(post, kind)
    assert_valid(messages)
    joined = _squash("".join(visible_text(m.text) for m in messages))
    assert _squash(title) in joined
    assert _squash(visible_text(to_telegram_html(body, base_url=post.url))) in joined


def test_control_characters_do_not_break_email(renderer: Renderer) -> None:
    """Stray control characters in a title or excerpt are dropped, and the email still renders."""
    email = renderer.post_email(make_post(title="Vote\x01 count\x1b", excerpt="a\x02b"), Kind.POST)
    assert email.subject == "Vote count"
    assert "ab" in email.text and "<mj-" not in email.html


def test_long_excerpt_with_image_becomes_caption_then_messages(renderer: Renderer) -> None:
    """A long post with an image: a photo with a caption ≤ 1024, the rest as text messages."""
    excerpt = "\n\n".join(f"Paragraph {n} with some words in it." * 8 for n in range(60))
    messages = renderer.post_messages(make_post(excerpt=excerpt), Kind.POST)
    assert_valid(messages)
    assert messages[0].method == "sendPhoto" and messages[0].photo
    assert {m.method for m in messages[1:]} == {"sendMessage"}
    assert all(m.button_url is None for m in messages[:-1])
    assert messages[-1].button_text == "Read on the site"
    assert "Paragraph 59" in messages[-1].text


def test_digest_of_any_size_stays_within_limits(renderer: Renderer) -> None:
    """A day with 500 long posts still gives one Telegram message and an email under 102 KB."""
    posts = [
        make_post(title=f"Story number {n} " + "with a long title " * 8, excerpt="word " * 400)
        for n in range(500)
    ]
    messages = renderer.digest_messages(posts, DAY)
    assert_valid(messages)
    assert len(messages) == 1 and "more on the site" in messages[0].text
    email = renderer.digest_email(posts, DAY)
    assert len(email.html.encode()) < 100_000
    assert "more on the site" in email.html and "more on the site" in email.text


def test_email_is_compiled_mjml_without_third_party_fonts(renderer: Renderer) -> None:
    """Emails hold no MJML tags, no Google Fonts link, the preheader, image and footer links."""
    email = renderer.post_email(make_post(), Kind.BREAKING)
    assert "<mj-" not in email.html
    assert "fonts.googleapis" not in email.html
    assert email.preheader and email.preheader[:40] in email.html
    assert 'src="https://news.example.com/assets/images/summit.jpg"' in email.html
    assert "Read on the site" in email.html
    assert email.html.count("{{UNSUBSCRIBE_URL}}") == 1
    assert "{{PREFERENCES_URL}}" in email.html and "{{UNSUBSCRIBE_URL}}" in email.text


def test_broadcast_keeps_admin_formatting(renderer: Renderer) -> None:
    """An admin's formatted broadcast arrives with its formatting and literal text intact."""
    html = "<b>Heads up</b>: &lt;site&gt; &amp; co"
    messages = renderer.broadcast_messages(html)
    assert_valid(messages)
    assert html in messages[0].text
    email = renderer.broadcast_email(html)
    assert "<b>Heads up</b>: &lt;site&gt; &amp; co" in email.html
    assert "Heads up: <site> & co" in email.text


def test_confirm_email_carries_the_link(renderer: Renderer) -> None:
    """The opt-in email names what was asked for and links to the confirmation page."""
    email = renderer.confirm_email("https://herald.example.com/confirm/abc", daily=False)
    assert "https://herald.example.com/confirm/abc" in email.html
    assert "breaking news alerts from" in email.text
    assert email.subject == "Confirm your subscription to The Daily Herald"


def test_text_renders_any_template(renderer: Renderer, tmp_path: Path, site: Site) -> None:
    """Bot replies render from their own template file, with HTML autoescaped."""
    (tmp_path / "telegram").mkdir()
    (tmp_path / "telegram" / "hello.html").write_text("Hi {{ name }}, from {{ site_title }}\n")
    own = Renderer(site, public_url=renderer.public_url, templates_dir=tmp_path)
    assert own.text("telegram/hello.html", name="<Ann & Bo>") == (
        "Hi &lt;Ann &amp; Bo&gt;, from The Daily Herald"
    )


def test_every_demo_post_renders_cleanly(renderer: Renderer, site: Site) -> None:
    """Every post of the demo site, parsed as the watcher parses it, renders valid messages."""
    from bot.sources.jekyll.reader import parse_post

    files = sorted(p for p in site.posts_dir.rglob("*.md"))
    assert files
    for path in files:
        post = parse_post(path.relative_to(site.posts_dir).as_posix(), path.read_bytes(), site)
        for kind in (Kind.BREAKING, Kind.POST):
            assert_valid(renderer.post_messages(post, kind))
            assert "<mj-" not in renderer.post_email(post, kind).html


class _Links(HTMLParser):
    """Collects every `href` of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs.extend(value or "" for name, value in attrs if name == "href")


def every_kind(renderer: Renderer) -> dict[str, EmailMessage]:
    """One email of each kind, personalised, with Markdown and admin links in them."""
    linked = make_post(
        excerpt="See [the report](/report.html), [an FTP link](ftp://files.example.org/x) "
        "and <https://other.example.org/a?b=1&c=2>.\n\nMore [here](https://n.ex/more)."
    )
    posts = [linked, make_post(title="Second", url="https://n.ex/2", image=None)]
    broadcast = 'Read <a href="https://news.example.com/note.html?a=1&amp;b=2">the note</a>.'
    return {
        "alert": renderer.post_email(linked, Kind.BREAKING),
        "notice": renderer.post_email(replace(linked, image=None), Kind.POST),
        "digest": renderer.digest_email(posts, DAY),
        "broadcast": renderer.broadcast_email(broadcast),
        "confirmation": renderer.confirm_email("https://herald.example.com/confirm/abc"),
    }


@pytest.mark.parametrize("kind", ["alert", "notice", "digest", "broadcast", "confirmation"])
def test_every_html_link_is_in_the_text_part(renderer: Renderer, kind: str) -> None:
    """Each link of an email's HTML part is a real http(s) link also written in its text part."""
    html, text = fill(
        every_kind(renderer)[kind],
        unsubscribe_url="https://herald.example.com/unsubscribe/t?x=1&y=2",
        preferences_url="https://herald.example.com/preferences/t",
    )
    links = _Links()
    links.feed(html)
    in_text = {url.rstrip(".,;:!?") for url in re.findall(r"https?://[^\s()<>]+", text)}
    assert links.hrefs
    for href in links.hrefs:
        assert href.startswith(("https://", "http://")), href
        assert href in in_text, f"{href} is in the HTML part only"


def test_digest_summary_keeps_its_markdown_link(renderer: Renderer) -> None:
    """A link in a digest entry's summary stays a link in the HTML and a URL in the text."""
    email = renderer.digest_email([make_post()], DAY)
    assert '<a href="https://news.example.com/sat.html"' in email.html
    assert ">satellites</a> &amp; repairs" in email.html
    assert "satellites (https://news.example.com/sat.html) & repairs" in email.text


def test_preheader_is_hidden_without_tiny_or_invisible_text(renderer: Renderer) -> None:
    """The preheader is hidden by display and height, not by a 1px font or a background colour."""
    email = renderer.post_email(make_post(), Kind.BREAKING)
    found = re.search(r'<div style="([^"]*)">' + re.escape(email.preheader[:40]), email.html)
    assert found, "the preheader is not the first text of its own div"
    style = found.group(1).replace(" ", "")
    assert "display:none" in style and "max-height:0" in style and "mso-hide:all" in style
    assert "font-size" not in style and "color" not in style


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a `#rrggbb` colour."""
    channels = [int(colour[k : k + 2], 16) / 255 for k in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two `#rrggbb` colours, from 1 to 21."""
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula_matches_wcag_examples() -> None:
    """The contrast helper gives WCAG's known ratios: 21 for black on white, 4.54 for #767676."""
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


def test_footer_and_text_contrast_at_least_4_5_light_and_dark(renderer: Renderer) -> None:
    """Footer, muted and body text reach WCAG's 4.5:1 in both palettes, and the email uses them."""
    for palette in (LIGHT, DARK):
        assert contrast(palette.footer, palette.page) >= 4.5, palette
        assert contrast(palette.muted, palette.page) >= 4.5, palette
        assert contrast(palette.muted, palette.card) >= 4.5, palette
        assert contrast(palette.text, palette.card) >= 4.5, palette
        assert contrast(palette.accent, palette.card) >= 4.5, palette
    html = renderer.post_email(make_post(), Kind.BREAKING).html
    assert '<meta name="color-scheme" content="light dark"' in html
    assert f"background-color:{LIGHT.page}" in html
    assert f'style="color:{LIGHT.footer}">Unsubscribe</a>' in html
    dark = html.split("@media (prefers-color-scheme: dark)", 1)[1].split("</style>", 1)[0]
    assert DARK.page in dark and DARK.footer in dark and DARK.card in dark
