"""What the office API reads and writes in the registry: zones, the network map, gateways,
devices, points, device state, readings (raw and rollups) and gateway commands.

Async functions on an :class:`psycopg.AsyncConnection` (the API's pool); they never commit:
the caller owns the transaction. A missing row is ``None``; a write that names something that
does not exist raises :class:`MissingReferenceError`, one that repeats a code
:class:`DuplicateCodeError` (both :class:`suvnet.registry.RegistryError`). The synchronous,
typed registry access used by the site file and network import is :mod:`suvnet.registry`.

The SQL text is made of the constants below; every value travels as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from suvnet.listing import Page, Where, fetch_all, fetch_one, fetch_page
from suvnet.registry import RegistryError

AConn = AsyncConnection[Any]


class MissingReferenceError(RegistryError):
    """A written row names a zone or gateway that does not exist."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"no {kind} with code {code!r}")
        self.kind = kind
        self.code = code


class DuplicateCodeError(RegistryError):
    """A new gateway or device has the code of an existing one."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"a {kind} with code {code!r} already exists")
        self.kind = kind
        self.code = code


# ------------------------------------------------------------------------------------ zones

ZONE_SELECT = (
    "SELECT id, code, name, kind, parent_id, min_service_pressure_bar, "
    "max_service_pressure_bar, geometry FROM zones"
)


async def list_zones(
    conn: AConn, pg: Page, *, kind: str | None = None, q: str | None = None
) -> dict[str, Any]:
    """Zones by code, of one kind, whose code or name contains ``q``."""
    w = Where().eq("kind", kind).like(["code", "name"], q)
    return await fetch_page(conn, ZONE_SELECT, w, "code", pg)


async def zone_id(conn: AConn, code: str) -> int | None:
    row = await fetch_one(conn, "SELECT id FROM zones WHERE code = %s", (code,))
    return None if row is None else int(row["id"])


async def _zone_ref(conn: AConn, code: str | None) -> int | None:
    """The id of the zone a written row names (None: no zone)."""
    if code is None:
        return None
    zid = await zone_id(conn, code)
    if zid is None:
        raise MissingReferenceError("zone", code)
    return zid


async def districts_and_mahallas(conn: AConn) -> list[dict[str, Any]]:
    """Every district and mahalla (``level``, ``id``, ``name``) for the report filters."""
    return await fetch_all(
        conn,
        "SELECT 'district' AS level, d.id, d.name_uz AS name FROM districts d "
        "UNION ALL SELECT 'mahalla', m.id, m.name_uz FROM mahallas m "
        "ORDER BY 1, 3 LIMIT 2000",
    )


# ------------------------------------------------------------------------------ network map

MapLayer = Literal["zones", "nodes", "pipes", "valves", "pumps"]
MAP_LAYERS: frozenset[MapLayer] = frozenset({"zones", "nodes", "pipes", "valves", "pumps"})

_LINK_SQL = """
    SELECT l.code, {extra}, a.x AS ax, a.y AS ay, b.x AS bx, b.y AS by, l.geometry
    FROM {table} l JOIN nodes a ON a.id = l.from_node_id JOIN nodes b ON b.id = l.to_node_id
    WHERE (%s::bigint IS NULL OR a.zone_id = %s OR b.zone_id = %s) ORDER BY l.id"""
_LINKS: tuple[tuple[MapLayer, str, str], ...] = (
    ("pipes", "pipes", "l.diameter_mm, l.material, l.length_m, l.status"),
    ("valves", "valves", "l.kind, l.diameter_mm, l.setting, l.status"),
    ("pumps", "pumps", "l.kind, l.power_kw, l.status"),
)
"""Layer, table and the columns shown of each kind of link (constants of this module)."""


def _zone_features(zones: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "geometry": z["geometry"],
            "properties": {
                "layer": "zone",
                "code": z["code"],
                "name": z["name"],
                "kind": z["kind"],
            },
        }
        for z in zones
    ]


def _node_features(nodes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [n["x"], n["y"]]},
            "properties": {
                "layer": "node",
                "code": n["code"],
                "kind": n["kind"],
                "elevation_m": n["elevation_m"],
            },
        }
        for n in nodes
    ]


def link_feature(layer: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """A pipe, valve or pump as a feature: its own line, else a straight line between its end
    nodes; None when neither is known (pure)."""
    p = dict(row)
    g = p.pop("geometry")
    ax, ay, bx, by = p.pop("ax"), p.pop("ay"), p.pop("bx"), p.pop("by")
    if g is None:
        if None in (ax, ay, bx, by):
            return None
        g = {"type": "LineString", "coordinates": [[ax, ay], [bx, by]]}
    return {"type": "Feature", "geometry": g, "properties": {"layer": layer[:-1], **p}}


async def network_geojson(
    conn: AConn, zone: str | None = None, layers: Iterable[MapLayer] = MAP_LAYERS
) -> dict[str, Any] | None:
    """Zones, nodes, pipes, valves and pumps as one GeoJSON FeatureCollection for a map, all
    of them or those of one zone (a link belongs to a zone when one of its ends does).
    Elements without coordinates are left out. None when ``zone`` does not exist."""
    wanted = set(layers)
    features: list[dict[str, Any]] = []
    zid: int | None = None
    if zone is not None:
        zid = await zone_id(conn, zone)
        if zid is None:
            return None
    if "zones" in wanted:
        zones = await fetch_all(
            conn,
            "SELECT code, name, kind, geometry FROM zones "
            "WHERE geometry IS NOT NULL AND (%s::bigint IS NULL OR id = %s) ORDER BY code",
            (zid, zid),
        )
        features += _zone_features(zones)
    if "nodes" in wanted:
        nodes = await fetch_all(
            conn,
            "SELECT code, kind, x, y, elevation_m FROM nodes "
            "WHERE x IS NOT NULL AND y IS NOT NULL AND (%s::bigint IS NULL OR zone_id = %s) "
            "ORDER BY id",
            (zid, zid),
        )
        features += _node_features(nodes)
    for layer, table, extra in _LINKS:
        if layer not in wanted:
            continue
        rows = await fetch_all(conn, _LINK_SQL.format(extra=extra, table=table), (zid, zid, zid))
        features += [f for f in (link_feature(layer, r) for r in rows) if f is not None]
    return {"type": "FeatureCollection", "features": features}


# --------------------------------------------------------------------------------- gateways

GATEWAY_SELECT = """
SELECT g.id, g.code, g.name, z.code AS zone, g.allowed, g.x, g.y, g.description, g.created_at,
       coalesce(s.state, 'unknown') AS state, s.since, s.last_seen, s.boot
FROM gateways g LEFT JOIN zones z ON z.id = g.zone_id
LEFT JOIN gateway_state s ON s.gateway_id = g.id"""

GATEWAY_COLUMNS = frozenset({"name", "zone_id", "allowed", "description"})
"""The columns a gateway change may set."""


async def list_gateways(
    conn: AConn,
    pg: Page,
    *,
    zone: str | None = None,
    state: str | None = None,
    allowed: bool | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """Gateways with their online state, by code."""
    w = (
        Where()
        .eq("z.code", zone)
        .eq("coalesce(s.state, 'unknown')", state)
        .eq("g.allowed", allowed)
        .like(["g.code", "g.name"], q)
    )
    return await fetch_page(conn, GATEWAY_SELECT, w, "g.code", pg)


async def gateway(conn: AConn, code: str) -> dict[str, Any] | None:
    return await fetch_one(conn, GATEWAY_SELECT + " WHERE g.code = %s", (code,))


async def gateway_id(conn: AConn, code: str) -> int | None:
    row = await fetch_one(conn, "SELECT id FROM gateways WHERE code = %s", (code,))
    return None if row is None else int(row["id"])


async def _gateway_ref(conn: AConn, code: str | None) -> int | None:
    if code is None:
        return None
    gid = await gateway_id(conn, code)
    if gid is None:
        raise MissingReferenceError("gateway", code)
    return gid


async def add_gateway(
    conn: AConn,
    *,
    code: str,
    name: str = "",
    zone: str | None = None,
    allowed: bool = True,
    x: float | None = None,
    y: float | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Register a gateway; answers its row as :func:`gateway` reads it."""
    zid = await _zone_ref(conn, zone)
    try:
        await conn.execute(
            "INSERT INTO gateways (code, name, zone_id, allowed, x, y, description) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (code, name, zid, allowed, x, y, description),
        )
    except pg_errors.UniqueViolation as exc:
        raise DuplicateCodeError("gateway", code) from exc
    row = await gateway(conn, code)
    assert row is not None
    return row


async def _update(conn: AConn, table: str, code: str, fields: Mapping[str, Any]) -> None:
    """``UPDATE table SET ... WHERE code = %s``; ``table`` and the field names are checked
    against this module's constants by the callers."""
    if fields:
        sets = ", ".join(f"{k} = %s" for k in fields)
        await conn.execute(
            f"UPDATE {table} SET {sets} WHERE code = %s",  # noqa: S608 - table and column names are this module's constants; values are parameters
            [*fields.values(), code],
        )


async def change_gateway(
    conn: AConn, code: str, changes: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Change a gateway's ``name``, ``zone`` (a code, or None for none), ``allowed`` or
    ``description``; a None name, allowed or description changes nothing. Answers the row
    before and after, or None when there is no such gateway."""
    before = await gateway(conn, code)
    if before is None:
        return None
    fields = dict(changes)
    if "zone" in fields:
        fields["zone_id"] = await _zone_ref(conn, fields.pop("zone"))
    fields = {k: v for k, v in fields.items() if v is not None or k == "zone_id"}
    unknown = set(fields) - GATEWAY_COLUMNS
    if unknown:
        raise ValueError(f"a gateway has no changeable field {sorted(unknown)}")
    await _update(conn, "gateways", code, fields)
    after = await gateway(conn, code)
    assert after is not None
    return before, after


# ---------------------------------------------------------------------------------- devices

DEVICE_SELECT = """
SELECT d.id, d.code, g.code AS gateway, d.kind, d.profile, d.unit_id, z.code AS zone,
       d.x, d.y, d.serial_no, d.enabled, d.attrs,
       coalesce(s.state, 'unknown') AS state, s.since, s.last_seen, s.last_error
FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id
LEFT JOIN zones z ON z.id = d.zone_id
LEFT JOIN device_state s ON s.device_id = d.id"""

DEVICE_COLUMNS = frozenset({"gateway_id", "zone_id", "unit_id", "serial_no", "enabled"})
"""The columns a device change may set."""


async def list_devices(
    conn: AConn,
    pg: Page,
    *,
    gateway: str | None = None,
    zone: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    enabled: bool | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """Devices with their state, by code."""
    w = (
        Where()
        .eq("g.code", gateway)
        .eq("z.code", zone)
        .eq("d.kind", kind)
        .eq("coalesce(s.state, 'unknown')", state)
        .eq("d.enabled", enabled)
        .like(["d.code", "d.serial_no"], q)
    )
    return await fetch_page(conn, DEVICE_SELECT, w, "d.code", pg)


async def device(conn: AConn, code: str) -> dict[str, Any] | None:
    return await fetch_one(conn, DEVICE_SELECT + " WHERE d.code = %s", (code,))


async def add_device(
    conn: AConn,
    *,
    code: str,
    kind: str,
    profile: str,
    gateway: str | None = None,
    unit_id: int | None = None,
    zone: str | None = None,
    serial_no: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """Register a device; answers its row as :func:`device` reads it."""
    gid = await _gateway_ref(conn, gateway)
    zid = await _zone_ref(conn, zone)
    try:
        await conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile, unit_id, zone_id, serial_no, "
            "enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (code, gid, kind, profile, unit_id, zid, serial_no, enabled),
        )
    except pg_errors.UniqueViolation as exc:
        raise DuplicateCodeError("device", code) from exc
    row = await device(conn, code)
    assert row is not None
    return row


async def change_device(
    conn: AConn, code: str, changes: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Change a device's ``gateway`` or ``zone`` (codes, None for none), ``unit_id``,
    ``serial_no`` or ``enabled`` (None leaves it). Answers the row before and after, or None
    when there is no such device."""
    before = await device(conn, code)
    if before is None:
        return None
    fields = dict(changes)
    if "gateway" in fields:
        fields["gateway_id"] = await _gateway_ref(conn, fields.pop("gateway"))
    if "zone" in fields:
        fields["zone_id"] = await _zone_ref(conn, fields.pop("zone"))
    if fields.get("enabled", True) is None:
        fields.pop("enabled")
    unknown = set(fields) - DEVICE_COLUMNS
    if unknown:
        raise ValueError(f"a device has no changeable field {sorted(unknown)}")
    await _update(conn, "devices", code, fields)
    after = await device(conn, code)
    assert after is not None
    return before, after


async def device_state_history(
    conn: AConn,
    pg: Page,
    code: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any] | None:
    """The state changes of a device, newest first; None when there is no such device."""
    dev = await device(conn, code)
    if dev is None:
        return None
    w = Where().add("device_id = %s", dev["id"]).since_until("ts", since, until)
    return await fetch_page(
        conn, "SELECT ts, state, reason FROM device_state_history", w, "ts DESC", pg
    )


async def device_states(
    conn: AConn, pg: Page, *, state: str | None = None, gateway: str | None = None
) -> dict[str, Any]:
    """The current state of every device (of one gateway, in one state), by device code."""
    w = Where().eq("coalesce(s.state, 'unknown')", state).eq("g.code", gateway)
    return await fetch_page(
        conn,
        "SELECT d.code AS device, g.code AS gateway, coalesce(s.state, 'unknown') AS state, "
        "s.since, s.last_seen, s.last_error FROM devices d "
        "LEFT JOIN gateways g ON g.id = d.gateway_id "
        "LEFT JOIN device_state s ON s.device_id = d.id",
        w,
        "d.code",
        pg,
    )


# ----------------------------------------------------------------------------------- points

POINT_SELECT = """
SELECT p.id, d.code AS device, p.name, p.unit, p.kind, p.poll_period_s
FROM points p JOIN devices d ON d.id = p.device_id"""


async def list_points(
    conn: AConn,
    pg: Page,
    *,
    device: str | None = None,
    kind: str | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """Measured points by device code and name."""
    w = Where().eq("d.code", device).eq("p.kind", kind).like(["p.name", "d.code"], q)
    return await fetch_page(conn, POINT_SELECT, w, "d.code, p.name", pg)


async def point(conn: AConn, point_id: int) -> dict[str, Any] | None:
    return await fetch_one(conn, POINT_SELECT + " WHERE p.id = %s", (point_id,))


# --------------------------------------------------------------------------------- readings

Resolution = Literal["raw", "5m", "1h", "1d"]

SERIES_TABLES: dict[Resolution, str] = {
    "raw": "readings",
    "5m": "readings_5m",
    "1h": "readings_1h",
    "1d": "readings_1d",
}

AUTO_LIMITS: tuple[tuple[timedelta, Resolution], ...] = (
    (timedelta(hours=6), "raw"),
    (timedelta(days=3), "5m"),
    (timedelta(days=93), "1h"),
)
"""The longest span each resolution serves when the caller asks for ``auto``."""

MAX_SPAN = timedelta(days=3660)


@dataclass(frozen=True)
class SeriesQuery:
    resolution: Resolution
    table: str


def choose_resolution(start: datetime, end: datetime, wanted: str = "auto") -> SeriesQuery:
    """Where a time series comes from (pure): raw readings for up to 6 hours, 5-minute
    rollups up to 3 days, hourly up to 93 days, daily beyond. An explicit ``wanted``
    resolution is used as asked. ValueError for a span that is empty or over 10 years."""
    if end <= start:
        raise ValueError("'to' must be later than 'from'")
    if end - start > MAX_SPAN:
        raise ValueError("the time range may be at most 10 years")
    if wanted != "auto":
        if wanted not in SERIES_TABLES:
            raise ValueError("resolution must be auto, raw, 5m, 1h or 1d")
        res: Resolution = wanted  # type: ignore[assignment,unused-ignore]
        return SeriesQuery(res, SERIES_TABLES[res])
    span = end - start
    for limit, r in AUTO_LIMITS:
        if span <= limit:
            return SeriesQuery(r, SERIES_TABLES[r])
    return SeriesQuery("1d", SERIES_TABLES["1d"])


_RAW_SERIES = (
    "SELECT ts, value, quality FROM readings WHERE point_id = %s AND ts >= %s "
    "AND ts < %s ORDER BY ts LIMIT %s OFFSET %s"
)
_ROLLUP_SERIES = (
    "SELECT bucket AS ts, min, max, avg, count, last FROM {table} "
    "WHERE point_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket "
    "LIMIT %s OFFSET %s"
)


async def series_json(
    conn: AConn,
    point_id: int,
    sq: SeriesQuery,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    offset: int,
) -> str | None:
    """The rows of a point's time series as a JSON array text made by PostgreSQL (a month of
    hourly rows is 720 objects: the API only wraps the text, which keeps its CPU per request
    low). Rollup rows carry min, max, avg, count and last. None when there is no such point."""
    if sq.resolution == "raw":
        sql = _RAW_SERIES
    else:
        sql = _ROLLUP_SERIES.format(table=SERIES_TABLES[sq.resolution])
    row = await fetch_one(
        conn,
        f"SELECT coalesce(json_agg(t ORDER BY t.ts), '[]')::text AS items FROM ({sql}) t",  # noqa: S608 - table and column names are this module's constants; values are parameters
        (point_id, start, end, limit, offset),
    )
    items: str = row["items"] if row else "[]"
    if (
        items == "[]"
        and await fetch_one(conn, "SELECT 1 FROM points WHERE id = %s", (point_id,)) is None
    ):
        return None
    return items


# --------------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CommandTarget:
    """The gateway and device a command goes to, and the kind of the point it writes (None:
    no point named, or the device has no such point)."""

    gateway_id: int
    device_id: int
    point_kind: str | None


async def command_target(
    conn: AConn, gateway: str, device: str, point: str | None
) -> CommandTarget | None:
    """None when the device is not behind the gateway."""
    row = await fetch_one(
        conn,
        "SELECT g.id AS gateway_id, d.id AS device_id FROM gateways g "
        "JOIN devices d ON d.gateway_id = g.id WHERE g.code = %s AND d.code = %s",
        (gateway, device),
    )
    if row is None:
        return None
    kind = None
    if point is not None:
        pk = await fetch_one(
            conn,
            "SELECT kind FROM points WHERE device_id = %s AND name = %s",
            (row["device_id"], point),
        )
        kind = pk["kind"] if pk else None
    return CommandTarget(int(row["gateway_id"]), int(row["device_id"]), kind)


async def record_command(
    conn: AConn,
    *,
    command_id: str,
    target: CommandTarget,
    op: str,
    payload: dict[str, Any],
    requested_by: int | None,
    sent_at: datetime,
) -> None:
    """A command on record (status ``sent``) before it goes out."""
    await conn.execute(
        "INSERT INTO gateway_commands (id, gateway_id, device_id, op, payload, requested_by, "
        "sent_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'sent')",
        (
            command_id,
            target.gateway_id,
            target.device_id,
            op,
            Jsonb(payload),
            requested_by,
            sent_at,
        ),
    )


async def finish_command(
    conn: AConn,
    command_id: str,
    *,
    status: str,
    reason: str | None,
    readback: Any,
    finished_at: datetime,
) -> None:
    """The gateway's answer (``ok``, ``refused``) or ``timeout``."""
    await conn.execute(
        "UPDATE gateway_commands SET status = %s, reason = %s, readback = %s, finished_at = %s "
        "WHERE id = %s",
        (status, reason, None if readback is None else Jsonb(readback), finished_at, command_id),
    )


async def list_commands(
    conn: AConn, pg: Page, gateway: str, *, status: str | None = None
) -> dict[str, Any]:
    """The commands sent to a gateway, newest first."""
    w = Where().add("g.code = %s", gateway).eq("c.status", status)
    return await fetch_page(
        conn,
        "SELECT c.id, d.code AS device, c.op, c.payload, u.username AS requested_by, c.sent_at, "
        "c.status, c.reason, c.readback, c.finished_at FROM gateway_commands c "
        "JOIN gateways g ON g.id = c.gateway_id JOIN devices d ON d.id = c.device_id "
        "LEFT JOIN api_users u ON u.id = c.requested_by",
        w,
        "c.sent_at DESC",
        pg,
    )
