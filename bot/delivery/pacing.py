"""Pacing of Telegram sends: a global rate with a margin, one message per second per chat;
and the pause of a whole channel whose server is failing.

The pacer is plain arithmetic on the times it is given, so it is tested as tables; the
delivery loop reads the clock and sleeps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# Telegram counts in rolling windows and sees our requests with network jitter, so a pacer
# at exactly the limit meets limit+1 in some second. Aim a little below.
GLOBAL_MARGIN = 0.95
# "About one message per second" per chat; leave slack for the same jitter.
PER_CHAT_INTERVAL_S = 1.05
# Groups may get 20 messages a minute: a 429 for a chat we wrote to this recently may be
# that chat's own limit rather than the global one.
OWN_LIMIT_WINDOW_S = 60.0
# Above this rate Telegram charges for the excess, via `allow_paid_broadcast`.
FREE_RATE_PER_S = 30.0


def is_paid(rate_per_s: float) -> bool:
    """Whether sends at this rate need `allow_paid_broadcast`."""
    return rate_per_s > FREE_RATE_PER_S


@dataclass(frozen=True)
class Slot:
    """When a send may start; `granted` is False when the caller must ask again at `at`."""

    at: float
    granted: bool


class Pacer:
    """Hands out send times: never more than the global rate, one per chat per interval."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        margin: float = GLOBAL_MARGIN,
        per_chat_interval_s: float = PER_CHAT_INTERVAL_S,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.interval_s = 1.0 / (rate_per_s * margin)
        self.per_chat_interval_s = per_chat_interval_s
        self._next_global = 0.0
        self._paused_until = 0.0
        self._chat_free: dict[str, float] = {}
        self._chat_prev: dict[str, float] = {}  # the grant before the latest, per chat
        self._last_prune = 0.0
        # Slots are evenly spaced, but a busy event loop starts some late and then several
        # at once; a rolling window over actual start times keeps the rate true regardless.
        self.window_max = max(1, math.floor(rate_per_s * margin))
        self._starts: deque[float] = deque()

    @property
    def paid(self) -> bool:
        return is_paid(self.rate_per_s)

    def reserve(self, chat: str, now: float) -> Slot:
        """Book the next global slot for `chat`, or say when the chat or sender is free again.

        A granted slot may lie a little in the future (the caller sleeps until then); the
        chat is booked from that moment so no other send to it is granted meanwhile.
        """
        self._prune(now)
        blocked_until = max(self._chat_free.get(chat, 0.0), self._paused_until)
        if blocked_until > now:
            return Slot(blocked_until, granted=False)
        at = max(now, self._next_global)
        self._next_global = at + self.interval_s
        if chat in self._chat_free:
            self._chat_prev[chat] = self._chat_free[chat] - self.per_chat_interval_s
        self._chat_free[chat] = at + self.per_chat_interval_s
        return Slot(at, granted=True)

    def admit(self, now: float) -> float:
        """Record a send starting now and return 0, or the seconds to wait if the last
        second already holds `window_max` starts."""
        starts = self._starts
        while starts and starts[0] <= now - 1.0:
            starts.popleft()
        if len(starts) >= self.window_max:
            return starts[0] + 1.0 - now + 1e-6
        starts.append(now)
        return 0.0

    def throttled(self, chat: str, retry_after_s: float, now: float, *, sent_at: float) -> bool:
        """Telegram answered 429 for `chat`: pause it; returns True if the whole sender paused.

        A chat that had no other message shortly before cannot have hit its own limit, so
        the global budget was exceeded and every send waits.
        """
        until = now + retry_after_s
        self._chat_free[chat] = max(self._chat_free.get(chat, 0.0), until)
        previous = self._chat_prev.get(chat)
        if previous is not None and sent_at - OWN_LIMIT_WINDOW_S <= previous < sent_at:
            return False
        self._paused_until = max(self._paused_until, until)
        self._next_global = max(self._next_global, until)
        return True

    def _prune(self, now: float) -> None:
        # Forget chats whose pause is over, so a fan-out to millions keeps the dict small.
        if now - self._last_prune < 5.0 or len(self._chat_free) < 10_000:
            return
        self._last_prune = now
        self._chat_free = {c: t for c, t in self._chat_free.items() if t > now}
        horizon = now - OWN_LIMIT_WINDOW_S
        self._chat_prev = {c: t for c, t in self._chat_prev.items() if t > horizon}


class ChannelPause:
    """A channel whose server failed waits as a whole until `until`; pauses in a row back off.

    Arithmetic only: the caller reads the clock and passes `now`.
    """

    def __init__(self) -> None:
        self.until = 0.0
        self.pauses = 0  # pauses in a row, since the last send that went through
        self.reason = ""

    def paused(self, now: float) -> bool:
        return now < self.until

    def pause(self, until: float, now: float, reason: str) -> bool:
        """Pause until `until`; True when this starts a pause, False during one already on
        (sends in flight together fail together: one pause, not one per send)."""
        if self.paused(now):
            return False
        self.until, self.reason = until, reason
        self.pauses += 1
        return True

    def resume(self) -> int:
        """A send went through: the backoff starts afresh; returns the pauses that ended."""
        ended, self.pauses = self.pauses, 0
        return ended
