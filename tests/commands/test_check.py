"""`herald check` and `herald preview`: what an operator sees before going live."""

from __future__ import annotations

import shutil
import subprocess
import sys
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from bot.cli import main
from bot.commands.check import check
from bot.commands.preview import preview
from bot.errors import ConfigError
from bot.models import Kind
from bot.render.renderer import TEMPLATES_DIR, Renderer
from bot.settings import Settings, load_settings
from bot.sources.jekyll.reader import parse_post
from bot.sources.jekyll.site import load_site

ROOT = Path(__file__).resolve().parents[2]
GOOD_POST = """---
title: "Flood warning & <evacuation>"
date: 2026-11-25 09:00:00 +0000
categories: local
image: /assets/flood.png
---
The river is **rising**. Stay away from the banks.
"""


def make_site(root: Path, posts: dict[str, str]) -> Path:
    (root / "_posts").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "assets" / "flood.png").write_bytes(b"\x89PNG")
    (root / "_config.yml").write_text("title: Test Site\nurl: https://t.example\ntimezone: UTC\n")
    for name, text in posts.items():
        (root / "_posts" / name).write_text(text, encoding="utf-8")
    return root


def settings_for(site: Path, tmp: Path, **extra: object) -> Settings:
    return load_settings(
        site_dir=site, database_url=f"sqlite:///{tmp}/data/h.db", outbox_dir=tmp / "outbox", **extra
    )


def test_good_setup_passes_and_says_where_it_delivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid site and no token or SMTP: exit 0, naming the folder watched and the outbox."""
    site = make_site(tmp_path / "site", {"2026-11-25-flood.md": GOOD_POST})
    assert check(settings_for(site, tmp_path), posts=True) == 0
    out = capsys.readouterr().out
    assert str(site / "_posts") in out
    assert str(tmp_path / "outbox" / "telegram") in out and "1 checked, 0 with problems" in out


def test_bad_settings_are_each_named_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed token, SMTP URL and time zone each get one sentence naming the variable."""
    site = make_site(tmp_path / "site", {})
    monkeypatch.setenv("HERALD_SITE_DIR", str(site))
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{tmp_path}/data/h.db")
    monkeypatch.setenv("HERALD_TELEGRAM_TOKEN", "nonsense")
    monkeypatch.setenv("HERALD_SMTP_URL", "http://mail")
    monkeypatch.setenv("HERALD_TIMEZONE", "Mars/Base")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    for name in ("HERALD_TELEGRAM_TOKEN", "HERALD_SMTP_URL", "Mars/Base"):
        assert name in err
    assert "@BotFather" in err and "smtp://" in err and "Europe/Berlin" in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERALD_PUBLIC_URL", "news.example.com"),
        ("HERALD_MAIL_FROM", "nobody"),
        ("HERALD_SMTP_URL", "smtps://u:p@mail:465?starttls=true"),
        ("HERALD_TELEGRAM_CHANNEL", "#news"),
    ],
)
def test_run_refuses_what_check_refuses_with_the_same_sentence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    """A setting `herald check` refuses stops `herald run` before it starts, with one sentence."""
    monkeypatch.setenv("HERALD_SITE_DIR", str(make_site(tmp_path / "site", {})))
    monkeypatch.setenv("HERALD_DATABASE_URL", f"sqlite:///{tmp_path}/data/h.db")
    monkeypatch.setenv(variable, value)
    assert main(["check"]) == 1
    checked = capsys.readouterr().err
    assert main(["run"]) == 1
    ran = capsys.readouterr().err
    assert variable in checked and ran == checked
    assert not (tmp_path / "data" / "h.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    ("smtp_url", "ok"),
    [
        ("smtp://u:p@mail:587?starttls=on", True),
        ("smtps://u:p@mail:465?verify=false&pool=2", True),
        ("smtp://u:p@mail:587?verify=maybe", False),
        ("smtp://u:p@mail:587?pool=500", False),
        ("smtps://u:p@mail:465?starttls=true", False),
    ],
)
def test_check_judges_the_smtp_url_as_run_does(tmp_path: Path, smtp_url: str, ok: bool) -> None:
    """`herald check` accepts exactly the SMTP URLs `herald run` can use."""
    site = make_site(tmp_path / "site", {})
    try:
        settings = settings_for(site, tmp_path, smtp_url=smtp_url)
    except ConfigError as exc:  # refused as the settings load, for check as for run
        assert "HERALD_SMTP_URL" in str(exc)
        outcome = 1
    else:
        outcome = check(settings, posts=False)
    assert outcome == (0 if ok else 1)


def test_bad_breaking_rules_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed `herald.breaking` in _config.yml fails the check, naming the key."""
    site = make_site(tmp_path / "site", {})
    with (site / "_config.yml").open("a") as config:
        config.write("herald:\n  breaking:\n    tags: 5\n")
    assert check(settings_for(site, tmp_path), posts=False) == 1
    assert "herald.breaking.tags" in capsys.readouterr().err


def test_check_posts_skips_files_the_watcher_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files in `_`-folders, which Jekyll and the watcher ignore, are not checked as posts."""
    site = make_site(tmp_path / "site", {"2026-11-25-flood.md": GOOD_POST})
    (site / "_posts" / "_drafts").mkdir()
    (site / "_posts" / "_drafts" / "2026-11-26-broken.md").write_text("no front matter")
    assert check(settings_for(site, tmp_path), posts=True) == 0
    assert "1 checked, 0 with problems" in capsys.readouterr().out


def test_missing_site_folder_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site folder that does not exist fails with the variable to fix."""
    assert check(settings_for(tmp_path / "nowhere", tmp_path), posts=False) == 1
    assert "HERALD_SITE_DIR" in capsys.readouterr().err


def test_broken_template_is_reported_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template with a syntax error fails the check, naming the file and line."""
    site = make_site(tmp_path / "site", {})
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "telegram" / "post.html").write_text("line one\n{% if %}\n")
    assert check(settings_for(site, tmp_path), posts=False, templates_dir=templates) == 1
    assert "templates/telegram/post.html line 2" in capsys.readouterr().err


def test_posts_that_would_not_go_out_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check --posts names each bad post file with its reason: missing image, bad date."""
    site = make_site(
        tmp_path / "site",
        {
            "2026-11-25-flood.md": GOOD_POST,
            "2026-11-26-no-image.md": GOOD_POST.replace("flood.png", "gone.jpg"),
            "2026-11-27-bad-date.md": GOOD_POST.replace("2026-11-25 09:00:00", "next tuesday"),
        },
    )
    assert check(settings_for(site, tmp_path), posts=True) == 1
    err = capsys.readouterr().err
    assert f"{site}/_posts/2026-11-26-no-image.md: image https://t.example/assets/gone.jpg" in err
    assert f"{site}/_posts/2026-11-27-bad-date.md: " in err
    assert "2026-11-25-flood.md" not in err


def test_preview_writes_exactly_what_is_sent(tmp_path: Path) -> None:
    """preview --out writes each Telegram message's HTML and the email as .eml and .html."""
    site = make_site(tmp_path / "site", {"2026-11-25-flood.md": GOOD_POST})
    post_file = site / "_posts" / "2026-11-25-flood.md"
    settings = settings_for(ROOT / "examples" / "site", tmp_path)  # the post's own site wins
    out = tmp_path / "preview"
    assert preview(settings, post_file, telegram=False, email=False, out=out) == 0
    site_obj = load_site(settings.model_copy(update={"site_dir": site}))
    post = parse_post("2026-11-25-flood.md", post_file.read_bytes(), site_obj)
    sent = Renderer(site_obj, public_url=settings.public_base).post_messages(post, Kind.POST)
    assert (out / "01-sendPhoto.html").read_text() == sent[0].text
    mail = message_from_bytes((out / "flood.eml").read_bytes(), policy=default)
    assert mail["Subject"] == "Flood warning & <evacuation>"
    assert "Flood warning &amp; &lt;evacuation&gt;" in (out / "flood.html").read_text()


def test_preview_command_prints_to_stdout(tmp_path: Path) -> None:
    """`herald preview FILE --telegram` prints the message HTML with nothing else on stdout."""
    site = make_site(tmp_path / "site", {"2026-11-25-flood.md": GOOD_POST})
    result = subprocess.run(
        [sys.executable, "-m", "bot", "preview", str(site / "_posts" / "2026-11-25-flood.md"),
         "--telegram"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HERALD_SITE_DIR": str(site)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('<b><a href="https://t.example/local/2026/11/25/flood.html">')
    assert "01-sendPhoto.html" in result.stderr


def test_bot_reply_that_telegram_would_refuse_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bot reply template rendering HTML the Bot API refuses fails `herald check`."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    stop = templates / "telegram" / "bot" / "stop.html"
    stop.write_text(stop.read_text() + "\n<div>goodbye</div>\n")
    site = make_site(tmp_path / "site", {})
    assert check(settings_for(site, tmp_path), posts=False, templates_dir=templates) == 1
    err = capsys.readouterr().err
    assert "templates/telegram/bot (stop/" in err


@pytest.mark.parametrize(
    ("place", "url"),
    [
        ("news/_posts/2026-11-25-flood.md", "https://t.example/news/local/2026/11/25/flood.html"),
        ("_drafts/2026-11-25-flood.md", "https://t.example/local/2026/11/25/flood.html"),
        ("../elsewhere/2026-11-25-flood.md", "https://t.example/local/2026/11/25/flood.html"),
        ("../loose/_posts/world/2026-11-25-flood.md",
         "https://t.example/local/2026/11/25/flood.html"),
    ],
)  # fmt: skip
def test_preview_uses_the_configured_site_outside_its_posts_folder(
    tmp_path: Path, place: str, url: str
) -> None:
    """A file outside HERALD_SITE_DIR/_posts/ (a folder's _posts/, a draft, a loose file) is
    previewed with the configured site's URL, zone and rules, not localhost's."""
    site = make_site(tmp_path / "site", {})
    (site / "_config.yml").write_text(
        "title: Test Site\nurl: https://t.example\ntimezone: Asia/Tokyo\n"
    )
    post_file = (site / place).resolve()
    post_file.parent.mkdir(parents=True, exist_ok=True)
    post_file.write_text(GOOD_POST.replace("09:00:00 +0000", "01:00:00 +0900"), encoding="utf-8")
    out = tmp_path / "preview"
    settings = settings_for(site, tmp_path)
    assert preview(settings, post_file, telegram=True, email=False, out=out) == 0
    assert (out / "01-sendPhoto.html").read_text().startswith(f'<b><a href="{url}">')
