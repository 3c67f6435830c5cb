"""`classify` as a table: each error a transport can raise → the verdict for its row."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.delivery.outcomes import Action, RetryPolicy, Verdict, classify
from bot.errors import (
    ChatMigratedError,
    DeleteRefusedError,
    ImageError,
    PermanentError,
    RelayError,
    TimedOutError,
    TransientError,
)
from bot.models import Channel, Degrade, Status

NOW = 1_000.0
POLICY = RetryPolicy(max_attempts=3, delay_s=lambda attempt: 10.0 * attempt)
TG, EMAIL = Channel.TELEGRAM, Channel.EMAIL
NONE, PLAIN, NO_PHOTO = Degrade.NONE, Degrade.PLAIN, Degrade.NO_PHOTO


def verdict(action: Action, **fields: object) -> Verdict:
    return Verdict(action=action, **fields)  # type: ignore[arg-type]


CASES = [
    # error, channel, attempts so far, flags → verdict (error text left out)
    pytest.param(None, TG, 0, NONE, verdict(Action.SENT), id="sent"),
    pytest.param(None, EMAIL, 2, NONE, verdict(Action.SENT), id="sent-on-last-try"),
    pytest.param(TransientError("5xx"), TG, 0, NONE,
                 verdict(Action.RETRY, retry_at=NOW + 10), id="transient-first-retry"),
    pytest.param(TransientError("451"), EMAIL, 1, NONE,
                 verdict(Action.RETRY, retry_at=NOW + 20), id="transient-backs-off"),
    pytest.param(TransientError("5xx"), TG, 2, NONE, verdict(Action.FAIL),
                 id="transient-gives-up-at-max-attempts"),
    pytest.param(TransientError("429", retry_after_s=7), TG, 0, NONE,
                 verdict(Action.THROTTLE, retry_at=NOW + 7), id="429-throttles"),
    pytest.param(TransientError("429", retry_after_s=7), TG, 2, NONE,
                 verdict(Action.THROTTLE, retry_at=NOW + 7), id="429-spends-no-attempt"),
    pytest.param(TimedOutError("no answer", retry_after_s=60), TG, 0, NONE,
                 verdict(Action.RETRY, retry_at=NOW + 60), id="timeout-retries-after-floor"),
    pytest.param(TimedOutError("no answer", retry_after_s=15), TG, 1, NONE,
                 verdict(Action.RETRY, retry_at=NOW + 20), id="timeout-backoff-above-floor"),
    pytest.param(TimedOutError("no answer", retry_after_s=60), TG, 2, NONE,
                 verdict(Action.FAIL), id="timeout-spends-attempts"),
    pytest.param(PermanentError("403", deactivate=True), TG, 0, NONE,
                 verdict(Action.DEACTIVATE, status=Status.BLOCKED), id="403-blocks-chat"),
    pytest.param(PermanentError("550", deactivate=True), EMAIL, 0, NONE,
                 verdict(Action.BOUNCE), id="550-counts-a-bounce"),
    pytest.param(PermanentError("400"), TG, 0, NONE,
                 verdict(Action.DEGRADE, flags=PLAIN), id="400-resends-plain"),
    pytest.param(PermanentError("400"), TG, 0, PLAIN, verdict(Action.FAIL),
                 id="400-plain-already-fails"),
    pytest.param(ImageError("bad photo"), TG, 0, NONE,
                 verdict(Action.DEGRADE, flags=NO_PHOTO), id="image-resends-text"),
    pytest.param(DeleteRefusedError("48 h"), TG, 0, NONE,
                 verdict(Action.DEGRADE, flags=Degrade.NO_DELETE), id="too-old-edits-instead"),
    pytest.param(DeleteRefusedError("48 h"), TG, 0, Degrade.NO_DELETE, verdict(Action.FAIL),
                 id="too-old-twice-fails"),
    pytest.param(ImageError("bad photo"), TG, 0, PLAIN,
                 verdict(Action.DEGRADE, flags=PLAIN | NO_PHOTO), id="image-keeps-plain"),
    pytest.param(PermanentError("refused"), EMAIL, 0, NONE, verdict(Action.FAIL),
                 id="email-permanent-fails"),
    pytest.param(ChatMigratedError("moved", new_chat_id=-100123), TG, 0, NONE,
                 verdict(Action.MIGRATE, address="-100123"), id="migrated-resends"),
    pytest.param(RelayError("SMTP server refused the greeting"), EMAIL, 0, NONE,
                 verdict(Action.PAUSE, retry_at=NOW + 10), id="relay-pauses-email"),
    pytest.param(RelayError("SMTP server did not answer"), EMAIL, 2, NONE,
                 verdict(Action.PAUSE, retry_at=NOW + 10), id="relay-spends-no-attempt"),
    pytest.param(ValueError("bug"), TG, 0, NONE,
                 verdict(Action.RETRY, retry_at=NOW + 10), id="internal-error-retries"),
    pytest.param(ValueError("bug"), EMAIL, 2, NONE, verdict(Action.FAIL),
                 id="internal-error-gives-up"),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "channel", "attempts", "flags", "expected"), CASES)
def test_classify(
    exc: BaseException | None, channel: Channel, attempts: int, flags: Degrade, expected: Verdict
) -> None:
    """Each outcome of a send maps to exactly one action, retry time, form and status."""
    got = classify(exc, channel=channel, attempts=attempts, flags=flags, now=NOW, policy=POLICY)
    assert replace(got, error=None) == expected


@pytest.mark.parametrize(("pauses", "retry_at"), [(0, NOW + 10), (1, NOW + 20), (4, NOW + 50)])
def test_relay_pause_backs_off(pauses: int, retry_at: float) -> None:
    """A channel paused again and again waits longer each time, by the retry policy."""
    got = classify(
        RelayError("SMTP server refused DATA"),
        channel=EMAIL, attempts=0, flags=NONE, now=NOW, policy=POLICY, pauses=pauses,
    )  # fmt: skip
    assert (got.action, got.retry_at) == (Action.PAUSE, retry_at)


@pytest.mark.parametrize(
    ("exc", "attempts", "text"),
    [
        (TransientError("SMTP 451 later"), 0, "SMTP 451 later"),
        (TransientError(""), 0, "TransientError"),
        (ValueError("boom"), 0, "internal: ValueError('boom')"),
        (TransientError("SMTP 451 later"), 2, "gave up after 3 attempts: SMTP 451 later"),
    ],
)
def test_classify_error_text(exc: BaseException, attempts: int, text: str) -> None:
    """The verdict's error names the failure, marks internal errors and says when it gave up."""
    got = classify(exc, channel=EMAIL, attempts=attempts, flags=NONE, now=NOW, policy=POLICY)
    assert got.error == text
