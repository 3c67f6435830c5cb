"""`herald check`: settings, site and templates validated before anything runs; posts too."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import jinja2

from bot.delivery.dkim import DkimKey, key_from_settings
from bot.errors import ConfigError, HeraldError, PostError
from bot.models import Kind, Post
from bot.render.markup import image_sources
from bot.render.renderer import Renderer
from bot.render.splitter import CAPTION_LIMIT, MESSAGE_LIMIT, MarkupError, validate
from bot.settings import Settings, Site
from bot.sources.jekyll.site import load_site

# Gmail clips larger HTML; the spec promises every email stays under it.
EMAIL_HTML_LIMIT = 102_000


def _smtp_summary(url: str, mail_from: str) -> str:
    """The email line of the summary, saying how the SMTP password is protected."""
    from bot.transports.smtp import parse_smtp_url

    config = parse_smtp_url(url)  # already checked: it parses
    line = f"SMTP server {config.host}:{config.port} as {mail_from}"
    if config.login_needs_tls:
        # Checked only when sending: a server without STARTTLS then gets no password, and
        # email waits with an error in the log until the URL or the server is changed.
        line += (
            "; the password goes only over TLS, so the server must offer STARTTLS "
            "(say ?starttls=true to insist, or use smtps://…:465)"
        )
    elif config.auth_without_tls and config.username is not None:
        line += "; WARNING: auth_without_tls=true, the password may travel unencrypted"
    return line


def site_problems(site: Site) -> list[str]:
    """What is missing from the Jekyll site folder, or wrong in its `herald:` settings."""
    from bot.sources.jekyll.reader import breaking_rules

    problems = []
    try:
        breaking_rules(site)
    except ConfigError as exc:
        problems.append(str(exc))
    if not (site.root / "_config.yml").is_file():
        problems.append(
            f"HERALD_SITE_DIR={str(site.root)!r} has no _config.yml; point HERALD_SITE_DIR "
            "at the Jekyll site root (the folder that holds _config.yml and _posts/)."
        )
    if not site.posts_dir.is_dir():
        problems.append(
            f"HERALD_SITE_DIR={str(site.root)!r} has no _posts/ folder; point HERALD_SITE_DIR "
            "at the Jekyll site root, or create _posts/ for the first post."
        )
    return problems


def _sample_post(site: Site) -> Post:
    return Post(
        path="2000-01-01-sample.md",
        slug="sample",
        title="Sample <post> & title",
        date=datetime(2000, 1, 1, 12, tzinfo=UTC),
        url=site.url + "/sample.html",
        body="A **sample** body.",
        excerpt="A **sample** excerpt.",
        author="Desk",
        categories=("News",),
        image=site.url + "/sample.jpg",
        breaking=True,
        label="Breaking",
    )


def template_problems(renderer: Renderer) -> list[str]:
    """Templates that do not compile, or fail on a sample post, each with file and reason."""
    problems = []
    root = renderer.templates_dir
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".html", ".mjml", ".txt")):
        name = path.relative_to(root).as_posix()
        try:
            renderer.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(
                f"templates/{name} line {exc.lineno}: {exc.message}; fix the template syntax."
            )
    if problems:
        return problems
    sample = _sample_post(renderer.site)
    try:
        for kind in (Kind.BREAKING, Kind.POST):
            renderer.post_messages(sample, kind)
            renderer.post_email(sample, kind)
        renderer.digest_messages([sample], date(2000, 1, 1))
        renderer.digest_email([sample], date(2000, 1, 1))
        renderer.broadcast_messages("<b>sample</b>")
        renderer.broadcast_email("<b>sample</b>")
        renderer.confirm_email(renderer.public_url + "/confirm/sample")
    except Exception as exc:  # any template error is reported, not raised, here
        problems.append(f"templates: rendering a sample message failed: {exc}; fix the template.")
    return problems + bot_reply_problems(renderer)


def bot_reply_problems(renderer: Renderer) -> list[str]:
    """Bot replies that fail to render, or render to HTML the Bot API would refuse."""
    from bot.commands.samples import sample_plain, sample_replies

    def reply(template: str, /, **ctx: object) -> str:
        return renderer.text(f"telegram/bot/{template}", **ctx)

    try:
        replies = sample_replies(reply)
        sample_plain(reply)
    except Exception as exc:  # any template error is reported, not raised, here
        return [f"templates/telegram/bot: a sample reply failed to render: {exc}"]
    problems = []
    for name, html in replies.items():
        try:
            validate(html)
        except MarkupError as exc:
            problems.append(f"templates/telegram/bot ({name}): {exc}; Telegram would refuse it.")
    return problems


def local_file(site: Site, url: str) -> Path | None:
    """The file in the site folder a URL of this site points at, or None for other sites."""
    base = site.url.rstrip("/") + "/"
    if not url.startswith(base):
        return None
    return site.root / unquote(urlsplit(url).path[len(urlsplit(base).path) :])


def post_problems(site: Site, renderer: Renderer, post: Post) -> list[str]:
    """Why this post would not go out cleanly on Telegram or by email (empty when it would)."""
    problems = []
    images = [post.image] if post.image else []
    images += [urljoin(post.url, src) for src in image_sources(post.body, fmt=post.format)]
    for url in images:
        path = local_file(site, url)
        if path is not None and not path.is_file():
            problems.append(f"image {url} is missing: no file at {path}")
    kind = Kind.BREAKING if post.breaking else Kind.POST
    try:
        for msg in renderer.post_messages(post, kind):
            validate(msg.text, limit=CAPTION_LIMIT if msg.photo else MESSAGE_LIMIT)
        email = renderer.post_email(post, kind)
    except (MarkupError, HeraldError, ValueError) as exc:
        problems.append(f"cannot be rendered: {exc}")
        return problems
    if "<mj-" in email.html:
        problems.append("the email still contains MJML tags; check the email templates")
    if len(email.html.encode()) > EMAIL_HTML_LIMIT:
        problems.append(f"the email is {len(email.html.encode())} bytes, over Gmail's 102 KB")
    return problems


def check_posts(site: Site, renderer: Renderer) -> int:
    """Render every post file for both channels; print file and reason for each failure."""
    from bot.sources.jekyll.reader import is_post_path, read_post_file

    # The files the watcher reads: Jekyll's name rules, hidden and `_` folders skipped.
    files = sorted(
        p
        for p in site.posts_dir.rglob("*")
        if p.is_file() and is_post_path(p.relative_to(site.posts_dir).as_posix(), site)
    )
    failed = 0
    for path in files:
        rel = path.relative_to(site.posts_dir).as_posix()
        try:
            post = read_post_file(path, rel, site)
        except (PostError, OSError) as exc:
            reasons = [str(exc)]
        else:
            reasons = post_problems(site, renderer, post)
        for reason in reasons:
            print(f"{site.posts_dir / rel}: {reason}", file=sys.stderr)
        failed += bool(reasons)
    print(f"posts: {len(files)} checked, {failed} with problems")
    return failed


def _dkim_summary(key: DkimKey | None) -> list[str]:
    """The DKIM lines of the summary: what signs, and the DNS record receivers look up."""
    if key is None:
        return ["  dkim:     off (set HERALD_DKIM_KEY_FILE to sign every email)"]
    return [
        f"  dkim:     RSA-{key.bits} key signs for {key.domain} as selector {key.selector}; "
        "publish this DNS TXT record:",
        f"            {key.record_name}",
        f"            {key.record_value}",
    ]


def _summary(settings: Settings, site: Site, dkim_key: DkimKey | None) -> None:
    outbox = settings.outbox_dir
    if settings.telegram_token is None:
        telegram = f"files in {outbox / 'telegram'}/ (set HERALD_TELEGRAM_TOKEN to send for real)"
    else:
        telegram = f"Bot API at {settings.telegram_api_url}"
        if settings.telegram_channel:
            telegram += f", every new post also to {settings.telegram_channel}"
    if settings.smtp_url is None:
        email = f"files in {outbox / 'email'}/ (set HERALD_SMTP_URL to send for real)"
    else:
        email = _smtp_summary(settings.smtp_url.get_secret_value(), settings.mail_from)
    print("herald check: configuration OK")
    print(f"  site:     {site.title} <{site.url}>, time zone {site.tz.key}")
    print(f"  watching: {site.posts_dir}")
    print(f"  telegram: {telegram}")
    print(f"  email:    {email}")
    print("\n".join(_dkim_summary(dkim_key)))
    print(f"  web:      {settings.public_base} (listening on {settings.web_listen})")
    print(f"  digest:   daily at {settings.digest_time} {site.tz.key}")


def check(settings: Settings, posts: bool, *, templates_dir: Path | None = None) -> int:
    """Validate everything `herald run` needs; 0 when it can start, 1 with reasons otherwise.

    The settings themselves were validated as they were loaded, as for `herald run`.
    """
    problems: list[str] = []
    if settings.site_git is not None or settings.feed_url is not None:
        from bot.commands.check_sources import source_problems

        problems += asyncio.run(source_problems(settings))
    dkim_key: DkimKey | None = None
    try:
        dkim_key = key_from_settings(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    site: Site | None = None
    try:
        site = load_site(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    renderer = None
    if site is not None:
        problems += site_problems(site)
        renderer = Renderer(site, public_url=settings.public_base, templates_dir=templates_dir)
        problems += template_problems(renderer)
    if problems or site is None or renderer is None:
        print("herald check: configuration problems:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    _summary(settings, site, dkim_key)
    if posts and check_posts(site, renderer):
        return 1
    return 0
