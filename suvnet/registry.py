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
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from suvnet.errors import SuvnetError

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
    return f" WHERE {alias}.network_id = (SELECT id FROM networks WHERE code = %s)", (network,)


def list_nodes(conn: Conn, network: str | None = None) -> list[Node]:
    where, params = _net_filter("n", network)
    rows = conn.execute(
        "SELECT n.code, n.kind, n.x, n.y, n.elevation_m, n.base_demand_lps, z.code, w.code, "
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
        "SELECT l.code, a.code, b.code, l.diameter_mm, l.length_m, l.roughness, l.status, "
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
        "SELECT l.code, l.kind, a.code, b.code, l.diameter_mm, l.setting, l.status, z.code, "
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
        "SELECT l.code, a.code, b.code, l.kind, l.power_kw, l.head_curve, l.status, z.code, "
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
        "SELECT d.code, d.kind, d.profile, g.code, d.unit_id, n.code, p.code, z.code, "
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
        "SELECT d.code, p.name, p.unit, p.kind, p.poll_period_s FROM points p "
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
