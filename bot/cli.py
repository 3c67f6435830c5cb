"""The `herald` command: argument parsing and dispatch; the work lives in other modules."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bot.commands import backup as backup_cli
from bot.commands import migrate as migrate_cli
from bot.commands import stats as stats_cli
from bot.commands import subscribers as subscribers_cli
from bot.errors import ConfigError
from bot.settings import Settings, load_settings
from bot.store import StoreError

log = logging.getLogger("herald")

Command = Callable[[argparse.Namespace, Settings], int]
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Replaces secrets in every formatted line, tracebacks included: a second safeguard."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        return text


def redact_secrets(settings: Settings) -> None:
    """Keep the bot token, passwords in URLs and the secrets out of every log line."""
    secrets = []
    if settings.telegram_token is not None:
        secrets.append(settings.telegram_token.get_secret_value())
    for url in (settings.smtp_url, settings.site_git):
        password = urlsplit(url.get_secret_value()).password if url is not None else None
        if password:
            secrets += [password, unquote(password)]
    database_password = urlsplit(settings.database_url).password  # postgresql://u:PASSWORD@…
    if database_password:
        secrets += [database_password, unquote(database_password)]
    for secret in (settings.secret_key, settings.webhook_secret):
        if secret is not None:
            secrets.append(secret.get_secret_value())
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(LOG_FORMAT, secrets))


def setup_logging(verbose: bool = False) -> None:
    """Configure logging once, at the entry point; keep the bot token out of the logs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    # httpx logs every request URL, and Bot API URLs contain the token.
    for noisy in (
        "httpx",
        "httpcore",
        "telegram.ext",
        "aiohttp.access",
        "uvicorn.access",
        "watchfiles",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run

    try:
        return asyncio.run(run(settings, fresh=args.fresh, worker=args.worker))
    except ExceptionGroup as group:
        # A part of `herald run` failed to start, e.g. a web port that is taken: say which.
        config = group.subgroup((ConfigError, StoreError))
        while config is not None and isinstance(config.exceptions[0], ExceptionGroup):
            config = config.exceptions[0]
        if config is None:
            raise
        raise config.exceptions[0] from group


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from bot.commands.preview import preview

    return preview(settings, args.file, telegram=args.telegram, email=args.email, out=args.out)


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    from bot.commands.digest import digest

    return asyncio.run(digest(settings, dry_run=args.dry_run))


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.commands.check import check

    return check(settings, posts=args.posts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="watch the site, run the bot, deliver, serve the web")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="the database is gone on purpose: start with a new one, whose first scan records"
        " the site's posts without announcing them",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="only deliver (and serve the web), never lead: one more process beside the"
        " `herald run` processes sharing a PostgreSQL database",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate settings and templates")
    p.add_argument("--posts", action="store_true", help="also render every post of the site")
    p.set_defaults(func=cmd_check)

    # Further subcommands register here: preview, digest, subscribers, stats.
    p = sub.add_parser("preview", help="write exactly what a post would send, without sending")
    p.add_argument("file", type=Path, metavar="FILE", help="a post file under _posts/")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--telegram", action="store_true", help="only the Telegram messages")
    which.add_argument("--email", action="store_true", help="only the email (.eml and .html)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write files here, not to stdout")
    p.set_defaults(func=cmd_preview)
    p = sub.add_parser("digest", help="send the daily digest now")
    p.add_argument("--dry-run", action="store_true", help="print the digest, send nothing")
    p.set_defaults(func=cmd_digest)
    subscribers_cli.add_parser(sub)
    stats_cli.add_parser(sub)
    backup_cli.add_parser(sub)
    migrate_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        settings = load_settings()
        redact_secrets(settings)
        func: Command = args.func
        return func(args, settings)
    except ConfigError as exc:
        print(f"herald: configuration problem:\n{exc}", file=sys.stderr)
        return 1
    except StoreError as exc:  # one line that names the database and the fix
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
