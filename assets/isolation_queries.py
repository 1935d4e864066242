"""Valve isolation against the database (async, the API's pool): the register's graph, kept
in memory per database and rebuilt when the register changes; what an isolation cuts off as
people and devices: the accounts (households and legal entities) behind the service
connections, their addresses, critical customers first, the sensors and meters.

The graph is built from the register once (about a second for 10,000 nodes, in a thread) and
reused until the register's version moves (``max(asset_versions.id)``: every change of every
asset writes a version, QGIS edits included). It is derived data, so several API workers each
keep their own copy and never need to agree on anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from assets.isolation import (
    Isolation,
    IsolationError,
    NoValvesError,
    cut_parts,
    geojson,
    isolate_pipe,
    isolate_point,
    isolate_zone,
    valve_rows,
)
from assets.model import Asset
from assets.network_graph import NetworkGraph, build_graph
from assets.outages import CRITICAL_KINDS
from assets.store import READ_COLUMNS, READ_FROM, asset_from_row

AConn = AsyncConnection[Any]

LEAK_ALARM_KINDS = frozenset({"leak", "burst", "mnf", "water_balance"})


@dataclass(frozen=True)
class Target:
    """What to isolate: a pipe (optionally the place on it), a point, or an alarm."""

    pipe: str | None = None
    at: float | None = None
    lon: float | None = None
    lat: float | None = None
    alarm: int | None = None
    unavailable: tuple[str, ...] = ()


class _Cache:
    def __init__(self) -> None:
        self.graphs: dict[str, NetworkGraph] = {}
        self.locks: dict[str, asyncio.Lock] = {}


_cache = _Cache()


def _db_key(conn: AConn) -> str:
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname}"


async def register_version(conn: AConn) -> int:
    cur = await conn.execute("SELECT coalesce(max(id), 0) FROM asset_versions")
    row = await cur.fetchone()
    assert row is not None
    value = row["coalesce"] if isinstance(row, dict) else row[0]
    return int(value)


async def load_water_assets(conn: AConn) -> list[Asset]:
    """The active water assets of the register (what the graph is built from)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {READ_COLUMNS} FROM {READ_FROM} "  # noqa: S608 - constants only
            "WHERE a.system = 'water' AND a.status = 'active' ORDER BY a.code"
        )
        rows = await cur.fetchall()
    return [asset_from_row(r) for r in rows]


async def network_graph(conn: AConn) -> NetworkGraph:
    """The register's water network as a graph, rebuilt only when the register changed."""
    key = _db_key(conn)
    version = await register_version(conn)
    g = _cache.graphs.get(key)
    if g is not None and g.version == version:
        return g
    lock = _cache.locks.setdefault(key, asyncio.Lock())
    async with lock:
        g = _cache.graphs.get(key)
        if g is not None and g.version == version:
            return g
        items = await load_water_assets(conn)
        g = await asyncio.to_thread(build_graph, items)
        g.version = version
        _cache.graphs[key] = g
        return g


def forget_graphs() -> None:
    """Drop every cached graph (tests, and after a bulk change made outside the register)."""
    _cache.graphs.clear()


# ---------------------------------------------------------------------- targets
async def alarm_place(conn: AConn, alarm_id: int) -> dict[str, Any] | None:
    """An alarm's kind, zone and the place of its device (None when there is no alarm)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.id, a.kind, a.message, z.code AS zone, coalesce(d.x, n.x) AS lon, "
            "coalesce(d.y, n.y) AS lat, w.crs "
            "FROM alarms a LEFT JOIN zones z ON z.id = a.zone_id "
            "LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN nodes n ON n.id = d.node_id "
            "LEFT JOIN networks w ON w.id = n.network_id WHERE a.id = %s",
            (alarm_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    if row["crs"] not in (None, "EPSG:4326") and row["lon"] is not None:
        row["lon"] = row["lat"] = None  # a model drawn in its own plane: not a map place
    return row


async def isolate(conn: AConn, t: Target) -> tuple[NetworkGraph, Isolation]:
    """The isolation of a target (raises :class:`~assets.isolation.IsolationError`)."""
    g = await network_graph(conn)
    if t.alarm is not None:
        place = await alarm_place(conn, t.alarm)
        if place is None:
            raise IsolationError(f"there is no alarm number {t.alarm}")
        if t.pipe:
            iso = isolate_pipe(g, t.pipe, at=t.at, unavailable=t.unavailable)
        elif t.lon is not None and t.lat is not None:
            iso = isolate_point(g, t.lon, t.lat, unavailable=t.unavailable)
        elif place["lon"] is not None and place["lat"] is not None:
            iso = isolate_point(
                g,
                float(place["lon"]),
                float(place["lat"]),
                unavailable=t.unavailable,
                max_m=100.0,
            )
        elif place["zone"]:
            iso = isolate_zone(g, str(place["zone"]), unavailable=t.unavailable)
        else:
            raise IsolationError(
                f"alarm {t.alarm} names neither a zone nor a place: choose the pipe on the map"
            )
        target = {**iso.target, "alarm": t.alarm, "alarm_kind": place["kind"]}
        return g, _with_target(iso, target)
    if t.pipe:
        return g, isolate_pipe(g, t.pipe, at=t.at, unavailable=t.unavailable)
    if t.lon is not None and t.lat is not None:
        return g, isolate_point(g, t.lon, t.lat, unavailable=t.unavailable)
    raise IsolationError("name a pipe, a point (lon and lat) or an alarm")


def _with_target(iso: Isolation, target: dict[str, Any]) -> Isolation:
    return Isolation(
        target,
        iso.region,
        iso.close,
        iso.not_needed,
        iso.already_closed,
        iso.skipped,
        iso.cut,
        iso.supply_known,
        iso.sources_inside,
    )


# ---------------------------------------------------------------------- people and devices
ACCOUNTS_SQL = """
WITH sc AS (
    SELECT s.code, s.account_id, s.house_id FROM assets s
    WHERE s.kind = 'service_connection' AND s.code = ANY(%s)
), hit AS (
    SELECT sc.code AS service, acc.id FROM sc JOIN accounts acc ON acc.id = sc.account_id
    UNION
    SELECT sc.code, acc.id FROM sc JOIN accounts acc ON acc.house_id = sc.house_id
)
SELECT DISTINCT ON (acc.id) acc.id, acc.number, acc.name, acc.kind, acc.status, acc.phone,
       acc.telegram_chat_id, acc.correspondence_language AS language, acc.residents,
       hit.service, h.id AS house_id, h.number AS house, ap.number AS apartment,
       st.name_uz AS street_uz, st.name_uz_cyrl AS street_uz_cyrl, st.name_ru AS street_ru,
       m.name_uz AS mahalla_uz, m.name_uz_cyrl AS mahalla_uz_cyrl, m.name_ru AS mahalla_ru,
       z.code AS zone, cc.kind AS critical, cc.note AS critical_note
FROM hit JOIN accounts acc ON acc.id = hit.id
JOIN houses h ON h.id = acc.house_id
LEFT JOIN apartments ap ON ap.id = acc.apartment_id
JOIN streets st ON st.id = h.street_id
JOIN mahallas m ON m.id = st.mahalla_id
LEFT JOIN zones z ON z.id = acc.zone_id
LEFT JOIN critical_customers cc ON cc.account_id = acc.id
WHERE acc.status <> 'closed'
ORDER BY acc.id, hit.service"""

DEVICES_SQL = """
SELECT d.code, d.kind, coalesce(n.code, p.code) AS at, d.serial_no
FROM devices d LEFT JOIN nodes n ON n.id = d.node_id LEFT JOIN pipes p ON p.id = d.pipe_id
WHERE d.enabled AND d.kind <> 'customer_meter' AND (n.code = ANY(%s) OR p.code = ANY(%s))
ORDER BY d.code"""

METERS_SQL = """
SELECT m.serial_no, acc.number AS account, d.code AS device
FROM service_connections c JOIN meters m ON m.id = c.meter_id
JOIN accounts acc ON acc.id = c.account_id LEFT JOIN devices d ON d.id = m.device_id
WHERE c.removed_at IS NULL AND c.account_id = ANY(%s)
ORDER BY acc.number, m.serial_no"""

UNLINKED_SQL = """
SELECT z.code AS zone, count(*) AS accounts FROM accounts a JOIN zones z ON z.id = a.zone_id
WHERE z.code = ANY(%s) AND a.status <> 'closed'
  AND NOT EXISTS (SELECT 1 FROM assets s WHERE s.kind = 'service_connection'
                  AND s.account_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM assets s WHERE s.kind = 'service_connection'
                  AND s.house_id = a.house_id)
GROUP BY z.code ORDER BY z.code"""
"""Accounts of the zones with no service connection in the register (the list of who loses
water cannot name them). Two NOT EXISTS, not one with OR: each is a hash anti-join."""


async def _rows(conn: AConn, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def critical_rank(kind: str | None) -> int:
    return CRITICAL_KINDS.index(kind) if kind in CRITICAL_KINDS else len(CRITICAL_KINDS)


def sort_accounts(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Critical customers first (most urgent kind first), then legal entities and budget
    organisations, then households; each by street, house and apartment."""

    def house_key(v: Any) -> tuple[int, str]:
        text = str(v or "")
        digits = "".join(c for c in text if c.isdigit())
        return (int(digits) if digits else 0, text)

    return sorted(
        rows,
        key=lambda r: (
            critical_rank(r.get("critical")),
            0 if r.get("kind") in ("legal", "budget") else 1,
            str(r.get("street_uz") or ""),
            house_key(r.get("house")),
            house_key(r.get("apartment")),
            str(r.get("number")),
        ),
    )


async def subscribers(conn: AConn, services: Sequence[str]) -> list[dict[str, Any]]:
    """The accounts that the service connections ``services`` feed (directly, or every
    account of the house they feed), not closed, critical customers first."""
    if not services:
        return []
    return sort_accounts(await _rows(conn, ACCOUNTS_SQL, (list(services),)))


async def answer(conn: AConn, g: NetworkGraph, iso: Isolation) -> dict[str, Any]:
    """Everything an isolation means, for the API, the map and customer service."""
    parts = cut_parts(g, iso)
    accounts = await subscribers(conn, parts.services)
    devices = await _rows(conn, DEVICES_SQL, (parts.refs, parts.refs))
    meters = await _rows(conn, METERS_SQL, ([a["id"] for a in accounts],))
    zones = sorted({z for s in iso.cut if (z := g.segment_zone[s])})
    unlinked = await _rows(conn, UNLINKED_SQL, (zones,)) if zones else []
    houses: dict[int, dict[str, Any]] = {}
    for a in accounts:
        houses.setdefault(
            int(a["house_id"]),
            {k: a[k] for k in ("house", "street_uz", "street_uz_cyrl", "street_ru", "mahalla_uz")}
            | {"accounts": 0},
        )["accounts"] += 1
    for a in accounts:
        a.pop("id", None)
    warnings: list[dict[str, Any]] = []
    if not iso.supply_known:
        warnings.append({"code": "no_source", "detail": "the register has no water source"})
    if iso.sources_inside:
        warnings.append({"code": "source_inside", "sources": list(iso.sources_inside)})
    warnings += [
        {"code": "unlinked_accounts", "zone": u["zone"], "accounts": int(u["accounts"])}
        for u in unlinked
    ]
    if g.unattached_services:
        warnings.append(
            {"code": "unattached_services", "services": sorted(g.unattached_services)[:50]}
        )
    return {
        "target": iso.target,
        "close": list(iso.close),
        "not_needed": list(iso.not_needed),
        "already_closed": list(iso.already_closed),
        "skipped": list(iso.skipped),
        "valves": valve_rows(g, iso),
        "supply_known": iso.supply_known,
        "pipes": parts.pipes,
        "nodes": parts.nodes,
        "length_m": parts.length_m,
        "service_connections": parts.services,
        "accounts": accounts,
        "addresses": sorted(houses.values(), key=lambda h: (str(h["street_uz"]), str(h["house"]))),
        "counts": {
            "accounts": len(accounts),
            "households": sum(1 for a in accounts if a["kind"] == "household"),
            "legal": sum(1 for a in accounts if a["kind"] != "household"),
            "critical": sum(1 for a in accounts if a["critical"]),
            "residents": sum(int(a["residents"] or 0) for a in accounts),
            "addresses": len(houses),
            "valves_to_close": len(iso.close),
        },
        "sensors": devices,
        "meters": meters,
        "zones": zones,
        "warnings": warnings,
        "geojson": geojson(g, iso, parts),
    }


async def isolation_answer(conn: AConn, t: Target) -> dict[str, Any]:
    """:func:`isolate` and :func:`answer` in one; a :class:`NoValvesError` carries the
    answer for its zone's boundary valves (``offer_answer``) when there is one."""
    try:
        g, iso = await isolate(conn, t)
    except NoValvesError as exc:
        if exc.offer is not None:
            g = await network_graph(conn)
            exc.offer_answer = await answer(conn, g, exc.offer)
        raise
    return await answer(conn, g, iso)
