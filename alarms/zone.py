"""SQL edge of the zone (DMA) analytics: which points a zone rule watches, and their data.

A zone rule finds its points in the registry, not by fixed names:

* **inflow**: the district meters (``devices.kind = 'district_meter'``) of the zone, and the
  meters on its boundary that name it in ``attrs.zone_signs`` (by zone code, e.g.
  ``{"DMA-N": -1, "DMA-S": 1}``; a zone id as text is still understood). Each meter's flow
  point is ``params.flow_point`` when the rule names one, else the first of ``flow``,
  ``flow_m3h``, ``flow_lps``, ``flow_ls`` it has, else its only analog point in a flow unit
  (L/s, m³/h, ...). Its volume register (``forward_m3``, ``forward_volume_m3``, ``volume_m3``
  or a counter in a volume unit; ``reverse_m3`` is subtracted) is used by the ``leak`` rule
  when it has one: exact volumes, immune to how the flow was sampled.
* **customer meters**: ``customer_meter`` devices of the zone, point ``params.volume_point``
  or the first of ``volume``, ``volume_m3``, else a counter in a volume unit (not a
  ``reverse`` one).
* **tanks**: devices at a tank node (``nodes.kind = 'tank'``) of the zone with a level point
  (``params.level_point``, ``level_m``, ``level`` or an analog point in m / cm / mm / bar);
  the tank's area from ``devices.attrs.tank_area_m2`` or the node's ``attrs.diameter_m``.
* **pumps**: devices whose ``attrs.pump`` names a pump of the zone (``pumps.zone_id``), with a
  status point (``params.pump_point``, ``running``, ``run``, ``pump_on``, ``state`` or its
  only status point): 1 = running.
* **neighbours**: zones that share a district meter with it, zones joined to it by a pipe,
  valve or pump of the network, and ``params.neighbours`` (zone codes).
* **boundary valves**: valves of the asset register kept closed in normal operation
  (``attrs.valve_status`` = closed, else the model valve's ``status``) whose two sides lie in
  this zone and another: the two sides are the nodes of the hydraulic model that the valve
  joins, through its model valve (``ref_code``) or ``attrs.from`` / ``attrs.to`` (as an
  EPANET import writes them). The work orders say when the crews opened and closed them
  (``work_order_valves``): :func:`valve_open_by_neighbour`.

A rule that cannot find what it needs raises :class:`ZoneSetupError` naming what is
missing; it never watches nothing in silence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from alarms import analytics as an
from alarms.errors import RuleConfigError
from alarms.leak import storage_lps

Conn = psycopg.Connection[Any]


def to_ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


FLOW_TO_LPS = {
    "l/s": 1.0,
    "lps": 1.0,
    "m3/h": 1000.0 / 3600.0,
    "m³/h": 1000.0 / 3600.0,
    "m3/s": 1000.0,
    "l/min": 1.0 / 60.0,
    "m3/d": 1000.0 / 86400.0,
}
VOL_TO_M3 = {"m3": 1.0, "m³": 1.0, "l": 0.001}
LEVEL_TO_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "bar": 10.197162}
FLOW_NAMES = ("flow", "flow_m3h", "flow_lps", "flow_ls")
COUNTER_NAMES = ("forward_m3", "forward_volume_m3", "volume_m3", "volume")
REVERSE_NAMES = ("reverse_m3", "reverse_volume_m3")
VOLUME_NAMES = ("volume", "volume_m3")
LEVEL_NAMES = ("level_m", "level")
PUMP_NAMES = ("running", "run", "pump_on", "state")


class ZoneSetupError(RuleConfigError):
    """A zone rule cannot find the points it needs (``field`` names the setting at fault:
    ``zone`` or ``params``; ``path`` e.g. ``("params", "flow_point")``)."""

    def __init__(self, message: str, setting: str) -> None:
        parts = tuple(setting.split("."))
        super().__init__(message, parts[0], parts)


@dataclass(frozen=True)
class ZonePoint:
    point_id: int
    sign: float
    factor: float  # to L/s (flows), m³ (volumes) or m (levels)
    device_code: str
    name: str = ""
    poll_s: float = 60.0


@dataclass(frozen=True)
class InflowMeter:
    device_code: str
    sign: float
    flow: ZonePoint | None
    forward: ZonePoint | None = None
    reverse: ZonePoint | None = None

    def points(self) -> list[ZonePoint]:
        return [p for p in (self.flow, self.forward, self.reverse) if p is not None]


@dataclass(frozen=True)
class Tank:
    device_code: str
    level: ZonePoint
    area_m2: float


@dataclass(frozen=True)
class Pump:
    device_code: str
    pump_code: str
    state: ZonePoint


@dataclass(frozen=True)
class Point:
    id: int
    name: str
    unit: str
    kind: str
    poll_s: float


@dataclass(frozen=True)
class Device:
    id: int
    code: str
    sign: float
    points: tuple[Point, ...]
    attrs: dict[str, Any]


def _devices(conn: Conn, where: str, args: dict[str, Any]) -> list[Device]:
    rows = conn.execute(
        "SELECT d.id, d.code, d.sign, d.attrs, p.id, p.name, p.unit, p.kind, p.poll_period_s "  # noqa: S608 (fixed fragments of this module, values are parameters)
        "FROM (SELECT d.*, " + SIGN_SQL + " AS sign FROM devices d WHERE d.enabled AND "
        f"{where}) d LEFT JOIN points p ON p.device_id = d.id ORDER BY d.code, p.id",
        args,
    ).fetchall()
    out: dict[int, Device] = {}
    pts: dict[int, list[Point]] = {}
    for did, code, sign, attrs, pid, name, unit, kind, poll in rows:
        if did not in out:
            out[did] = Device(int(did), str(code), float(sign), (), dict(attrs or {}))
            pts[did] = []
        if pid is not None:
            pts[did].append(Point(int(pid), str(name), str(unit or ""), str(kind), float(poll)))
    return [Device(d.id, d.code, d.sign, tuple(pts[d.id]), d.attrs) for d in out.values()]


SIGN_SQL = (
    "coalesce((d.attrs->'zone_signs'->>%(zcode)s)::int, "
    "(d.attrs->'zone_signs'->>%(ztext)s)::int, d.flow_sign)"
)
IN_ZONE_SQL = (
    "(d.zone_id = %(zid)s OR d.attrs->'zone_signs' ? %(zcode)s "
    "OR d.attrs->'zone_signs' ? %(ztext)s)"
)


def _zone_args(conn: Conn, zone_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT code FROM zones WHERE id = %s", (zone_id,)).fetchone()
    if row is None:
        raise ZoneSetupError(f"zone {zone_id} does not exist", "zone")
    return {"zid": zone_id, "zcode": str(row[0]), "ztext": str(zone_id)}


def zone_code(conn: Conn, zone_id: int) -> str:
    return str(_zone_args(conn, zone_id)["zcode"])


def _pick(
    d: Device,
    named: str | None,
    names: Sequence[str],
    ok: Any,
    *,
    what: str,
    setting: str,
    required: bool = True,
) -> Point | None:
    """The point of device ``d`` a rule uses: the one ``named`` by the rule, else the first of
    ``names`` it has, else its only point that ``ok`` accepts."""
    by_name = {p.name: p for p in d.points}
    if named:
        if named in by_name:
            return by_name[named]
        if not required:
            return None
        have = ", ".join(sorted(by_name)) or "no points"
        raise ZoneSetupError(
            f"{d.code} has no point {named!r} (it has: {have}); correct params.{setting}",
            f"params.{setting}",
        )
    for n in names:
        if n in by_name and ok(by_name[n]):
            return by_name[n]
    cands = [p for p in d.points if ok(p)]
    if len(cands) == 1:
        return cands[0]
    if not required:
        return None
    have = ", ".join(f"{p.name} ({p.unit or p.kind})" for p in d.points) or "no points"
    if cands:
        raise ZoneSetupError(
            f"{d.code} has several {what} points ({have}): name one in params.{setting}",
            f"params.{setting}",
        )
    raise ZoneSetupError(
        f"{d.code} has no {what} point (it has: {have}); name one in params.{setting}",
        f"params.{setting}",
    )


def _flow_ok(p: Point) -> bool:
    return p.kind == "analog" and p.unit.strip().lower() in FLOW_TO_LPS


def _volume_ok(p: Point) -> bool:
    return (
        p.kind == "counter"
        and p.unit.strip().lower() in VOL_TO_M3
        and "reverse" not in p.name.lower()
    )


def _flow_point(d: Device, p: Point) -> ZonePoint:
    return ZonePoint(p.id, d.sign, FLOW_TO_LPS.get(p.unit.strip().lower(), 1.0), d.code, p.name,
                     p.poll_s)  # fmt: skip


def _vol_point(d: Device, p: Point, sign: float = 1.0) -> ZonePoint:
    return ZonePoint(p.id, sign, VOL_TO_M3.get(p.unit.strip().lower(), 1.0), d.code, p.name,
                     p.poll_s)  # fmt: skip


def inflow_meters(
    conn: Conn,
    zone_id: int,
    *,
    flow_point: str | None = None,
    counters: bool = False,
    counter_point: str | None = None,
) -> list[InflowMeter]:
    """The zone's inflow meters, signed so that + means into the zone (ZoneSetupError if the
    zone has none, or one of them has no usable point)."""
    args = _zone_args(conn, zone_id)
    devs = _devices(conn, "d.kind = 'district_meter' AND " + IN_ZONE_SQL, args)
    if not devs:
        raise ZoneSetupError(
            f"zone {args['zcode']} has no district meter (a device of kind district_meter in "
            "the zone, or one whose attrs.zone_signs names the zone)",
            "zone",
        )
    out: list[InflowMeter] = []
    for d in devs:
        fwd = rev = None
        if counters:
            p = _pick(d, counter_point, COUNTER_NAMES, _volume_ok, what="volume register",
                      setting="counter_point", required=False)  # fmt: skip
            if p is not None:
                fwd = _vol_point(d, p, d.sign)
                r = next((q for q in d.points if q.name in REVERSE_NAMES), None)
                if r is not None:
                    rev = _vol_point(d, r, -d.sign)
        flow = _pick(d, flow_point, FLOW_NAMES, _flow_ok, what="flow", setting="flow_point",
                     required=fwd is None)  # fmt: skip
        out.append(InflowMeter(d.code, d.sign, None if flow is None else _flow_point(d, flow),
                               fwd, rev))  # fmt: skip
    return out


def flow_points(conn: Conn, zone_id: int, flow_point: str | None) -> list[ZonePoint]:
    """The flow points of the zone's inflow meters (mnf, water_balance, burst)."""
    return [m.flow for m in inflow_meters(conn, zone_id, flow_point=flow_point) if m.flow]


def customer_points(
    conn: Conn, zone_id: int, volume_point: str | None, *, required: bool = False
) -> list[ZonePoint]:
    """The volume registers of the zone's customer meters (meters without one are skipped;
    with ``required``, a zone with none is a ZoneSetupError)."""
    args = _zone_args(conn, zone_id)
    devs = _devices(conn, "d.kind = 'customer_meter' AND d.zone_id = %(zid)s", args)
    out: list[ZonePoint] = []
    for d in devs:
        p = _pick(d, volume_point, VOLUME_NAMES, _volume_ok, what="volume register",
                  setting="volume_point", required=False)  # fmt: skip
        if p is not None:
            out.append(_vol_point(d, p))
    if required and not out:
        named = f" with a point {volume_point!r}" if volume_point else " with a volume register"
        raise ZoneSetupError(
            f"zone {args['zcode']} has no customer meter{named}", "params.volume_point"
        )
    return out


def tanks(conn: Conn, zone_id: int, level_point: str | None) -> list[Tank]:
    """Level sensors of the zone's tanks, with the tank's area."""
    args = _zone_args(conn, zone_id)
    rows = conn.execute(
        "SELECT d.id, n.code, n.attrs FROM devices d JOIN nodes n ON n.id = d.node_id "
        "WHERE d.enabled AND n.kind = 'tank' AND coalesce(n.zone_id, d.zone_id) = %(zid)s",
        args,
    ).fetchall()
    node_attrs = {int(r[0]): (str(r[1]), dict(r[2] or {})) for r in rows}
    if not node_attrs:
        return []
    devs = _devices(conn, "d.id = ANY(%(ids)s)", {**args, "ids": list(node_attrs)})
    out: list[Tank] = []
    for d in devs:
        node, nattrs = node_attrs[d.id]
        p = _pick(
            d, level_point, LEVEL_NAMES,
            lambda q: q.kind == "analog" and q.unit.strip().lower() in LEVEL_TO_M,
            what="level", setting="level_point",
        )  # fmt: skip
        assert p is not None
        area = d.attrs.get("tank_area_m2")
        if area is None and nattrs.get("diameter_m"):
            area = math.pi * float(nattrs["diameter_m"]) ** 2 / 4
        if area is None or float(area) <= 0:
            raise ZoneSetupError(
                f"tank {node} (level sensor {d.code}) has no size: give the node "
                "attrs.diameter_m or the device attrs.tank_area_m2",
                "zone",
            )
        lvl = ZonePoint(p.id, 1.0, LEVEL_TO_M[p.unit.strip().lower()], d.code, p.name, p.poll_s)
        out.append(Tank(d.code, lvl, float(area)))
    return out


def pumps(conn: Conn, zone_id: int, pump_point: str | None) -> list[Pump]:
    """Run-state points of the zone's pumps (devices whose attrs.pump names a zone pump)."""
    args = _zone_args(conn, zone_id)
    devs = _devices(
        conn,
        "d.attrs->>'pump' IN (SELECT code FROM pumps WHERE zone_id = %(zid)s)",
        args,
    )
    out: list[Pump] = []
    for d in devs:
        p = _pick(d, pump_point, PUMP_NAMES, lambda q: q.kind == "status", what="run state",
                  setting="pump_point")  # fmt: skip
        assert p is not None
        out.append(Pump(d.code, str(d.attrs["pump"]), ZonePoint(p.id, 1.0, 1.0, d.code, p.name)))
    return out


def neighbours(conn: Conn, zone_id: int, extra: Sequence[str] = ()) -> list[tuple[int, str]]:
    """Zones next to this one: sharing a district meter, or joined by a pipe, valve or pump of
    the network, plus the zone codes in ``extra``."""
    args = _zone_args(conn, zone_id)
    rows = conn.execute(
        """
        WITH links AS (
            SELECT from_node_id a, to_node_id b FROM pipes
            UNION ALL SELECT from_node_id, to_node_id FROM valves
            UNION ALL SELECT from_node_id, to_node_id FROM pumps
        ), zl AS (
            SELECT na.zone_id za, nb.zone_id zb FROM links l
            JOIN nodes na ON na.id = l.a JOIN nodes nb ON nb.id = l.b
            WHERE na.zone_id IS NOT NULL AND nb.zone_id IS NOT NULL AND na.zone_id <> nb.zone_id
        ), shared AS (
            SELECT z.id FROM devices d,
                jsonb_object_keys(CASE WHEN jsonb_typeof(d.attrs->'zone_signs') = 'object'
                                  THEN d.attrs->'zone_signs' ELSE '{}' END) k
            JOIN zones z ON z.code = k OR z.id::text = k
            WHERE d.kind = 'district_meter' AND d.enabled
              AND (d.attrs->'zone_signs' ? %(zcode)s OR d.attrs->'zone_signs' ? %(ztext)s)
        )
        SELECT DISTINCT z.id, z.code FROM zones z WHERE z.id <> %(zid)s AND (
            z.id IN (SELECT zb FROM zl WHERE za = %(zid)s)
            OR z.id IN (SELECT za FROM zl WHERE zb = %(zid)s)
            OR z.id IN (SELECT id FROM shared) OR z.code = ANY(%(extra)s))
        ORDER BY z.code
        """,
        {**args, "extra": list(extra)},
    ).fetchall()
    found = {str(r[1]) for r in rows}
    missing = [c for c in extra if c not in found]
    if missing:
        raise ZoneSetupError(f"params.neighbours: no zone {missing[0]!r}", "params.neighbours")
    return [(int(r[0]), str(r[1])) for r in rows]


@dataclass(frozen=True)
class BoundaryValve:
    asset_id: int
    code: str
    neighbour: str  # the zone on its other side


def boundary_valves(conn: Conn, zone_id: int) -> list[BoundaryValve]:
    """The normally closed valves between this zone and another (see the module docs)."""
    rows = conn.execute(
        """
        WITH bv AS (
            SELECT a.id, a.code,
                   coalesce(nf.zone_id, mf.zone_id) AS za, coalesce(nt.zone_id, mt.zone_id) AS zb
            FROM assets a
            LEFT JOIN valves v ON v.code = a.ref_code
            LEFT JOIN nodes mf ON mf.id = v.from_node_id
            LEFT JOIN nodes mt ON mt.id = v.to_node_id
            LEFT JOIN nodes nf ON nf.code = a.attrs->>'from'
            LEFT JOIN nodes nt ON nt.code = a.attrs->>'to'
            WHERE a.kind = 'valve' AND a.status = 'active'
              AND coalesce(nullif(lower(btrim(a.attrs->>'valve_status')), ''), v.status)
                  = 'closed'
        )
        SELECT bv.id, bv.code, z.code FROM bv
        JOIN zones z ON z.id = CASE WHEN bv.za = %(zid)s THEN bv.zb ELSE bv.za END
        WHERE (bv.za = %(zid)s OR bv.zb = %(zid)s) AND bv.za <> bv.zb
        ORDER BY bv.code
        """,
        {"zid": zone_id},
    ).fetchall()
    return [BoundaryValve(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def valve_open_by_neighbour(
    conn: Conn,
    valves: Sequence[BoundaryValve],
    edges: Any,
    *,
    settle_s: float,
    max_open_s: float,
) -> dict[str, Any]:
    """For each neighbouring zone across a boundary valve, and each bucket between ``edges``
    (epoch seconds): whether a valve to it was open in the bucket, from the work orders' valve
    records: open from ``opened`` until the next ``closed`` and ``settle_s`` after it; an
    opening with no closing recorded counts for ``max_open_s`` at most (a forgotten record does
    not silence the zone for good). {the zone's code: a bool per bucket}; zones with no
    opening are left out."""
    if not valves or len(edges) < 2:
        return {}
    rows = conn.execute(
        "SELECT valve_id, action, extract(epoch FROM at)::float8 FROM work_order_valves "
        "WHERE valve_id = ANY(%s) AND action IN ('opened', 'closed') AND at < %s "
        "AND at > %s ORDER BY valve_id, at, id",
        ([v.asset_id for v in valves], to_ts(float(edges[-1])),
         to_ts(float(edges[0]) - max_open_s - settle_s)),
    ).fetchall()  # fmt: skip
    spans: list[tuple[int, float, float]] = []
    since: dict[int, float] = {}
    for vid, action, at in rows:
        if action == "opened":
            since.setdefault(int(vid), float(at))
        elif int(vid) in since:
            start = since.pop(int(vid))
            spans.append((int(vid), start, min(float(at), start + max_open_s) + settle_s))
    spans += [(vid, start, start + max_open_s + settle_s) for vid, start in since.items()]
    zone_of = {v.asset_id: v.neighbour for v in valves}
    e = np.asarray(edges, dtype=np.float64)
    out: dict[str, Any] = {}
    for vid, a, b in spans:
        hit = (e[1:] > a) & (e[:-1] < b)
        if hit.any():
            z = zone_of[vid]
            out[z] = out[z] | hit if z in out else hit
    return out


# ------------------------------------------------------------------ data
Series = dict[int, tuple[Any, Any]]


def load_series(conn: Conn, point_ids: Sequence[int], t0: datetime, t1: datetime) -> Series:
    """Good-quality readings of the points in [t0, t1]: {point: (epoch seconds, values)}."""
    out: Series = {p: (np.zeros(0), np.zeros(0)) for p in point_ids}
    if not point_ids:
        return out
    rows = conn.execute(
        "SELECT point_id, extract(epoch FROM ts), coalesce(value, 'NaN') FROM readings "
        "WHERE point_id = ANY(%s) AND ts >= %s AND ts <= %s AND quality = 0 ORDER BY point_id, ts",
        (list(point_ids), t0, t1),
    ).fetchall()
    arr = np.array([(r[0], float(r[1]), float(r[2])) for r in rows], dtype=np.float64).reshape(
        -1, 3
    )
    for p in point_ids:
        sel = arr[arr[:, 0] == p]
        out[p] = (sel[:, 1].copy(), sel[:, 2].copy())
    return out


def latest(conn: Conn, point_ids: Sequence[int], until: datetime | None) -> dict[int, datetime]:
    """The time of the newest reading of each point (up to ``until``)."""
    if not point_ids:
        return {}
    rows = conn.execute(
        "SELECT x, (SELECT max(ts) FROM readings r WHERE r.point_id = x "
        "AND (%s::timestamptz IS NULL OR r.ts <= %s)) FROM unnest(%s::bigint[]) x",
        (until, until, list(point_ids)),
    ).fetchall()
    return {int(r[0]): r[1] for r in rows if r[1] is not None}


def horizon(
    conn: Conn, point_ids: Sequence[int], until: datetime | None, max_lag: timedelta
) -> datetime | None:
    """How far the zone's data reaches: the newest reading of its slowest point, but a point
    lagging more than ``max_lag`` behind the others does not hold the rest back."""
    got = latest(conn, point_ids, until)
    if not got:
        return None
    newest = max(got.values())
    return min(t for t in got.values() if t >= newest - max_lag)


@dataclass(frozen=True)
class Demand:
    """A zone's demand per bucket: net inflow minus the filling of its tanks (L/s)."""

    lps: Any  # NaN: unknown
    transient: Any  # a pump switched in the bucket while a meter's flow was a sampled mean
    # a volume register was interpolated across a gap at one of the bucket's edges: the
    # bucket's volume is right over the gap, but not how it was spread over the hours
    spread: Any = None


def zone_demand(
    conn: Conn,
    meters: Sequence[InflowMeter],
    zone_tanks: Sequence[Tank],
    zone_pumps: Sequence[Pump],
    *,
    t0: float,
    step_s: float,
    n: int,
) -> Demand:
    """Net inflow per bucket from each meter's volume register where it can (both bucket
    edges known), else from the mean of its flow readings; minus the tanks' filling.

    A bucket in which a pump started or stopped while a meter's flow came from its sampled
    readings is not known from its mean (the flow jumped between two readings, at a moment
    no reading shows). Where the pumps report their state more often than once a bucket, such
    a bucket is judged from its parts between the readings in which no pump switched (at least
    half of it): each part's inflow is its flow reading, its tank filling the level's change
    over it. A bucket with too few such parts stays unknown (``transient``)."""
    edges = t0 + step_s * np.arange(n + 1, dtype=np.float64)
    pad = timedelta(seconds=2 * step_s)
    pts = [p.point_id for m in meters for p in m.points()]
    pts += [t.level.point_id for t in zone_tanks] + [p.state.point_id for p in zone_pumps]
    data = load_series(conn, pts, to_ts(t0) - pad, to_ts(edges[-1]) + pad)
    total, sampled, spread_at = _net_demand(data, meters, zone_tanks, edges)
    transient = np.zeros(n, dtype=bool)
    parts = _parts_per_bucket(data, zone_pumps, step_s)
    if parts == 1:
        for pu in zone_pumps:
            transient[_switches(data[pu.state.point_id], t0, step_s, n)] = True
        transient &= sampled
    else:
        # the pumps report often enough to cut a bucket into parts, each with a reading of
        # every pump's state. A switch lies between the reading that shows it and the one
        # before: in that reading's part or the part before. A bucket with such a part is
        # judged from its other parts, if they are at least half of it
        fine = step_s / parts
        switch = np.zeros(n * parts, dtype=bool)
        for pu in zone_pumps:
            hit = _switches(data[pu.state.point_id], t0, fine, n * parts)
            switch[hit] = True
            switch[hit[hit > 0] - 1] = True
        transient = switch.reshape(n, parts).any(axis=1) & sampled
        if transient.any():
            sub, _, _ = _net_demand(
                data, meters, zone_tanks, t0 + fine * np.arange(n * parts + 1, dtype=np.float64)
            )
        for b in np.flatnonzero(transient):
            part = slice(b * parts, (b + 1) * parts)
            ok = ~switch[part] & np.isfinite(sub[part])
            if 2 * int(ok.sum()) >= parts:
                total[b] = float(np.mean(sub[part][ok]))
                transient[b] = False
    spread = (spread_at[:-1] | spread_at[1:]) & np.isfinite(total)
    return Demand(total, transient, spread)


def _net_demand(
    data: dict[int, tuple[Any, Any]],
    meters: Sequence[InflowMeter],
    zone_tanks: Sequence[Tank],
    edges: Any,
) -> tuple[Any, Any, Any]:
    """Net inflow minus the tanks' filling (L/s) in each interval of ``edges``; which
    intervals took a meter's flow from its sampled readings; edges where a register's gap
    was spread."""
    n = edges.size - 1
    step_s = float(edges[1] - edges[0])
    t0 = float(edges[0])
    total = np.zeros(n)
    sampled = np.zeros(n, dtype=bool)  # some meter's bucket came from sampled flow readings
    spread_at = np.zeros(n + 1, dtype=bool)
    for m in meters:
        q = np.full(n, np.nan)
        if m.forward is not None:
            ts, v = data[m.forward.point_id]
            at = an.interp_at(ts, v * m.forward.factor, edges, 2 * step_s)
            vol = np.diff(at)
            vol[vol < 0] = np.nan  # a register that fell (reset, exchange): unknown
            spread_at |= an.spread_edges(ts, v, edges) & np.isfinite(at)
            if m.reverse is not None:
                ts, v = data[m.reverse.point_id]
                at = an.interp_at(ts, v * m.reverse.factor, edges, 2 * step_s)
                back = np.diff(at)
                back[back < 0] = np.nan
                vol = vol - back
                spread_at |= an.spread_edges(ts, v, edges) & np.isfinite(at)
            q = vol * 1000.0 / step_s
        if m.flow is not None:
            ts, v = data[m.flow.point_id]
            fm = an.bucket_mean(ts[ts >= t0], v[ts >= t0] * m.flow.factor, t0, step_s, n)
            use = ~np.isfinite(q)
            sampled |= use & np.isfinite(fm)
            q = np.where(use, fm, q)
        total += m.sign * q
    for tk in zone_tanks:
        ts, v = data[tk.level.point_id]
        lv = an.interp_at(ts, v * tk.level.factor, edges, 2 * step_s)
        total -= storage_lps(lv, tk.area_m2, step_s)
    return total, sampled, spread_at


def _switches(series: tuple[Any, Any], t0: float, step_s: float, n: int) -> Any:
    """The buckets holding a pump state reading that differs from the one before it."""
    ts, v = series
    ok = np.isfinite(v)
    ts, on = ts[ok], v[ok] > 0.5
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    k = np.floor((ts - t0) / step_s).astype(np.int64)
    change = np.concatenate([[False], on[1:] != on[:-1]])
    return k[change & (k >= 0) & (k < n)]


def _parts_per_bucket(
    data: dict[int, tuple[Any, Any]], zone_pumps: Sequence[Pump], step_s: float
) -> int:
    """Into how many parts a bucket can be cut so that each part holds a reading of every
    pump's state: the bucket over the slowest pump's usual reading interval (1 to 12)."""
    gaps = []
    for pu in zone_pumps:
        ts = data[pu.state.point_id][0]
        if ts.size < 2:
            return 1
        gaps.append(float(np.median(np.diff(ts))))
    if not gaps or max(gaps) <= 0:
        return 1
    return max(1, min(12, int(step_s // max(gaps))))


def counter_use(conn: Conn, pts: Sequence[ZonePoint], edges: Any, max_gap_s: float) -> Any:
    """Per-meter consumption (m³) in each interval of ``edges``: shape (meters, intervals)."""
    t0, t1 = to_ts(float(edges[0]) - max_gap_s), to_ts(float(edges[-1]) + max_gap_s)
    data = load_series(conn, [p.point_id for p in pts], t0, t1)
    out = np.full((len(pts), len(edges) - 1), np.nan)
    for i, p in enumerate(pts):
        ts, v = data[p.point_id]
        out[i] = an.counter_consumption(ts, v * p.factor, np.asarray(edges), max_gap_s)
    return out


def check_rule(conn: Conn, kind: str, zone_id: int | None, params: Any) -> None:
    """A zone rule must find what it watches: raise ZoneSetupError (naming the setting at
    fault) when it would watch nothing. ``params``: the rule's RuleParams."""
    if zone_id is None or kind not in ("mnf", "water_balance", "burst", "customer_leak", "leak"):
        return
    if kind == "customer_leak":
        customer_points(conn, zone_id, params.volume_point, required=True)
        return
    counters = kind == "leak" and params.use_counters
    meters = inflow_meters(
        conn, zone_id, flow_point=params.flow_point, counters=counters,
        counter_point=params.counter_point,
    )  # fmt: skip
    if kind != "leak" and not any(m.flow for m in meters):
        raise ZoneSetupError("no district meter of the zone has a flow point", "params.flow_point")
    if kind == "burst" and params.net_of_consumption:
        customer_points(conn, zone_id, params.volume_point, required=True)
    if kind == "leak":
        tanks(conn, zone_id, params.level_point)
        pumps(conn, zone_id, params.pump_point)
        neighbours(conn, zone_id, params.neighbours)
