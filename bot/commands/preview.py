"""`herald preview FILE`: write exactly what a post would send, without sending anything."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.policy import SMTP
from pathlib import Path

from bot.delivery.mail import fill, personalize, preview_links
from bot.errors import ConfigError, PostError
from bot.models import Kind
from bot.render.renderer import Renderer
from bot.settings import Settings, load_site

PREVIEW_RECIPIENT = "reader@example.com"


def site_dir_for(settings: Settings, file: Path) -> Path:
    """HERALD_SITE_DIR when the file is one of its posts, else the folder above `_posts`."""
    resolved = file.resolve()
    if resolved.is_relative_to((settings.site_dir / "_posts").resolve()):
        return settings.site_dir
    for parent in resolved.parents:
        if parent.name == "_posts":
            return parent.parent
    raise ConfigError(
        f"{file} is not inside a _posts/ folder; give the path of a post file of the site "
        "(HERALD_SITE_DIR, or any Jekyll site's _posts/)"
    )


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

    root = site_dir_for(settings, file)
    settings = settings.model_copy(update={"site_dir": root})
    site = load_site(settings)
    rel = file.resolve().relative_to((root / "_posts").resolve()).as_posix()
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
