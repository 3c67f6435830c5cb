"""Logging at the entry point keeps secrets out of every line."""

from __future__ import annotations

import io
import logging

from bot.cli import LOG_FORMAT, RedactingFormatter, redact_secrets
from bot.settings import Settings

TOKEN = "123456:AAH-secret-token-value-0123456789abcdef"


def test_secrets_are_redacted_in_messages_and_tracebacks() -> None:
    """A token or SMTP password that reaches a log line, even inside a traceback, is masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, [TOKEN, "hunter2pass"]))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("GET https://api.telegram.org/bot%s/getMe failed", TOKEN)
        try:
            raise RuntimeError(f"login failed for user:hunter2pass at bot{TOKEN}")
        except RuntimeError:
            log.exception("smtp")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert TOKEN not in out
    assert "hunter2pass" not in out
    assert out.count("[secret]") >= 3


def test_redaction_installed_from_settings() -> None:
    """The secrets named by the settings are the ones the root handlers mask."""
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        redact_secrets(
            Settings(
                telegram_token=TOKEN,
                smtp_url="smtp://news:p%40ss-word@mail:587",
                site_git="https://bot:gh-t0ken@git.example.org/site.git",
                webhook_secret="hook-secret",
            )
        )
        formatter = handler.formatter
        assert isinstance(formatter, RedactingFormatter)
        secrets = {TOKEN, "p@ss-word", "p%40ss-word", "gh-t0ken", "hook-secret"}
        assert set(formatter.secrets) >= secrets
    finally:
        root.removeHandler(handler)
