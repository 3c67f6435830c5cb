"""Every kind of email, as a complete MIME message, scored by SpamAssassin's local rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.delivery.mail import outgoing, personalize
from bot.models import EmailMessage, Kind
from bot.render.renderer import Renderer
from bot.settings import load_settings
from bot.sources.jekyll.site import load_site
from tests.render.test_renderer import DEMO_SITE, make_post

SPAMASSASSIN = shutil.which("spamassassin")
pytestmark = pytest.mark.skipif(
    SPAMASSASSIN is None,
    reason="SpamAssassin is not installed; install it with `apt-get install spamassassin` "
    "(or run .ci/run as root, which installs it) to score the emails",
)
# A rule worth less than this is informational (HTML_MESSAGE, NO_RECEIVED, image ratios).
NOTEWORTHY_PTS = 0.1
_STATUS = re.compile(r"^X-Spam-Status: (.*?)\n(?=\S)", re.M | re.S)
_RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z][A-Z0-9_]+)\s", re.M)


def mails(renderer: Renderer) -> dict[str, tuple[EmailMessage, Kind]]:
    """One email of each kind Herald sends, with links, an image and Markdown, and its Kind."""
    posts = [
        make_post(breaking=True),
        make_post(
            title="Rail strike called off after overnight talks",
            url="https://news.example.com/uk/2026/11/22/rail-strike-called-off.html",
            excerpt="Unions and operators [agreed](/uk/pay-deal.html) on a two-year pay deal.",
            image=None,
        ),
        make_post(title="Markets close higher", url="https://news.example.com/2", image=None),
    ]
    broadcast = (
        "<b>Programme note</b>: the live blog of the summit moves to "
        '<a href="https://news.example.com/live/summit.html">its own page</a> tomorrow.'
    )
    return {
        "alert": (renderer.post_email(make_post(breaking=True), Kind.BREAKING), Kind.BREAKING),
        "digest": (renderer.digest_email(posts, date(2026, 11, 22)), Kind.DIGEST),
        "broadcast": (renderer.broadcast_email(broadcast), Kind.BROADCAST),
        "confirmation": (
            renderer.confirm_email("https://herald.example.com/confirm/abc.def"),
            Kind.CONFIRM,
        ),
    }


def spam_report(data: bytes, home: Path) -> tuple[float, dict[str, float], str]:
    """(score, points per rule hit, X-Spam-Status) from `spamassassin -L -t` on one message."""
    assert SPAMASSASSIN is not None
    done = subprocess.run(
        [SPAMASSASSIN, "-L", "-t"],  # -L: local tests only, nothing asks the network
        input=data,
        capture_output=True,
        check=True,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
    )
    out = done.stdout.decode("utf-8", "replace")
    status = _STATUS.search(out)
    assert status, f"no X-Spam-Status header in SpamAssassin's answer: {done.stderr[-400:]!r}"
    header = " ".join(status.group(1).split())
    found = re.search(r"score=(-?\d+(?:\.\d+)?)", header)
    assert found, header
    report = out.split("Content analysis details:", 1)[-1]
    rules = {name: float(pts) for pts, name in _RULE.findall(report)}
    return float(found.group(1)), rules, header


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    settings = load_settings(site_dir=DEMO_SITE, public_url="https://herald.example.com")
    return Renderer(load_site(settings), public_url=settings.public_base)


@pytest.mark.parametrize("kind", ["alert", "digest", "broadcast", "confirmation"])
def test_spamassassin_scores_each_kind_below_one(
    renderer: Renderer, kind: str, tmp_path: Path
) -> None:
    """SpamAssassin scores each kind of email under 1.0, with no rule worth noting hit."""
    msg, mail_kind = mails(renderer)[kind]
    mime = personalize(
        msg,
        to="Ann Reader <ann@example.org>",
        mail_from="The Daily Herald <news@news.example.com>",
        unsubscribe_url="https://herald.example.com/unsubscribe/tok.en-1",
        preferences_url="https://herald.example.com/preferences/tok.en-1",
        now=datetime.now(UTC),
        kind=mail_kind,
    )
    score, rules, header = spam_report(outgoing(mime).data, tmp_path)
    noteworthy = {name: pts for name, pts in rules.items() if pts >= NOTEWORTHY_PTS}
    assert score < 1.0, header
    assert not noteworthy, f"{kind}: {noteworthy} ({header})"
