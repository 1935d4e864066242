"""The wall clock of the suvnet commands, in one place.

Library code takes ``now`` as an argument; only the command-line shell reads the clock, and
it reads it here. ``SUVNET_NOW`` pins it to one instant (ISO 8601 with a UTC offset, e.g.
``2026-11-30T23:00:00+05:00``): the tests use it so that they pass on any date, and an
operator can use it to run a one-off command "as of" a past instant (``alarms run --once``
over yesterday evening, say). A pinned clock does not move.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from suvnet.errors import ConfigError

ENV = "SUVNET_NOW"


def parse_pinned(text: str) -> datetime:
    """The instant ``SUVNET_NOW`` names, in UTC; a clear error for anything else."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(
            f"{ENV}={text!r} is not a date and time (write e.g. 2026-11-30T23:00:00+05:00)"
        ) from exc
    if at.tzinfo is None:
        raise ConfigError(f"{ENV}={text!r} has no UTC offset (add +05:00 for Tashkent time)")
    return at.astimezone(UTC)


def utcnow() -> datetime:
    """Now, in UTC: the real clock, or the instant pinned by ``SUVNET_NOW``."""
    pinned = os.environ.get(ENV)
    if pinned:
        return parse_pinned(pinned)
    return datetime.now(UTC)
