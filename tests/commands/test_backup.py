"""`herald backup FILE`: what an operator types and sees, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from bot.cli import main
from bot.commands.backup import pg_dump_advice, without_password
from tests.support.acceptance import Herald

CSV = "channel,address,breaking,daily\ntelegram,7,true,true\nemail,ann@example.org,true,false\n"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://herald:s3cret@db:5432/herald", "postgresql://herald@db:5432/herald"),
        ("postgres://herald@db/herald", "postgres://herald@db/herald"),
        ("postgresql://db/herald?sslmode=require", "postgresql://db/herald?sslmode=require"),
        (
            "postgresql://u:p%40ss@[::1]:5433/h?password=s3cret&sslmode=verify-full",
            "postgresql://u@[::1]:5433/h?sslmode=verify-full",
        ),
    ],
)
def test_the_postgresql_url_is_shown_without_its_password(url: str, shown: str) -> None:
    """The password leaves the URL, from the user part and from a `password=` option."""
    assert without_password(url) == shown


def test_on_postgresql_herald_says_how_to_use_pg_dump() -> None:
    """The advice names pg_dump and pg_restore with the URL and FILE, and no password."""
    advice = pg_dump_advice("postgresql://herald:s3cret@db:5432/herald", Path("my dump.pgc"))
    assert "pg_dump --format=custom --file='my dump.pgc' postgresql://herald@db:5432/herald" in (
        advice
    )
    assert "pg_restore" in advice and "s3cret" not in advice


def test_herald_backup_writes_a_new_file_and_refuses_an_existing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """FILE is written once; a second time the command exits 1, saying why, FILE untouched."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'herald.db'}")
    (tmp_path / "subs.csv").write_text(CSV)
    assert main(["subscribers", "import", "subs.csv"]) == 0
    capsys.readouterr()
    assert main(["backup", "copy.db"]) == 0
    out, _ = capsys.readouterr()
    assert "copy.db" in out and "restore" in out
    before = (tmp_path / "copy.db").read_bytes()
    assert main(["backup", "copy.db"]) == 1
    _, err = capsys.readouterr()
    assert "copy.db exists already" in err
    assert (tmp_path / "copy.db").read_bytes() == before


def test_herald_backup_without_a_database_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No database yet: exit 1 naming it, and no empty database is created on the way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERALD_DATABASE_URL", "sqlite:///data/herald.db")
    assert main(["backup", "copy.db"]) == 1
    _, err = capsys.readouterr()
    assert "no database at data/herald.db" in err
    assert not (tmp_path / "data" / "herald.db").exists() and not (tmp_path / "copy.db").exists()


async def test_herald_backup_while_herald_run_serves_holds_the_same_subscribers(
    tmp_path: Path,
) -> None:
    """A backup taken while `herald run` takes sign-ups is a Herald database with them all."""
    herald = Herald(tmp_path, HERALD_TRUSTED_PROXIES="127.0.0.1")  # readers come from many IPs
    (tmp_path / "subs.csv").write_text(CSV)
    code, _, err = await herald.cli("subscribers", "import", "subs.csv")
    assert code == 0, err
    async with herald.run(), httpx.AsyncClient(base_url=herald.public_url) as client:
        signing_up = asyncio.create_task(sign_ups(client, 30))
        code, _, err = await herald.cli("backup", "during.db")
        assert code == 0, err
        await signing_up
        code, _, err = await herald.cli("backup", "after.db")
        assert code == 0, err
        _, live, _ = await herald.cli("subscribers", "list")
    backup_url = f"sqlite:///{tmp_path / 'after.db'}"
    code, listed, err = await herald.cli("subscribers", "list", HERALD_DATABASE_URL=backup_url)
    assert code == 0, err
    assert listed == live and "ann@example.org" in listed and "reader29@example.org" in listed
    during = f"sqlite:///{tmp_path / 'during.db'}"
    code, listed, err = await herald.cli("subscribers", "list", HERALD_DATABASE_URL=during)
    assert code == 0 and "ann@example.org" in listed, err


async def sign_ups(client: httpx.AsyncClient, count: int) -> None:
    """`count` readers, each from an address of their own, sign up on the web form in turn."""
    for n in range(count):
        form = {"email": f"reader{n}@example.org", "breaking": "on", "daily": "on"}
        proxied = {"x-forwarded-for": f"192.0.2.{n + 1}"}
        answer = await client.post("/subscribe", data=form, headers=proxied)
        assert answer.status_code < 400, answer.text


def test_herald_backup_on_postgresql_prints_pg_dump_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On PostgreSQL the command exits 0 with the pg_dump line, no password, no file written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://herald:s3cret@127.0.0.1:1/herald")
    assert main(["backup", "herald.pgc"]) == 0
    out, err = capsys.readouterr()
    assert "pg_dump --format=custom --file=herald.pgc postgresql://herald@127.0.0.1:1/herald" in out
    assert "s3cret" not in out + err
    assert list(tmp_path.iterdir()) == []
