"""Typed access to the registry tables: zones, the network, gateways, devices, points, addresses.

Every entity is a frozen dataclass that names its references by *code* (a node names its zone
``"DMA-1"``, not a database id); the functions here resolve codes to ids. Every ``upsert_*``
function is idempotent and says what it did (``created``, ``updated`` or ``unchanged``), so
callers (the site file, network import) can report changes and apply the same input twice
without touching the database the second time.

The functions never commit: the caller owns the transaction.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from suvnet.errors import SuvnetError
from suvnet.profiles import Profile, published_points
from suvnet.protocol import points_hash

Change = Literal["created", "updated", "unchanged"]
Coord = tuple[float, float]
Conn = psycopg.Connection[Any]

ZoneKind = Literal["dma", "pressure_zone", "supply_zone"]
NodeKind = Literal["junction", "reservoir", "tank"]
PipeStatus = Literal["open", "closed", "cv"]
ValveKind = Literal["PRV", "PSV", "PBV", "FCV", "TCV", "GPV", "isolation"]
ValveStatus = Literal["active", "open", "closed"]
PumpKind = Literal["head", "power"]
PumpStatus = Literal["open", "closed"]
DeviceKind = Literal["pressure_sensor", "prv_controller", "district_meter", "customer_meter"]
PointKind = Literal["analog", "counter", "status", "setpoint", "bitfield"]


class _Coded(Protocol):
    @property
    def code(self) -> str: ...


_E = TypeVar("_E", bound=_Coded)


class RegistryError(SuvnetError):
    """A registry operation failed (for example an unknown reference)."""


class UnknownReferenceError(RegistryError):
    """A code names a zone, node, pipe, gateway, device or network that does not exist."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"unknown {kind} '{code}'")
        self.kind = kind
        self.code = code


# ---------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class Upserted:
    """Result of an upsert: the row id and what happened to it."""

    id: int
    change: Change


@dataclass(frozen=True)
class Zone:
    code: str
    name: str
    kind: ZoneKind = "dma"
    parent: str | None = None
    min_service_pressure_bar: float | None = None
    max_service_pressure_bar: float | None = None
    geometry: Mapping[str, Any] | None = None  # GeoJSON Polygon or MultiPolygon


@dataclass(frozen=True)
class NetworkInfo:
    code: str
    name: str = ""
    crs: str = "local"
    source: str = ""
    headloss: Literal["H-W", "D-W", "C-M"] | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    code: str
    kind: NodeKind
    x: float | None = None
    y: float | None = None
    elevation_m: float | None = None
    base_demand_lps: float | None = None
    zone: str | None = None
    network: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pipe:
    code: str
    from_node: str
    to_node: str
    diameter_mm: float | None = None
    length_m: float | None = None
    roughness: float | None = None
    status: PipeStatus = "open"
    material: str | None = None
    install_year: int | None = None
    geometry: tuple[Coord, ...] | None = None  # the whole line, end points included
    network: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Valve:
    code: str
    kind: ValveKind
    from_node: str
    to_node: str
    diameter_mm: float | None = None
    setting: float | None = None  # PRV/PSV/PBV: metres of head; FCV: L/s; TCV: loss coefficient
    status: ValveStatus = "active"
    zone: str | None = None
    geometry: tuple[Coord, ...] | None = None
    network: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pump:
    code: str
    from_node: str
    to_node: str
    kind: PumpKind = "head"
    power_kw: float | None = None
    head_curve: str | None = None
    status: PumpStatus = "open"
    zone: str | None = None
    geometry: tuple[Coord, ...] | None = None
    network: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gateway:
    code: str
    name: str = ""
    zone: str | None = None
    allowed: bool = True
    x: float | None = None
    y: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Device:
    code: str
    kind: DeviceKind
    profile: str
    gateway: str | None = None
    unit_id: int | None = None
    node: str | None = None
    pipe: str | None = None
    zone: str | None = None
    flow_sign: Literal[-1, 1] = 1
    x: float | None = None
    y: float | None = None
    serial_no: str | None = None
    enabled: bool = True
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    device: str
    name: str
    unit: str = ""
    kind: PointKind = "analog"
    poll_period_s: float = 60.0


@dataclass(frozen=True)
class Region:
    name_uz: str
    code: str | None = None
    name_uz_cyrl: str | None = None
    name_ru: str | None = None


@dataclass(frozen=True)
class District:
    region_id: int
    name_uz: str
    code: str | None = None
    name_uz_cyrl: str | None = None
    name_ru: str | None = None


@dataclass(frozen=True)
class Mahalla:
    district_id: int
    name_uz: str
    code: str | None = None
    name_uz_cyrl: str | None = None
    name_ru: str | None = None


@dataclass(frozen=True)
class Street:
    mahalla_id: int
    name_uz: str
    kind: str = "street"
    code: str | None = None
    name_uz_cyrl: str | None = None
    name_ru: str | None = None


@dataclass(frozen=True)
class House:
    street_id: int
    number: str
    cadastral_no: str | None = None
    lon: float | None = None
    lat: float | None = None


@dataclass(frozen=True)
class Apartment:
    house_id: int
    number: str
    cadastral_no: str | None = None


@dataclass(frozen=True)
class Address:
    """A full address, top to bottom; ``house`` and ``apartment`` are optional."""

    region: str
    district: str
    mahalla: str
    street: str
    house: str | None = None
    apartment: str | None = None


@dataclass(frozen=True)
class AddressIds:
    region_id: int
    district_id: int
    mahalla_id: int
    street_id: int
    house_id: int | None = None
    apartment_id: int | None = None


# ---------------------------------------------------------------------------- helpers


def _line(coords: Sequence[Coord] | None) -> Jsonb | None:
    if coords is None:
        return None
    return Jsonb({"type": "LineString", "coordinates": [[x, y] for x, y in coords]})


def _coords(geometry: Any) -> tuple[Coord, ...] | None:
    if not geometry:
        return None
    return tuple((float(c[0]), float(c[1])) for c in geometry["coordinates"])


def _finite(value: float | None, what: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise RegistryError(f"{what} must be a finite number, got {value}")
    return value


@functools.lru_cache(maxsize=128)
def _upsert_sql(table: str, key: tuple[str, ...], values: tuple[str, ...]) -> sql.Composed:
    ident = sql.Identifier(table)
    action: sql.Composable
    if values:
        action = sql.SQL(
            "DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
        ).format(
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in values
            ),
            old=sql.SQL(", ").join(
                sql.SQL("{t}.{c}").format(t=ident, c=sql.Identifier(c)) for c in values
            ),
            new=sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in values
            ),
        )
    else:
        action = sql.SQL("DO NOTHING")
    where = sql.SQL(" AND ").join(
        sql.SQL("{c} IS NOT DISTINCT FROM %s").format(c=sql.Identifier(c)) for c in key
    )
    cols = (*key, *values)
    return sql.SQL(
        "WITH ins AS (INSERT INTO {t} ({cols}) VALUES ({ph}) ON CONFLICT ({keys}) {action} "
        "RETURNING id, (xmax = 0) AS inserted) "
        "SELECT id, inserted FROM ins "
        "UNION ALL SELECT id, NULL FROM {t} WHERE {where} AND NOT EXISTS (SELECT 1 FROM ins)"
    ).format(
        t=ident,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        ph=sql.SQL(", ").join(sql.Placeholder() for _ in cols),
        keys=sql.SQL(", ").join(sql.Identifier(c) for c in key),
        action=action,
        where=where,
    )


def _upserted(table: str, row: Sequence[Any] | None) -> Upserted:
    if row is None:  # pragma: no cover - the row exists or was inserted
        raise RegistryError(f"upsert into {table} returned nothing")
    change: Change = "unchanged" if row[1] is None else ("created" if row[1] else "updated")
    return Upserted(int(row[0]), change)


def upsert_row(
    conn: Conn, table: str, key: Mapping[str, Any], values: Mapping[str, Any]
) -> Upserted:
    """Insert a row or update it when it differs; ``key`` names a unique constraint's columns.

    One round trip. An unchanged row is not written at all (no dead tuple, no trigger).
    """
    query = _upsert_sql(table, tuple(key), tuple(values))
    row = conn.execute(query, [*key.values(), *values.values(), *key.values()]).fetchone()
    return _upserted(table, row)


def upsert_rows(
    conn: Conn,
    table: str,
    key: Sequence[str],
    values: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> list[Upserted]:
    """:func:`upsert_row` for many rows (key values first, then the other values), pipelined."""
    if not rows:
        return []
    query = _upsert_sql(table, tuple(key), tuple(values))
    nk = len(key)
    params = [[*row, *row[:nk]] for row in rows]
    with conn.cursor() as cur:
        cur.executemany(query, params, returning=True)
        return [_upserted(table, cur.fetchone()) for _ in cur.results()]


class Resolver:
    """Resolves codes to ids, caching what it has seen (one instance per transaction)."""

    _TABLES: ClassVar[dict[str, str]] = {
        "zone": "zones",
        "node": "nodes",
        "pipe": "pipes",
        "gateway": "gateways",
        "device": "devices",
        "network": "networks",
    }

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._cache: dict[str, dict[str, int]] = {k: {} for k in self._TABLES}

    def remember(self, kind: str, code: str, id_: int) -> None:
        self._cache[kind][code] = id_

    def preload(self, kind: str, codes: Iterable[str] | None = None) -> None:
        """Fetch the ids of many codes (all rows when ``codes`` is None) in one query."""
        table = sql.Identifier(self._TABLES[kind])
        if codes is None:
            rows = self.conn.execute(sql.SQL("SELECT code, id FROM {}").format(table)).fetchall()
        else:
            rows = self.conn.execute(
                sql.SQL("SELECT code, id FROM {} WHERE code = ANY(%s)").format(table),
                (list(codes),),
            ).fetchall()
        self._cache[kind].update({str(c): int(i) for c, i in rows})

    def id(self, kind: str, code: str | None) -> int | None:
        """The id of ``code`` (None for None); raises UnknownReferenceError when missing."""
        if code is None:
            return None
        cache = self._cache[kind]
        if code not in cache:
            row = self.conn.execute(
                sql.SQL("SELECT id FROM {} WHERE code = %s").format(
                    sql.Identifier(self._TABLES[kind])
                ),
                (code,),
            ).fetchone()
            if row is None:
                raise UnknownReferenceError(kind, code)
            cache[code] = int(row[0])
        return cache[code]

    def need(self, kind: str, code: str) -> int:
        found = self.id(kind, code)
        assert found is not None
        return found


# ---------------------------------------------------------------------------- network upserts


def upsert_zone(conn: Conn, zone: Zone, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    res = upsert_row(
        conn,
        "zones",
        {"code": zone.code},
        {
            "name": zone.name,
            "kind": zone.kind,
            "parent_id": r.id("zone", zone.parent),
            "min_service_pressure_bar": zone.min_service_pressure_bar,
            "max_service_pressure_bar": zone.max_service_pressure_bar,
            "geometry": Jsonb(dict(zone.geometry)) if zone.geometry is not None else None,
        },
    )
    r.remember("zone", zone.code, res.id)
    return res


def upsert_network(conn: Conn, net: NetworkInfo, resolver: Resolver | None = None) -> Upserted:
    res = upsert_row(
        conn,
        "networks",
        {"code": net.code},
        {
            "name": net.name,
            "crs": net.crs,
            "source": net.source,
            "headloss": net.headloss,
            "attrs": Jsonb(dict(net.attrs)),
        },
    )
    if resolver is not None:
        resolver.remember("network", net.code, res.id)
    return res


def _node_values(node: Node, r: Resolver) -> dict[str, Any]:
    return {
        "kind": node.kind,
        "zone_id": r.id("zone", node.zone),
        "network_id": r.id("network", node.network),
        "x": _finite(node.x, f"node {node.code} x"),
        "y": _finite(node.y, f"node {node.code} y"),
        "elevation_m": node.elevation_m,
        "base_demand_lps": node.base_demand_lps,
        "attrs": Jsonb(dict(node.attrs)),
    }


def _pipe_values(pipe: Pipe, r: Resolver) -> dict[str, Any]:
    return {
        "from_node_id": r.need("node", pipe.from_node),
        "to_node_id": r.need("node", pipe.to_node),
        "network_id": r.id("network", pipe.network),
        "diameter_mm": pipe.diameter_mm,
        "material": pipe.material,
        "length_m": pipe.length_m,
        "install_year": pipe.install_year,
        "roughness": pipe.roughness,
        "status": pipe.status,
        "geometry": _line(pipe.geometry),
        "attrs": Jsonb(dict(pipe.attrs)),
    }


def _valve_values(valve: Valve, r: Resolver) -> dict[str, Any]:
    return {
        "kind": valve.kind,
        "from_node_id": r.need("node", valve.from_node),
        "to_node_id": r.need("node", valve.to_node),
        "network_id": r.id("network", valve.network),
        "diameter_mm": valve.diameter_mm,
        "setting": valve.setting,
        "status": valve.status,
        "zone_id": r.id("zone", valve.zone),
        "geometry": _line(valve.geometry),
        "attrs": Jsonb(dict(valve.attrs)),
    }


def _pump_values(pump: Pump, r: Resolver) -> dict[str, Any]:
    return {
        "from_node_id": r.need("node", pump.from_node),
        "to_node_id": r.need("node", pump.to_node),
        "network_id": r.id("network", pump.network),
        "kind": pump.kind,
        "power_kw": pump.power_kw,
        "head_curve": pump.head_curve,
        "status": pump.status,
        "zone_id": r.id("zone", pump.zone),
        "geometry": _line(pump.geometry),
        "attrs": Jsonb(dict(pump.attrs)),
    }


def upsert_node(conn: Conn, node: Node, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    res = upsert_row(conn, "nodes", {"code": node.code}, _node_values(node, r))
    r.remember("node", node.code, res.id)
    return res


def upsert_pipe(conn: Conn, pipe: Pipe, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    res = upsert_row(conn, "pipes", {"code": pipe.code}, _pipe_values(pipe, r))
    r.remember("pipe", pipe.code, res.id)
    return res


def upsert_valve(conn: Conn, valve: Valve, resolver: Resolver | None = None) -> Upserted:
    return upsert_row(
        conn, "valves", {"code": valve.code}, _valve_values(valve, resolver or Resolver(conn))
    )


def upsert_pump(conn: Conn, pump: Pump, resolver: Resolver | None = None) -> Upserted:
    return upsert_row(
        conn, "pumps", {"code": pump.code}, _pump_values(pump, resolver or Resolver(conn))
    )


def _many(
    conn: Conn,
    table: str,
    items: Sequence[_E],
    values: Callable[[_E, Resolver], dict[str, Any]],
    r: Resolver,
    *,
    remember: str | None,
) -> list[Upserted]:
    if not items:
        return []
    rows = []
    cols: tuple[str, ...] = ()
    for item in items:
        v = values(item, r)
        cols = tuple(v)
        rows.append([item.code, *v.values()])
    out = upsert_rows(conn, table, ("code",), cols, rows)
    if remember is not None:
        for item, res in zip(items, out, strict=True):
            r.remember(remember, item.code, res.id)
    return out


def upsert_nodes(
    conn: Conn, nodes: Sequence[Node], resolver: Resolver | None = None
) -> list[Upserted]:
    """:func:`upsert_node` for many nodes in one pipelined batch."""
    return _many(conn, "nodes", nodes, _node_values, resolver or Resolver(conn), remember="node")


def upsert_pipes(
    conn: Conn, pipes: Sequence[Pipe], resolver: Resolver | None = None
) -> list[Upserted]:
    """:func:`upsert_pipe` for many pipes in one pipelined batch."""
    return _many(conn, "pipes", pipes, _pipe_values, resolver or Resolver(conn), remember="pipe")


def upsert_valves(
    conn: Conn, valves: Sequence[Valve], resolver: Resolver | None = None
) -> list[Upserted]:
    return _many(conn, "valves", valves, _valve_values, resolver or Resolver(conn), remember=None)


def upsert_pumps(
    conn: Conn, pumps: Sequence[Pump], resolver: Resolver | None = None
) -> list[Upserted]:
    return _many(conn, "pumps", pumps, _pump_values, resolver or Resolver(conn), remember=None)


def upsert_gateway(conn: Conn, gw: Gateway, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    res = upsert_row(
        conn,
        "gateways",
        {"code": gw.code},
        {
            "name": gw.name,
            "zone_id": r.id("zone", gw.zone),
            "allowed": gw.allowed,
            "x": gw.x,
            "y": gw.y,
            "description": gw.description,
        },
    )
    r.remember("gateway", gw.code, res.id)
    return res


def upsert_device(conn: Conn, dev: Device, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    res = upsert_row(
        conn,
        "devices",
        {"code": dev.code},
        {
            "gateway_id": r.id("gateway", dev.gateway),
            "kind": dev.kind,
            "profile": dev.profile,
            "unit_id": dev.unit_id,
            "node_id": r.id("node", dev.node),
            "pipe_id": r.id("pipe", dev.pipe),
            "zone_id": r.id("zone", dev.zone),
            "flow_sign": dev.flow_sign,
            "x": dev.x,
            "y": dev.y,
            "serial_no": dev.serial_no,
            "enabled": dev.enabled,
            "attrs": Jsonb(dict(dev.attrs)),
        },
    )
    r.remember("device", dev.code, res.id)
    return res


def upsert_point(conn: Conn, point: Point, resolver: Resolver | None = None) -> Upserted:
    r = resolver or Resolver(conn)
    return upsert_row(
        conn,
        "points",
        {"device_id": r.need("device", point.device), "name": point.name},
        {"unit": point.unit, "kind": point.kind, "poll_period_s": point.poll_period_s},
    )


def profile_points(device: str, profile: Profile) -> list[Point]:
    """The registry points of a device of ``profile``: one per point id its gateway publishes,
    bit sub-points included (``alarm_flags``, ``alarm_flags.leak``, ...), with the profile's
    unit, kind and poll period. Pure."""
    return [Point(device, p.name, p.unit, p.kind, p.poll_s) for p in published_points(profile)]


# ---------------------------------------------------------------------------- gateway configs


@dataclass(frozen=True)
class RegisteredDevice:
    """What the registry holds about one device, for comparing with a gateway's config."""

    gateway: str | None
    enabled: bool
    points: frozenset[str]


@dataclass(frozen=True)
class ConfigCheck:
    """Where a gateway's announced configuration and the registry disagree (all sorted).

    The first three lose data: ingest dead-letters those readings (``unknown_device``,
    ``device_not_on_gateway``, ``unknown_point``). The last two mean registered devices or
    points that will never get a reading from this gateway (they look offline, and their
    alarm rules can never fire).
    """

    gateway: str
    points_hash: str = ""
    unknown_devices: tuple[str, ...] = ()
    """devices the gateway polls that are not registered"""
    wrong_gateway: tuple[str, ...] = ()
    """devices the gateway polls that are registered on another gateway"""
    unknown_points: tuple[str, ...] = ()
    """``device/point`` the gateway publishes that are not registered"""
    silent_devices: tuple[str, ...] = ()
    """enabled devices registered on this gateway that it does not poll"""
    silent_points: tuple[str, ...] = ()
    """``device/point`` registered for a polled device that the gateway does not publish"""

    @property
    def ok(self) -> bool:
        return not (
            self.unknown_devices
            or self.wrong_gateway
            or self.unknown_points
            or self.silent_devices
            or self.silent_points
        )

    def problems(self, limit: int = 8) -> list[str]:
        """One sentence per kind of disagreement, naming up to ``limit`` devices or points."""

        def names(items: Sequence[str]) -> str:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        out: list[str] = []
        if self.unknown_devices:
            out.append(
                f"{len(self.unknown_devices)} polled device(s) are not registered (their "
                f"readings are dead-lettered as unknown_device): {names(self.unknown_devices)}"
            )
        if self.wrong_gateway:
            out.append(
                f"{len(self.wrong_gateway)} polled device(s) are registered on another gateway "
                f"(dead-lettered as device_not_on_gateway): {names(self.wrong_gateway)}"
            )
        if self.unknown_points:
            out.append(
                f"{len(self.unknown_points)} published point(s) are not registered "
                f"(dead-lettered as unknown_point): {names(self.unknown_points)}"
            )
        if self.silent_devices:
            out.append(
                f"{len(self.silent_devices)} registered device(s) of this gateway are not "
                f"polled by it (no readings will come): {names(self.silent_devices)}"
            )
        if self.silent_points:
            out.append(
                f"{len(self.silent_points)} registered point(s) are not published by the "
                f"gateway (no readings will come): {names(self.silent_points)}"
            )
        return out

    def describe(self, limit: int = 8) -> str:
        """A log line: what disagrees and what to do, or that all agrees."""
        if self.ok:
            return f"gateway {self.gateway}: its devices and points match the registry"
        return (
            f"gateway {self.gateway} and the registry disagree: "
            + "; ".join(self.problems(limit))
            + ". Make the site file and the gateway config agree (suvnet site apply, or "
            "the gateway's gateway.yaml): docs/site.md"
        )


def compare_gateway_config(
    gateway: str,
    announced: Mapping[str, Sequence[str]],
    registered: Mapping[str, RegisteredDevice],
) -> ConfigCheck:
    """Compare what a gateway announces (device -> published point ids) with the registry
    (device -> :class:`RegisteredDevice`, for the announced devices and those registered on
    the gateway). Pure."""
    unknown_devices: list[str] = []
    wrong_gateway: list[str] = []
    unknown_points: list[str] = []
    silent_points: list[str] = []
    for dev in sorted(announced):
        names = set(announced[dev])
        reg = registered.get(dev)
        if reg is None:
            unknown_devices.append(dev)
            continue
        if reg.gateway is not None and reg.gateway != gateway:
            wrong_gateway.append(dev)
            continue
        unknown_points += [f"{dev}/{p}" for p in sorted(names - reg.points)]
        silent_points += [f"{dev}/{p}" for p in sorted(reg.points - names)]
    silent_devices = sorted(
        dev
        for dev, reg in registered.items()
        if reg.gateway == gateway and reg.enabled and dev not in announced
    )
    return ConfigCheck(
        gateway,
        points_hash(announced),
        tuple(unknown_devices),
        tuple(wrong_gateway),
        tuple(unknown_points),
        tuple(silent_devices),
        tuple(silent_points),
    )


def registered_devices(
    conn: Conn, gateway: str, devices: Iterable[str]
) -> dict[str, RegisteredDevice]:
    """The registry's view of ``devices`` and of every device registered on ``gateway``."""
    rows = conn.execute(
        "SELECT d.code, g.code, d.enabled, "
        "coalesce(array_agg(p.name) FILTER (WHERE p.name IS NOT NULL), '{}') "
        "FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id "
        "LEFT JOIN points p ON p.device_id = d.id "
        "WHERE d.code = ANY(%s) OR g.code = %s GROUP BY d.id, g.code",
        (list(devices), gateway),
    ).fetchall()
    return {
        str(code): RegisteredDevice(gw, bool(enabled), frozenset(str(n) for n in names))
        for code, gw, enabled, names in rows
    }


def _store_config_check(
    conn: Conn,
    gateway_id: int,
    check: ConfigCheck,
    *,
    points: Mapping[str, Sequence[str]] | None,
    boot: str | None,
    announced_at: datetime | None,
    now: datetime | None,
) -> None:
    status = "unchecked" if points is None else ("ok" if check.ok else "mismatch")
    conn.execute(
        "INSERT INTO gateway_config AS c (gateway_id, boot, announced_at, points, points_hash, "
        "checked_at, status, unknown_devices, wrong_gateway, unknown_points, silent_devices, "
        "silent_points) VALUES (%(g)s, %(boot)s, %(at)s, %(pts)s, %(h)s, "
        "coalesce(%(now)s::timestamptz, now()), %(st)s, "
        "%(ud)s, %(wg)s, %(up)s, %(sd)s, %(sp)s) "
        "ON CONFLICT (gateway_id) DO UPDATE SET boot = EXCLUDED.boot, "
        "announced_at = EXCLUDED.announced_at, points = EXCLUDED.points, "
        "points_hash = EXCLUDED.points_hash, checked_at = EXCLUDED.checked_at, "
        "status = EXCLUDED.status, unknown_devices = EXCLUDED.unknown_devices, "
        "wrong_gateway = EXCLUDED.wrong_gateway, unknown_points = EXCLUDED.unknown_points, "
        "silent_devices = EXCLUDED.silent_devices, silent_points = EXCLUDED.silent_points",
        {
            "g": gateway_id,
            "boot": boot,
            "at": announced_at,
            "pts": None if points is None else Jsonb({d: list(p) for d, p in points.items()}),
            "h": check.points_hash,
            "now": now,
            "st": status,
            "ud": list(check.unknown_devices),
            "wg": list(check.wrong_gateway),
            "up": list(check.unknown_points),
            "sd": list(check.silent_devices),
            "sp": list(check.silent_points),
        },
    )


def _stored_check(conn: Conn, gateway_id: int) -> tuple[ConfigCheck, str] | None:
    row = conn.execute(
        "SELECT g.code, c.points_hash, c.unknown_devices, c.wrong_gateway, c.unknown_points, "
        "c.silent_devices, c.silent_points, c.status FROM gateway_config c "
        "JOIN gateways g ON g.id = c.gateway_id WHERE c.gateway_id = %s FOR UPDATE OF c",
        (gateway_id,),
    ).fetchone()
    if row is None:
        return None
    lists = (tuple(x) for x in row[2:7])
    return ConfigCheck(str(row[0]), str(row[1]), *lists), str(row[7])


def record_gateway_config(
    conn: Conn,
    gateway: str,
    announced: Mapping[str, Sequence[str]],
    *,
    boot: str | None,
    announced_at: datetime,
    now: datetime,
) -> tuple[ConfigCheck, bool]:
    """Check a gateway's announced configuration (its birth message) against the registry and
    store the outcome in ``gateway_config``. Returns the check and whether it is news (a
    different outcome than the one stored), so the caller logs state changes only."""
    gid = Resolver(conn).need("gateway", gateway)
    before = _stored_check(conn, gid)
    check = compare_gateway_config(gateway, announced, registered_devices(conn, gateway, announced))
    _store_config_check(
        conn, gid, check, points=announced, boot=boot, announced_at=announced_at, now=now
    )
    return check, before is None or before != (check, "ok" if check.ok else "mismatch")


def note_config_hash(conn: Conn, gateway: str, announced_hash: str, now: datetime) -> bool:
    """A health update names the hash of the gateway's configuration. When the office has
    not checked that configuration (its birth was missed, e.g. ingest was down and a health
    update replaced the retained birth), mark it ``unchecked``; True when that is news. The
    check itself happens at the gateway's next birth (its next connect)."""
    gid = Resolver(conn).need("gateway", gateway)
    before = _stored_check(conn, gid)
    if before is not None and before[0].points_hash == announced_hash:
        return False
    _store_config_check(
        conn,
        gid,
        ConfigCheck(gateway, announced_hash),
        points=None,
        boot=None,
        announced_at=None,
        now=now,
    )
    return True


def recheck_gateway_configs(conn: Conn, now: datetime | None = None) -> list[ConfigCheck]:
    """Check every stored gateway announcement against the registry again (after the
    registry changed, e.g. a site apply); store and return the checks. ``now`` is the time
    of the check (default: the database's)."""
    rows = conn.execute(
        "SELECT g.code, c.gateway_id, c.points, c.boot, c.announced_at FROM gateway_config c "
        "JOIN gateways g ON g.id = c.gateway_id WHERE c.points IS NOT NULL ORDER BY g.code "
        "FOR UPDATE OF c"
    ).fetchall()
    out: list[ConfigCheck] = []
    for code, gid, points, boot, at in rows:
        announced = {str(d): [str(p) for p in names] for d, names in points.items()}
        check = compare_gateway_config(
            str(code), announced, registered_devices(conn, str(code), announced)
        )
        _store_config_check(
            conn, int(gid), check, points=announced, boot=boot, announced_at=at, now=now
        )
        out.append(check)
    return out


# ---------------------------------------------------------------------------- network reads


def _zone(row: Sequence[Any]) -> Zone:
    return Zone(
        code=row[0],
        name=row[1],
        kind=row[2],
        parent=row[3],
        min_service_pressure_bar=row[4],
        max_service_pressure_bar=row[5],
        geometry=row[6],
    )


_ZONE_SQL = """
SELECT z.code, z.name, z.kind, p.code, z.min_service_pressure_bar, z.max_service_pressure_bar,
       z.geometry
FROM zones z LEFT JOIN zones p ON p.id = z.parent_id
"""


def list_zones(conn: Conn) -> list[Zone]:
    return [_zone(r) for r in conn.execute(_ZONE_SQL + " ORDER BY z.code").fetchall()]


def get_zone(conn: Conn, code: str) -> Zone | None:
    row = conn.execute(_ZONE_SQL + " WHERE z.code = %s", (code,)).fetchone()
    return _zone(row) if row else None


def list_networks(conn: Conn) -> list[NetworkInfo]:
    rows = conn.execute(
        "SELECT code, name, crs, source, headloss, attrs FROM networks ORDER BY code"
    ).fetchall()
    return [NetworkInfo(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def get_network(conn: Conn, code: str) -> NetworkInfo | None:
    return next((n for n in list_networks(conn) if n.code == code), None)


def _net_filter(alias: str, network: str | None) -> tuple[str, tuple[Any, ...]]:
    if network is None:
        return "", ()
    return f" WHERE {alias}.network_id = (SELECT id FROM networks WHERE code = %s)", (network,)  # noqa: S608 - alias is a constant of the callers; the code is a parameter


def list_nodes(conn: Conn, network: str | None = None) -> list[Node]:
    where, params = _net_filter("n", network)
    rows = conn.execute(
        "SELECT n.code, n.kind, n.x, n.y, n.elevation_m, n.base_demand_lps, z.code, w.code, "  # noqa: S608 - the filter is built by _net_filter from constants
        "n.attrs FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id "
        "LEFT JOIN networks w ON w.id = n.network_id" + where + " ORDER BY n.code",
        params,
    ).fetchall()
    return [Node(*r) for r in rows]


_LINK_JOIN = (
    " JOIN nodes a ON a.id = l.from_node_id JOIN nodes b ON b.id = l.to_node_id"
    " LEFT JOIN networks w ON w.id = l.network_id"
)


def list_pipes(conn: Conn, network: str | None = None) -> list[Pipe]:
    where, params = _net_filter("l", network)
    rows = conn.execute(
        "SELECT l.code, a.code, b.code, l.diameter_mm, l.length_m, l.roughness, l.status, "  # noqa: S608 - joins and filter are this module's constants
        "l.material, l.install_year, l.geometry, w.code, l.attrs FROM pipes l"
        + _LINK_JOIN
        + where
        + " ORDER BY l.code",
        params,
    ).fetchall()
    return [
        Pipe(
            code=r[0],
            from_node=r[1],
            to_node=r[2],
            diameter_mm=r[3],
            length_m=r[4],
            roughness=r[5],
            status=r[6],
            material=r[7],
            install_year=r[8],
            geometry=_coords(r[9]),
            network=r[10],
            attrs=r[11],
        )
        for r in rows
    ]


def list_valves(conn: Conn, network: str | None = None) -> list[Valve]:
    where, params = _net_filter("l", network)
    rows = conn.execute(
        "SELECT l.code, l.kind, a.code, b.code, l.diameter_mm, l.setting, l.status, z.code, "  # noqa: S608 - joins and filter are this module's constants
        "l.geometry, w.code, l.attrs FROM valves l"
        + _LINK_JOIN
        + " LEFT JOIN zones z ON z.id = l.zone_id"
        + where
        + " ORDER BY l.code",
        params,
    ).fetchall()
    return [
        Valve(
            code=r[0],
            kind=r[1],
            from_node=r[2],
            to_node=r[3],
            diameter_mm=r[4],
            setting=r[5],
            status=r[6],
            zone=r[7],
            geometry=_coords(r[8]),
            network=r[9],
            attrs=r[10],
        )
        for r in rows
    ]


def list_pumps(conn: Conn, network: str | None = None) -> list[Pump]:
    where, params = _net_filter("l", network)
    rows = conn.execute(
        "SELECT l.code, a.code, b.code, l.kind, l.power_kw, l.head_curve, l.status, z.code, "  # noqa: S608 - joins and filter are this module's constants
        "l.geometry, w.code, l.attrs FROM pumps l"
        + _LINK_JOIN
        + " LEFT JOIN zones z ON z.id = l.zone_id"
        + where
        + " ORDER BY l.code",
        params,
    ).fetchall()
    return [
        Pump(
            code=r[0],
            from_node=r[1],
            to_node=r[2],
            kind=r[3],
            power_kw=r[4],
            head_curve=r[5],
            status=r[6],
            zone=r[7],
            geometry=_coords(r[8]),
            network=r[9],
            attrs=r[10],
        )
        for r in rows
    ]


def list_gateways(conn: Conn) -> list[Gateway]:
    rows = conn.execute(
        "SELECT g.code, g.name, z.code, g.allowed, g.x, g.y, g.description FROM gateways g "
        "LEFT JOIN zones z ON z.id = g.zone_id ORDER BY g.code"
    ).fetchall()
    return [Gateway(*r) for r in rows]


def list_devices(conn: Conn, gateway: str | None = None) -> list[Device]:
    where = " WHERE g.code = %s" if gateway is not None else ""
    rows = conn.execute(
        "SELECT d.code, d.kind, d.profile, g.code, d.unit_id, n.code, p.code, z.code, "  # noqa: S608 - the filter is a constant; values are parameters
        "d.flow_sign, d.x, d.y, d.serial_no, d.enabled, d.attrs FROM devices d "
        "LEFT JOIN gateways g ON g.id = d.gateway_id LEFT JOIN nodes n ON n.id = d.node_id "
        "LEFT JOIN pipes p ON p.id = d.pipe_id LEFT JOIN zones z ON z.id = d.zone_id"
        + where
        + " ORDER BY d.code",
        (gateway,) if gateway is not None else (),
    ).fetchall()
    return [Device(*r) for r in rows]


def list_points(conn: Conn, device: str | None = None) -> list[Point]:
    where = " WHERE d.code = %s" if device is not None else ""
    rows = conn.execute(
        "SELECT d.code, p.name, p.unit, p.kind, p.poll_period_s FROM points p "  # noqa: S608 - the filter is a constant; the device is a parameter
        "JOIN devices d ON d.id = p.device_id" + where + " ORDER BY d.code, p.name",
        (device,) if device is not None else (),
    ).fetchall()
    return [Point(*r) for r in rows]


def point_id(conn: Conn, device: str, name: str) -> int | None:
    """The id of point ``name`` of device ``device`` (what readings reference), or None."""
    row = conn.execute(
        "SELECT p.id FROM points p JOIN devices d ON d.id = p.device_id "
        "WHERE d.code = %s AND p.name = %s",
        (device, name),
    ).fetchone()
    return int(row[0]) if row else None


# ---------------------------------------------------------------------------- addresses


def _names(e: Region | District | Mahalla | Street) -> dict[str, Any]:
    return {"code": e.code, "name_uz_cyrl": e.name_uz_cyrl, "name_ru": e.name_ru}


def upsert_region(conn: Conn, region: Region) -> Upserted:
    return upsert_row(conn, "regions", {"name_uz": region.name_uz}, _names(region))


def upsert_district(conn: Conn, district: District) -> Upserted:
    return upsert_row(
        conn,
        "districts",
        {"region_id": district.region_id, "name_uz": district.name_uz},
        _names(district),
    )


def upsert_mahalla(conn: Conn, mahalla: Mahalla) -> Upserted:
    return upsert_row(
        conn,
        "mahallas",
        {"district_id": mahalla.district_id, "name_uz": mahalla.name_uz},
        _names(mahalla),
    )


def upsert_street(conn: Conn, street: Street) -> Upserted:
    return upsert_row(
        conn,
        "streets",
        {"mahalla_id": street.mahalla_id, "name_uz": street.name_uz},
        {**_names(street), "kind": street.kind},
    )


def upsert_house(conn: Conn, house: House) -> Upserted:
    return upsert_row(
        conn,
        "houses",
        {"street_id": house.street_id, "number": house.number},
        {"cadastral_no": house.cadastral_no, "lon": house.lon, "lat": house.lat},
    )


def upsert_apartment(conn: Conn, apt: Apartment) -> Upserted:
    return upsert_row(
        conn,
        "apartments",
        {"house_id": apt.house_id, "number": apt.number},
        {"cadastral_no": apt.cadastral_no},
    )


def _key_only(conn: Conn, table: str, key: Mapping[str, Any]) -> int:
    """The id of an existing row by key, or a new row with just the key (names kept)."""
    return upsert_row(conn, table, key, {}).id


def ensure_address(conn: Conn, address: Address) -> AddressIds:
    """Ids of every level of ``address`` (by Uzbek Latin name), creating missing levels.

    Existing rows keep their codes and other-language names; use the ``upsert_*`` functions
    to set those.
    """
    if address.apartment is not None and address.house is None:
        raise RegistryError("an address with an apartment needs a house number")
    region = _key_only(conn, "regions", {"name_uz": address.region})
    district = _key_only(conn, "districts", {"region_id": region, "name_uz": address.district})
    mahalla = _key_only(conn, "mahallas", {"district_id": district, "name_uz": address.mahalla})
    street = _key_only(conn, "streets", {"mahalla_id": mahalla, "name_uz": address.street})
    house = apartment = None
    if address.house is not None:
        house = _key_only(conn, "houses", {"street_id": street, "number": address.house})
        if address.apartment is not None:
            apartment = _key_only(
                conn, "apartments", {"house_id": house, "number": address.apartment}
            )
    return AddressIds(region, district, mahalla, street, house, apartment)


def find_address(conn: Conn, address: Address) -> AddressIds | None:
    """Ids of an existing address (by Uzbek Latin names), or None when any level is missing."""
    row = conn.execute(
        "SELECT r.id, d.id, m.id, s.id FROM regions r "
        "JOIN districts d ON d.region_id = r.id AND d.name_uz = %s "
        "JOIN mahallas m ON m.district_id = d.id AND m.name_uz = %s "
        "JOIN streets s ON s.mahalla_id = m.id AND s.name_uz = %s WHERE r.name_uz = %s",
        (address.district, address.mahalla, address.street, address.region),
    ).fetchone()
    if row is None:
        return None
    house = apartment = None
    if address.house is not None:
        h = conn.execute(
            "SELECT id FROM houses WHERE street_id = %s AND number = %s", (row[3], address.house)
        ).fetchone()
        if h is None:
            return None
        house = int(h[0])
        if address.apartment is not None:
            a = conn.execute(
                "SELECT id FROM apartments WHERE house_id = %s AND number = %s",
                (house, address.apartment),
            ).fetchone()
            if a is None:
                return None
            apartment = int(a[0])
    return AddressIds(int(row[0]), int(row[1]), int(row[2]), int(row[3]), house, apartment)


def list_regions(conn: Conn) -> list[tuple[int, Region]]:
    rows = conn.execute(
        "SELECT id, name_uz, code, name_uz_cyrl, name_ru FROM regions ORDER BY name_uz"
    ).fetchall()
    return [(int(r[0]), Region(*r[1:])) for r in rows]


def list_districts(conn: Conn, region_id: int) -> list[tuple[int, District]]:
    rows = conn.execute(
        "SELECT id, region_id, name_uz, code, name_uz_cyrl, name_ru FROM districts "
        "WHERE region_id = %s ORDER BY name_uz",
        (region_id,),
    ).fetchall()
    return [(int(r[0]), District(*r[1:])) for r in rows]


def list_mahallas(conn: Conn, district_id: int) -> list[tuple[int, Mahalla]]:
    rows = conn.execute(
        "SELECT id, district_id, name_uz, code, name_uz_cyrl, name_ru FROM mahallas "
        "WHERE district_id = %s ORDER BY name_uz",
        (district_id,),
    ).fetchall()
    return [(int(r[0]), Mahalla(*r[1:])) for r in rows]


def list_streets(conn: Conn, mahalla_id: int) -> list[tuple[int, Street]]:
    rows = conn.execute(
        "SELECT id, mahalla_id, name_uz, kind, code, name_uz_cyrl, name_ru FROM streets "
        "WHERE mahalla_id = %s ORDER BY name_uz",
        (mahalla_id,),
    ).fetchall()
    return [(int(r[0]), Street(*r[1:])) for r in rows]


def list_houses(conn: Conn, street_id: int) -> list[tuple[int, House]]:
    rows = conn.execute(
        "SELECT id, street_id, number, cadastral_no, lon, lat FROM houses "
        "WHERE street_id = %s ORDER BY number",
        (street_id,),
    ).fetchall()
    return [(int(r[0]), House(*r[1:])) for r in rows]


def list_apartments(conn: Conn, house_id: int) -> list[tuple[int, Apartment]]:
    rows = conn.execute(
        "SELECT id, house_id, number, cadastral_no FROM apartments "
        "WHERE house_id = %s ORDER BY number",
        (house_id,),
    ).fetchall()
    return [(int(r[0]), Apartment(*r[1:])) for r in rows]
