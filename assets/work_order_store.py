"""Work orders in the database (synchronous psycopg, one transaction per call by the caller):
create, change (with optimistic locking by version), close, cancel, the valves operated, the
photos; every change journaled in ``work_order_events`` with who, when and the fields.

Nothing is written when anything is wrong: the checks of :mod:`assets.work_orders` run
first and name every problem; the database checks the same rules (migration 0710), so no
other writer can go around them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from assets.errors import AssetNotFoundError
from assets.store import Actor, add_document, get_asset, update_asset
from assets.work_orders import (
    EDITABLE,
    OPERATED_KINDS,
    VALVE_ACTIONS,
    WaterLost,
    WorkOrderConflictError,
    WorkOrderInvalidError,
    WorkOrderNotFoundError,
    changes,
    close_problems,
    m3h_factor,
    number,
    problems,
    water_lost,
)

Conn = psycopg.Connection[Any]
AlarmReporter = Callable[[Conn, int, str, str, datetime, datetime], str]
"""``(conn, alarm_id, user, comment, repaired_at, now) -> what the alarm side answered``:
reports a finished repair to the alarm that started it (the API passes one that calls
:func:`alarms.actions.repaired`)."""

ROW_COLUMNS = (
    "w.id, w.kind, w.failure, w.status, w.alarm_id, w.lon, w.lat, w.reported_at, "
    "w.planned_for, w.started_at, w.ended_at, w.crew, w.description, w.materials, "
    "w.cost_tiyin, w.water_lost_m3, w.water_lost_note, w.alarm_link, w.version, w.created_at, "
    "w.created_by, w.updated_at, w.updated_by, w.closed_at, w.closed_by, a.code AS asset, "
    "a.kind AS asset_kind, a.status AS asset_status, a.zone_id"
)
FLOW_NAMES = ("flow", "flow_m3h", "flow_lps", "flow_ls")


def _row(conn: Conn, wo_id: int, *, lock: bool = False) -> dict[str, Any]:
    sql = (
        f"SELECT {ROW_COLUMNS} FROM work_orders w JOIN assets a ON a.id = w.asset_id "  # noqa: S608 - constants only
        "WHERE w.id = %s"
    )
    if lock:
        sql += " FOR UPDATE OF w"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql, (wo_id,)).fetchone()
    if row is None:
        raise WorkOrderNotFoundError(f"there is no work order {number(wo_id)}")
    return row


def _fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (*EDITABLE, "status")}


def _event(conn: Conn, wo_id: int, actor: Actor, action: str, detail: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO work_order_events (work_order_id, at, by_user, action, changes) "
        "VALUES (%s, %s, %s, %s, %s)",
        (wo_id, actor.at, actor.who, action, Jsonb(dict(detail))),
    )


def _check_alarm(conn: Conn, alarm_id: int | None) -> list[tuple[str, str, str]]:
    if alarm_id is None:
        return []
    if conn.execute("SELECT 1 FROM alarms WHERE id = %s", (alarm_id,)).fetchone() is None:
        return [("alarm_id", "no_alarm", f"there is no alarm number {alarm_id}")]
    return []


def _invalid(exc: psycopg.Error) -> WorkOrderInvalidError:
    diag = exc.diag
    name = diag.constraint_name or ""
    code = "end_before_start" if "end_after_start" in name else "refused"
    return WorkOrderInvalidError([("work_order", code, diag.message_primary or str(exc))])


def create(conn: Conn, asset_code: str, fields: Mapping[str, Any], actor: Actor) -> int:
    """Open a work order on ``asset_code``; returns its id. Refused (nothing written) on an
    abandoned asset, an unknown alarm, or any field problem."""
    asset = get_asset(conn, asset_code)
    if asset is None:
        raise AssetNotFoundError(asset_code)
    full = {
        "crew": "",
        "description": "",
        "materials": [],
        "cost_tiyin": 0,
        "reported_at": actor.at,
        **{k: v for k, v in fields.items() if k in EDITABLE},
    }
    found = []
    if asset["status"] == "abandoned":
        found.append(
            (
                "asset",
                "asset_abandoned",
                f"asset {asset_code} is abandoned: no work order can be opened on it",
            )
        )
    found += problems(full) + _check_alarm(conn, full.get("alarm_id"))
    if found:
        raise WorkOrderInvalidError(found)
    cols = [k for k in EDITABLE if k in full]
    values = [Jsonb(full[k]) if k == "materials" else full[k] for k in cols]
    try:
        row = conn.execute(
            f"INSERT INTO work_orders (asset_id, {', '.join(cols)}, created_at, created_by, "  # noqa: S608 - constants only
            f"updated_at, updated_by) VALUES (%s, {', '.join(['%s'] * len(cols))}, "
            "%s, %s, %s, %s) RETURNING id",
            (asset["id"], *values, actor.at, actor.who, actor.at, actor.who),
        ).fetchone()
    except psycopg.errors.IntegrityError as exc:
        raise _invalid(exc) from exc
    assert row is not None
    wo_id = int(row[0])
    _event(conn, wo_id, actor, "create", changes({}, {**full, "asset": asset_code}))
    return wo_id


def _apply(
    conn: Conn,
    wo_id: int,
    after: Mapping[str, Any],
    before: Mapping[str, Any],
    *,
    actor: Actor,
    extra: Mapping[str, Any] | None = None,
) -> None:
    cols = [k for k in EDITABLE if after.get(k) != before.get(k)]
    more = dict(extra or {})
    sets = [f"{k} = %s" for k in cols] + [f"{k} = %s" for k in more]
    values = [Jsonb(after[k]) if k == "materials" else after[k] for k in cols] + list(more.values())
    try:
        conn.execute(
            f"UPDATE work_orders SET {', '.join([*sets, 'version = version + 1'])}, "  # noqa: S608 - constants only
            "updated_at = %s, updated_by = %s WHERE id = %s",
            (*values, actor.at, actor.who, wo_id),
        )
    except psycopg.errors.IntegrityError as exc:
        raise _invalid(exc) from exc


def update(
    conn: Conn,
    wo_id: int,
    change: Mapping[str, Any],
    actor: Actor,
    *,
    expected_version: int | None,
) -> dict[str, Any]:
    """Change fields of an open or closed work order (a closed one keeps its dates valid).
    With ``expected_version``, refused when someone changed it since."""
    row = _row(conn, wo_id, lock=True)
    if expected_version is not None and row["version"] != expected_version:
        raise WorkOrderConflictError(
            f"work order {number(wo_id)} was changed since version {expected_version} (it is "
            f"now at version {row['version']}): reload it, then apply your change again"
        )
    before = _fields(row)
    after = {**before, **{k: v for k, v in change.items() if k in EDITABLE}}
    found = problems(after) + (
        _check_alarm(conn, after.get("alarm_id"))
        if after.get("alarm_id") != before.get("alarm_id")
        else []
    )
    if row["status"] == "closed":
        found += [
            p
            for p in close_problems({**after, "status": "open"}, actor.at)
            if p[1] not in ("end_in_future",)
        ]
    if found:
        raise WorkOrderInvalidError(sorted(set(found), key=found.index))
    diff = changes(before, after)
    if diff:
        _apply(conn, wo_id, after, before, actor=actor)
        _event(conn, wo_id, actor, "change", diff)
    return get(conn, wo_id)


def close(
    conn: Conn,
    wo_id: int,
    change: Mapping[str, Any],
    actor: Actor,
    *,
    now: datetime,
    report_alarm: AlarmReporter | None = None,
) -> dict[str, Any]:
    """Close a work order: the end of the work (and for a repair the failure kind) must be
    known. A repair estimates the water lost from its zone's flow, and one started by an
    alarm reports the repair to it (``report_alarm``), which journals it there."""
    row = _row(conn, wo_id, lock=True)
    before = _fields(row)
    after = {**before, **{k: v for k, v in change.items() if k in EDITABLE}}
    found = close_problems(after, now)
    if found:
        raise WorkOrderInvalidError(found)
    extra: dict[str, Any] = {"status": "closed", "closed_at": actor.at, "closed_by": actor.who}
    lost: WaterLost | None = None
    if after["kind"] in ("repair", "replacement") and after.get("failure"):
        lost = estimate_water_lost(conn, row, after)
        extra["water_lost_m3"] = lost.m3
        extra["water_lost_note"] = lost.method
    _apply(conn, wo_id, after, before, actor=actor, extra=extra)
    detail = changes(before, after) | {"status": ["open", "closed"]}
    if lost is not None:
        detail["water_lost_m3"] = [None, lost.m3]
    _event(conn, wo_id, actor, "close", detail)
    alarm_id = after.get("alarm_id")
    if alarm_id is not None and report_alarm is not None and after["kind"] == "repair":
        text = _repair_comment(wo_id, row["asset"], after, lost)
        outcome = report_alarm(conn, int(alarm_id), actor.who, text, after["ended_at"], now)
        conn.execute("UPDATE work_orders SET alarm_link = %s WHERE id = %s", (outcome[:500], wo_id))
        _event(conn, wo_id, actor, "alarm", {"alarm_id": alarm_id, "outcome": outcome})
    return get(conn, wo_id)


def _repair_comment(wo_id: int, asset: str, f: Mapping[str, Any], lost: WaterLost | None) -> str:
    parts = [f"work order {number(wo_id)}: {f['kind']} of {asset}"]
    if f.get("failure"):
        parts.append(f"failure {f['failure']}")
    if f.get("crew"):
        parts.append(f"crew {f['crew']}")
    if lost is not None and lost.m3 is not None:
        parts.append(f"about {lost.m3:g} m3 lost")
    return ", ".join(parts)


def cancel(conn: Conn, wo_id: int, actor: Actor, reason: str) -> dict[str, Any]:
    row = _row(conn, wo_id, lock=True)
    if row["status"] != "open":
        raise WorkOrderInvalidError([("status", "not_open", f"the work order is {row['status']}")])
    if not reason.strip() or len(reason) > 500:
        raise WorkOrderInvalidError([("reason", "reason_required", "say why (1-500 characters)")])
    conn.execute(
        "UPDATE work_orders SET status = 'cancelled', closed_at = %s, closed_by = %s, "
        "version = version + 1, updated_at = %s, updated_by = %s WHERE id = %s",
        (actor.at, actor.who, actor.at, actor.who, wo_id),
    )
    _event(conn, wo_id, actor, "cancel", {"status": ["open", "cancelled"], "reason": reason})
    return get(conn, wo_id)


def add_valve(
    conn: Conn,
    wo_id: int,
    valve_code: str,
    action: str,
    actor: Actor,
    *,
    at: datetime | None = None,
    note: str = "",
) -> int:
    """Record a valve (or hydrant) the crew operated. A valve ``found_inoperable`` is marked
    so in the register (``attrs.operable`` false, a new version of the valve), and the next
    isolation goes round it."""
    row = _row(conn, wo_id, lock=True)
    found: list[tuple[str, str, str]] = []
    if action not in VALVE_ACTIONS:
        found.append(("action", "bad_action", f"must be one of {', '.join(VALVE_ACTIONS)}"))
    valve = get_asset(conn, valve_code)
    if valve is None:
        found.append(("valve", "no_valve", f"there is no asset {valve_code!r}"))
    elif valve["kind"] not in OPERATED_KINDS:
        found.append(("valve", "not_a_valve", f"{valve_code} is a {valve['kind']}, not a valve"))
    if len(note) > 500:
        found.append(("note", "bad_text", "at most 500 characters"))
    when = at or actor.at
    if when.tzinfo is None:
        found.append(("at", "bad_time", "must be a time with its zone"))
    if found:
        raise WorkOrderInvalidError(found)
    assert valve is not None
    new = conn.execute(
        "INSERT INTO work_order_valves (work_order_id, valve_id, action, at, by_user, note) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (wo_id, valve["id"], action, when, actor.who, note),
    ).fetchone()
    assert new is not None
    _event(conn, wo_id, actor, "valve", {"valve": valve_code, "action": action, "note": note})
    if action == "found_inoperable":
        attrs = dict(valve.get("attrs") or {})
        attrs["operable"] = False
        attrs["operable_note"] = f"found inoperable ({number(wo_id)}, {when.date().isoformat()})"
        update_asset(conn, valve_code, {"attrs": attrs}, actor, expected_version=None)
    conn.execute(
        "UPDATE work_orders SET version = version + 1, updated_at = %s, updated_by = %s "
        "WHERE id = %s",
        (actor.at, actor.who, row["id"]),
    )
    return int(new[0])


def attach(
    conn: Conn,
    wo_id: int,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    actor: Actor,
    note: str = "",
) -> int:
    """A photo or document of the work: kept with the asset's documents and linked here."""
    row = _row(conn, wo_id, lock=True)
    doc_id = add_document(
        conn,
        row["asset"],
        filename=filename,
        content_type=content_type,
        content=content,
        actor=actor,
        note=(f"{number(wo_id)}: {note}" if note else number(wo_id))[:500],
    )
    conn.execute(
        "INSERT INTO work_order_documents (work_order_id, document_id) VALUES (%s, %s)",
        (wo_id, doc_id),
    )
    _event(conn, wo_id, actor, "photo", {"document": doc_id, "filename": filename})
    return doc_id


def get(conn: Conn, wo_id: int) -> dict[str, Any]:
    """A work order with its valves and documents (as the card shows it)."""
    row = _row(conn, wo_id)
    row["number"] = number(wo_id)
    with conn.cursor(row_factory=dict_row) as cur:
        row["valves"] = cur.execute(
            "SELECT a.code AS valve, v.action, v.at, v.by_user, v.note FROM work_order_valves v "
            "JOIN assets a ON a.id = v.valve_id WHERE v.work_order_id = %s ORDER BY v.at, v.id",
            (wo_id,),
        ).fetchall()
        row["documents"] = cur.execute(
            "SELECT d.id, d.kind, d.filename, d.size_bytes, d.note FROM work_order_documents w "
            "JOIN asset_documents d ON d.id = w.document_id WHERE w.work_order_id = %s "
            "ORDER BY d.id",
            (wo_id,),
        ).fetchall()
    return row


# ---------------------------------------------------------------------- water lost
def zone_flow_m3h(
    conn: Conn, zone_id: int, start: datetime, end: datetime
) -> dict[datetime, float]:
    """The zone's net inflow per hour (m³/h), from its district meters' flow points: the
    hourly rollups, else the raw readings averaged by hour. An hour counts only when every
    meter has a value in it."""
    meters = conn.execute(
        "SELECT d.id, d.flow_sign, d.zone_id = z.id AS own, "
        "(d.attrs -> 'zone_signs' ->> z.code) AS zsign, "
        "(SELECT array_agg(ARRAY[p.id::text, p.name, p.unit] ORDER BY p.name) FROM points p "
        " WHERE p.device_id = d.id AND p.kind = 'analog') AS points "
        "FROM devices d, zones z WHERE z.id = %s AND d.kind = 'district_meter' AND d.enabled "
        "AND (d.zone_id = z.id OR d.attrs -> 'zone_signs' ? z.code)",
        (zone_id,),
    ).fetchall()
    chosen: dict[int, tuple[float, float]] = {}  # point id -> (sign, factor to m³/h)
    for _dev, flow_sign, own, zsign, points in meters:
        sign = float(zsign) if zsign not in (None, "") else (float(flow_sign) if own else 0.0)
        if sign == 0.0 or not points:
            continue
        flows = [(int(pid), name, unit) for pid, name, unit in points if m3h_factor(unit)]
        pick = next((p for n in FLOW_NAMES for p in flows if p[1] == n), None) or (
            flows[0] if len(flows) == 1 else None
        )
        if pick is not None:
            factor = m3h_factor(pick[2])
            assert factor is not None
            chosen[pick[0]] = (sign, factor)
    if not chosen:
        return {}
    ids = sorted(chosen)
    rows = conn.execute(
        "SELECT point_id, bucket, avg FROM readings_1h WHERE point_id = ANY(%s) "
        "AND bucket >= %s AND bucket < %s AND avg IS NOT NULL",
        (ids, start, end),
    ).fetchall()
    if not rows:
        rows = conn.execute(
            "SELECT point_id, date_trunc('hour', ts) AS bucket, avg(value) FROM readings "
            "WHERE point_id = ANY(%s) AND ts >= %s AND ts < %s AND quality = 0 "
            "GROUP BY 1, 2",
            (ids, start, end),
        ).fetchall()
    by_hour: dict[datetime, dict[int, float]] = {}
    for pid, bucket, avg in rows:
        by_hour.setdefault(bucket, {})[int(pid)] = float(avg)
    return {
        b: sum(chosen[p][0] * chosen[p][1] * v for p, v in vals.items())
        for b, vals in by_hour.items()
        if len(vals) == len(chosen)
    }


def estimate_water_lost(conn: Conn, row: Mapping[str, Any], fields: Mapping[str, Any]) -> WaterLost:
    """The water lost by the failure a repair fixed: from the alarm's raise (else the report)
    to the end of the repair, over the asset's zone's flow."""
    start = fields["reported_at"]
    leak = None
    if fields.get("alarm_id") is not None:
        got = conn.execute(
            "SELECT raised_at, leak_lps FROM alarms WHERE id = %s", (fields["alarm_id"],)
        ).fetchone()
        if got is not None:
            start = min(start, got[0])
            leak = None if got[1] is None else float(got[1])
    end = fields["ended_at"]
    flow: dict[datetime, float] = {}
    if row.get("zone_id") is not None:
        flow = zone_flow_m3h(conn, int(row["zone_id"]), start - timedelta(days=8), end)
    return water_lost(flow, start=start, end=end, leak_lps=leak)
