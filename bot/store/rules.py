"""Rules every backend keeps alike, in one place."""

from __future__ import annotations

from datetime import timedelta

# An email's outbox row is marked sent a little after its return path was signed: a row
# sent this soon after a bounced email is that email's own, not a later one that arrived.
SAME_SEND = timedelta(minutes=2)
