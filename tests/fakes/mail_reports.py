"""Real-shaped bounce mail (tests/bounces/samples/*.eml) and a real SMTP client to post it.

The samples are what Postfix, Exim, Gmail, Yahoo, AOL and Outlook send, with the parts
that depend on the test left as words to fill in: RETURN_PATH (the VERP envelope sender the
bounced email had), RECIPIENT (the reader's address) and UNSUBSCRIBE_URL (its link).
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "bounces" / "samples"


def sample(
    name: str,
    *,
    return_path: str = "bounce+none@bounces.example.org",
    recipient: str = "reader@example.com",
    unsubscribe_url: str = "https://news.example.org/unsubscribe/none",
) -> bytes:
    """The sample `name` (without .eml), filled in, with CRLF line ends as SMTP carries it."""
    text = (SAMPLES / f"{name}.eml").read_text(encoding="utf-8")
    for word, value in (
        ("RETURN_PATH", return_path),
        ("RECIPIENT", recipient),
        ("UNSUBSCRIBE_URL", unsubscribe_url),
    ):
        text = text.replace(word, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


@dataclass(frozen=True)
class Answer:
    """What the server said to the message: the code, or the refused recipients."""

    code: int
    refused: dict[str, tuple[int, bytes]]


def _post(host: str, port: int, data: bytes, rcpt: list[str], mail_from: str) -> Answer:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("mta.example.net")
        code, _ = client.mail(mail_from)
        if code != 250:
            return Answer(code, {})
        refused = {}
        for address in rcpt:
            code, reply = client.rcpt(address)
            if code not in (250, 251):
                refused[address] = (code, reply)
        if len(refused) == len(rcpt):
            client.rset()
            return Answer(min(c for c, _ in refused.values()), refused)
        try:
            code, _ = client.data(data)
        except smtplib.SMTPDataError as exc:  # e.g. 552: too big
            code = exc.smtp_code
        return Answer(code, refused)


async def post(
    port: int, data: bytes, rcpt: str | list[str], *, mail_from: str = "", host: str = "127.0.0.1"
) -> Answer:
    """Send `data` over real SMTP (smtplib, in a thread) with a null sender, as a bounce is."""
    rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
    return await asyncio.to_thread(_post, host, port, data, rcpts, mail_from)
