"""SQL building blocks shared by the dashboards.

Rollup choice by time range
---------------------------
Time-series panels read :func:`series_source`: a ``UNION ALL`` over the raw ``readings`` and
the ``readings_5m`` / ``readings_1h`` / ``readings_1d`` rollups in which exactly one branch
is switched on by the length of the dashboard's time range (``$__timeTo() - $__timeFrom()``).
PostgreSQL folds those conditions into one-time filters, so the other branches cost nothing.

=================  ==================
time range         table read
=================  ==================
up to 6 hours      ``readings`` (raw, good quality only)
up to 3 days       ``readings_5m``
up to 90 days      ``readings_1h``
longer             ``readings_1d``
=================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

SPAN = "($__timeTo()::timestamptz - $__timeFrom()::timestamptz)"


@dataclass(frozen=True)
class Tier:
    table: str
    up_to: timedelta | None  # None: no upper bound


TIERS: tuple[Tier, ...] = (
    Tier("readings", timedelta(hours=6)),
    Tier("readings_5m", timedelta(days=3)),
    Tier("readings_1h", timedelta(days=90)),
    Tier("readings_1d", None),
)


def tier_for(span: timedelta) -> str:
    """The table :func:`series_source` reads for a time range of length ``span``."""
    for t in TIERS:
        if t.up_to is None or span <= t.up_to:
            return t.table
    raise AssertionError("unreachable: the last tier has no bound")


def _pg_interval(td: timedelta) -> str:
    return f"interval '{int(td.total_seconds())} seconds'"


def series_source(point_ids_sql: str) -> str:
    """Rows ``(ts, point_id, avg, min, max, last)`` for the points selected by ``point_ids_sql``
    within the dashboard time range, from the table that suits the range (see module doc)."""
    branches: list[str] = []
    lower: timedelta | None = None
    for t in TIERS:
        cond = []
        if lower is not None:
            cond.append(f"{SPAN} > {_pg_interval(lower)}")
        if t.up_to is not None:
            cond.append(f"{SPAN} <= {_pg_interval(t.up_to)}")
        if t.table == "readings":
            sel = (
                "SELECT r.ts, r.point_id, r.value AS avg, r.value AS min, r.value AS max, "
                "r.value AS last FROM readings r"
            )
            where = [*cond, "$__timeFilter(r.ts)", "r.quality = 0"]
            col = "r.point_id"
        else:
            sel = f"SELECT b.bucket AS ts, b.point_id, b.avg, b.min, b.max, b.last FROM {t.table} b"  # noqa: S608 - table name from the fixed TIERS
            where = [*cond, "$__timeFilter(b.bucket)"]
            col = "b.point_id"
        where.append(f"{col} IN ({point_ids_sql})")
        branches.append(sel + "\n    WHERE " + "\n      AND ".join(where))
        lower = t.up_to
    return "\n  UNION ALL\n  ".join(branches)


def health_number(*keys: str, column: str = "gs.health") -> str:
    """A number from the gateway health JSON, trying each key in turn (NULL if none)."""
    parts = [
        f"CASE WHEN jsonb_typeof({column}->'{k}') = 'number' THEN ({column}->>'{k}')::float8 END"
        for k in keys
    ]
    return "coalesce(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]


PRESSURE_POINT = "(p.name ILIKE '%pressure%' OR p.unit IN ('bar', 'kPa', 'MPa', 'm H2O', 'mH2O'))"
"""A point that measures pressure (by name or unit)."""

FLOW_POINT = (
    "(p.kind = 'analog' AND (p.name ILIKE '%flow%' OR p.unit IN ('m3/h', 'm³/h', 'L/s', 'l/s')))"
)
"""A point that measures a flow rate."""

VOLUME_POINT = "(p.kind = 'counter' AND (p.name ILIKE '%volume%' OR p.unit IN ('m3', 'm³')))"
"""A cumulative volume register (meter reading)."""

PRESSURE_TO_BAR = (
    "CASE p.unit WHEN 'kPa' THEN 0.01 WHEN 'MPa' THEN 10.0 "
    "WHEN 'm H2O' THEN 0.0980665 WHEN 'mH2O' THEN 0.0980665 ELSE 1.0 END"
)
"""Factor from a pressure point's unit to bar."""

FLOW_TO_M3H = "CASE WHEN p.unit IN ('L/s', 'l/s') THEN 3.6 ELSE 1.0 END"
"""Factor from a flow point's unit to m³/h."""

IN_ZONES = "z.code IN ($zone)"
"""Rows of the zones chosen in the ``zone`` variable (``z`` is the zones alias)."""

LOCAL_TZ = "Asia/Tashkent"
"""Time zone of the night window (minimum night flow) and of the daily water balance."""

WGS84 = "coalesce(nw.crs, 'EPSG:4326') = 'EPSG:4326'"
"""Only networks whose coordinates are longitude/latitude can be drawn on the map."""

DEVICE_LAT = f"coalesce(d.y, CASE WHEN {WGS84} THEN n.y END)"
DEVICE_LON = f"coalesce(d.x, CASE WHEN {WGS84} THEN n.x END)"
"""Where a device is drawn: its own coordinates, else those of its network node (aliases
``d`` devices, ``n`` nodes, ``nw`` networks)."""

DEVICE_PLACE_JOINS = """LEFT JOIN nodes n ON n.id = d.node_id
LEFT JOIN networks nw ON nw.id = n.network_id"""
