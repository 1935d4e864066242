"""Learning a PRV's flow curve from history (docs/pressure-management.md, "flow").

A flow-modulated PRV needs the outlet pressure that keeps the critical point at its target
for each inflow. With a few weeks of hourly readings of the PRV's outlet, the zone's inflow
meter and one or more critical-point loggers (a temporary logging campaign is enough), the
pressure lost between the outlet and the lowest critical point is fitted against the inflow
(:func:`suvnet.prvcontrol.fit_flow_curve`) and the curve follows. ``suvnet prv learn-curve``
prints it for the site file's ``flow.curve`` (or the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from suvnet.prvcontrol import FlowFit, fit_flow_curve

HOURLY = """
SELECT b.bucket, d.code AS device, p.name AS point, b.sum / nullif(b.count, 0) AS mean,
       b.min, d.flow_sign
FROM readings_1h b
JOIN points p ON p.id = b.point_id
JOIN devices d ON d.id = p.device_id
WHERE b.bucket >= %s AND b.bucket < %s
  AND (d.code, p.name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


def hourly_samples(
    conn: psycopg.Connection[Any],
    *,
    outlet: tuple[str, str],
    inflow: tuple[str, str],
    sensors: Sequence[tuple[str, str]],
    since: datetime,
    until: datetime,
) -> list[tuple[float, float, float]]:
    """(inflow m³/h, outlet bar, lowest critical point bar) for every hour in which all of
    them were read: the means of the outlet and inflow, the lowest minimum of the sensors.
    The inflow is signed by the meter's ``flow_sign``."""
    keys = [outlet, inflow, *sensors]
    rows = conn.execute(
        HOURLY, (since, until, [d for d, _ in keys], [p for _, p in keys])
    ).fetchall()
    by_hour: dict[datetime, dict[tuple[str, str], tuple[float, float, int]]] = {}
    for bucket, device, point, mean, low, sign in rows:
        if mean is None:
            continue
        by_hour.setdefault(bucket, {})[(device, point)] = (float(mean), float(low), int(sign))
    out = []
    for _, vals in sorted(by_hour.items()):
        if not all(k in vals for k in keys):
            continue
        q = vals[inflow][0] * vals[inflow][2]
        cp = min(vals[s][1] for s in sensors)
        out.append((q, vals[outlet][0], cp))
    return out


def learn(
    conn: psycopg.Connection[Any],
    *,
    outlet: tuple[str, str],
    inflow: tuple[str, str],
    sensors: Sequence[tuple[str, str]],
    since: datetime,
    until: datetime,
    aim_bar: float,
    min_bar: float,
    max_bar: float,
) -> tuple[tuple[tuple[float, float], ...], FlowFit]:
    """The curve for ``aim_bar`` (target + margin) at the lowest critical point."""
    samples = hourly_samples(
        conn, outlet=outlet, inflow=inflow, sensors=sensors, since=since, until=until
    )
    return fit_flow_curve(samples, aim_bar, min_bar=min_bar, max_bar=max_bar)
