"""Settings: the SPEC's variables, their defaults, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import Settings, load_settings, secret_key
from bot.sources.jekyll.site import load_site

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_exactly_the_settings() -> None:
    """`.env.example` names every setting and nothing else, so users can find them all."""
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(HERALD_[A-Z_]+)=", text, flags=re.M))
    expected = {"HERALD_" + name.upper() for name in Settings.model_fields}
    assert listed == expected


def test_env_example_comments_every_variable() -> None:
    """Each variable in `.env.example` has a comment right above it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("HERALD_"):
            assert lines[i - 1].startswith("#"), line


def test_defaults_match_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no environment and no .env the SPEC's defaults apply."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv("HERALD_" + name.upper(), raising=False)
    s = load_settings()
    assert s.site_dir == Path("examples/site")
    assert s.database_url == "sqlite:///data/herald.db"
    assert s.telegram_api_url == "https://api.telegram.org/bot"
    assert s.telegram_rate == 25
    assert s.mail_from == "News <news@localhost>"
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.web_listen == "127.0.0.1:8080"
    assert s.digest_time == "08:00"
    assert s.outbox_dir == Path("outbox")
    assert s.telegram_token is None and s.smtp_url is None


def test_dotenv_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Values come from ./.env, and a real environment variable overrides the file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("HERALD_DIGEST_TIME=07:30\nHERALD_TELEGRAM_RATE=10\n")
    monkeypatch.setenv("HERALD_TELEGRAM_RATE", "12")
    s = load_settings()
    assert s.digest_time == "07:30"
    assert s.telegram_rate == 12


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("HERALD_DIGEST_TIME", "8am", "HH:MM"),
        ("HERALD_ADMIN_IDS", "@alice", "numeric Telegram user id"),
        ("HERALD_WEB_LISTEN", "8080", "host:port"),
        ("HERALD_TELEGRAM_RATE", "-1", "HERALD_TELEGRAM_RATE"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    """A wrong value is reported with the variable's name and how to write it."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert name in str(err.value)
    assert fragment in str(err.value)


def test_secret_token_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot token and SMTP password never show in a printed settings object."""
    monkeypatch.setenv("HERALD_TELEGRAM_TOKEN", "123456:SECRET-TOKEN-0123456789abcdefghijklmnop")
    monkeypatch.setenv("HERALD_SMTP_URL", "smtp://u:hunter2@mail:587")
    text = repr(load_settings())
    assert "SECRET-TOKEN" not in text
    assert "hunter2" not in text


def test_site_values_from_config(tmp_path: Path) -> None:
    """Site URL and time zone come from _config.yml unless settings say otherwise."""
    (tmp_path / "_config.yml").write_text(
        'url: "https://example.org"\nbaseurl: "/blog"\ntimezone: America/Los_Angeles\n'
    )
    site = load_site(Settings(site_dir=tmp_path))
    assert site.url == "https://example.org/blog"
    assert site.tz.key == "America/Los_Angeles"
    site = load_site(Settings(site_dir=tmp_path, site_url="https://x.test/", timezone="UTC"))
    assert site.url == "https://x.test"
    assert site.tz.key == "UTC"


def test_unknown_timezone_is_explained(tmp_path: Path) -> None:
    """A misspelt time zone names the setting that holds it."""
    with pytest.raises(ConfigError, match="HERALD_TIMEZONE"):
        load_site(load_settings(site_dir=tmp_path, timezone="Mars/Olympus"))


def test_secret_key_generated_once(tmp_path: Path) -> None:
    """Without HERALD_SECRET_KEY a key is generated into data/ and reused after."""
    s = Settings(database_url=f"sqlite:///{tmp_path}/db/herald.db")
    first = secret_key(s)
    assert len(first) >= 32
    assert secret_key(s) == first
    assert (tmp_path / "db" / "secret_key").stat().st_mode & 0o077 == 0


def test_bounce_domain_defaults_to_the_mail_from_domain() -> None:
    """HERALD_BOUNCE_DOMAIN unset: the return path uses HERALD_MAIL_FROM's domain, lowercased."""
    s = load_settings(_env_file=None, mail_from="News <news@News.Example.org>")
    assert s.return_path_domain == "news.example.org"
    assert s.bounce_host_port is None
    s = load_settings(_env_file=None, bounce_domain="Bounces.example.org", bounce_listen="[::]:25")
    assert (s.return_path_domain, s.bounce_host_port) == ("bounces.example.org", ("::", 25))


def test_bad_bounce_settings_name_the_variable() -> None:
    """A listen address without a port or a domain with an @ is refused, naming the variable."""
    with pytest.raises(ConfigError, match="HERALD_BOUNCE_LISTEN"):
        load_settings(_env_file=None, bounce_listen="localhost")
    with pytest.raises(ConfigError, match="HERALD_BOUNCE_DOMAIN"):
        load_settings(_env_file=None, bounce_domain="bounce@example.org")
