"""Rendering: a Post (or several) becomes Telegram messages and emails from templates/."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import mjml
from markupsafe import Markup

from bot.models import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    EmailMessage,
    Kind,
    Post,
    Rendered,
    TelegramMessage,
)
from bot.render import email_markup, markup
from bot.render.splitter import CAPTION_LIMIT, MESSAGE_LIMIT, split_html, visible_len
from bot.settings import Site

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
# Filled per recipient by bot.delivery.mail.personalize, after the one MJML compile per message.
# Gmail clips HTML above 102 KB; leave room for the per-recipient links filled in later.
EMAIL_HTML_BUDGET = 100_000
DIGEST_EMAIL_MAX_POSTS = 60
DIGEST_TELEGRAM_MAX_POSTS = 40
EXCERPT_CHARS = 280
# Control characters: invalid in HTML and XML (MJML refuses them) and unsafe in headers.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def make_environment(templates_dir: Path) -> jinja2.Environment:
    """The one Jinja environment: autoescape for HTML and MJML, not for plain text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "mjml", "xml"), default_for_string=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shorten"] = markup.shorten
    return env


@dataclass(frozen=True)
class Palette:
    """The colours of an email, named by what they paint; templates read them as `light`/`dark`."""

    page: str  # behind the card: the masthead and the footer sit on it
    card: str
    text: str
    heading: str
    muted: str  # dates, the masthead
    footer: str
    accent: str  # links, labels, the button
    rule: str  # dividers
    quote: str  # quoted text; its border is `rule`
    code: str  # behind preformatted text


# Every text colour here reaches WCAG's 4.5:1 on the ground it sits on (tests/render check it).
LIGHT = Palette(
    page="#f2f2f2", card="#ffffff", text="#222222", heading="#111111", muted="#666666",
    footer="#666666", accent="#b00020", rule="#dddddd", quote="#444444", code="#f4f4f4",
)  # fmt: skip
DARK = Palette(
    page="#121212", card="#1e1e1e", text="#e8e8e8", heading="#ffffff", muted="#b3b3b3",
    footer="#a6a6a6", accent="#ff8a80", rule="#3a3a3a", quote="#c8c8c8", code="#2a2a2a",
)  # fmt: skip


def _reading(post: Post) -> dict[str, Any]:
    """How a post's excerpt is read: its format, links joining its URL, the body's link
    reference definitions (as Jekyll keeps them for an excerpt)."""
    return {"base_url": post.url, "fmt": post.format, "definitions": post.body}


def fit_parts(parts: Sequence[str], count: int, *, first_limit: int = MESSAGE_LIMIT) -> list[str]:
    """At most `count` parts: what goes past the last is cut, ending with an ellipsis.

    A correction edits the messages already sent and sends no new one, so a post that grew
    ends where its last message ends; the button under it leads on to the whole post.
    """
    if len(parts) <= count or count < 1:
        return list(parts)
    limit = first_limit if count == 1 else MESSAGE_LIMIT
    rest = "\n".join(parts[count - 1 :])
    head = split_html(rest, limit=limit - 1)[0].rstrip()
    return [*parts[: count - 1], head + "…"]


class Renderer:
    """Built once; turns posts, digests and broadcasts into what each channel sends."""

    def __init__(self, site: Site, *, public_url: str, templates_dir: Path | None = None) -> None:
        self.site = site
        self.public_url = public_url  # HERALD_PUBLIC_URL, without a trailing slash
        self.templates_dir = templates_dir or TEMPLATES_DIR
        self.env = make_environment(self.templates_dir)
        self.env.filters["local"] = self._local
        self.env.globals.update(
            site=site,
            site_url=site.url,
            site_title=site.title,
            public_url=public_url,
            unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
            preferences_url=PREFERENCES_PLACEHOLDER,
            light=LIGHT,
            dark=DARK,
        )

    def _local(self, moment: datetime | date, fmt: str) -> str:
        """Format a date or time in the site's time zone."""
        if isinstance(moment, datetime):
            moment = moment.astimezone(self.site.tz)
        return moment.strftime(fmt)

    def text(self, template: str, **ctx: Any) -> str:
        """Render any template by its path under templates/ (e.g. `telegram/bot/help.html`)."""
        return self.env.get_template(template).render(**ctx).strip()

    # -- Telegram ----------------------------------------------------------
    def _button(self) -> str:
        return " ".join(self.text("telegram/button.txt").split())

    def _messages(
        self, html: str, *, photo: str | None, button_url: str | None, fit: int | None = None
    ) -> tuple[TelegramMessage, ...]:
        """Split into Bot API calls: a photo with the first part as caption, then texts;
        `fit`: at most that many parts (`fit_parts`)."""
        first = CAPTION_LIMIT if photo else MESSAGE_LIMIT
        parts = split_html(html, limit=MESSAGE_LIMIT, first_limit=first)
        if fit is not None:
            parts = fit_parts(parts, fit, first_limit=first)
        out = [
            TelegramMessage(
                method="sendPhoto" if photo and k == 0 else "sendMessage",
                text=part,
                photo=photo if k == 0 else None,
            )
            for k, part in enumerate(parts)
        ]
        if button_url:
            last = out[-1]
            out[-1] = TelegramMessage(
                last.method, last.text, last.photo, self._button(), button_url
            )
        return tuple(out)

    def _post_html(self, post: Post, kind: Kind, *, updated: bool) -> str:
        body = Markup(markup.to_telegram_html(post.excerpt, **_reading(post)))
        name = "telegram/breaking.html" if kind is Kind.BREAKING else "telegram/post.html"
        return self.text(name, post=post, kind=str(kind), body=body, updated=updated)

    def post(self, post: Post, kind: Kind) -> Rendered:
        """A post's announcement on every channel: its Telegram messages and its email."""
        return Rendered(telegram=self.post_messages(post, kind), email=self.post_email(post, kind))

    def post_messages(
        self, post: Post, kind: Kind, *, updated: bool = False
    ) -> tuple[TelegramMessage, ...]:
        """A breaking alert (Kind.BREAKING) or every-post notice (Kind.POST) for Telegram;
        `updated`: with the "updated" line of a corrected post."""
        html = self._post_html(post, kind, updated=updated)
        return self._messages(html, photo=post.image, button_url=post.url)

    # -- corrections -------------------------------------------------------
    def corrected_messages(
        self, post: Post, kind: Kind, sent: Sequence[TelegramMessage], *, updated: bool = True
    ) -> tuple[TelegramMessage, ...]:
        """A corrected post's messages, marked updated, in the shape of those `sent`: as
        many parts, and a photo only where one was sent (Telegram cannot turn a text message
        into a photo or back). A photo sent whose post has no image now keeps its photo."""
        if not sent:
            return ()
        photo = (post.image or sent[0].photo) if sent[0].photo else None
        html = self._post_html(post, kind, updated=updated)
        return self._messages(html, photo=photo, button_url=post.url, fit=len(sent))

    def updated_line(self) -> str:
        """The "updated" line alone: what a part a correction no longer needs is edited to."""
        return self.text("telegram/_updated.html")

    def withdrawn_text(self, post: Post) -> str:
        """The notice a withdrawn post's messages are edited to where they cannot be deleted."""
        return self.text("telegram/withdrawn.html", post=post)

    def digest_messages(
        self, posts: Sequence[Post], day: date, updated: Collection[str] = frozenset()
    ) -> tuple[TelegramMessage, ...]:
        """The daily digest as one Telegram message; the overflow becomes "and N more".

        `updated`: paths of the posts corrected since they were announced (marked so)."""
        if not posts:
            return ()
        count = min(len(posts), DIGEST_TELEGRAM_MAX_POSTS)
        while True:
            html = self.text(
                "telegram/digest.html",
                posts=posts[:count],
                more=len(posts) - count,
                day=day,
                updated=updated,
            )
            if visible_len(html) <= MESSAGE_LIMIT or count == 0:
                break
            count -= 1
        return self._messages(html, photo=None, button_url=self.site.url)

    def broadcast_messages(self, html: str) -> tuple[TelegramMessage, ...]:
        """An admin's message (already valid Telegram HTML) in the broadcast wrapper."""
        wrapped = self.text("telegram/broadcast.html", body=Markup(html))
        return self._messages(wrapped, photo=None, button_url=None)

    # -- Email -------------------------------------------------------------
    def _email(self, name: str, **ctx: Any) -> EmailMessage:
        """Render `email/<name>.txt` (subject, preheader, text) then compile `<name>.mjml`."""
        module = self.env.get_template(f"email/{name}.txt").make_module(ctx)
        subject = _CONTROL.sub(
            "", " ".join(str(getattr(module, "subject", self.site.title)).split())
        )
        preheader = _CONTROL.sub("", " ".join(str(getattr(module, "preheader", "")).split()))
        text = _CONTROL.sub("", str(module).strip() + "\n")
        source = self.env.get_template(f"email/{name}.mjml").render(
            subject=subject, preheader=preheader, **ctx
        )
        source = _CONTROL.sub("", source)
        html = mjml.mjml2html(source, fonts={}, disable_comments=True)
        # ASCII with character references: 1 byte per character in memory, so filling in
        # each recipient's links is a quick copy rather than a 4-bytes-per-character one.
        html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
        return EmailMessage(
            subject=subject, html=html, text=text, preheader=preheader, site_title=self.site.title
        )

    def _post_ctx(self, post: Post) -> dict[str, Any]:
        return {
            "post": post,
            "body_html": Markup(email_markup.to_email_html(post.excerpt, **_reading(post))),
            "body_text": markup.to_plain_text(post.excerpt, **_reading(post)),
        }

    def post_email(self, post: Post, kind: Kind) -> EmailMessage:
        """A breaking alert or every-post notice as an email."""
        return self._email("alert", kind=str(kind), **self._post_ctx(post))

    def digest_email(
        self, posts: Sequence[Post], day: date, updated: Collection[str] = frozenset()
    ) -> EmailMessage:
        """The daily digest email, kept under Gmail's clipping size with "and N more";
        the posts whose path is in `updated` are marked as corrected."""
        items = []
        for p in posts:
            html, text = email_markup.summary(p.excerpt, limit=EXCERPT_CHARS, **_reading(p))
            items.append(
                {
                    "post": p,
                    "summary_html": Markup(html),
                    "summary": text,
                    "updated": p.path in updated,
                }
            )
        count = min(len(items), DIGEST_EMAIL_MAX_POSTS)
        while True:
            msg = self._email("digest", items=items[:count], more=len(items) - count, day=day)
            size = len(msg.html.encode())
            if size <= EMAIL_HTML_BUDGET or count == 0:
                return msg
            # Shrink in proportion to the overshoot; always by at least one post.
            count = min(count - 1, int(count * EMAIL_HTML_BUDGET / size * 0.95))
            count = max(count, 0)

    def broadcast_email(self, html: str) -> EmailMessage:
        """An admin broadcast (Telegram HTML) as an email."""
        body_html, body_text = email_markup.telegram_to_email(html)
        return self._email("broadcast", body_html=Markup(body_html), body_text=body_text)

    def confirm_email(
        self, confirm_url: str, *, breaking: bool = True, daily: bool = True
    ) -> EmailMessage:
        """The double opt-in message with its Confirm button (rendered per address)."""
        return self._email("confirm", confirm_url=confirm_url, breaking=breaking, daily=daily)
