"""`degrade` as a table: the simpler message sent after Telegram refused one."""

from __future__ import annotations

import pytest

from bot.delivery.fallback import degrade
from bot.models import (
    DELETE,
    EDIT_CAPTION,
    EDIT_MEDIA,
    EDIT_TEXT,
    Degrade,
    TelegramMessage,
)

IMG = "https://example.org/a.jpg"
NOTICE = "<i>Withdrawn</i> &amp; gone"


@pytest.mark.parametrize(
    ("method", "photo", "flags", "expected"),
    [
        ("sendPhoto", IMG, Degrade.NO_PHOTO, ("sendMessage", None, NOTICE)),
        ("sendMessage", None, Degrade.PLAIN, ("sendMessage", None, "Withdrawn &amp; gone")),
        (DELETE, IMG, Degrade.NO_DELETE, (EDIT_CAPTION, IMG, NOTICE)),  # a photo's caption
        (DELETE, None, Degrade.NO_DELETE, (EDIT_TEXT, None, NOTICE)),
        (DELETE, None, Degrade.PLAIN, (DELETE, None, "Withdrawn &amp; gone")),
        (EDIT_MEDIA, IMG, Degrade.NO_PHOTO, (EDIT_CAPTION, IMG, NOTICE)),  # old image stays
        (EDIT_TEXT, None, Degrade.NONE, (EDIT_TEXT, None, NOTICE)),
    ],
)
def test_each_refusal_has_its_simpler_form(
    method: str, photo: str | None, flags: Degrade, expected: tuple[str, str | None, str]
) -> None:
    """Too old to delete → an edit with the notice; a failed image → text, or the caption."""
    message = TelegramMessage(method, NOTICE, photo, "Read", "https://example.org/p")
    out = degrade(message, flags)
    assert (out.method, out.photo, out.text) == expected
    assert (out.button_text, out.button_url) == ("Read", "https://example.org/p")
