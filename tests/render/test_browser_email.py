"""Rendered emails in headless Chromium: title and button visible, text readable light and dark."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright

from bot.delivery.mail import fill
from bot.models import EmailMessage, Kind
from bot.render.renderer import DARK, LIGHT, Renderer
from bot.settings import load_settings
from bot.sources.jekyll.site import load_site
from tests.render.test_renderer import DEMO_SITE, contrast, make_post

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed; install it with `apt-get install chromium` "
    "(or run .ci/run as root, which installs it) to run the browser email tests",
)


def solid_png(width: int = 600, height: int = 300) -> bytes:
    """A real PNG to stand in for the post photo (the demo site's image is a placeholder)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x30\x60\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    idat = chunk(b"IDAT", zlib.compress(rows))
    return signature + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    settings = load_settings(site_dir=DEMO_SITE, public_url="https://herald.example.com")
    return Renderer(load_site(settings), public_url=settings.public_base)


def open_email(browser: Browser, msg: EmailMessage, name: str, *, scheme: str = "light") -> Page:
    """Open the personalised HTML in a 600 px wide page; only the demo site's files load."""
    html, _ = fill(
        msg,
        unsubscribe_url="https://herald.example.com/unsubscribe/t",
        preferences_url="https://herald.example.com/preferences/t",
    )
    page = browser.new_page(viewport={"width": 640, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]

    def serve(route: Route) -> None:
        # Nothing leaves the machine: the site's images are answered locally, the rest refused.
        url = route.request.url
        if url.startswith("https://news.example.com/") and url.endswith((".jpg", ".png")):
            route.fulfill(body=solid_png(), content_type="image/png")
        else:
            route.abort()

    page.route("**/*", serve)
    page.set_content(html, wait_until="load")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    return page


def test_alert_shows_title_image_and_button(browser: Browser, renderer: Renderer) -> None:
    """In a real browser the alert's title, image and "Read on the site" button are visible."""
    post = make_post(breaking=True, published=True)
    page = open_email(browser, renderer.post_email(post, Kind.BREAKING), "alert")
    title = page.get_by_text(post.title, exact=True)
    button = page.get_by_role("link", name="Read on the site")
    assert title.is_visible() and button.is_visible()
    box = button.bounding_box()
    assert box is not None and box["width"] > 80 and box["height"] > 20
    image = page.locator("img").first
    assert image.is_visible()
    assert page.evaluate("document.images[0].naturalWidth") > 0
    assert page.get_by_role("link", name="Unsubscribe").is_visible()
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_digest_shows_titles_and_button(browser: Browser, renderer: Renderer, scheme: str) -> None:
    """In a real browser, light or dark, the digest's post titles and its button are visible."""
    posts = [make_post(title=f"Story number {n}", url=f"https://n.ex/{n}") for n in range(5)]
    msg = renderer.digest_email(posts, date(2026, 11, 22))
    page = open_email(browser, msg, f"digest-{scheme}", scheme=scheme)
    for n in range(5):
        assert page.get_by_text(f"Story number {n}", exact=True).is_visible()
    button = page.get_by_role("link", name="Read on the site")
    assert button.is_visible()
    page.close()


# The colour a reader sees: the element's own, and the first opaque background behind it.
_COLOURS = """el => {
  const hex = c => '#' + c.match(/\\d+/g).slice(0, 3)
    .map(n => (+n).toString(16).padStart(2, '0')).join('');
  let ground = el;
  while (ground.parentElement && getComputedStyle(ground).backgroundColor === 'rgba(0, 0, 0, 0)')
    ground = ground.parentElement;
  return [hex(getComputedStyle(el).color), hex(getComputedStyle(ground).backgroundColor)];
}"""


def seen_contrast(element: Locator) -> float:
    """The WCAG contrast of an element's text on the background shown behind it."""
    fg, bg = element.evaluate(_COLOURS)
    return contrast(fg, bg)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_footer_and_body_are_readable_in_both_schemes(
    browser: Browser, renderer: Renderer, scheme: str
) -> None:
    """In light and dark mode the footer and body text reach 4.5:1 on what is behind them."""
    post = make_post(breaking=True, published=True)
    page = open_email(
        browser, renderer.post_email(post, Kind.BREAKING), f"alert-{scheme}", scheme=scheme
    )
    _, ground = page.locator("body").evaluate(_COLOURS)
    assert ground == (DARK if scheme == "dark" else LIGHT).page
    for element in (
        page.get_by_role("link", name="Unsubscribe"),
        page.get_by_text("You receive this email because", exact=False),
        page.locator("p", has_text="Delegates from"),
        page.get_by_role("link", name="satellites"),
        page.get_by_text(post.title, exact=True),
    ):
        assert element.is_visible()
        assert seen_contrast(element) >= 4.5, (scheme, element)
    page.close()
