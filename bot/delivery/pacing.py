"""Pacing of Telegram sends: a global rate with a margin, one message per second per chat;
and the pause of a whole channel whose server is failing.

The pacer is plain arithmetic on the times it is given, so it is tested as tables; the
delivery loop reads the clock and sleeps. Its global slots come from a slot source: its own
schedule (one process on the database), or windows of the budget every process shares
(PostgreSQL), which the sender books from the database whenever the pacer runs out.
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
# An edit goes when fewer than this many other calls can reach Telegram in its second, so
# that second holds at most 29 of the 30; while too many are still open, it looks again
# this often.
FREE_LIMIT = 29
CROWD_POLL_S = 0.02
# How much of the shared free lane a process books at once (edits are few a second).
FREE_WINDOW_S = 0.5
# Processes sharing the budget each add their own jitter (a connection being opened, a busy
# event loop, a process waiting for a CPU) and may send at the same moments: aim lower.
SHARED_MARGIN = 0.92
# A shared slot is used at its time or not at all: one started later than this would crowd
# the slots of other processes. The shared margin leaves 0.087 s in a second; the rest of it
# is for the way from the start of a send to Telegram.
SHARED_LATE_S = 0.02
# How much of the shared budget a process books at once: a dead process loses no more.
SHARED_WINDOW_S = 0.1


def is_paid(rate_per_s: float) -> bool:
    """Whether sends at this rate need `allow_paid_broadcast`."""
    return rate_per_s > FREE_RATE_PER_S


@dataclass(frozen=True)
class Slot:
    """When a send may start; `granted` is False when the caller must ask again at `at`.

    `starved`: no global slot is left; the caller books a window of the shared budget
    (`Pacer.supply`) and asks again.
    """

    at: float
    granted: bool
    starved: bool = False


class LocalSlots:
    """The global slots of the one process sending: evenly spaced from when they are asked for."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def first(self, now: float) -> float:
        """When the next slot would be (nothing taken)."""
        return max(now, self._next)

    def take(self, now: float) -> float | None:
        at = max(now, self._next)
        self._next = at + self.interval_s
        return at

    def hold(self, until: float) -> None:
        self._next = max(self._next, until)

    def left(self, now: float) -> int:
        return 1  # never runs out


class SharedSlots:
    """Global slots booked from the budget all processes share, in windows of `count` slots
    `interval_s` apart; each is used at its time (never early), or dropped once more than
    `late_s` has passed (its moment may belong to another process's window right after)."""

    def __init__(self, interval_s: float, *, late_s: float = SHARED_LATE_S) -> None:
        self.interval_s = interval_s
        self.late_s = late_s
        self.dropped = 0  # slots that passed unused
        self._windows: deque[tuple[float, int]] = deque()  # (next slot, slots left)

    def supply(self, start: float, count: int) -> None:
        if count > 0:
            self._windows.append((start, count))

    def first(self, now: float) -> float | None:
        """When the next usable slot is (nothing taken); None when none is left."""
        return self._windows[0][0] if self.left(now) else None

    def take(self, now: float) -> float | None:
        if not self.left(now):
            return None
        at, count = self._windows[0]
        if count > 1:
            self._windows[0] = (at + self.interval_s, count - 1)
        else:
            self._windows.popleft()
        return at

    def hold(self, until: float) -> None:
        """The sender is paused until `until`: the slots before it are lost."""
        self._drop_before(until)

    def left(self, now: float) -> int:
        """Slots still usable at `now` (the late ones are dropped first)."""
        self._drop_before(now - self.late_s)
        return sum(count for _, count in self._windows)

    def _drop_before(self, t: float) -> None:
        windows = self._windows
        while windows and windows[0][0] < t:
            at, count = windows.popleft()
            gone = min(count, math.floor((t - at) / self.interval_s) + 1)
            self.dropped += gone
            if gone < count:
                windows.appendleft((at + gone * self.interval_s, count - gone))


class FreeLane:
    """Evenly spaced turns at the free rate, for the calls paid broadcasting does not cover.

    `allow_paid_broadcast` exists on sends only: edits and deletes are held to Telegram's
    free 30 messages a second even while sends go at a paid rate, and Telegram counts the
    paid sends in those 30. So in paid mode an edit takes a turn here instead of a slot of
    the pacer, and waits until few enough calls of any kind can still reach Telegram
    within the second before it does.

    Telegram counts a call when it arrives, which is after it started and before its answer
    came: a call still open, or answered less than a second ago, may be in that second;
    one answered earlier cannot be. So the lane counts calls by their answers, whatever the
    way to Telegram takes (counting by starts let a burst of paid sends that arrived late
    meet the first edits). That count is of this process's calls.

    `shared`: the turns are a budget every process on the database shares, booked like
    the pacer's (`window_size` at a time, handed in with `supply`); the database places
    them a second after the paid sends any process booked, and paid sends after them.
    """

    def __init__(
        self,
        rate_per_s: float | None = None,
        limit: int = FREE_LIMIT,
        *,
        shared: bool = False,
        window_s: float = FREE_WINDOW_S,
    ) -> None:
        if rate_per_s is None:
            rate_per_s = FREE_RATE_PER_S * (SHARED_MARGIN if shared else GLOBAL_MARGIN)
        self.slot_rate_per_s = rate_per_s
        self.interval_s = 1.0 / rate_per_s
        self.limit = limit  # calls that may reach Telegram in the second before an edit's
        self.shared = SharedSlots(self.interval_s) if shared else None
        self._slots: LocalSlots | SharedSlots = self.shared or LocalSlots(self.interval_s)
        self.window_size = max(1, round(rate_per_s * window_s))
        self._open = 0
        self._answered: deque[float] = deque()  # when the calls of the last second ended

    def reserve(self, now: float, hold_max_s: float) -> Slot:
        """A turn, taken, at `at`; or not granted (nothing taken) when the next is more than
        `hold_max_s` away; or starved: the caller books a window of the shared lane."""
        at = self._slots.first(now)
        if at is None:
            return Slot(now, granted=False, starved=True)
        if at - now > hold_max_s:
            return Slot(at, granted=False)
        self._slots.take(now)
        return Slot(at, granted=True)

    def supply(self, start: float, count: int) -> None:
        """A window of the shared lane: `count` turns from `start`, `interval_s` apart."""
        assert self.shared is not None, "supply() is for a lane of the shared budget"
        self.shared.supply(start, count)

    def starved(self, now: float) -> bool:
        return self._slots.left(now) == 0

    def missed(self, at: float, now: float) -> bool:
        """Whether a shared turn granted `at` starts too late at `now` (another process's
        may follow right after it): then it is given up."""
        if self.shared is None or now - at <= self.shared.late_s:
            return False
        self.shared.dropped += 1
        return True

    def opened(self) -> None:
        """A call of any kind (send or edit) starts."""
        self._open += 1

    def closed(self, now: float) -> None:
        """A call opened before has its answer (or failed) at `now`."""
        self._open -= 1
        self._answered.append(now)
        self._forget(now)

    def crowded_for(self, now: float) -> float:
        """Seconds until an edit starting then meets fewer than `limit` calls that may reach
        Telegram in its second (0: now). While too many calls are still open, a short poll."""
        self._forget(now)
        answered = self._answered
        excess = self._open + len(answered) - self.limit + 1  # calls that must age out first
        if excess <= 0:
            return 0.0
        if excess > len(answered):
            return CROWD_POLL_S
        return answered[excess - 1] + 1.0 - now + 1e-6

    def _forget(self, now: float) -> None:
        answered = self._answered
        while answered and answered[0] <= now - 1.0:
            answered.popleft()


class Pacer:
    """Hands out send times: never more than the global rate, one per chat per interval.

    `shared`: the global slots are the budget every process on the database shares; the
    sender books them (`window_size` at a time at `slot_rate_per_s`) when a reservation
    comes back `starved`, and hands them in with `supply`.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        margin: float | None = None,
        per_chat_interval_s: float = PER_CHAT_INTERVAL_S,
        shared: bool = False,
        window_s: float = SHARED_WINDOW_S,
    ) -> None:
        if margin is None:
            margin = SHARED_MARGIN if shared else GLOBAL_MARGIN
        self.rate_per_s = rate_per_s
        self.slot_rate_per_s = rate_per_s * margin
        self.interval_s = 1.0 / self.slot_rate_per_s
        self.per_chat_interval_s = per_chat_interval_s
        self.shared = SharedSlots(self.interval_s) if shared else None
        self._slots: LocalSlots | SharedSlots = self.shared or LocalSlots(self.interval_s)
        self.window_size = max(1, round(self.slot_rate_per_s * window_s))
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

    def reserve(self, chat: str, now: float, *, slot: bool = True) -> Slot:
        """Book the next global slot for `chat`, or say when the chat or sender is free again.

        A granted slot may lie a little in the future (the caller sleeps until then); the
        chat is booked from that moment so no other send to it is granted meanwhile.
        `slot` False: the chat only, granted now (an edit in paid mode: its global turn
        comes from the free lane).
        """
        self._prune(now)
        blocked_until = max(self._chat_free.get(chat, 0.0), self._paused_until)
        if blocked_until > now:
            return Slot(blocked_until, granted=False)
        at = self._slots.take(now) if slot else now
        if at is None:
            return Slot(now, granted=False, starved=True)
        if chat in self._chat_free:
            self._chat_prev[chat] = self._chat_free[chat] - self.per_chat_interval_s
        self._chat_free[chat] = at + self.per_chat_interval_s
        return Slot(at, granted=True)

    def supply(self, start: float, count: int) -> None:
        """A window of the shared budget: `count` slots from `start`, `interval_s` apart."""
        assert self.shared is not None, "supply() is for a pacer of the shared budget"
        self.shared.supply(start, count)

    def missed(self, chat: str, at: float, now: float) -> bool:
        """Whether the send granted `at` for `chat` starts too late at `now` for a shared slot
        (the event loop was busy meanwhile): then the slot is given up and the chat is free
        to be granted another; a slot of this process's own is never missed."""
        if self.shared is None or now - at <= self.shared.late_s:
            return False
        self.shared.dropped += 1
        self._chat_free[chat] = min(self._chat_free.get(chat, 0.0), now)
        return True

    def starved(self, now: float) -> bool:
        """Whether no global slot is left (only a shared pacer runs out)."""
        return self._slots.left(now) == 0

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
        self._slots.hold(until)
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
