"""Counting sends in time: the most in any rolling window, and how soon a chat heard twice."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable


def max_in_window(times: Iterable[float], window_s: float = 1.0) -> int:
    """The most of `times` inside any half-open window [t, t + window_s)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(ordered):
        while ordered[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def closest_repeat_s(sends: Iterable[tuple[object, float]]) -> float:
    """The shortest time between two sends to one chat, from (chat, time) pairs (inf: none)."""
    by_chat: dict[object, list[float]] = defaultdict(list)
    for chat, at in sends:
        by_chat[chat].append(at)
    gaps = (
        later - earlier
        for times in by_chat.values()
        for earlier, later in itertools.pairwise(sorted(times))
    )
    return min(gaps, default=float("inf"))
