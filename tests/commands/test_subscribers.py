"""`herald subscribers …` and the subscriber CSV: what an operator types and sees."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.addresses import normalize_email
from bot.cli import main
from bot.commands.subscribers_csv import (
    CsvHeaderError,
    ImportRow,
    RowError,
    parse_bool,
    parse_csv,
)
from bot.models import Channel, ItemUpdate, Kind, OutboxStatus, Rendered, Status, TelegramMessage
from bot.outbox import plan
from bot.store import open_store

HEADER = "channel,address,breaking,daily\n"
# What export writes: the four columns above, then the reader choices.
FULL = "channel,address,breaking,daily,topics,quiet,digest_time,timezone\n"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database in a temp dir, named the way an operator would: HERALD_DATABASE_URL."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "h.db"
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{path}")
    return path


def herald(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["subscribers", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def stored(db: Path) -> list[tuple[str, str, str, bool, bool]]:
    async def read() -> list[tuple[str, str, str, bool, bool]]:
        async with open_store(db) as store:
            return [
                (s.channel.value, s.address, s.status.value, s.breaking, s.daily)
                async for s in store.subscribers.all()
            ]

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("1", True), ("0", False), ("Yes", True), ("no", False)],
)
def test_booleans_accept_the_three_spellings(text: str, value: bool) -> None:
    """true/false, 1/0 and yes/no (any case) are the CSV's booleans."""
    assert parse_bool(text) is value


def test_parse_reports_bad_rows_by_line_and_keeps_good_ones() -> None:
    """Each bad row names its line (quoted multi-line fields counted); good rows come through."""
    text = (
        HEADER
        + "telegram,123,yes,no\n"
        + "\n"
        + 'email,"Ann@Example.COM",1,0\n'
        + "fax,1,1,1\n"
        + 'email,"bad\naddress",1,1\n'
        + "telegram,-100200,maybe,1\n"
        + "telegram,42\n"
    )
    items = list(parse_csv(text.splitlines(keepends=True)))
    assert items[:2] == [
        ImportRow(Channel.TELEGRAM, "123", True, False),
        ImportRow(Channel.EMAIL, "Ann@example.com", True, False),
    ]
    errors = [i for i in items if isinstance(i, RowError)]
    assert [e.line for e in errors] == [5, 6, 8, 9]
    assert "fax" in errors[0].reason and "maybe" in errors[2].reason


def test_header_is_required_and_columns_may_be_reordered() -> None:
    """A file without the header is refused as a whole; a reordered header works."""
    with pytest.raises(CsvHeaderError, match="line 1"):
        list(parse_csv(["telegram,1,true,true\n"]))
    with pytest.raises(CsvHeaderError):
        list(parse_csv(["chanel,address\n"]))
    rows = list(parse_csv(["daily,address,channel\n", "no,5,telegram\n"]))
    assert rows == [ImportRow(Channel.TELEGRAM, "5", True, False)]


def test_email_addresses_are_normalised_to_one_form() -> None:
    """An address is stored trimmed with a lower-case domain, the form the web form uses."""
    assert normalize_email("  Bob@Example.ORG ") == "Bob@example.org"
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email("bob@")


@pytest.mark.parametrize("address", ["=HYPERLINK(1)@x.org", "+cmd@x.org", "@SUM@x.org"])
def test_addresses_that_a_spreadsheet_would_run_are_refused(address: str) -> None:
    """An address an exported CSV would turn into a spreadsheet formula is never stored."""
    with pytest.raises(ValueError, match="not accepted"):
        normalize_email(address)


def test_import_keeps_good_rows_and_reports_bad_ones(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`import FILE` stores the good rows as active, lists bad rows on stderr, exits 0."""
    csv_file = tmp_path / "in.csv"
    csv_file.write_text(
        "\ufeff" + HEADER + "telegram,1,true,false\nemail,nope,1,1\nemail,a@b.example,no,yes\n",
        encoding="utf-8",
    )
    code, out, err = herald(capsys, "import", str(csv_file))
    assert code == 0
    assert "imported 2 subscriber(s); 1 bad row(s) skipped" in out
    assert "line 3: 'nope' is not a valid email address" in err
    assert stored(db) == [
        ("telegram", "1", "active", True, False),
        ("email", "a@b.example", "active", False, True),
    ]


def test_import_fails_when_nothing_can_be_imported(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong header, a file of only bad rows, or --strict with a bad row exit non-zero."""
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("telegram,1,1,1\n", encoding="utf-8")
    code, _, err = herald(capsys, "import", str(bad_header))
    assert code == 1 and "header" in err
    all_bad = tmp_path / "b.csv"
    all_bad.write_text(HEADER + "telegram,x,1,1\n", encoding="utf-8")
    assert herald(capsys, "import", str(all_bad))[0] == 1
    mixed = tmp_path / "m.csv"
    mixed.write_text(HEADER + "telegram,x,1,1\ntelegram,9,1,1\n", encoding="utf-8")
    assert herald(capsys, "import", "--strict", str(mixed))[0] == 1
    missing = herald(capsys, "import", str(tmp_path / "absent.csv"))
    assert missing[0] == 2 and "absent.csv" in missing[2]


def test_add_list_remove_and_export(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """add (with flags), list, export (active only, the import format) and remove work."""
    assert herald(capsys, "add", "email", "Zoe@Example.com", "--no-daily")[0] == 0
    assert herald(capsys, "add", "telegram", "-1001", "--every-post")[0] == 0
    code, _, err = herald(capsys, "add", "telegram", "@name")
    assert code == 2 and "not a numeric Telegram chat id" in err
    code, out, _ = herald(capsys, "list")
    assert code == 0 and "Zoe@example.com" in out and "2 subscriber(s)" in out
    code, out, _ = herald(capsys, "list", "--channel", "telegram")
    assert "-1001" in out and "Zoe" not in out
    code, out, _ = herald(capsys, "export")
    assert out == FULL + "email,Zoe@example.com,true,false,,,,\ntelegram,-1001,true,true,,,,\n"
    assert herald(capsys, "remove", "email", "Zoe@EXAMPLE.com")[0] == 0
    code, _, err = herald(capsys, "remove", "email", "Zoe@example.com")
    assert code == 1 and "no email subscriber" in err
    assert [row[1] for row in stored(db)] == ["-1001"]


def test_export_then_import_round_trips(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exported file imports back to the same subscribers, leaving unsubscribed ones out."""
    rows = FULL + "".join(f"telegram,{i},{i % 2 == 0},{i % 3 == 0},,,,\n" for i in range(1, 50))
    source = tmp_path / "s.csv"
    source.write_text(rows.lower(), encoding="utf-8")
    assert herald(capsys, "import", str(source))[0] == 0
    code, exported, _ = herald(capsys, "export")
    assert exported == rows.lower()

    async def unsubscribe_first() -> None:
        async with open_store(db) as store:
            sub = await store.subscribers.get(Channel.TELEGRAM, "1")
            assert sub is not None
            await store.subscribers.set_status(sub.id, Status.UNSUBSCRIBED)

    asyncio.run(unsubscribe_first())
    code, out, _ = herald(capsys, "import", str(source))
    assert code == 0 and "1 left out" in out
    assert stored(db)[0][2] == "unsubscribed"


def test_choice_columns_are_checked_and_normalised() -> None:
    """Topics split on `;` and casefold, times and zones are normalised, blank clears, and a
    bad value names its line and column; a file without the columns leaves them as None."""
    text = (
        "channel,address,topics,quiet,digest_time,timezone\n"
        + "telegram,1,Python; Release Notes ;python,22:00-7:00,7:5,europe/berlin\n"
        + "telegram,2,,,,\n"
        + "telegram,3,,22:00-22:00,,\n"
        + "telegram,4,,,25:00,\n"
        + "telegram,5,,,,CET\n"
    )
    items = list(parse_csv(text.splitlines(keepends=True)))
    assert items[:2] == [
        ImportRow(
            Channel.TELEGRAM, "1", True, True,
            ("python", "release notes"), "22:00-07:00", "07:05", "Europe/Berlin",
        ),
        ImportRow(Channel.TELEGRAM, "2", True, True, (), "", "", ""),
    ]  # fmt: skip
    errors = [str(e) for e in items[2:]]
    assert errors[0].startswith("line 4: quiet: '22:00-22:00' starts where it ends")
    assert errors[1].startswith("line 5: digest_time: '25:00' is not a time of day")
    assert errors[2].startswith("line 6: timezone: 'CET' is not a time zone name")
    [old_style] = parse_csv([HEADER, "telegram,7,yes,no\n"])
    assert old_style == ImportRow(Channel.TELEGRAM, "7", True, False, None, None, None, None)


def test_choices_round_trip_through_export_and_import(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export with reader choices imports into a new database as the same subscribers."""
    rows = FULL + (
        "email,a@example.com,true,false,news;release notes,22:00-07:00,18:30,Europe/Berlin\n"
        "telegram,5,false,true,,,06:00,\n"
        'telegram,6,true,true,"a, b;c",,,Asia/Tokyo\n'
    )
    source = tmp_path / "in.csv"
    source.write_text(rows, encoding="utf-8")
    assert herald(capsys, "import", str(source))[0] == 0
    code, exported, _ = herald(capsys, "export")
    assert code == 0 and exported == rows
    again = tmp_path / "again.csv"
    again.write_text(exported, encoding="utf-8")
    before = asyncio.run(_choices(db))
    fresh = tmp_path / "data" / "fresh.db"
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{fresh}")
    assert herald(capsys, "import", str(again))[0] == 0
    assert asyncio.run(_choices(fresh)) == before
    assert before[0] == (
        "a@example.com",
        ("news", "release notes"),
        "22:00-07:00",
        "18:30",
        "Europe/Berlin",
    )


async def _choices(
    db: Path,
) -> list[tuple[str, tuple[str, ...], str | None, str | None, str | None]]:
    async with open_store(db) as store:
        return [
            (s.address, s.topics, s.quiet, s.digest_at, s.tz) async for s in store.subscribers.all()
        ]


def test_import_without_choice_columns_keeps_a_readers_choices(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old four-column list changes preferences only; a blank choice column clears one."""
    first = tmp_path / "first.csv"
    first.write_text(FULL + "telegram,9,true,true,news,23:00-06:00,08:15,UTC\n", encoding="utf-8")
    assert herald(capsys, "import", str(first))[0] == 0
    old = tmp_path / "old.csv"
    old.write_text(HEADER + "telegram,9,false,true\n", encoding="utf-8")
    assert herald(capsys, "import", str(old))[0] == 0
    assert asyncio.run(_choices(db)) == [("9", ("news",), "23:00-06:00", "08:15", "UTC")]
    clear = tmp_path / "clear.csv"
    clear.write_text("channel,address,quiet\ntelegram,9,\n", encoding="utf-8")
    assert herald(capsys, "import", str(clear))[0] == 0
    assert asyncio.run(_choices(db)) == [("9", ("news",), None, "08:15", "UTC")]
    assert herald(capsys, "export")[1].endswith("telegram,9,true,true,news,,08:15,UTC\n")


def test_stats_shows_subscribers_and_deliveries(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald stats` prints active subscribers per channel and preference, and deliveries."""
    herald(capsys, "add", "telegram", "5", "--no-daily")
    herald(capsys, "add", "email", "q@example.com", "--every-post")
    code = main(["stats"])
    out = capsys.readouterr().out
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert lines["telegram"][:4] == ["1", "1", "0", "0"]
    assert lines["email"][:4] == ["1", "1", "1", "1"]
    assert "sent 0" in out and "failed 0" in out


async def park_one_failure(db: Path) -> None:
    """A breaking post for two chats: one sent, one given up on (as delivery records them)."""
    async with open_store(db) as store:
        subs = [await store.subscribers.upsert(Channel.TELEGRAM, chat) for chat in ("5", "6")]
        rendered = Rendered(telegram=(TelegramMessage("sendMessage", "Big news"),))
        job_id, _ = await store.outbox.create_job(
            "post:1", "breaking", rendered.encode(), title="Big news", now=datetime.now(UTC)
        )
        recipients = [plan.Recipient.of(s) for s in subs]
        await store.outbox.add_items(
            job_id, plan.rows_for("post:1", Kind.BREAKING, rendered, recipients)
        )
        await store.outbox.mark_planned(job_id)
        sent, failed = await store.outbox.claim(10, now=time.time(), lease_s=60)
        await store.outbox.apply(
            [
                ItemUpdate(id=sent.id, status=OutboxStatus.SENT, attempts=1, parts_done=1),
                ItemUpdate(
                    id=failed.id,
                    status=OutboxStatus.FAILED,
                    attempts=8,
                    parts_done=0,
                    last_error="gave up after 8 attempts: 502",
                ),
            ]
        )


def test_stats_shows_recent_jobs_and_failed_sends(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald stats` shows each recent job's progress, the failed count and the failed send."""
    asyncio.run(park_one_failure(db))
    code = main(["stats"])
    out = capsys.readouterr().out
    assert code == 0
    [job] = [line.split() for line in out.splitlines() if line.startswith("  #")]
    assert job[:7] == ["#1", "breaking", "running", "sent", "1/2", "waiting", "0"]
    assert job[7:9] == ["failed", "1"] and job[-2:] == ["Big", "news"]
    assert "failed sends 1" in out
    assert "failed: post:1 → telegram:6 after 8 attempt(s): gave up after 8 attempts" in out
