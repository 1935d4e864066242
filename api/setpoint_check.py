"""The office's check of a setpoint or schedule command against the device's profile, before
anything is published: a value outside the write range of the point (999999 bar), a
read-only point or a schedule that does not fit the profile's slots is refused with a 422
and the reason the gateway would give (``out_of_range: 999999 > 8``). The profile is the one
the last ``suvnet site apply`` stored for the device (else the shipped file of its name);
for a device whose profile the office does not know, only the gateway checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from suvnet import prv_queries as pq
from suvnet.profiles import command_problem


async def out_of_range(  # noqa: PLR0917 - the fields of the command, in its order
    conn: AsyncConnection[Any],
    device: str,
    op: str,
    point: str | None,
    value: float | bool | None,
    schedule: Sequence[tuple[str, float]] = (),
) -> str | None:
    """Why the command cannot be carried out on ``device``, or None."""
    profile = await pq.device_profile(conn, device)
    if profile is None:
        return None
    return command_problem(profile, op, point, value, schedule)
