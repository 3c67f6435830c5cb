"""The Telegram pacer: global rate with a margin, one message per second per chat, 429s."""

from __future__ import annotations

import itertools

import pytest

from bot.delivery.pacing import (
    GLOBAL_MARGIN,
    SHARED_LATE_S,
    ChannelPause,
    FreeLane,
    Pacer,
    is_paid,
)


def run(pacer: Pacer, chats: list[str], start: float = 100.0) -> list[float]:
    """Grant every chat its slot in order, as a delivery loop would, and return the times."""
    times: list[float] = []
    now = start
    for chat in chats:
        slot = pacer.reserve(chat, now)
        while not slot.granted:
            now = slot.at
            slot = pacer.reserve(chat, now)
        times.append(slot.at)
    return times


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize(("rate", "sustained_min"), [(25, 23.5), (30, 28.0), (1000, 940.0)])
def test_global_rate_never_exceeded(rate: float, sustained_min: float) -> None:
    """Across 3,000 chats no rolling second holds more than the rate, yet it stays near it."""
    times = run(Pacer(rate), [f"c{i}" for i in range(3000)])
    assert max_in_window(times) <= rate - 1 if rate <= 30 else max_in_window(times) <= rate
    assert (len(times) - 1) / (times[-1] - times[0]) >= sustained_min


def test_one_message_per_second_per_chat() -> None:
    """Five messages to one chat are at least a second apart while other chats go between."""
    pacer = Pacer(100)
    chats = ["a", "b", "a", "c", "a", "d", "a", "a"]
    times = run(pacer, chats)
    a_times = [t for c, t in zip(chats, times, strict=True) if c == "a"]
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(a_times))
    assert times[1] - times[0] < 0.1  # "b" did not wait for "a"


def test_busy_chat_is_not_granted() -> None:
    """A second send to a chat within a second is told when to come back, without a slot."""
    pacer = Pacer(25)
    first = pacer.reserve("a", 10.0)
    again = pacer.reserve("a", 10.01)
    assert first.granted and not again.granted
    assert again.at == pytest.approx(11.05)
    assert pacer.reserve("b", 10.01).at == pytest.approx(10.0 + pacer.interval_s)


def test_429_for_a_fresh_chat_pauses_everything() -> None:
    """A 429 on a chat we had not written to means the global budget is spent: all wait."""
    pacer = Pacer(25)
    slot = pacer.reserve("a", 10.0)
    assert pacer.throttled("a", 5.0, 10.2, sent_at=slot.at)
    b = pacer.reserve("b", 10.3)
    assert not b.granted and b.at == pytest.approx(15.2)
    assert pacer.reserve("b", 15.2).granted


def test_429_for_a_chat_we_just_wrote_pauses_that_chat() -> None:
    """A 429 on a chat written to moments before pauses only that chat for retry_after."""
    pacer = Pacer(25)
    pacer.reserve("g", 10.0)
    slot = pacer.reserve("g", 11.1)
    assert not pacer.throttled("g", 30.0, 11.2, sent_at=slot.at)
    assert pacer.reserve("other", 11.3).granted
    late = pacer.reserve("g", 12.5)
    assert not late.granted and late.at == pytest.approx(41.2)


@pytest.mark.parametrize(("rate", "paid"), [(25, False), (30, False), (30.5, True), (1000, True)])
def test_paid_above_thirty(rate: float, paid: bool) -> None:
    """Rates above 30 msg/s need allow_paid_broadcast."""
    assert is_paid(rate) is paid
    assert Pacer(rate).paid is paid


def test_late_starts_never_bunch_above_the_rate() -> None:
    """Sends that start late and together are held so no rolling second exceeds the rate."""
    pacer = Pacer(30)
    starts: list[float] = []
    now = 10.0
    for n in range(100):
        now = max(now, 10.0 + (n // 10) * 0.3)  # ten at a time, as after an event-loop stall
        while (wait := pacer.admit(now)) > 0:
            now += wait
        starts.append(now)
    assert max_in_window(starts) <= pacer.window_max == 28


def test_channel_pause_counts_one_pause_for_sends_failing_together() -> None:
    """Sends that fail during a pause leave it as it is; a new pause after it counts again,
    and a send that goes through resets the count."""
    pause = ChannelPause()
    assert not pause.paused(100.0)
    assert pause.pause(110.0, 100.0, "relay down")
    assert not pause.pause(150.0, 101.0, "relay down")  # a send in flight failing too
    assert (pause.until, pause.pauses, pause.paused(109.9), pause.paused(110.0)) == (
        110.0, 1, True, False,
    )  # fmt: skip
    assert pause.pause(130.0, 111.0, "still down")
    assert (pause.pauses, pause.reason) == (2, "still down")
    assert pause.resume() == 2
    assert pause.pauses == 0


class Budget:
    """The shared send budget as the database books it: windows one after another."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def book(self, count: int, rate_per_s: float, now: float) -> float:
        """The start of a window of `count` slots (send_budget's GREATEST(next_at, now) + n/r)."""
        start = max(self.next_at, now)
        self.next_at = start + count / rate_per_s
        return start


def run_shared(
    pacers: list[Pacer], budget: Budget, sends: int, start: float = 100.0
) -> list[float]:
    """Processes send to fresh chats as fast as their pacers let them, each booking a window
    of the shared budget when it runs out; the start time of every send."""
    clocks = [start] * len(pacers)
    times: list[float] = []
    for n in range(sends):
        p = min(range(len(pacers)), key=clocks.__getitem__)  # whoever is due next acts next
        pacer, now = pacers[p], clocks[p]
        slot = pacer.reserve(f"c{n}", now)
        if slot.starved:
            count = pacer.window_size
            pacer.supply(budget.book(count, pacer.slot_rate_per_s, now), count)
            slot = pacer.reserve(f"c{n}", now)
        assert slot.granted and slot.at >= now - SHARED_LATE_S
        clocks[p] = max(now, slot.at)
        times.append(clocks[p])
    return times


@pytest.mark.parametrize(("rate", "processes"), [(25, 1), (25, 3), (200, 3), (1000, 5)])
def test_processes_sharing_a_budget_never_exceed_the_rate(rate: float, processes: int) -> None:
    """Pacers of several processes fed windows from one budget stay under the rate together."""
    pacers = [Pacer(rate, shared=True) for _ in range(processes)]
    times = run_shared(pacers, Budget(), 3000)
    assert max_in_window(times) <= rate * GLOBAL_MARGIN + 1
    assert len(set(times)) == len(times)  # no two processes got the same moment
    assert (len(times) - 1) / (times[-1] - times[0]) >= rate * 0.8


def test_a_shared_pacer_is_starved_until_it_gets_a_window() -> None:
    """With no window booked a shared pacer grants nothing; a window's slots come at their times."""
    pacer = Pacer(200, shared=True)
    assert pacer.window_size == 18  # 0.1 s at 180/s, 90 % of the rate
    assert pacer.starved(10.0)
    first = pacer.reserve("a", 10.0)
    assert (first.granted, first.starved) == (False, True)
    pacer.supply(10.5, 2)
    got = [pacer.reserve(chat, 10.0) for chat in ("a", "b", "c")]
    assert [(s.granted, s.starved) for s in got] == [(True, False), (True, False), (False, True)]
    assert [s.at for s in got[:2]] == pytest.approx([10.5, 10.5 + pacer.interval_s])


@pytest.mark.parametrize(
    ("now", "granted_at", "dropped"),
    [
        (9.0, 10.0, 0),  # early: the slot lies ahead
        (10.0, 10.0, 0),  # on time
        (10.015, 10.0, 0),  # a little late: still within SHARED_LATE_S (0.02 s)
        (10.045, 10.03, 3),  # too late for the first three: the fourth
        (10.2, None, 10),  # the whole window passed unused
    ],
)
def test_shared_slots_are_used_on_time_or_dropped(
    now: float, granted_at: float | None, dropped: int
) -> None:
    """A shared slot more than SHARED_LATE_S in the past is dropped, never used late."""
    pacer = Pacer(100, shared=True, margin=1.0)
    pacer.supply(10.0, 10)  # 10.00, 10.01, ... 10.09
    slot = pacer.reserve("a", now)
    assert pacer.shared is not None and pacer.shared.dropped == dropped
    if granted_at is None:
        assert slot.starved
    else:
        assert slot.granted and slot.at == pytest.approx(granted_at)
        assert now - slot.at <= SHARED_LATE_S


def test_a_429_drops_the_shared_slots_before_the_pause_ends() -> None:
    """After a 429 for a fresh chat the shared slots during the pause are lost, later ones kept."""
    pacer = Pacer(10, shared=True, margin=1.0)
    pacer.supply(10.0, 10)  # 10.0, 10.1, ... 10.9
    slot = pacer.reserve("a", 10.0)
    assert pacer.throttled("a", 0.5, 10.05, sent_at=slot.at)
    assert not pacer.reserve("b", 10.1).granted
    late = pacer.reserve("b", 10.55)
    assert late.granted and late.at == pytest.approx(10.6)


def test_a_shared_slot_started_too_late_is_given_up() -> None:
    """A send whose shared slot passed by more than SHARED_LATE_S is not made: its chat is
    free for the next slot; with slots of its own a late start is kept."""
    pacer = Pacer(100, shared=True, margin=1.0)
    pacer.supply(10.0, 5)
    slot = pacer.reserve("a", 10.0)
    assert not pacer.missed("a", slot.at, 10.0 + SHARED_LATE_S)
    assert pacer.missed("a", slot.at, 10.05)
    again = pacer.reserve("a", 10.05)
    assert again.granted and again.at == pytest.approx(10.04)  # the first less than 0.02 s ago
    own = Pacer(100)
    slot = own.reserve("a", 10.0)
    assert not own.missed("a", slot.at, 12.0)


def test_an_edit_waits_a_second_from_the_answers_of_the_paid_sends_before_it() -> None:
    """Calls count from their answers: 40 sends started at 10.0 and answered at 10.3 may have
    reached Telegram at 10.3, so an edit waits until 11.3 less the 28 it may meet."""
    lane = FreeLane(limit=29)
    for _ in range(40):
        lane.opened()
    assert lane.crowded_for(10.1) > 0  # still open: how many arrive when is unknown
    for i in range(40):
        lane.closed(10.3 + i * 0.001)
    wait_s = lane.crowded_for(10.35)
    assert 10.35 + wait_s == pytest.approx(10.3 + 11 * 0.001 + 1.0, abs=1e-5)
    assert lane.crowded_for(11.32) == 0.0


@pytest.mark.parametrize(
    ("open_calls", "answered", "crowded"),
    [(0, 28, False), (0, 29, True), (28, 0, False), (29, 0, True), (10, 18, False), (10, 19, True)],
)
def test_an_edit_goes_while_fewer_than_the_limit_of_calls_can_reach_telegram(
    open_calls: int, answered: int, crowded: bool
) -> None:
    """Open calls and calls answered in the last second count alike; older answers not."""
    lane = FreeLane(limit=29)
    for _ in range(open_calls + answered + 5):
        lane.opened()
    for _ in range(5):
        lane.closed(8.0)  # more than a second ago
    for i in range(answered):
        lane.closed(9.5 + i * 0.01)
    assert (lane.crowded_for(10.0) > 0) is crowded


def test_edits_taking_every_turn_keep_under_thirty_in_any_second() -> None:
    """Edits one after another, each answered 0.05 s after it started, never put more than
    29 calls in a second, whatever second Telegram counts."""
    lane, now, starts = FreeLane(), 100.0, []
    for _ in range(300):
        now += lane.crowded_for(now)
        turn = lane.reserve(now, hold_max_s=2.0)
        assert turn.granted
        now = max(now, turn.at)
        now += lane.crowded_for(now)
        lane.opened()
        starts.append(now)
        lane.closed(now + 0.05)
    assert max_in_window(starts) <= 29
    assert len(starts) / (starts[-1] - starts[0]) > 27.0


def test_a_shared_lane_gives_the_turns_it_was_supplied_then_starves() -> None:
    """Across processes the free lane's turns are windows booked from the database: each
    turn used at its time, a late one given up, none beyond the window."""
    lane = FreeLane(shared=True)
    assert lane.reserve(10.0, hold_max_s=2.0).starved
    lane.supply(10.5, 3)
    first = lane.reserve(10.0, hold_max_s=2.0)
    assert first.granted and first.at == 10.5
    assert not lane.missed(first.at, 10.51)
    second = lane.reserve(10.53, hold_max_s=2.0)
    assert second.granted and second.at == pytest.approx(10.5 + lane.interval_s)
    assert lane.missed(second.at, second.at + 0.5)  # started too late: given up
    assert lane.reserve(12.0, hold_max_s=2.0).starved  # the third passed unused
    assert lane.shared is not None and lane.shared.dropped == 2


def test_an_edit_in_paid_mode_takes_no_slot_of_the_pacer_but_keeps_its_chat_rule() -> None:
    """The pacer grants an edit's chat at once without a global slot (the free lane gives
    those), and still one message per chat per interval."""
    pacer = Pacer(1000, shared=True)
    slot = pacer.reserve("1", 100.0, slot=False)
    assert slot.granted and not slot.starved and slot.at == 100.0
    assert not pacer.reserve("1", 100.5, slot=False).granted
    assert pacer.reserve("2", 100.5).starved  # sends still need a booked window
