"""Work orders on the register's assets (pure: values in, problems or figures out).

A work order is one job on one asset: a repair, an inspection, a replacement, a new
connection or a flushing. It records when the work was asked for (``reported_at``), planned,
started and ended, the crew, the materials, the cost in tiyin, the photos, the valves it
operated, and for a repair the kind of failure (break, joint leak, corrosion, third-party
damage), which the renewal ranking counts. One started by a leak or burst alarm names it;
closing it reports the repair to the alarm, whose journal then shows it.

The water lost during the event is estimated from the zone's inflow: the hourly flow above
the same hour's usual flow (the median of that hour on the week before the event), from the
start of the event (the alarm, else the report) to the end of the repair.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from assets.errors import AssetError

KINDS = ("repair", "inspection", "replacement", "new_connection", "flushing")
FAILURES = ("break", "joint_leak", "corrosion", "third_party")
STATUSES = ("open", "closed", "cancelled")
VALVE_ACTIONS = ("closed", "opened", "found_inoperable")
OPERATED_KINDS = frozenset({"valve", "prv", "hydrant"})
MAX_COST_TIYIN = 10**15
EDITABLE = (
    "kind",
    "failure",
    "alarm_id",
    "lon",
    "lat",
    "reported_at",
    "planned_for",
    "started_at",
    "ended_at",
    "crew",
    "description",
    "materials",
    "cost_tiyin",
)


class WorkOrderError(AssetError):
    """Base of the work-order errors; ``code`` is a short machine-readable reason."""

    code = "work_order"


class WorkOrderInvalidError(WorkOrderError):
    """A work order that may not be written as it is; ``problems`` are (field, code,
    message) and nothing was written."""

    def __init__(self, problems: Sequence[tuple[str, str, str]]) -> None:
        self.problems = list(problems)
        self.code = self.problems[0][1] if self.problems else "invalid"
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in self.problems))


class WorkOrderNotFoundError(WorkOrderError):
    code = "not_found"


class WorkOrderConflictError(WorkOrderError):
    """Changed by someone else since the version the caller edited."""

    code = "conflict"


def number(wo_id: int) -> str:
    """The work order's number as people say it: ``WO-000017``."""
    return f"WO-{wo_id:06d}"


def _aware(v: Any) -> bool:
    return isinstance(v, datetime) and v.tzinfo is not None


def _text(out: list[tuple[str, str, str]], fields: Mapping[str, Any], name: str, n: int) -> None:
    v = fields.get(name)
    if v is not None and (not isinstance(v, str) or len(v) > n):
        out.append((name, "bad_text", f"must be text of at most {n} characters"))


def material_problems(materials: Any) -> list[tuple[str, str, str]]:
    """What is wrong with a materials list: ``[{"item", "quantity", "unit"}]``."""
    if not isinstance(materials, list | tuple):
        return [("materials", "bad_materials", "must be a list of items")]
    if len(materials) > 100:
        return [("materials", "bad_materials", "at most 100 items")]
    out: list[tuple[str, str, str]] = []
    for i, m in enumerate(materials, start=1):
        if not isinstance(m, Mapping):
            out.append(("materials", "bad_materials", f"item {i} must have item, quantity, unit"))
            continue
        item, qty, unit = m.get("item"), m.get("quantity"), m.get("unit", "")
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            out.append(("materials", "bad_materials", f"item {i}: a name of 1-200 characters"))
        if (
            isinstance(qty, bool)
            or not isinstance(qty, int | float)
            or not math.isfinite(qty)
            or qty <= 0
        ):
            out.append(("materials", "bad_materials", f"item {i}: the quantity must be above 0"))
        if not isinstance(unit, str) or len(unit) > 20:
            out.append(("materials", "bad_materials", f"item {i}: a unit of at most 20 characters"))
        extra = set(m) - {"item", "quantity", "unit"}
        if extra:
            out.append(
                (
                    "materials",
                    "bad_materials",
                    f"item {i}: unknown key(s) {', '.join(sorted(extra))}",
                )
            )
    return out


def problems(fields: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every (field, code, message) wrong with a work order's fields (the whole row after
    a change); empty when it may be written."""
    out: list[tuple[str, str, str]] = []
    kind = fields.get("kind")
    if kind not in KINDS:
        out.append(("kind", "bad_kind", f"must be one of {', '.join(KINDS)}, not {kind!r}"))
    failure = fields.get("failure")
    if failure is not None and failure not in FAILURES:
        out.append(
            ("failure", "bad_failure", f"must be one of {', '.join(FAILURES)}, not {failure!r}")
        )
    elif failure is not None and kind not in ("repair", "replacement"):
        out.append(("failure", "bad_failure", "only a repair or a replacement has a failure"))
    for name in ("reported_at", "started_at", "ended_at"):
        v = fields.get(name)
        if v is not None and not _aware(v):
            out.append((name, "bad_time", "must be a time with its zone"))
    if fields.get("reported_at") is None:
        out.append(("reported_at", "bad_time", "is required"))
    start, end = fields.get("started_at"), fields.get("ended_at")
    if (
        isinstance(start, datetime)
        and isinstance(end, datetime)
        and _aware(start)
        and _aware(end)
        and end < start
    ):
        out.append(("ended_at", "end_before_start", "the work cannot end before it started"))
    if end is not None and start is None:
        out.append(("started_at", "end_before_start", "an end needs a start"))
    planned = fields.get("planned_for")
    if planned is not None and not isinstance(planned, date):
        out.append(("planned_for", "bad_date", "must be a date"))
    cost = fields.get("cost_tiyin", 0)
    if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= MAX_COST_TIYIN:
        out.append(("cost_tiyin", "bad_cost", "must be a whole number of tiyin, 0 or more"))
    for name, lo, hi in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
        v = fields.get(name)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi
        ):
            out.append((name, "bad_place", f"must be between {lo:g} and {hi:g}"))
    if (fields.get("lon") is None) != (fields.get("lat") is None):
        out.append(("lon", "bad_place", "give both lon and lat, or neither"))
    _text(out, fields, "crew", 200)
    _text(out, fields, "description", 4000)
    out.extend(material_problems(fields.get("materials", [])))
    alarm = fields.get("alarm_id")
    if alarm is not None and (isinstance(alarm, bool) or not isinstance(alarm, int) or alarm < 1):
        out.append(("alarm_id", "bad_alarm", "must be an alarm number"))
    return out


def close_problems(fields: Mapping[str, Any], now: datetime) -> list[tuple[str, str, str]]:
    """What stops a work order (its fields after the closing changes) from being closed."""
    out = problems(fields)
    if fields.get("status") != "open":
        out.append(("status", "not_open", f"the work order is {fields.get('status')}"))
    if fields.get("started_at") is None:
        out.append(("started_at", "start_required", "a closed work order has a start"))
    if fields.get("ended_at") is None:
        out.append(("ended_at", "end_required", "a closed work order has an end"))
    elif _aware(fields.get("ended_at")) and fields["ended_at"] > now:
        out.append(("ended_at", "end_in_future", "the work cannot have ended in the future"))
    if fields.get("kind") == "repair" and fields.get("failure") is None:
        out.append(("failure", "failure_required", "a repair names the kind of failure"))
    return out


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """field -> [old, new] for every field that differs (the journal's record)."""
    out: dict[str, list[Any]] = {}
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            out[k] = [_plain(before.get(k)), _plain(after.get(k))]
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


# ---------------------------------------------------------------------- water lost
FLOW_UNITS_M3H = {
    "m3/h": 1.0,
    "m³/h": 1.0,
    "m3h": 1.0,
    "l/s": 3.6,
    "lps": 3.6,
    "l/min": 0.06,
    "m3/s": 3600.0,
    "m³/s": 3600.0,
    "m3/d": 1 / 24,
    "m³/d": 1 / 24,
}


def m3h_factor(unit: str) -> float | None:
    """The factor that turns a flow in ``unit`` into m³/h (None: not a flow unit)."""
    return FLOW_UNITS_M3H.get(unit.strip().lower().replace(" ", ""))


@dataclass(frozen=True)
class WaterLost:
    m3: float | None
    method: str
    """``zone_flow`` (the inflow above its usual), ``alarm_estimate`` (the leak alarm's size
    times the duration) or ``unknown``."""
    hours: float
    detail: Mapping[str, Any]


def water_lost(
    flow_m3h: Mapping[datetime, float],
    *,
    start: datetime,
    end: datetime,
    leak_lps: float | None = None,
    baseline_days: int = 7,
) -> WaterLost:
    """Water lost between ``start`` and ``end`` from the zone's hourly net inflow
    ``flow_m3h`` (hour bucket start, UTC -> m³/h), which should reach ``baseline_days``
    before ``start``. Each hour of the event counts its flow above the median of the same
    hour of the day in the week before the event (never below zero), for the part of the
    hour inside the event. Without flow data, the leak alarm's size (L/s) times the duration;
    else unknown."""
    hours = max(0.0, (end - start).total_seconds() / 3600)
    usual: dict[int, list[float]] = {}
    lo = start - timedelta(days=baseline_days)
    for ts, v in flow_m3h.items():
        if lo <= ts < start - timedelta(hours=1) and math.isfinite(v):
            usual.setdefault(ts.hour, []).append(v)
    event = {
        ts: v
        for ts, v in flow_m3h.items()
        if ts + timedelta(hours=1) > start and ts < end and math.isfinite(v)
    }
    covered = 0.0
    lost = 0.0
    for ts, v in sorted(event.items()):
        base = usual.get(ts.hour)
        if not base:
            continue
        a = max(ts, start)
        b = min(ts + timedelta(hours=1), end)
        frac = (b - a).total_seconds() / 3600
        covered += frac
        lost += max(0.0, v - statistics.median(base)) * frac
    if hours > 0 and covered >= 0.8 * hours:
        return WaterLost(
            round(lost, 1),
            "zone_flow",
            round(hours, 2),
            {"hours_with_flow": round(covered, 2), "baseline_days": baseline_days},
        )
    if leak_lps is not None and leak_lps > 0 and hours > 0:
        return WaterLost(
            round(leak_lps * 3.6 * hours, 1),
            "alarm_estimate",
            round(hours, 2),
            {"leak_lps": leak_lps},
        )
    return WaterLost(None, "unknown", round(hours, 2), {"hours_with_flow": round(covered, 2)})
