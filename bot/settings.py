"""Settings: environment, then `./.env`, then defaults; plus what `_config.yml` says."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.models import Channel

DEFAULT_PERMALINK = "date"
_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")
_CHANNEL = re.compile(r"^(@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+)$")


# -- HERALD_SMTP_URL ------------------------------------------------------------------------
DEFAULT_POOL_SIZE = 4
# Each step (connect, each command) waits this long for the server; a whole message at most
# MESSAGE_STEPS times as long. A hung server then holds a send for seconds, not minutes.
DEFAULT_TIMEOUT_S = 10.0
MESSAGE_STEPS = 3
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect, from HERALD_SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps://: TLS from the first byte
    start_tls: bool | None = None  # None: upgrade when the server offers it
    validate_certs: bool = True
    auth_without_tls: bool = False  # send the password even over a plain connection
    pool_size: int = DEFAULT_POOL_SIZE
    timeout_s: float = DEFAULT_TIMEOUT_S  # per step

    @property
    def message_timeout_s(self) -> float:
        """The most one message may take, connecting and any reconnect included."""
        return MESSAGE_STEPS * self.timeout_s

    def __repr__(self) -> str:
        # The password never reaches a log line.
        return f"SmtpConfig({self.host}:{self.port}, tls={self.use_tls}, starttls={self.start_tls})"

    @property
    def login_needs_tls(self) -> bool:
        """A password to send, and TLS not yet certain: the server must offer STARTTLS."""
        return (
            self.username is not None
            and not self.use_tls
            and self.start_tls is None
            and not self.auth_without_tls
        )


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"HERALD_SMTP_URL: {name}={value!r} must be true or false")


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:587?starttls=true` or `smtps://user:pass@host:465` → SmtpConfig.

    Query options: `starttls`, `verify` (certificates), `pool` (connections), `timeout`
    (seconds per step; a message gets three times as long), `auth_without_tls` (log in
    even where the connection is not encrypted: only for a relay on a trusted link).
    Without it the password goes only over TLS: `smtps://`, or STARTTLS, which is used
    whenever the server offers it unless `starttls=false`.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError(
            "HERALD_SMTP_URL must look like smtp://user:pass@host:587?starttls=true "
            "or smtps://user:pass@host:465"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "smtps"
    start_tls = _flag("starttls", query["starttls"]) if "starttls" in query else None
    if use_tls and start_tls:
        raise ConfigError("HERALD_SMTP_URL: smtps:// is TLS already; drop starttls=true")
    try:
        port = parts.port or (465 if use_tls else 587 if start_tls else 25)
        pool = int(query.get("pool", DEFAULT_POOL_SIZE))
        timeout_s = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError as exc:
        raise ConfigError(f"HERALD_SMTP_URL: {exc}") from exc
    if not 1 <= pool <= 64:
        raise ConfigError("HERALD_SMTP_URL: pool must be between 1 and 64 connections")
    if not 0 < timeout_s <= 300:
        raise ConfigError("HERALD_SMTP_URL: timeout must be between 0 and 300 seconds")
    auth_without_tls = _flag("auth_without_tls", query.get("auth_without_tls", "false"))
    if parts.username and start_tls is False and not auth_without_tls:
        raise ConfigError(
            "HERALD_SMTP_URL: starttls=false would send the SMTP password unencrypted; "
            "use smtps://…:465 or ?starttls=true, or, only for a relay on this machine or "
            "a trusted network, add &auth_without_tls=true"
        )
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=False if use_tls else start_tls,
        validate_certs=_flag("verify", query.get("verify", "true")),
        auth_without_tls=auth_without_tls,
        pool_size=pool,
        timeout_s=timeout_s,
    )


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # one DNS label
# The web endpoint's own paths (SPEC): Telegram's webhook may not take one of them.
_WEB_PATHS = frozenset({"/subscribe", "/healthz", "/metrics", "/hooks/git"})
_WEB_PREFIXES = ("/confirm/", "/preferences/", "/unsubscribe/")


class Settings(BaseSettings):
    """The SPEC's HERALD_* variables, validated once at start."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    site_dir: Path = Path("examples/site")
    site_url: str | None = None
    timezone: str | None = None
    database_url: str = "sqlite:///data/herald.db"
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_channel: str | None = None
    telegram_rate: float = Field(default=25.0, gt=0, le=1000)
    admin_ids: str = ""
    smtp_url: SecretStr | None = None
    mail_from: str = "News <news@localhost>"
    dkim_key_file: Path | None = None  # PEM RSA key: every email is DKIM-signed with it
    dkim_selector: str = "herald"
    bounce_listen: str | None = None  # host:port of the SMTP listener for bounces, complaints
    bounce_domain: str | None = None  # of the VERP return path; default: the mail_from domain
    public_url: str = "http://127.0.0.1:8080"
    web_listen: str = "127.0.0.1:8080"
    trusted_proxies: str = ""
    secret_key: SecretStr | None = None
    digest_time: str = "08:00"
    outbox_dir: Path = Path("outbox")
    feed_url: str | None = None
    feed_poll_s: float = Field(default=120.0, gt=0)
    announce_when_live: bool = False
    live_timeout_s: float = Field(default=1800.0, gt=0)
    site_git: SecretStr | None = None  # a URL may carry a token: masked in repr
    site_branch: str | None = None
    git_poll_s: float = Field(default=300.0, gt=0)
    webhook_secret: SecretStr | None = None
    telegram_webhook_url: str | None = None  # unset: long polling

    @field_validator(
        "telegram_token",
        "smtp_url",
        "secret_key",
        "site_url",
        "timezone",
        "telegram_channel",
        "feed_url",
        "site_git",
        "site_branch",
        "webhook_secret",
        "dkim_key_file",
        "bounce_listen",
        "bounce_domain",
        "telegram_webhook_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `HERALD_X=` in .env means "not set", as if the line were absent.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("digest_time")
    @classmethod
    def _check_digest_time(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL such as https://api.telegram.org/bot")
        return value

    @field_validator("feed_url")
    @classmethod
    def _check_feed_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL such as https://example.org/feed.xml")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _check_telegram_webhook_url(cls, value: str | None) -> str | None:
        # Telegram posts only to https://; a local Bot API server (--local) also to http://.
        parts = urlsplit(value or "")
        if value is not None and (parts.scheme not in {"https", "http"} or not parts.hostname):
            raise ValueError(
                f"{value!r} is not a URL Telegram can post to; use https://host/path, such as "
                "https://news.example.com/telegram (plain http:// only with a local Bot API server)"
            )
        if value is not None and parts.path in {"", "/"}:
            raise ValueError(
                f"{value!r} has no path; Herald serves updates at the URL's path, "
                "so give it one of its own, such as https://news.example.com/telegram"
            )
        taken = parts.path in _WEB_PATHS or parts.path.startswith(_WEB_PREFIXES)
        if value is not None and taken:
            raise ValueError(
                f"{parts.path!r} is a page Herald serves already; give the webhook a path of "
                "its own, such as https://news.example.com/telegram"
            )
        return value

    @field_validator("web_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, such as 127.0.0.1:8080")
        return value

    @field_validator("bounce_listen")
    @classmethod
    def _check_bounce_listen(cls, value: str | None) -> str | None:
        host, _, port = (value or "").rpartition(":")
        if value is not None and (not host or not port.isdigit() or not 0 <= int(port) < 65536):
            raise ValueError("must be host:port, such as 0.0.0.0:25 or 127.0.0.1:2525")
        return value

    @field_validator("bounce_domain")
    @classmethod
    def _check_bounce_domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", value.strip()):
            raise ValueError(
                f"{value!r} is not a domain name; use the one whose MX reaches Herald, "
                "such as bounces.example.org"
            )
        return value.strip().lower() if value is not None else None

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an IP address or network (such as 10.0.0.2 or 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("site_git")
    @classmethod
    def _check_site_git(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if url.startswith("-") or any(c.isspace() or not c.isprintable() for c in url):
            raise ValueError("must be a git URL such as https://github.com/you/site.git")
        return value

    @field_validator("site_branch")
    @classmethod
    def _check_site_branch(cls, value: str | None) -> str | None:
        # git check-ref-format's rules, so the name is safe in a refspec and an argument.
        bad = set(" ~^:?*[\\") | {"..", "@{", "//"}
        if value is not None and (
            value.startswith(("-", "/", "."))
            or value.endswith(("/", ".", ".lock"))
            or any(b in value for b in bad)
            or not value.isprintable()
        ):
            raise ValueError(f"{value!r} is not a branch name git accepts")
        return value

    @model_validator(mode="after")
    def _clone_in_data(self) -> Settings:
        # With a git source and no HERALD_SITE_DIR, the clone lives beside the database.
        if self.site_git is not None and "site_dir" not in self.model_fields_set:
            url = self.database_url
            sqlite = url.startswith("sqlite:///")
            data = Path(url.removeprefix("sqlite:///")).parent if sqlite else Path("data")
            self.site_dir = data / "site"
        return self

    @field_validator("telegram_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN.match(value.get_secret_value().strip()):
            raise ValueError(
                "does not look like a bot token (digits, a colon, then 35 letters); "
                "copy it again from @BotFather, or unset it to use the outbox"
            )
        return value

    @field_validator("telegram_channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        if value is not None and not _CHANNEL.match(value.strip()):
            raise ValueError(
                f"{value!r} is neither an @channelname nor a numeric chat id; "
                "use the form @mychannel or -1001234567890"
            )
        return value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n,"):
            raise ValueError(
                f"{value!r} is not one email address; use the form: News <news@example.com>"
            )
        return value

    @field_validator("dkim_selector")
    @classmethod
    def _check_dkim_selector(cls, value: str) -> str:
        # A selector becomes a DNS name (<selector>._domainkey.<domain>): labels only.
        if not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", value):
            raise ValueError(
                f"{value!r} is not a DKIM selector; use letters, digits and hyphens, e.g. herald"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        public = urlsplit(value)
        if public.scheme not in ("http", "https") or not public.hostname:
            raise ValueError(
                f"{value!r} is not an absolute http(s) URL; set it to the address readers "
                "use to reach Herald, such as https://news.example.com"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        # Never the whole value: a URL may carry a password.
        shown = repr(value.partition("://")[0] + "://") if "://" in value else repr(value)
        if "://" not in value and "@" in value:
            shown = "the value"
        raise ValueError(
            f"{shown} is not a database Herald supports; use sqlite:///relative/path,"
            " sqlite:////absolute/path or postgresql://user:password@host:5432/database"
        )

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_smtp_url(value.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("HERALD_SMTP_URL").lstrip(": ")) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zone(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("admin_ids")
    @classmethod
    def _check_admin_ids(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.lstrip("-").isdigit():
                raise ValueError(
                    f"{part!r} is not a numeric Telegram user id (ask @userinfobot for yours)"
                )
        return value

    @property
    def admin_user_ids(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.admin_ids.split(",") if p.strip())

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """HERALD_TRUSTED_PROXIES as networks (a bare address is a network of one)."""
        parts = filter(None, (p.strip() for p in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)

    @property
    def database_path(self) -> Path:
        """The SQLite file named by `database_url`."""
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def stand_in_channels(self) -> tuple[Channel, ...]:
        """Channels with no real transport configured: the files transport stands in."""
        unset = ((Channel.TELEGRAM, self.telegram_token), (Channel.EMAIL, self.smtp_url))
        return tuple(channel for channel, value in unset if value is None)

    @property
    def data_dir(self) -> Path:
        """The SQLite file's folder; `data` beside a PostgreSQL database (not a path in it)."""
        if not self.database_url.startswith("sqlite:///"):
            return Path("data")
        return self.database_path.parent

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.web_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def bounce_host_port(self) -> tuple[str, int] | None:
        """HERALD_BOUNCE_LISTEN as (host, port), or None when no bounce listener is wanted."""
        if self.bounce_listen is None:
            return None
        host, _, port = self.bounce_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def return_path_domain(self) -> str:
        """HERALD_BOUNCE_DOMAIN, else the domain of HERALD_MAIL_FROM."""
        if self.bounce_domain is not None:
            return self.bounce_domain
        return parseaddr(self.mail_from)[1].rpartition("@")[2].lower() or "localhost"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or ConfigError saying where to fix it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"time zone {name!r} is unknown; use an IANA name such as Europe/Berlin "
            "in HERALD_TIMEZONE or `timezone` in _config.yml"
        ) from exc


def parse_hhmm(value: str) -> tuple[int, int]:
    """`"08:00"` → `(8, 0)`, or ValueError naming the expected form."""
    hh, sep, mm = value.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or int(hh) > 23 or int(mm) > 59:
        raise ValueError(f"{value!r} is not a time of day; use HH:MM such as 08:00")
    return int(hh), int(mm)


@dataclass(frozen=True)
class Site:
    """The Jekyll site as `_config.yml` describes it."""

    root: Path
    url: str  # absolute base without trailing slash: url + baseurl
    tz: ZoneInfo
    permalink: str
    title: str
    config: dict[str, Any] = field(default_factory=dict)
    excerpt_separator: str = "\n\n"
    defaults: tuple[dict[str, Any], ...] = ()  # front matter `defaults:` sets Jekyll would use
    data: dict[str, Any] = field(default_factory=dict)  # `site.data`, from `_data/`

    @property
    def posts_dir(self) -> Path:
        return self.root / "_posts"


def load_settings(**overrides: Any) -> Settings:
    """Read settings or raise ConfigError with one sentence per problem."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "HERALD_" + "_".join(str(p) for p in err["loc"]).upper()
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {msg}")
        raise ConfigError("\n".join(problems)) from exc


def secret_key(settings: Settings) -> str:
    """HERALD_SECRET_KEY, else one generated once and kept in the data directory."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        # Owner-only from the first byte; O_EXCL: when two commands start at once, both
        # end up with the one key that was written first.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key + "\n")
    return key
