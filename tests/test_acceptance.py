"""End to end: the real `herald` command in subprocesses, driven as a user would drive it."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import socket
import sqlite3
import time
from pathlib import Path

import httpx

from tests.fakes.bot_api import TOKEN, FakeBotAPI, Sent
from tests.fakes.smtp_sink import SmtpSink
from tests.fakes.tg_html import check
from tests.support.acceptance import (
    READY,
    Herald,
    delete_database,
    files_under,
    free_port,
    mail_parts,
    parse_eml,
    poll,
    post_text,
    recent,
    sample_breaking,
    unwritable,
    visible,
)

ARRIVAL_S = 3.0  # "within seconds": watcher debounce plus delivery, on two busy cores
QUIET_S = 1.5  # how long we watch for something that must not happen


def check_outbox_telegram(path: Path) -> str:
    """One outbox Telegram file: valid Bot API HTML for its method; returns the text."""
    text = path.read_text(encoding="utf-8")
    check(text, caption="sendPhoto" in path.name)
    return text


def check_outbox_email(path: Path, public_url: str) -> tuple[str, str]:
    """One outbox .eml: the SPEC's headers and parts, a visible unsubscribe link."""
    msg = parse_eml(path)
    for header in ("From", "To", "Date", "Message-ID", "Subject"):
        assert msg[header], f"{path.name}: no {header} header"
    unsubscribe = str(msg["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith(f"<{public_url}/unsubscribe/"), unsubscribe
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, page = mail_parts(msg)
    link = unsubscribe.strip("<>")
    assert link in text
    assert f'href="{link}"' in page
    assert len(page.encode()) < 102 * 1024
    return text, page


async def test_outbox_mode_announces_new_posts_once(tmp_path: Path) -> None:
    """Without token or SMTP a new post lands in outbox/ within seconds, once, across restarts."""
    herald = Herald(tmp_path, defaults=True)  # examples/site, data/, outbox/ under the cwd
    tg_dir, mail_dir = herald.outbox / "telegram", herald.outbox / "email"
    async with herald.run() as run:
        await asyncio.sleep(0.5)
        assert files_under(herald.outbox) == []  # the demo posts are the baseline, not news
        title = "Breaking: Acceptance <alert> & co"
        herald.write_post(
            f"{recent():%Y-%m-%d}-acceptance-alert.md", sample_breaking(title, recent())
        )
        # Typically 0.1 s; the brief promises 2 s.
        await poll(lambda: files_under(tg_dir) and files_under(mail_dir), 2.0, "outbox files")
        await asyncio.sleep(0.3)  # a split message would show up as a second file now
        (alert,) = files_under(tg_dir)
        assert "Acceptance <alert> & co" in visible(check_outbox_telegram(alert))
        (eml,) = files_under(mail_dir)
        text, page = check_outbox_email(eml, herald.public_url)
        assert "Acceptance <alert> & co" in text
        assert "Acceptance &lt;alert&gt; &amp; co" in page
        assert await run.stop() == 0
    assert "ready" in run.log

    before = files_under(herald.outbox)
    async with herald.run() as run:
        alert_file = next(herald.posts.glob("*acceptance-alert.md"))
        alert_file.write_text(alert_file.read_text() + "\nAn update.\n", encoding="utf-8")
        (herald.posts / "news").mkdir()
        alert_file.rename(herald.posts / "news" / alert_file.name)
        quiet = f"{recent():%Y-%m-%d}-quiet-day.md"
        herald.write_post(quiet, "---\ntitle: [A quiet\n---\nHalf written.\n")
        await run.wait_line(lambda line: quiet in line, ARRIVAL_S)  # skipped, and said so
        await asyncio.sleep(QUIET_S)
        assert files_under(herald.outbox) == before  # restart, edit, rename: nothing new
        herald.write_post(
            quiet, post_text("A quiet market day", "Nothing much happened.", recent(0.5))
        )
        await poll(lambda: len(files_under(herald.outbox)) >= len(before) + 2, ARRIVAL_S, "post")
        await asyncio.sleep(0.3)
        new = sorted(set(files_under(herald.outbox)) - set(before))
        assert [p.parent.name for p in new] == ["email", "telegram"]
        assert "A quiet market day" in visible(check_outbox_telegram(new[1]))
        check_outbox_email(new[0], herald.public_url)
        assert await run.stop() == 0

    assert (tmp_path / "data" / "herald.db").is_file()
    shown = files_under(herald.outbox)
    code, out, err = await herald.cli("digest", "--dry-run")
    assert code == 0, err
    assert "Acceptance <alert> & co" in out or "Acceptance &lt;alert&gt; &amp; co" in out
    assert "A quiet market day" in out
    assert files_under(herald.outbox) == shown  # printed, not sent
    code, out, err = await herald.cli("digest")
    assert code == 0, err
    sent = sorted(set(files_under(herald.outbox)) - set(shown))
    assert [p.parent.name for p in sent] == ["email", "telegram"]
    digest = visible(check_outbox_telegram(sent[1]))
    assert "Acceptance <alert> & co" in digest and "A quiet market day" in digest
    code, out, err = await herald.cli("digest")
    assert code == 0, err
    assert len(files_under(herald.outbox)) == len(shown) + 2  # nothing new since: nothing sent


def _buttons(sent: Sent) -> list[dict[str, str]]:
    rows = (sent.reply_markup or {}).get("inline_keyboard") or []
    return [button for row in rows for button in row]


async def test_telegram_mode_commands_alerts_and_broadcast(tmp_path: Path) -> None:
    """Against a fake Bot API: /start subscribes, a breaking post alerts once, admins broadcast."""
    admin, reader = 1001, 2002
    async with FakeBotAPI() as fake:
        herald = Herald(
            tmp_path,
            HERALD_TELEGRAM_TOKEN=TOKEN,
            HERALD_TELEGRAM_API_URL=fake.base_url,
            HERALD_ADMIN_IDS=str(admin),
            HERALD_TELEGRAM_CHANNEL="@herald_news",
        )
        async with herald.run() as run:
            for chat in (reader, admin):
                fake.push_command(chat, chat, "/start")
                await fake.wait_for(lambda c=chat: fake.sent_to(c), timeout=10)
                (welcome,) = fake.sent_to(chat)
                assert welcome.parse_mode == "HTML"
                assert any(b.get("callback_data", "").startswith("set:") for b in _buttons(welcome))

            # As a site writes a literal "<" (a bare <old> is an HTML tag, shown as nothing).
            body = "The &lt;old&gt; bridge & the road are shut."
            herald.write_post(
                f"{recent():%Y-%m-%d}-bridge-closed.md",
                post_text("Bridge closed", body, recent(), breaking="true"),
            )

            def alerts(chat: int | str) -> list[Sent]:
                return [
                    s for s in fake.sent_to(chat) if "Bridge closed" in (s.text or s.caption or "")
                ]

            await fake.wait_for(
                lambda: alerts(reader) and alerts(admin) and alerts("@herald_news"),
                timeout=ARRIVAL_S + 2,
            )
            await asyncio.sleep(QUIET_S)
            for chat in (reader, admin, "@herald_news"):
                (alert,) = alerts(chat)
                assert alert.method in {"sendMessage", "sendPhoto"}
                assert alert.parse_mode == "HTML"
                assert "The <old> bridge & the road are shut." in visible(
                    alert.text or alert.caption or ""
                )

            # A reader may not broadcast: refused, and nothing goes anywhere.
            count = len(fake.sent)
            fake.push_command(reader, reader, "/broadcast <b>free</b> stuff")
            await fake.wait_for(lambda: len(fake.sent) > count, timeout=10)
            await asyncio.sleep(0.5)
            (refusal,) = fake.sent[count:]
            assert refusal.chat_id == reader and "/broadcast" in visible(refusal.text or "")
            assert not any(_buttons(s) for s in fake.sent[count:])

            # The admin's bold stays bold, the typed `<site> & co` arrives as typed.
            count = len(fake.sent)
            text = "/broadcast hi <site> & co"
            bold = {"type": "bold", "offset": len("/broadcast "), "length": 2}
            fake.push_command(admin, admin, text, entities=[bold])
            await fake.wait_for(lambda: any(_buttons(s) for s in fake.sent[count:]), timeout=10)
            preview = [s for s in fake.sent[count:] if not _buttons(s)]
            (confirm,) = [s for s in fake.sent[count:] if _buttons(s)]
            assert [s.chat_id for s in (*preview, confirm)] == [admin] * (len(preview) + 1)
            assert preview and "<b>hi</b>" in (preview[0].text or "")
            assert "hi <site> & co" in visible(preview[0].text or "")
            assert "2" in visible(confirm.text or "")  # two recipients
            send = next(b for b in _buttons(confirm) if b["callback_data"].startswith("bc:send"))
            await asyncio.sleep(0.5)
            assert not [s for s in fake.sent_to(reader) if "&lt;site&gt;" in (s.text or "")]
            fake.push_callback(admin, admin, send["callback_data"], confirm.message_id)

            def got_broadcast(chat: int) -> list[Sent]:
                return [
                    s
                    for s in fake.sent_to(chat)
                    if s.method != "editMessageText" and s not in preview
                    and visible(s.text or "").endswith("\n\nhi <site> & co")
                ]  # fmt: skip

            await fake.wait_for(lambda: got_broadcast(reader) and got_broadcast(admin), timeout=10)
            await asyncio.sleep(QUIET_S)
            for chat in (reader, admin):
                (message,) = got_broadcast(chat)
                assert "<b>hi</b>" in (message.text or "") and message.parse_mode == "HTML"

            count = len(fake.sent)
            fake.push_command(admin, admin, "/stats")
            await fake.wait_for(
                lambda: any(s.chat_id == admin for s in fake.sent[count:]), timeout=10
            )
            stats = visible(next(s for s in fake.sent[count:] if s.chat_id == admin).text or "")
            assert "Telegram" in stats and "2 active" in stats
            assert await run.stop() == 0
        token_secret = TOKEN.split(":", 1)[1]
        leaks = [line for line in run.lines if token_secret in line]
        assert leaks == [], leaks


CSV_FILE = """channel,address,breaking,daily
email,alice@example.com,true,false
email,bob@example.com,1,1
email,carol@example.com,no,yes
telegram,5005,yes,no
email,dave@example.com,maybe,true
"""


async def test_email_via_smtp_after_csv_import(tmp_path: Path) -> None:
    """Imported and web-confirmed addresses get each breaking post once, until they leave."""
    herald = Herald(tmp_path)
    source = tmp_path / "subscribers.csv"
    source.write_text(CSV_FILE, encoding="utf-8")
    code, out, err = await herald.cli("subscribers", "import", str(source))
    assert code == 0, err
    assert "line 6" in err and "dave" not in out  # the bad row, by its line number
    assert "imported 4" in out
    async with SmtpSink() as sink, herald.run(HERALD_SMTP_URL=sink.url) as run:
        herald.write_post(
            f"{recent():%Y-%m-%d}-storm.md",
            post_text("Storm warning", "Stay &lt;inside&gt; & safe.", recent(), tags="[Breaking]"),
        )
        await sink.wait_for(lambda m: "bob@" in str(m["To"]), ARRIVAL_S + 2)
        await sink.wait_for(lambda m: "alice@" in str(m["To"]), 2)
        await asyncio.sleep(QUIET_S)
        assert sorted(str(m["To"]) for m in sink.messages) == [
            "alice@example.com",
            "bob@example.com",
        ]
        mail = sink.to("alice@example.com")[0]
        assert "Storm warning" in str(mail["Subject"])
        link = str(mail["List-Unsubscribe"]).strip().strip("<>")
        assert link.startswith(f"{herald.public_url}/unsubscribe/")
        text, _ = mail_parts(mail)
        assert "Stay <inside> & safe." in text

        async with httpx.AsyncClient() as client:
            # RFC 8058 one-click, as a mail client does it.
            answer = await client.post(link, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
            # Double opt-in from the web form; a scanner's GET of the link confirms nobody.
            form = {"email": "erin@example.com", "breaking": "on"}
            answer = await client.post(f"{herald.public_url}/subscribe", data=form)
            assert answer.status_code == 200
            confirm = await sink.wait_for(lambda m: "erin@" in str(m["To"]), ARRIVAL_S)
            text, _ = mail_parts(confirm)
            (confirm_link,) = re.findall(rf"{re.escape(herald.public_url)}/confirm/\S+", text)
            assert (await client.get(confirm_link)).status_code == 200
            code, listed, _ = await herald.cli("subscribers", "list", "--status", "active")
            assert "erin@" not in listed
            assert (await client.post(confirm_link)).status_code == 200
        count = len(sink.messages)
        herald.write_post(
            f"{recent():%Y-%m-%d}-storm-over.md",
            post_text("Breaking: Storm over", "All clear.", recent(0.2)),
        )
        await sink.wait_for(lambda m: "Storm over" in str(m["Subject"]), ARRIVAL_S + 2)
        await asyncio.sleep(QUIET_S)
        got = sorted(str(m["To"]) for m in sink.messages[count:])
        assert got == ["bob@example.com", "erin@example.com"]  # alice left, erin joined

        async with httpx.AsyncClient(base_url=herald.public_url) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert "# TYPE" in metrics.text
        assert await run.stop() == 0


async def test_cli_check_preview_subscribers_stats(tmp_path: Path) -> None:
    """`herald check`, `preview`, `subscribers import/export` and `stats` work as documented."""
    herald = Herald(tmp_path)
    code, out, err = await herald.cli("check")
    assert code == 0, out + err
    assert str(herald.posts) in out

    code, out, err = await herald.cli("check", HERALD_DIGEST_TIME="25:00")
    assert code != 0 and "HERALD_DIGEST_TIME" in out + err
    code, out, err = await herald.cli("check", HERALD_SITE_DIR="/nonexistent")
    assert code != 0 and "HERALD_SITE_DIR" in out + err
    assert "Traceback" not in err
    (tmp_path / ".env").write_text("HERALD_TELEGRAM_RATE=fast\n", encoding="utf-8")
    code, out, err = await herald.cli("check")  # ./.env is read too
    assert code != 0 and "HERALD_TELEGRAM_RATE" in out + err
    (tmp_path / ".env").unlink()

    post = next(herald.posts.rglob("*summit*.md"))
    code, _, err = await herald.cli("preview", str(post), "--telegram", "--out", "tg")
    assert code == 0, err
    written = sorted((tmp_path / "tg").iterdir())
    assert written and written[0].name.startswith("01-send") and written[0].suffix == ".html"
    for path in written:
        check(path.read_text(encoding="utf-8"), caption="sendPhoto" in path.name)
    code, _, err = await herald.cli("preview", str(post), "--email", "--out", "mail")
    assert code == 0, err
    emls = list((tmp_path / "mail").glob("*.eml"))
    assert len(emls) == 1 and list((tmp_path / "mail").glob("*.html"))
    mail_parts(parse_eml(emls[0]))

    source = tmp_path / "in.csv"
    source.write_text(CSV_FILE, encoding="utf-8")
    code, _, err = await herald.cli("subscribers", "import", str(source))
    assert code == 0, err
    code, exported, err = await herald.cli("subscribers", "export")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {(r["channel"], r["address"]) for r in rows} == {
        ("email", "alice@example.com"),
        ("email", "bob@example.com"),
        ("email", "carol@example.com"),
        ("telegram", "5005"),
    }
    again = Herald(tmp_path / "other")
    (tmp_path / "out.csv").write_text(exported, encoding="utf-8")
    code, _, err = await again.cli("subscribers", "import", str(tmp_path / "out.csv"))
    assert code == 0, err
    assert (await again.cli("subscribers", "export"))[1] == exported

    code, out, err = await herald.cli("subscribers", "add", "email", "Frank@Example.com")
    assert code == 0, err
    code, out, err = await herald.cli("subscribers", "list")
    assert code == 0 and "5 subscriber(s)" in out and "frank@example.com" in out.lower(), out
    code, out, err = await herald.cli("subscribers", "add", "email", "not an address")
    assert code != 0 and "Traceback" not in err

    code, out, err = await herald.cli("stats")
    assert code == 0, err
    assert "email" in out and "telegram" in out


async def test_taken_web_port_is_one_clear_line(tmp_path: Path) -> None:
    """`herald run` on a taken port exits non-zero and names HERALD_WEB_LISTEN, no traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        herald = Herald(tmp_path, HERALD_WEB_LISTEN=f"127.0.0.1:{port}")
        run = await herald.run().start()
        started = time.monotonic()
        code = await run.wait(timeout=20)
    assert code != 0
    assert time.monotonic() - started < 20
    assert any("HERALD_WEB_LISTEN" in line for line in run.lines), run.log
    assert "Traceback" not in run.log
    assert not any(READY.search(line) for line in run.lines)


async def test_telegram_token_and_reachability_problems(tmp_path: Path) -> None:
    """A rejected token stops `herald run` with a message that never quotes it; a down API waits."""
    secret = "WRONG-secret-value-abcdefghijklmnop"
    async with FakeBotAPI() as fake:
        herald = Herald(
            tmp_path,
            HERALD_TELEGRAM_TOKEN=f"999:{secret}",
            HERALD_TELEGRAM_API_URL=fake.base_url,
        )
        run = await herald.run().start()
        assert await run.wait(timeout=20) != 0
    assert any("HERALD_TELEGRAM_TOKEN" in line for line in run.lines), run.log
    assert secret not in run.log
    assert "Traceback" not in run.log

    token = f"999:{secret}"
    for api in (f"http://127.0.0.1:{free_port()}/bot", "http://"):  # down; unusable
        run = await herald.run(HERALD_TELEGRAM_TOKEN=token, HERALD_TELEGRAM_API_URL=api).start()
        try:
            await run.wait_line(lambda line: "unreachable" in line, timeout=20)
            assert await run.stop() == 0  # SIGTERM while waiting for the Bot API
        finally:
            await run.__aexit__()
        assert "Traceback" not in run.log
        assert secret not in run.log


async def test_a_second_run_on_one_database_is_refused(tmp_path: Path) -> None:
    """A second `herald run` on the database exits with one line naming it; the first works on."""
    herald = Herald(tmp_path)
    db = tmp_path / "data" / "herald.db"
    tg_dir = herald.outbox / "telegram"
    async with herald.run() as first:
        second = await herald.run(HERALD_WEB_LISTEN=f"127.0.0.1:{free_port()}").start()
        assert await second.wait(timeout=20) != 0
        (refusal,) = [line for line in second.lines if str(db) in line]
        assert "herald run" in refusal and "Traceback" not in second.log
        for args in (("subscribers", "list"), ("stats",), ("digest", "--dry-run")):
            code, _, err = await herald.cli(*args)
            assert code == 0, (args, err)
        herald.write_post(
            f"{recent():%Y-%m-%d}-still-served.md",
            sample_breaking("Breaking: Still served", recent()),
        )
        await poll(lambda: files_under(tg_dir), ARRIVAL_S, "the first run's alert")
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: the lock goes with the process
        await first.wait()
    async with herald.run() as third:
        assert await third.stop() == 0


async def test_a_locked_database_is_waited_for(tmp_path: Path) -> None:
    """While another program holds a write lock, `herald run` says so once and waits for it."""
    herald = Herald(tmp_path)
    db = tmp_path / "data" / "herald.db"
    async with herald.run() as run:
        assert await run.stop() == 0
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        waiting = await herald.run().start()
        try:
            await waiting.wait_line(lambda line: "is locked" in line and str(db) in line, 20)
            assert await waiting.stop() == 0  # SIGTERM while waiting
        finally:
            await waiting.__aexit__()
        run = await herald.run().start()
        try:
            await run.wait_line(lambda line: "is locked" in line and str(db) in line, 20)
            assert not any(READY.search(line) for line in run.lines)
            holder.execute("ROLLBACK")
            await run.ready()
            assert await run.stop() == 0
        finally:
            await run.__aexit__()
    finally:
        holder.close()
    assert len([line for line in run.lines if "is locked" in line]) == 1, run.log
    assert "Traceback" not in waiting.log + run.log


async def test_a_read_only_database_or_folder_is_one_sentence(tmp_path: Path) -> None:
    """A database file or folder that refuses writes stops `herald run` with one line, no dump."""
    herald = Herald(tmp_path)
    folder = tmp_path / "data"
    db = folder / "herald.db"
    async with herald.run() as run:
        assert await run.stop() == 0
    # The folder first: a run on a read-only file leaves -wal and -shm, and with those in
    # place a read-only folder does not stop SQLite.
    for frozen, named in ((folder, str(folder)), (db, str(db))):
        with unwritable(frozen):
            run = await herald.run().start()
            assert await run.wait(timeout=20) != 0
        (message,) = [line for line in run.lines if named in line]
        assert "writable" in message, run.log
        assert "Traceback" not in run.log and "ExceptionGroup" not in run.log
        assert not any(READY.search(line) for line in run.lines)


async def test_a_deleted_database_is_noticed_and_not_silently_replaced(tmp_path: Path) -> None:
    """Deleting the database under `herald run` is logged at ERROR; the next start refuses
    to begin afresh with no subscribers until told `--fresh`."""
    herald = Herald(tmp_path)
    db = tmp_path / "data" / "herald.db"
    async with herald.run() as run:
        delete_database(db)
        await run.wait_line(lambda line: "ERROR" in line and str(db) in line, 20)
        assert await run.stop() == 0
    run = await herald.run().start()
    assert await run.wait(timeout=20) != 0
    (refusal,) = [line for line in run.lines if str(db) in line]
    assert "--fresh" in refusal and "Traceback" not in run.log
    async with herald.run("--fresh") as fresh:
        assert await fresh.stop() == 0
    async with herald.run() as again:  # the fresh post log is the database's own now
        assert await again.stop() == 0
