"""Registry: zones, network (GeoJSON), gateways, devices, points, device state, readings.
The queries are the registry's (:mod:`suvnet.registry_queries`); this module parses,
checks the role, calls them and shapes the answer."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.audit import write_audit
from api.deps import Conn, Paging, require
from api.errors import ConflictError, InvalidError, NotFoundError
from api.responses import raw_json_response
from api.security import READ_REGISTRY, WRITE_REGISTRY, Principal
from suvnet import registry_queries as rq

router = APIRouter(prefix="/api/v1", tags=["registry"])

Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Writer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Code = Annotated[str, Path(pattern=ID_PATTERN, description="gateway or device code")]
Text = Annotated[str | None, Query(max_length=64, description="part of the code or name")]
DbId = Annotated[int, Path(ge=1, le=2**62)]
State = Literal["online", "offline", "unknown"]
Entity = Literal["gateway", "device"]


async def _create(
    request: Request,
    who: Principal,
    conn: Conn,
    *,
    entity: Entity,
    code: str,
    write: Awaitable[dict[str, Any]],
) -> dict[str, Any]:
    """Await ``write`` (an ``rq.add_*`` call) and audit the new row."""
    try:
        after = await write
    except rq.MissingReferenceError as exc:
        raise InvalidError(str(exc)) from exc
    except rq.DuplicateCodeError as exc:
        raise ConflictError(str(exc)) from exc
    await write_audit(
        conn, request, who, action="create", entity=entity, entity_id=code, after=after
    )
    return after


async def _change(
    request: Request,
    who: Principal,
    conn: Conn,
    *,
    entity: Entity,
    code: str,
    write: Awaitable[tuple[dict[str, Any], dict[str, Any]] | None],
) -> dict[str, Any]:
    """Await ``write`` (an ``rq.change_*`` call) and audit the row before and after."""
    try:
        changed = await write
    except rq.MissingReferenceError as exc:
        raise InvalidError(str(exc)) from exc
    if changed is None:
        raise NotFoundError(f"no {entity} with code {code!r}")
    before, after = changed
    await write_audit(
        conn,
        request,
        who,
        action="update",
        entity=entity,
        entity_id=code,
        before=before,
        after=after,
    )
    return after


# ------------------------------------------------------------------------------------ zones


@router.get("/zones", summary="Zones (DMAs, pressure zones, supply zones)")
async def list_zones(
    _: Reader,
    conn: Conn,
    pg: Paging,
    kind: Literal["dma", "pressure_zone", "supply_zone"] | None = None,
    q: Text = None,
) -> dict[str, Any]:
    return await rq.list_zones(conn, pg, kind=kind, q=q)


@router.get(
    "/network.geojson", summary="The network as GeoJSON (zones, nodes, pipes, valves, pumps)"
)
async def network(
    *,
    _: Reader,
    conn: Conn,
    zone: Annotated[str | None, Query(max_length=64, description="zone code")] = None,
    layers: Annotated[
        list[rq.MapLayer] | None, Query(description="layers to include (default all)")
    ] = None,
) -> dict[str, Any]:
    """The map layers of the registry, of the whole network or one zone. For the complete
    network with its coordinate system (to import elsewhere) use `suvnet network export`."""
    doc = await rq.network_geojson(conn, zone, layers or rq.MAP_LAYERS)
    if doc is None:
        raise NotFoundError(f"no zone with code {zone!r}")
    return doc


# --------------------------------------------------------------------------------- gateways


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
    return await rq.list_gateways(conn, pg, zone=zone, state=state, allowed=allowed, q=q)


@router.get("/gateways/{code}", summary="One gateway")
async def get_gateway(_: Reader, conn: Conn, code: Code) -> dict[str, Any]:
    row = await rq.gateway(conn, code)
    if row is None:
        raise NotFoundError(f"no gateway with code {code!r}")
    return row


@router.post("/gateways", status_code=201, summary="Register a gateway")
async def add_gateway(request: Request, body: GatewayIn, who: Writer, conn: Conn) -> dict[str, Any]:
    write = rq.add_gateway(conn, **body.model_dump())
    return await _create(request, who, conn, entity="gateway", code=body.code, write=write)


@router.patch("/gateways/{code}", summary="Change a gateway (name, zone, allowed)")
async def change_gateway(
    request: Request, code: Code, body: GatewayPatch, who: Writer, conn: Conn
) -> dict[str, Any]:
    write = rq.change_gateway(conn, code, body.model_dump(exclude_unset=True))
    return await _change(request, who, conn, entity="gateway", code=code, write=write)


# ---------------------------------------------------------------------------------- devices

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
    row = await rq.device(conn, code)
    if row is None:
        raise NotFoundError(f"no device with code {code!r}")
    return row


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
    return await rq.list_devices(
        conn, pg, gateway=gateway, zone=zone, kind=kind, state=state, enabled=enabled, q=q
    )


@router.get("/devices/{code}", summary="One device")
async def get_device(_: Reader, conn: Conn, code: Code) -> dict[str, Any]:
    return await _device(conn, code)


@router.post("/devices", status_code=201, summary="Register a device")
async def add_device(request: Request, body: DeviceIn, who: Writer, conn: Conn) -> dict[str, Any]:
    write = rq.add_device(conn, **body.model_dump())
    return await _create(request, who, conn, entity="device", code=body.code, write=write)


@router.patch("/devices/{code}", summary="Change a device")
async def change_device(
    *, request: Request, code: Code, body: DevicePatch, who: Writer, conn: Conn
) -> dict[str, Any]:
    write = rq.change_device(conn, code, body.model_dump(exclude_unset=True))
    return await _change(request, who, conn, entity="device", code=code, write=write)


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
    page = await rq.device_state_history(conn, pg, code, since=since, until=until)
    if page is None:
        raise NotFoundError(f"no device with code {code!r}")
    return page


@router.get("/device-state", summary="Current state of every device (filter offline ones)")
async def device_states(
    _: Reader,
    conn: Conn,
    pg: Paging,
    state: State | None = None,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    return await rq.device_states(conn, pg, state=state, gateway=gateway)


# ----------------------------------------------------------------------------------- points


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
    return await rq.list_points(conn, pg, device=device, kind=kind, q=q)


@router.get("/points/{point_id}", summary="One point")
async def get_point(_: Reader, conn: Conn, point_id: DbId) -> dict[str, Any]:
    row = await rq.point(conn, point_id)
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
        sq = rq.choose_resolution(start, end, resolution)
    except ValueError as exc:
        raise InvalidError(str(exc)) from exc
    items = await rq.series_json(conn, point_id, sq, start, end, limit=limit, offset=offset)
    if items is None:
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
