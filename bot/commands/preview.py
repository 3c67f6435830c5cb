"""`herald preview FILE`: write exactly what a post would send, without sending anything."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.policy import SMTP
from pathlib import Path

from bot.delivery.mail import fill, personalize, preview_links
from bot.errors import PostError
from bot.models import Kind
from bot.render.renderer import Renderer
from bot.settings import Settings
from bot.sources.jekyll.rules import POSTS_DIR, post_key
from bot.sources.jekyll.site import load_site

PREVIEW_RECIPIENT = "reader@example.com"


def _key_below_posts(path: Path) -> str:
    """A post key for a file in no site: its path below the nearest `_posts/`, else its name."""
    for parent in path.parents:
        if parent.name == POSTS_DIR:
            return path.relative_to(parent).as_posix()
    return path.name


def site_and_key(settings: Settings, file: Path) -> tuple[Path, str]:
    """The site to preview `file` in, and the post key (see rules.site_path) to read it as.

    A file anywhere in HERALD_SITE_DIR is that site's, at its place there (a draft outside
    every `_posts/` is read as if it were in `_posts/`); a post of another Jekyll site (a
    folder with `_config.yml` and the file in one of its `_posts/`) is that site's; any
    other file is read as a post of HERALD_SITE_DIR.
    """
    resolved = file.resolve()
    configured = settings.site_dir.resolve()
    if resolved.is_relative_to(configured):
        key = post_key(resolved.relative_to(configured).as_posix())
        return settings.site_dir, key if key is not None else resolved.name
    for parent in resolved.parents:
        if (parent / "_config.yml").is_file():
            key = post_key(resolved.relative_to(parent).as_posix())
            if key is not None:
                return parent, key
            break
    return settings.site_dir, _key_below_posts(resolved)


def _emit(outputs: list[tuple[str, bytes]], out: Path | None) -> None:
    """Files into `out`, or the contents to stdout with each name on stderr."""
    for name, data in outputs:
        if out is None:
            print(f"==> {name} <==", file=sys.stderr, flush=True)
            sys.stdout.buffer.write(data + (b"" if data.endswith(b"\n") else b"\n"))
            sys.stdout.flush()
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
            print(f"wrote {out / name}", file=sys.stderr)


def preview(
    settings: Settings, file: Path, *, telegram: bool, email: bool, out: Path | None
) -> int:
    """Render one post file for Telegram and/or email as `herald run` would send it."""
    from bot.sources.jekyll.reader import read_post_file

    root, rel = site_and_key(settings, file)
    settings = settings.model_copy(update={"site_dir": root})
    site = load_site(settings)
    try:
        post = read_post_file(file, rel, site)
    except PostError as exc:
        print(f"{file}: {exc}", file=sys.stderr)
        return 1
    renderer = Renderer(site, public_url=settings.public_base)
    kind = Kind.BREAKING if post.breaking else Kind.POST
    outputs: list[tuple[str, bytes]] = []
    if telegram or not email:
        for k, msg in enumerate(renderer.post_messages(post, kind), start=1):
            name = f"{k:02d}-{msg.method}.html"
            outputs.append((name, msg.text.encode()))
            if msg.photo or msg.button_url:
                print(
                    f"{name}: photo={msg.photo or '-'} button={msg.button_text!r} → "
                    f"{msg.button_url or '-'}",
                    file=sys.stderr,
                )
    if email or not telegram:
        rendered = renderer.post_email(post, kind)
        links = preview_links(settings.public_base)
        mime = personalize(
            rendered,
            to=PREVIEW_RECIPIENT,
            mail_from=settings.mail_from,
            now=datetime.now(UTC),
            kind=kind,
            **links,
        )
        page, _text = fill(rendered, **links)
        outputs.append((f"{post.slug}.eml", mime.as_bytes(policy=SMTP)))
        outputs.append((f"{post.slug}.html", page.encode()))
    _emit(outputs, out)
    return 0
