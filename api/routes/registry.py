"""Registry: zones, network (GeoJSON), gateways, devices, points, device state, readings."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from psycopg import errors as pg_errors
from pydantic import BaseModel, Field

from api.deps import Conn, Paging, require, write_audit
from api.deps import State as AppStateDep
from api.errors import ConflictError, InvalidError, NotFoundError
from api.readings import choose_resolution
from api.security import READ_REGISTRY, WRITE_REGISTRY, Principal
from api.sql import Where, fetch_all, fetch_one, fetch_page, raw_json_response

router = APIRouter(prefix="/api/v1", tags=["registry"])

Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Writer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Code = Annotated[str, Path(pattern=ID_PATTERN, description="gateway or device code")]
Text = Annotated[str | None, Query(max_length=64, description="part of the code or name")]
DbId = Annotated[int, Path(ge=1, le=2**62)]
State = Literal["online", "offline", "unknown"]

# ------------------------------------------------------------------------------------ zones


@router.get("/zones", summary="Zones (DMAs, pressure zones, supply zones)")
async def list_zones(
    _: Reader,
    conn: Conn,
    pg: Paging,
    kind: Literal["dma", "pressure_zone", "supply_zone"] | None = None,
    q: Text = None,
) -> dict[str, Any]:
    w = Where().eq("kind", kind).like(["code", "name"], q)
    return await fetch_page(
        conn,
        "SELECT id, code, name, kind, parent_id, min_service_pressure_bar, "
        "max_service_pressure_bar, geometry FROM zones",
        w,
        "code",
        pg,
    )


def _core_export(db_url: str, network: str | None, zones: bool) -> dict[str, Any] | None:
    """The core's GeoJSON exporter (suvnet.network.export_geojson), when this install has it."""
    try:
        from suvnet import network as core_network
    except ImportError:
        return None
    export: Any = getattr(core_network, "export_geojson", None)
    if export is None:
        return None
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as sync_conn:
        doc: dict[str, Any] = export(sync_conn, zones=zones, network=network)
    return doc


async def network_geojson(conn: Conn, zone: str | None, layers: set[str]) -> dict[str, Any]:
    """Nodes, pipes and valves as one GeoJSON FeatureCollection (optionally one zone),
    read straight from the registry tables."""
    features: list[dict[str, Any]] = []
    zone_id: int | None = None
    if zone is not None:
        row = await fetch_one(conn, "SELECT id FROM zones WHERE code = %s", (zone,))
        if row is None:
            raise NotFoundError(f"no zone with code {zone!r}")
        zone_id = row["id"]
    if "zones" in layers:
        zones = await fetch_all(
            conn,
            "SELECT code, name, kind, geometry FROM zones "
            "WHERE geometry IS NOT NULL AND (%s::bigint IS NULL OR id = %s)",
            (zone_id, zone_id),
        )
        features.extend(
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
        )
    if "nodes" in layers:
        nodes = await fetch_all(
            conn,
            "SELECT code, kind, x, y, elevation_m FROM nodes "
            "WHERE x IS NOT NULL AND y IS NOT NULL AND (%s::bigint IS NULL OR zone_id = %s) "
            "ORDER BY id",
            (zone_id, zone_id),
        )
        features.extend(
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
        )
    link_sql = """
        SELECT l.code, {extra}, a.x AS ax, a.y AS ay, b.x AS bx, b.y AS by, {geom}
        FROM {table} l JOIN nodes a ON a.id = l.from_node_id JOIN nodes b ON b.id = l.to_node_id
        WHERE (%s::bigint IS NULL OR a.zone_id = %s OR b.zone_id = %s) ORDER BY l.id"""
    for layer, table, extra, geom in (
        ("pipes", "pipes", "l.diameter_mm, l.material, l.length_m, l.status", "l.geometry"),
        ("valves", "valves", "l.kind, l.diameter_mm, l.setting, l.status", "NULL AS geometry"),
    ):
        if layer not in layers:
            continue
        for p in await fetch_all(
            conn,
            link_sql.format(extra=extra, geom=geom, table=table),
            (zone_id, zone_id, zone_id),
        ):
            g = p.pop("geometry")
            ax, ay, bx, by = p.pop("ax"), p.pop("ay"), p.pop("bx"), p.pop("by")
            if g is None:
                if None in (ax, ay, bx, by):
                    continue
                g = {"type": "LineString", "coordinates": [[ax, ay], [bx, by]]}
            features.append(
                {"type": "Feature", "geometry": g, "properties": {"layer": layer[:-1], **p}}
            )
    return {"type": "FeatureCollection", "features": features}


@router.get("/network.geojson", summary="The network as GeoJSON (zones, nodes, pipes, valves)")
async def network(
    *,
    _: Reader,
    conn: Conn,
    st: AppStateDep,
    zone: Annotated[str | None, Query(max_length=64, description="zone code")] = None,
    layers: Annotated[
        list[Literal["zones", "nodes", "pipes", "valves"]] | None,
        Query(description="layers to include (default all)"),
    ] = None,
) -> dict[str, Any]:
    """With no filter the core's exporter is used (every network with its coordinate system);
    with ``zone`` or ``layers`` the features are selected from the registry tables."""
    if zone is None and not layers:
        doc = await asyncio.to_thread(_core_export, st.pool_url, None, True)
        if doc is not None:
            return doc
    return await network_geojson(
        conn, zone, set(layers) if layers else {"zones", "nodes", "pipes", "valves"}
    )


# --------------------------------------------------------------------------------- gateways

GATEWAY_SELECT = """
SELECT g.id, g.code, g.name, z.code AS zone, g.allowed, g.x, g.y, g.description, g.created_at,
       coalesce(s.state, 'unknown') AS state, s.since, s.last_seen, s.boot
FROM gateways g LEFT JOIN zones z ON z.id = g.zone_id
LEFT JOIN gateway_state s ON s.gateway_id = g.id"""


class GatewayIn(BaseModel):
    code: str = Field(pattern=ID_PATTERN)
    name: str = Field("", max_length=200)
    zone: str | None = Field(None, max_length=64)
    allowed: bool = True
    x: float | None = Field(None, ge=-1e9, le=1e9)
    y: float | None = Field(None, ge=-1e9, le=1e9)
    description: str = Field("", max_length=2000)


class GatewayPatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    zone: str | None = Field(None, max_length=64)
    allowed: bool | None = None
    description: str | None = Field(None, max_length=2000)


async def _zone_id(conn: Conn, code: str | None) -> int | None:
    if code is None:
        return None
    row = await fetch_one(conn, "SELECT id FROM zones WHERE code = %s", (code,))
    if row is None:
        raise InvalidError(f"no zone with code {code!r}")
    return int(row["id"])


@router.get("/gateways", summary="Gateways with their online state")
async def list_gateways(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    zone: Annotated[str | None, Query(max_length=64)] = None,
    state: State | None = None,
    allowed: bool | None = None,
    q: Text = None,
) -> dict[str, Any]:
    w = (
        Where()
        .eq("z.code", zone)
        .eq("coalesce(s.state, 'unknown')", state)
        .eq("g.allowed", allowed)
        .like(["g.code", "g.name"], q)
    )
    return await fetch_page(conn, GATEWAY_SELECT, w, "g.code", pg)


async def _gateway(conn: Conn, code: str) -> dict[str, Any]:
    row = await fetch_one(conn, GATEWAY_SELECT + " WHERE g.code = %s", (code,))
    if row is None:
        raise NotFoundError(f"no gateway with code {code!r}")
    return row


@router.get("/gateways/{code}", summary="One gateway")
async def get_gateway(_: Reader, conn: Conn, code: Code) -> dict[str, Any]:
    return await _gateway(conn, code)


@router.post("/gateways", status_code=201, summary="Register a gateway")
async def add_gateway(request: Request, body: GatewayIn, who: Writer, conn: Conn) -> dict[str, Any]:
    zid = await _zone_id(conn, body.zone)
    try:
        await conn.execute(
            "INSERT INTO gateways (code, name, zone_id, allowed, x, y, description) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (body.code, body.name, zid, body.allowed, body.x, body.y, body.description),
        )
    except pg_errors.UniqueViolation as exc:
        raise ConflictError(f"a gateway with code {body.code!r} already exists") from exc
    after = await _gateway(conn, body.code)
    await write_audit(
        conn,
        request,
        who,
        action="create",
        entity="gateway",
        entity_id=body.code,
        before=None,
        after=after,
    )
    return after


@router.patch("/gateways/{code}", summary="Change a gateway (name, zone, allowed)")
async def change_gateway(
    request: Request, code: Code, body: GatewayPatch, who: Writer, conn: Conn
) -> dict[str, Any]:
    before = await _gateway(conn, code)
    fields = body.model_dump(exclude_unset=True)
    if "zone" in fields:
        fields["zone_id"] = await _zone_id(conn, fields.pop("zone"))
    fields = {k: v for k, v in fields.items() if v is not None or k == "zone_id"}
    if fields:
        sets = ", ".join(f"{k} = %s" for k in fields)
        await conn.execute(f"UPDATE gateways SET {sets} WHERE code = %s", [*fields.values(), code])
    after = await _gateway(conn, code)
    await write_audit(
        conn,
        request,
        who,
        action="update",
        entity="gateway",
        entity_id=code,
        before=before,
        after=after,
    )
    return after


# ---------------------------------------------------------------------------------- devices

DEVICE_SELECT = """
SELECT d.id, d.code, g.code AS gateway, d.kind, d.profile, d.unit_id, z.code AS zone,
       d.x, d.y, d.serial_no, d.enabled, d.attrs,
       coalesce(s.state, 'unknown') AS state, s.since, s.last_seen, s.last_error
FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id
LEFT JOIN zones z ON z.id = d.zone_id
LEFT JOIN device_state s ON s.device_id = d.id"""

DeviceKind = Literal["pressure_sensor", "prv_controller", "district_meter", "customer_meter"]


class DeviceIn(BaseModel):
    code: str = Field(pattern=ID_PATTERN)
    gateway: str | None = Field(None, pattern=ID_PATTERN)
    kind: DeviceKind
    profile: str = Field(min_length=1, max_length=100)
    unit_id: int | None = Field(None, ge=0, le=247)
    zone: str | None = Field(None, max_length=64)
    serial_no: str | None = Field(None, max_length=100)
    enabled: bool = True


class DevicePatch(BaseModel):
    gateway: str | None = Field(None, pattern=ID_PATTERN)
    zone: str | None = Field(None, max_length=64)
    unit_id: int | None = Field(None, ge=0, le=247)
    serial_no: str | None = Field(None, max_length=100)
    enabled: bool | None = None


async def _device(conn: Conn, code: str) -> dict[str, Any]:
    row = await fetch_one(conn, DEVICE_SELECT + " WHERE d.code = %s", (code,))
    if row is None:
        raise NotFoundError(f"no device with code {code!r}")
    return row


async def _gateway_id(conn: Conn, code: str | None) -> int | None:
    if code is None:
        return None
    row = await fetch_one(conn, "SELECT id FROM gateways WHERE code = %s", (code,))
    if row is None:
        raise InvalidError(f"no gateway with code {code!r}")
    return int(row["id"])


@router.get("/devices", summary="Devices with their state")
async def list_devices(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
    zone: Annotated[str | None, Query(max_length=64)] = None,
    kind: DeviceKind | None = None,
    state: State | None = None,
    enabled: bool | None = None,
    q: Text = None,
) -> dict[str, Any]:
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


@router.get("/devices/{code}", summary="One device")
async def get_device(_: Reader, conn: Conn, code: Code) -> dict[str, Any]:
    return await _device(conn, code)


@router.post("/devices", status_code=201, summary="Register a device")
async def add_device(request: Request, body: DeviceIn, who: Writer, conn: Conn) -> dict[str, Any]:
    gid = await _gateway_id(conn, body.gateway)
    zid = await _zone_id(conn, body.zone)
    try:
        await conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile, unit_id, zone_id, serial_no, "
            "enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                body.code,
                gid,
                body.kind,
                body.profile,
                body.unit_id,
                zid,
                body.serial_no,
                body.enabled,
            ),
        )
    except pg_errors.UniqueViolation as exc:
        raise ConflictError(f"a device with code {body.code!r} already exists") from exc
    after = await _device(conn, body.code)
    await write_audit(
        conn,
        request,
        who,
        action="create",
        entity="device",
        entity_id=body.code,
        before=None,
        after=after,
    )
    return after


@router.patch("/devices/{code}", summary="Change a device")
async def change_device(
    *, request: Request, code: Code, body: DevicePatch, who: Writer, conn: Conn
) -> dict[str, Any]:
    before = await _device(conn, code)
    fields = body.model_dump(exclude_unset=True)
    if "gateway" in fields:
        fields["gateway_id"] = await _gateway_id(conn, fields.pop("gateway"))
    if "zone" in fields:
        fields["zone_id"] = await _zone_id(conn, fields.pop("zone"))
    if fields.get("enabled", True) is None:
        fields.pop("enabled")
    if fields:
        sets = ", ".join(f"{k} = %s" for k in fields)
        await conn.execute(f"UPDATE devices SET {sets} WHERE code = %s", [*fields.values(), code])
    after = await _device(conn, code)
    await write_audit(
        conn,
        request,
        who,
        action="update",
        entity="device",
        entity_id=code,
        before=before,
        after=after,
    )
    return after


@router.get("/devices/{code}/state-history", summary="State changes of a device")
async def device_state_history(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    code: Code,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    dev = await _device(conn, code)
    w = Where().add("device_id = %s", dev["id"])
    if since is not None:
        w.add("ts >= %s", since)
    if until is not None:
        w.add("ts < %s", until)
    return await fetch_page(
        conn, "SELECT ts, state, reason FROM device_state_history", w, "ts DESC", pg
    )


@router.get("/device-state", summary="Current state of every device (filter offline ones)")
async def device_states(
    _: Reader,
    conn: Conn,
    pg: Paging,
    state: State | None = None,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
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


@router.get("/points", summary="Measured points")
async def list_points(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    device: Annotated[str | None, Query(max_length=64)] = None,
    kind: Literal["analog", "counter", "status", "setpoint", "bitfield"] | None = None,
    q: Text = None,
) -> dict[str, Any]:
    w = Where().eq("d.code", device).eq("p.kind", kind).like(["p.name", "d.code"], q)
    return await fetch_page(conn, POINT_SELECT, w, "d.code, p.name", pg)


@router.get("/points/{point_id}", summary="One point")
async def get_point(_: Reader, conn: Conn, point_id: DbId) -> dict[str, Any]:
    row = await fetch_one(conn, POINT_SELECT + " WHERE p.id = %s", (point_id,))
    if row is None:
        raise NotFoundError(f"no point with id {point_id}")
    return row


@router.get("/points/{point_id}/readings", summary="A time series (raw or rollup)")
async def point_readings(
    *,
    _: Reader,
    conn: Conn,
    point_id: DbId,
    start: Annotated[datetime, Query(alias="from", description="start (ISO 8601 with zone)")],
    end: Annotated[datetime, Query(alias="to", description="end, exclusive")],
    resolution: Literal["auto", "raw", "5m", "1h", "1d"] = "auto",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """``auto`` picks raw readings for up to 6 hours, 5-minute rollups up to 3 days, hourly
    up to 93 days and daily beyond. Rollup rows carry min, max, avg, count and last."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidError("'from' and 'to' need a time zone, e.g. 2026-01-31T00:00:00Z")
    try:
        sq = choose_resolution(start, end, resolution)
    except ValueError as exc:
        raise InvalidError(str(exc)) from exc
    if sq.resolution == "raw":
        sql = (
            "SELECT ts, value, quality FROM readings WHERE point_id = %s AND ts >= %s "
            "AND ts < %s ORDER BY ts LIMIT %s OFFSET %s"
        )
    else:
        sql = (
            f"SELECT bucket AS ts, min, max, avg, count, last FROM {sq.table} "
            "WHERE point_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket "
            "LIMIT %s OFFSET %s"
        )
    # PostgreSQL builds the JSON array of the rows (a month of hourly rows is 720 objects);
    # the app only wraps it, which keeps the API process's CPU per request low
    row = await fetch_one(
        conn,
        f"SELECT coalesce(json_agg(t ORDER BY t.ts), '[]')::text AS items FROM ({sql}) t",
        (point_id, start, end, limit, offset),
    )
    items = row["items"] if row else "[]"
    if (
        items == "[]"
        and await fetch_one(conn, "SELECT 1 FROM points WHERE id = %s", (point_id,)) is None
    ):
        raise NotFoundError(f"no point with id {point_id}")
    head = {
        "point_id": point_id,
        "resolution": sq.resolution,
        "from": start,
        "to": end,
        "limit": limit,
        "offset": offset,
    }
    return raw_json_response(head, "items", items)
