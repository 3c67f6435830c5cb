"""The deploy files: compose (PostgreSQL and replicas, or one SQLite process) and the image.

Docker does not run here, so the files are read as Compose reads them: YAML with merge
keys, `${VAR:-default}` / `${VAR:?error}` filled in from an `.env`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENV = {"POSTGRES_PASSWORD": "pw4compose"}  # what a user's .env would hold
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: `$$` is a dollar, ${VAR:-default}, ${VAR:?error} must be set."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(fill, text)


def compose(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A compose file as Compose would run it with `env` as its `.env`."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    data = yaml.safe_load(interpolate(text, ENV if env is None else env))
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def test_postgres_service_keeps_its_data_and_reports_ready() -> None:
    """postgres:16 keeps its data in a named volume and its healthcheck runs pg_isready."""
    spec = compose("compose.yml")
    pg = spec["services"]["postgres"]
    assert pg["image"] == "postgres:16"
    (mount,) = pg["volumes"]
    volume, target = mount.split(":")
    assert target == "/var/lib/postgresql/data" and volume in spec["volumes"]
    test = pg["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready" in test[1]
    assert env_of(pg)["POSTGRES_PASSWORD"] == ENV["POSTGRES_PASSWORD"]


def test_two_herald_replicas_share_the_postgres_database() -> None:
    """`herald run` twice, started once postgres is healthy, on the postgres service's URL."""
    spec = compose("compose.yml")
    pg, herald = spec["services"]["postgres"], spec["services"]["herald"]
    assert herald["command"] == ["herald", "run"]
    assert herald["deploy"]["replicas"] == 2
    assert herald["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    url = urlsplit(env_of(herald)["HERALD_DATABASE_URL"])
    pg_env = env_of(pg)
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert (url.username, url.password) == (pg_env["POSTGRES_USER"], ENV["POSTGRES_PASSWORD"])
    assert url.path == "/" + pg_env["POSTGRES_DB"]
    assert herald["env_file"] == "../.env" and (DEPLOY / "../.env.example").is_file()
    # Each replica answers on a port of its own: a range as wide as the replicas.
    (ports,) = herald["ports"]
    low, high = map(int, ports.split(":")[1].split("-"))
    assert high - low + 1 == herald["deploy"]["replicas"]


@pytest.mark.parametrize("name", ["compose.yml", "compose.sqlite.yml"])
def test_the_site_is_mounted_read_only_where_herald_reads_it(name: str) -> None:
    """The Jekyll site is a read-only mount at HERALD_SITE_DIR in every Herald service."""
    spec = compose(name)
    for service_name, service in spec["services"].items():
        if service.get("image", "").startswith("postgres"):
            continue
        site = env_of(service)["HERALD_SITE_DIR"]
        mounts = [m for m in service["volumes"] if m.split(":")[1] == site]
        assert len(mounts) == 1 and mounts[0].endswith(":ro"), (service_name, mounts)


@pytest.mark.parametrize("name", ["compose.yml", "compose.sqlite.yml"])
def test_compose_sets_only_real_settings_and_valid_values(name: str) -> None:
    """Every HERALD_* variable compose sets is a setting, and the settings load with them."""
    for service in compose(name)["services"].values():
        herald = {k: v for k, v in env_of(service).items() if k.startswith("HERALD_")}
        fields = {k.removeprefix("HERALD_").lower(): v for k, v in herald.items()}
        assert set(fields) <= set(Settings.model_fields), fields
        if fields:
            load_settings(_env_file=None, **fields)


def test_a_missing_postgres_password_stops_compose_with_a_message() -> None:
    """Without POSTGRES_PASSWORD in .env compose refuses to start, saying which to set."""
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose("compose.yml", env={})


def test_the_migrate_step_copies_the_sqlite_volume_in() -> None:
    """The one-off `migrate` service reads compose.sqlite.yml's volume into PostgreSQL."""
    spec, old = compose("compose.yml"), compose("compose.sqlite.yml")
    migrate = spec["services"]["migrate"]
    assert migrate["profiles"] == ["migrate"]  # never started by `up`
    source = migrate["command"][migrate["command"].index("--copy-from") + 1]
    assert migrate["command"][:2] == ["herald", "migrate"]
    old_db = env_of(old["services"]["herald"])["HERALD_DATABASE_URL"]
    assert source == old_db  # the same file, mounted at the same place
    old_volume = next(m for m in old["services"]["herald"]["volumes"] if m.endswith(":/data"))
    assert old_volume in migrate["volumes"] and old_volume.split(":")[0] in spec["volumes"]
    assert env_of(migrate)["HERALD_DATABASE_URL"].startswith("postgresql://")


def test_the_image_installs_herald_and_finds_its_templates() -> None:
    """python:3.11-slim, `pip install .`, the files it copies exist, and templates are found."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, flags=re.M)
    assert "pip install --no-cache-dir ." in dockerfile
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    # An installed copy of bot/ has no templates beside it: the code must run from /app.
    assert "ENV PYTHONPATH=/app" in dockerfile and "WORKDIR /app" in dockerfile
    assert re.search(r'^CMD \["herald", "run"\]$', dockerfile, flags=re.M)
    for name in ("compose.yml", "compose.sqlite.yml"):
        build = compose(name)["services"]["herald"]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert "!bot/" in ignored and "!templates/" in ignored  # the build context sends only these
