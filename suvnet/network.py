"""Network import and export: EPANET .inp and GeoJSON to the registry, registry to GeoJSON.

Pure conversions (file -> :class:`Network` -> GeoJSON dict) with a thin SQL layer
(:func:`save_network`, :func:`load_network`).

Units in the registry are SI whatever the file used: elevations and lengths in metres, pipe
diameters in millimetres, base demands in litres per second, PRV/PSV/PBV settings in metres of
head (wntr converts EPANET's US units). Coordinates are kept as the file has them; the network
row records their coordinate reference system (``crs``): ``EPSG:4326`` for longitude/latitude,
another ``EPSG:nnnn`` code, or ``local`` for drawing coordinates.
"""

# wntr is imported by read_inp only: it takes about a second to load and only the EPANET
# import needs it (start-up time of every command that imports this module).
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from psycopg import sql

from suvnet.errors import FileFormatError
from suvnet.registry import (
    Change,
    Conn,
    Coord,
    NetworkInfo,
    Node,
    Pipe,
    Pump,
    RegistryError,
    Resolver,
    Valve,
    Zone,
    list_networks,
    list_nodes,
    list_pipes,
    list_pumps,
    list_valves,
    list_zones,
    upsert_network,
    upsert_nodes,
    upsert_pipes,
    upsert_pumps,
    upsert_valves,
    upsert_zone,
)

Progress = Callable[[int], None]
"""Called with the number of elements just written (for a progress bar)."""

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # networks
ELEMENT_RE = re.compile(r'^[^\s;"]{1,64}$')  # EPANET IDs: no blanks, semicolons, quotes
CRS_RE = re.compile(r"^(local|EPSG:[0-9]{4,6})$")
LAYERS = ("zone", "node", "pipe", "valve", "pump")
BATCH = 500  # elements per pipelined batch (and per progress step)


@dataclass(frozen=True)
class Network:
    """One hydraulic network: its description and its elements, ready to be saved."""

    info: NetworkInfo
    nodes: tuple[Node, ...] = ()
    pipes: tuple[Pipe, ...] = ()
    valves: tuple[Valve, ...] = ()
    pumps: tuple[Pump, ...] = ()

    @property
    def size(self) -> int:
        return len(self.nodes) + len(self.pipes) + len(self.valves) + len(self.pumps)


@dataclass
class ChangeLog:
    """What an import or a site apply did, per kind of element (zones, nodes, ...)."""

    entries: dict[str, dict[Change, list[str]]] = field(default_factory=dict)

    def add(self, kind: str, name: str, change: Change) -> None:
        per = self.entries.setdefault(kind, {"created": [], "updated": [], "unchanged": []})
        per[change].append(name)

    def count(self, kind: str, change: Change) -> int:
        return len(self.entries.get(kind, {}).get(change, []))

    def names(self, kind: str, change: Change) -> list[str]:
        return list(self.entries.get(kind, {}).get(change, []))

    @property
    def changed(self) -> bool:
        return any(per["created"] or per["updated"] for per in self.entries.values())

    def merge(self, other: ChangeLog) -> None:
        for kind, per in other.entries.items():
            for change, names in per.items():
                for name in names:
                    self.add(kind, name, change)

    def summary(self) -> str:
        """One line per kind: ``nodes: 3 created, 1 updated, 10 unchanged``."""
        lines = []
        for kind, per in self.entries.items():
            parts = [f"{len(per[c])} {c}" for c in ("created", "updated", "unchanged")]
            lines.append(f"{kind}: " + ", ".join(parts))
        return "\n".join(lines) if lines else "nothing to do"


# ---------------------------------------------------------------------------- EPANET .inp


def _inp_error(path: Path, exc: BaseException) -> FileFormatError:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = re.sub(r"\s*\(%s\)", "", text).replace(", at line", " at line")
    m = re.search(r"at line (\d+)", text)
    line = int(m.group(1)) if m else None
    return FileFormatError(str(path), line, None, f"not a valid EPANET .inp file: {text}")


def inp_section_ids(text: str, section: str) -> list[str]:
    """The first column (the IDs) of the data lines of ``[section]`` in an .inp text."""
    out: list[str] = []
    current = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = line.strip("[]").strip().upper()
            continue
        if current == section.upper():
            out.append(line.split()[0])
    return out


def read_inp(
    path: Path | str,
    *,
    code: str | None = None,
    name: str | None = None,
    crs: str = "local",
    zone: str | None = None,
    prefix: str = "",
) -> Network:
    """Read an EPANET .inp file (with wntr) into a :class:`Network`.

    ``code`` names the network (default: the file name without extension); ``zone`` puts every
    node, valve and pump into that zone; ``prefix`` is put in front of every element code, so
    that two models with the same IDs can live in one database.
    """
    path = Path(path)
    if not CRS_RE.match(crs):
        raise FileFormatError(str(path), None, "crs", f"'{crs}' is not 'local' or EPSG:nnnn")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FileFormatError(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    import wntr
    from wntr.epanet.exceptions import EpanetException

    try:
        wn = wntr.network.WaterNetworkModel(str(path))
    except (
        EpanetException,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
        RuntimeError,
    ) as exc:
        raise _inp_error(path, exc) from exc

    net_code = code or _safe_code(path.stem)
    with_coords = set(inp_section_ids(text, "COORDINATES"))
    headloss = str(wn.options.hydraulic.headloss)
    info = NetworkInfo(
        code=net_code,
        name=name if name is not None else _title(wn, path),
        crs=crs,
        source=path.name,
        headloss=cast(Literal["H-W", "D-W", "C-M"], headloss)
        if headloss in ("H-W", "D-W", "C-M")
        else None,
        attrs={"units": str(wn.options.hydraulic.inpfile_units)},
    )

    coords: dict[str, Coord | None] = {}
    nodes: list[Node] = []
    for nid, n in wn.nodes():
        xy: Coord | None = None
        if nid in with_coords:
            xy = (float(n.coordinates[0]), float(n.coordinates[1]))
        coords[nid] = xy
        kind = str(n.node_type).lower()
        attrs: dict[str, Any] = {}
        elevation: float | None
        demand: float | None = None
        if kind == "junction":
            elevation = float(n.elevation)
            demand = sum(float(d.base_value) for d in n.demand_timeseries_list) * 1000.0
            pattern = n.demand_timeseries_list[0].pattern_name if n.demand_timeseries_list else None
            if pattern:
                attrs["demand_pattern"] = str(pattern)
        elif kind == "reservoir":
            elevation = float(n.base_head)
            if n.head_pattern_name:
                attrs["head_pattern"] = str(n.head_pattern_name)
        else:
            elevation = float(n.elevation)
            attrs.update(
                init_level_m=float(n.init_level),
                min_level_m=float(n.min_level),
                max_level_m=float(n.max_level),
                diameter_m=float(n.diameter),
            )
            if n.vol_curve_name:
                attrs["volume_curve"] = str(n.vol_curve_name)
        nodes.append(
            Node(
                code=prefix + nid,
                kind=cast(Literal["junction", "reservoir", "tank"], kind),
                x=xy[0] if xy else None,
                y=xy[1] if xy else None,
                elevation_m=elevation,
                base_demand_lps=demand,
                zone=zone,
                network=net_code,
                attrs=attrs,
            )
        )

    def line(link: Any) -> tuple[Coord, ...] | None:
        a, b = coords.get(link.start_node_name), coords.get(link.end_node_name)
        if a is None or b is None:
            return None
        mids = tuple((float(v[0]), float(v[1])) for v in (link.vertices or []))
        return (a, *mids, b)

    pipes: list[Pipe] = []
    for lid, p in wn.pipes():
        status: Literal["open", "closed", "cv"] = (
            "cv" if p.check_valve else ("closed" if int(p.initial_status) == 0 else "open")
        )
        pipes.append(
            Pipe(
                code=prefix + lid,
                from_node=prefix + p.start_node_name,
                to_node=prefix + p.end_node_name,
                diameter_mm=round(float(p.diameter) * 1000.0, 6),
                length_m=round(float(p.length), 6),
                roughness=float(p.roughness),
                status=status,
                geometry=line(p),
                network=net_code,
                attrs={"minor_loss": float(p.minor_loss)} if p.minor_loss else {},
            )
        )

    valves: list[Valve] = []
    for lid, v in wn.valves():
        vtype = str(v.valve_type).upper()
        setting: float | None = None
        vattrs: dict[str, Any] = {}
        if vtype in ("PRV", "PSV", "PBV", "TCV"):
            setting = float(v.initial_setting)
        elif vtype == "FCV":
            setting = float(v.initial_setting) * 1000.0  # m3/s -> L/s
        elif vtype == "GPV":
            vattrs["headloss_curve"] = str(v.headloss_curve_name)
        vstatus = str(v.initial_status).split(".")[-1].lower()
        valves.append(
            Valve(
                code=prefix + lid,
                kind=cast(Any, vtype),
                from_node=prefix + v.start_node_name,
                to_node=prefix + v.end_node_name,
                diameter_mm=round(float(v.diameter) * 1000.0, 6),
                setting=setting,
                status=cast(Any, vstatus if vstatus in ("open", "closed") else "active"),
                zone=zone,
                geometry=line(v),
                network=net_code,
                attrs=vattrs,
            )
        )

    pumps: list[Pump] = []
    for lid, u in wn.pumps():
        is_power = str(u.pump_type).upper() == "POWER"
        pattrs: dict[str, Any] = {}
        if u.speed_pattern_name:
            pattrs["speed_pattern"] = str(u.speed_pattern_name)
        pumps.append(
            Pump(
                code=prefix + lid,
                from_node=prefix + u.start_node_name,
                to_node=prefix + u.end_node_name,
                kind="power" if is_power else "head",
                power_kw=round(float(u.power) / 1000.0, 9) if is_power else None,
                head_curve=None if is_power else str(u.pump_curve_name),
                status="closed" if int(u.initial_status) == 0 else "open",
                zone=zone,
                geometry=line(u),
                network=net_code,
                attrs=pattrs,
            )
        )
    net = Network(info, tuple(nodes), tuple(pipes), tuple(valves), tuple(pumps))
    bad = lonlat_problem(net)
    if bad:
        raise FileFormatError(str(path), None, "crs", bad)
    return net


def lonlat_problem(network: Network) -> str | None:
    """For an EPSG:4326 network: a message when a node's x/y is no longitude/latitude."""
    if network.info.crs != "EPSG:4326":
        return None
    for n in network.nodes:
        if n.x is not None and n.y is not None and not (-180 <= n.x <= 180 and -90 <= n.y <= 90):
            return (
                f"node {n.code} is at ({n.x}, {n.y}), which is not a longitude/latitude: "
                "the coordinates are not EPSG:4326 (use 'local' or the right EPSG code)"
            )
    return None


def _title(wn: Any, path: Path) -> str:
    title = [str(t).strip() for t in (getattr(wn, "title", None) or []) if str(t).strip()]
    return title[0][:200] if title else path.stem


def _safe_code(stem: str) -> str:
    code = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._") or "network"
    return code[:64]


def renamed(net: Network, code: str, name: str | None, prefix: str) -> Network:
    """``net`` under another network code and name, with ``prefix`` before every code."""

    def link(e: Any) -> Any:
        return replace(
            e,
            code=prefix + e.code,
            from_node=prefix + e.from_node,
            to_node=prefix + e.to_node,
            network=code,
        )

    return Network(
        replace(net.info, code=code, name=name or net.info.name),
        tuple(replace(n, code=prefix + n.code, network=code) for n in net.nodes),
        tuple(link(p) for p in net.pipes),
        tuple(link(v) for v in net.valves),
        tuple(link(u) for u in net.pumps),
    )


# ---------------------------------------------------------------------------- zones by polygon


def _ring_contains(ring: Sequence[Sequence[float]], x: float, y: float) -> bool:
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def polygon_contains(geometry: Mapping[str, Any], x: float, y: float) -> bool:
    """Whether a GeoJSON Polygon/MultiPolygon contains the point (holes respected)."""
    polys = (
        [geometry["coordinates"]]
        if geometry["type"] == "Polygon"
        else list(geometry["coordinates"])
    )
    for rings in polys:
        if (
            rings
            and _ring_contains(rings[0], x, y)
            and not any(_ring_contains(hole, x, y) for hole in rings[1:])
        ):
            return True
    return False


def _area(geometry: Mapping[str, Any]) -> float:
    polys = (
        [geometry["coordinates"]]
        if geometry["type"] == "Polygon"
        else list(geometry["coordinates"])
    )
    total = 0.0
    for rings in polys:
        ring = rings[0]
        total += abs(
            sum(
                ring[i][0] * ring[(i + 1) % len(ring)][1]
                - ring[(i + 1) % len(ring)][0] * ring[i][1]
                for i in range(len(ring))
            )
            / 2
        )
    return total


def assign_zones(network: Network, zones: Iterable[Zone]) -> Network:
    """Put every node that has coordinates and no zone into the smallest zone polygon around it.

    Valves and pumps without a zone get the zone of their downstream node.
    """
    shaped = sorted((z for z in zones if z.geometry), key=lambda z: _area(z.geometry or {}))
    nodes: list[Node] = []
    for node in network.nodes:
        n = node
        if n.zone is None and n.x is not None and n.y is not None:
            x, y = n.x, n.y
            hit = next((z.code for z in shaped if polygon_contains(z.geometry or {}, x, y)), None)
            n = replace(n, zone=hit)
        nodes.append(n)
    by_code = {n.code: n.zone for n in nodes}
    valves = tuple(
        v if v.zone is not None else replace(v, zone=by_code.get(v.to_node)) for v in network.valves
    )
    pumps = tuple(
        p if p.zone is not None else replace(p, zone=by_code.get(p.to_node)) for p in network.pumps
    )
    return replace(network, nodes=tuple(nodes), valves=valves, pumps=pumps)


# ---------------------------------------------------------------------------- GeoJSON export


def _line_geom(coords: tuple[Coord, ...] | None) -> dict[str, Any] | None:
    if coords is None:
        return None
    return {"type": "LineString", "coordinates": [[x, y] for x, y in coords]}


def _feature(layer: str, code: str, geometry: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"{layer}/{code}",
        "geometry": geometry,
        "properties": {"layer": layer, "code": code, **props},
    }


def zone_feature(z: Zone) -> dict[str, Any]:
    return _feature(
        "zone",
        z.code,
        dict(z.geometry) if z.geometry is not None else None,
        {
            "name": z.name,
            "kind": z.kind,
            "parent": z.parent,
            "min_service_pressure_bar": z.min_service_pressure_bar,
            "max_service_pressure_bar": z.max_service_pressure_bar,
        },
    )


def to_geojson(networks: Sequence[Network], zones: Sequence[Zone] | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the networks (and the zones, when given).

    Every feature has ``properties.layer`` (zone, node, pipe, valve, pump) and ``code``, so a
    map can style the layers apart; the collection's ``networks`` member keeps each network's
    name and coordinate reference system, so the file can be imported again unchanged.
    """
    features: list[dict[str, Any]] = [zone_feature(z) for z in zones or ()]
    for net in networks:
        for n in net.nodes:
            geom = (
                {"type": "Point", "coordinates": [n.x, n.y]}
                if n.x is not None and n.y is not None
                else None
            )
            features.append(
                _feature(
                    "node",
                    n.code,
                    geom,
                    {
                        "kind": n.kind,
                        "network": n.network,
                        "zone": n.zone,
                        "elevation_m": n.elevation_m,
                        "base_demand_lps": n.base_demand_lps,
                        "attrs": dict(n.attrs),
                    },
                )
            )
        for p in net.pipes:
            features.append(  # noqa: PERF401
                _feature(
                    "pipe",
                    p.code,
                    _line_geom(p.geometry),
                    {
                        "network": p.network,
                        "from": p.from_node,
                        "to": p.to_node,
                        "diameter_mm": p.diameter_mm,
                        "length_m": p.length_m,
                        "roughness": p.roughness,
                        "status": p.status,
                        "material": p.material,
                        "install_year": p.install_year,
                        "attrs": dict(p.attrs),
                    },
                )
            )
        for v in net.valves:
            features.append(  # noqa: PERF401
                _feature(
                    "valve",
                    v.code,
                    _line_geom(v.geometry),
                    {
                        "kind": v.kind,
                        "network": v.network,
                        "from": v.from_node,
                        "to": v.to_node,
                        "diameter_mm": v.diameter_mm,
                        "setting": v.setting,
                        "status": v.status,
                        "zone": v.zone,
                        "attrs": dict(v.attrs),
                    },
                )
            )
        for u in net.pumps:
            features.append(  # noqa: PERF401
                _feature(
                    "pump",
                    u.code,
                    _line_geom(u.geometry),
                    {
                        "kind": u.kind,
                        "network": u.network,
                        "from": u.from_node,
                        "to": u.to_node,
                        "power_kw": u.power_kw,
                        "head_curve": u.head_curve,
                        "status": u.status,
                        "zone": u.zone,
                        "attrs": dict(u.attrs),
                    },
                )
            )
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "name": "suvnet network",
        "networks": [
            {
                "code": n.info.code,
                "name": n.info.name,
                "crs": n.info.crs,
                "source": n.info.source,
                "headloss": n.info.headloss,
                "attrs": dict(n.info.attrs),
            }
            for n in networks
        ],
        "features": features,
    }
    crss = {n.info.crs for n in networks}
    if len(crss) == 1 and (crs := crss.pop()).startswith("EPSG:") and crs != "EPSG:4326":
        # the pre-2016 GeoJSON "crs" member, which QGIS and GDAL still honour
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs[5:]}"}}
    return doc


# ---------------------------------------------------------------------------- GeoJSON import


class _Reader:
    """Checks the properties of one feature and reports the path of a bad field."""

    def __init__(self, path: str, where: str, props: Mapping[str, Any]) -> None:
        self.path = path
        self.where = where
        self.props = props

    def fail(self, key: str, message: str) -> FileFormatError:
        return FileFormatError(self.path, None, f"{self.where}.properties.{key}", message)

    def str_(self, key: str, *, required: bool = False) -> str | None:
        v = self.props.get(key)
        if v is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise self.fail(key, f"must be text, got {json.dumps(v)}")
        return str(v)

    def code(self, key: str = "code", *, strict: bool = False) -> str:
        v = self.str_(key, required=True)
        assert v is not None
        if strict and not CODE_RE.match(v):
            raise self.fail(
                key,
                f"'{v}' is not a valid code (letters, digits, '_', '.', '-'; at most 64)",
            )
        if not ELEMENT_RE.match(v):
            raise self.fail(key, f"'{v}' is not a valid ID (at most 64 characters, no blanks)")
        return v

    def num(self, key: str, *, positive: bool = False) -> float | None:
        v = self.props.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.fail(key, f"must be a number, got {json.dumps(v)}")
        if positive and v <= 0:
            raise self.fail(key, f"must be greater than 0, got {v}")
        return float(v)

    def int_(self, key: str) -> int | None:
        v = self.props.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be a whole number, got {json.dumps(v)}")
        return v

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        v = self.props.get(key, default)
        if v is None:
            v = default
        if v not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}; got {json.dumps(v)}")
        return str(v)

    def attrs(self) -> dict[str, Any]:
        v = self.props.get("attrs") or {}
        if not isinstance(v, dict):
            raise self.fail("attrs", "must be an object")
        return v


def _coord_list(path: str, where: str, geom: Mapping[str, Any]) -> list[Coord]:
    try:
        return [(float(c[0]), float(c[1])) for c in geom["coordinates"]]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FileFormatError(
            path, None, f"{where}.geometry.coordinates", "must be a list of [x, y] positions"
        ) from exc


class _Snapper:
    """Finds the node at a line's end point (within ``tolerance`` coordinate units)."""

    def __init__(self, nodes: Iterable[Node], tolerance: float) -> None:
        self.tol = max(tolerance, 1e-12)
        self.grid: dict[tuple[int, int], list[Node]] = {}
        for n in nodes:
            if n.x is not None and n.y is not None:
                self.grid.setdefault(self._cell(n.x, n.y), []).append(n)

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return (math.floor(x / self.tol), math.floor(y / self.tol))

    def find(self, x: float, y: float) -> str | None:
        cx, cy = self._cell(x, y)
        best: tuple[float, str] | None = None
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for n in self.grid.get((cx + dx, cy + dy), ()):
                    d = math.hypot((n.x or 0) - x, (n.y or 0) - y)
                    if d <= self.tol and (best is None or d < best[0]):
                        best = (d, n.code)
        return best[1] if best else None


@dataclass(frozen=True)
class GeoImport:
    networks: tuple[Network, ...]
    zones: tuple[Zone, ...]


def from_geojson(
    doc: Any,
    *,
    path: str = "<geojson>",
    default_network: str = "network",
    crs: str | None = None,
    zone: str | None = None,
    snap_tolerance: float = 1e-6,
) -> GeoImport:
    """Read a GeoJSON FeatureCollection of Point nodes, LineString pipes and Polygon zones.

    ``properties.layer`` says what a feature is (node, pipe, valve, pump, zone); without it
    Points are nodes, LineStrings pipes and Polygons zones. A pipe without ``from``/``to`` is
    connected to the nodes at its end points (within ``snap_tolerance``). ``crs`` overrides
    the collection's coordinate reference system (default: its ``networks`` member, else its
    ``crs`` member, else EPSG:4326 as RFC 7946 says). ``zone`` puts every node with no zone of
    its own into that zone.
    """
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise FileFormatError(path, None, "type", "must be a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise FileFormatError(path, None, "features", "must be a list of features")
    if crs is not None and not CRS_RE.match(crs):
        raise FileFormatError(path, None, "crs", f"'{crs}' is not 'local' or EPSG:nnnn")

    default_crs = "EPSG:4326"
    legacy = doc.get("crs")
    if isinstance(legacy, dict):
        m = re.search(r"EPSG:+(\d+)", json.dumps(legacy))
        if m:
            default_crs = f"EPSG:{m.group(1)}"
    infos: dict[str, NetworkInfo] = {}
    for i, raw in enumerate(doc.get("networks") or []):
        r = _Reader(path, f"networks[{i}]", raw if isinstance(raw, dict) else {})
        r.where = f"networks[{i}]"
        ncode = r.code(strict=True)
        ncrs = crs or r.str_("crs") or default_crs
        if not CRS_RE.match(ncrs):
            raise r.fail("crs", f"'{ncrs}' is not 'local' or EPSG:nnnn")
        hl = r.str_("headloss")
        infos[ncode] = NetworkInfo(
            code=ncode,
            name=r.str_("name") or "",
            crs=ncrs,
            source=r.str_("source") or "",
            headloss=cast(Any, hl) if hl in ("H-W", "D-W", "C-M") else None,
            attrs=r.attrs(),
        )

    zones: list[Zone] = []
    nodes: list[Node] = []
    links: list[tuple[str, _Reader, str, list[Coord] | None]] = []
    seen: dict[tuple[str, str], str] = {}
    for i, f in enumerate(feats):
        where = f"features[{i}]"
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise FileFormatError(path, None, f"{where}.type", "must be a GeoJSON Feature")
        geom = f.get("geometry")
        if geom is not None and not isinstance(geom, dict):
            raise FileFormatError(path, None, f"{where}.geometry", "must be an object or null")
        gtype = geom.get("type") if geom else None
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise FileFormatError(path, None, f"{where}.properties", "must be an object")
        if "code" not in props and f.get("id") is not None:
            fid = str(f["id"])
            props = {**props, "code": fid.split("/", 1)[1] if "/" in fid else fid}
        r = _Reader(path, where, props)
        layer = props.get("layer") or {
            "Point": "node",
            "LineString": "pipe",
            "Polygon": "zone",
            "MultiPolygon": "zone",
        }.get(str(gtype))
        if layer not in LAYERS:
            raise r.fail(
                "layer",
                f"cannot tell what this feature is (layer {json.dumps(layer)}, geometry "
                f"{gtype}); use layer: zone, node, pipe, valve or pump",
            )
        code = r.code()
        group = "link" if layer in ("pipe", "valve", "pump") else layer
        if (group, code) in seen:
            raise r.fail("code", f"'{code}' appears twice (first at {seen[(group, code)]})")
        seen[(group, code)] = where
        if layer == "zone":
            if gtype not in ("Polygon", "MultiPolygon", None):
                raise FileFormatError(
                    path, None, f"{where}.geometry.type", "a zone must be a Polygon"
                )
            zones.append(
                Zone(
                    code=code,
                    name=r.str_("name") or code,
                    kind=cast(
                        Any, r.choice("kind", ("dma", "pressure_zone", "supply_zone"), "dma")
                    ),
                    parent=r.str_("parent"),
                    min_service_pressure_bar=r.num("min_service_pressure_bar"),
                    max_service_pressure_bar=r.num("max_service_pressure_bar"),
                    geometry=geom,
                )
            )
            continue
        network = r.str_("network") if "network" in props else default_network
        if layer == "node":
            x = y = None
            if geom is not None:
                if gtype != "Point":
                    raise FileFormatError(
                        path, None, f"{where}.geometry.type", "a node must be a Point"
                    )
                c = geom.get("coordinates")
                if (
                    not isinstance(c, list)
                    or len(c) < 2
                    or not all(isinstance(v, int | float) for v in c[:2])
                ):
                    raise FileFormatError(
                        path, None, f"{where}.geometry.coordinates", "must be [x, y]"
                    )
                x, y = float(c[0]), float(c[1])
            nodes.append(
                Node(
                    code=code,
                    kind=cast(Any, r.choice("kind", ("junction", "reservoir", "tank"), "junction")),
                    x=x,
                    y=y,
                    elevation_m=r.num("elevation_m"),
                    base_demand_lps=r.num("base_demand_lps"),
                    zone=r.str_("zone") or zone,
                    network=network,
                    attrs=r.attrs(),
                )
            )
            continue
        line: list[Coord] | None = None
        if geom is not None:
            if gtype != "LineString":
                raise FileFormatError(
                    path, None, f"{where}.geometry.type", f"a {layer} must be a LineString"
                )
            line = _coord_list(path, where, geom)
            if len(line) < 2:
                raise FileFormatError(
                    path, None, f"{where}.geometry.coordinates", "needs at least two positions"
                )
        links.append((layer, r, network or "", line))

    snapper = _Snapper(nodes, snap_tolerance)
    pipes: list[Pipe] = []
    valves: list[Valve] = []
    pumps: list[Pump] = []

    def end(r: _Reader, key: str, line: list[Coord] | None, at: int) -> str:
        given = r.str_(key)
        if given is not None:
            return given
        if line is None:
            raise r.fail(key, "is required (the feature has no geometry to find its node)")
        found = snapper.find(*line[at])
        if found is None:
            raise r.fail(
                key,
                f"is missing and no node lies at {list(line[at])} (within {snap_tolerance})",
            )
        return found

    for layer, r, network, line in links:
        code = r.code()
        a, b = end(r, "from", line, 0), end(r, "to", line, -1)
        geometry = tuple(line) if line is not None else None
        net = network or None
        if layer == "pipe":
            pipes.append(
                Pipe(
                    code=code,
                    from_node=a,
                    to_node=b,
                    diameter_mm=r.num("diameter_mm", positive=True),
                    length_m=r.num("length_m"),
                    roughness=r.num("roughness"),
                    status=cast(Any, r.choice("status", ("open", "closed", "cv"), "open")),
                    material=r.str_("material"),
                    install_year=r.int_("install_year"),
                    geometry=geometry,
                    network=net,
                    attrs=r.attrs(),
                )
            )
        elif layer == "valve":
            valves.append(
                Valve(
                    code=code,
                    kind=cast(
                        Any,
                        r.choice(
                            "kind", ("PRV", "PSV", "PBV", "FCV", "TCV", "GPV", "isolation"), "PRV"
                        ),
                    ),
                    from_node=a,
                    to_node=b,
                    diameter_mm=r.num("diameter_mm", positive=True),
                    setting=r.num("setting"),
                    status=cast(Any, r.choice("status", ("active", "open", "closed"), "active")),
                    zone=r.str_("zone"),
                    geometry=geometry,
                    network=net,
                    attrs=r.attrs(),
                )
            )
        else:
            pumps.append(
                Pump(
                    code=code,
                    from_node=a,
                    to_node=b,
                    kind=cast(Any, r.choice("kind", ("head", "power"), "head")),
                    power_kw=r.num("power_kw", positive=True),
                    head_curve=r.str_("head_curve"),
                    status=cast(Any, r.choice("status", ("open", "closed"), "open")),
                    zone=r.str_("zone"),
                    geometry=geometry,
                    network=net,
                    attrs=r.attrs(),
                )
            )

    by_net: dict[str | None, dict[str, list[Any]]] = {}
    for kind, items in (("nodes", nodes), ("pipes", pipes), ("valves", valves), ("pumps", pumps)):
        for item in items:
            by_net.setdefault(item.network, {}).setdefault(kind, []).append(item)
    networks: list[Network] = []
    for group_code, parts in by_net.items():
        if group_code is None:
            info = NetworkInfo(code="", crs=crs or default_crs)
        else:
            info = infos.get(group_code) or NetworkInfo(code=group_code, crs=crs or default_crs)
        networks.append(
            Network(
                info,
                tuple(parts.get("nodes", ())),
                tuple(parts.get("pipes", ())),
                tuple(parts.get("valves", ())),
                tuple(parts.get("pumps", ())),
            )
        )
    for ncode, info in infos.items():
        if ncode not in by_net:
            networks.append(Network(info))
    for built in networks:
        problem = lonlat_problem(built)
        if problem:
            raise FileFormatError(path, None, "crs", f"{problem}; pass the right --crs")
    return GeoImport(tuple(networks), tuple(zones))


def read_geojson(path: Path | str, **kwargs: Any) -> GeoImport:
    """Read a GeoJSON file (see :func:`from_geojson` for the options)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileFormatError(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise FileFormatError(str(path), exc.lineno, None, f"not valid JSON: {exc.msg}") from exc
    kwargs.setdefault("default_network", _safe_code(path.stem))
    return from_geojson(doc, path=str(path), **kwargs)


# ---------------------------------------------------------------------------- SQL shell


def _zone_order(zones: Sequence[Zone]) -> list[Zone]:
    """Parents before children (a parent outside ``zones`` must already exist)."""
    by_code = {z.code: z for z in zones}
    out: list[Zone] = []
    done: set[str] = set()

    def visit(z: Zone, stack: tuple[str, ...]) -> None:
        if z.code in done:
            return
        if z.code in stack:
            raise FileFormatError("<zones>", None, "parent", f"zone '{z.code}' is its own parent")
        if z.parent in by_code:
            visit(by_code[z.parent], (*stack, z.code))
        done.add(z.code)
        out.append(z)

    for z in zones:
        visit(z, ())
    return out


def save_zones(
    conn: Conn, zones: Sequence[Zone], log: ChangeLog, resolver: Resolver | None = None
) -> None:
    r = resolver or Resolver(conn)
    for z in _zone_order(zones):
        log.add("zones", z.code, upsert_zone(conn, z, r).change)


def save_network(
    conn: Conn,
    network: Network,
    log: ChangeLog | None = None,
    *,
    resolver: Resolver | None = None,
    progress: Progress | None = None,
) -> ChangeLog:
    """Create or update the network and its elements (in the caller's transaction)."""
    log = log if log is not None else ChangeLog()
    r = resolver or Resolver(conn)
    if network.info.code:
        log.add("networks", network.info.code, upsert_network(conn, network.info, r).change)
        check_foreign_codes(conn, network)
    r.preload("node", [n.code for n in network.nodes])
    for kind, items, write in (
        ("nodes", network.nodes, upsert_nodes),
        ("pipes", network.pipes, upsert_pipes),
        ("valves", network.valves, upsert_valves),
        ("pumps", network.pumps, upsert_pumps),
    ):
        for start in range(0, len(items), BATCH):
            chunk: Sequence[Any] = items[start : start + BATCH]
            for item, res in zip(chunk, write(conn, chunk, r), strict=True):
                log.add(kind, item.code, res.change)
            if progress is not None:
                progress(len(chunk))
    return log


class NetworkConflictError(RegistryError):
    """Elements of the network already belong to another network in the database."""


def check_foreign_codes(conn: Conn, network: Network) -> None:
    """Refuse to take over nodes or links that belong to another network.

    Element codes are unique in the whole registry; two models that use the same IDs need a
    prefix. Elements that belong to no network (entered by hand) may be adopted.
    """
    for table, items in (
        ("nodes", network.nodes),
        ("pipes", network.pipes),
        ("valves", network.valves),
        ("pumps", network.pumps),
    ):
        if not items:
            continue
        rows = conn.execute(
            sql.SQL(
                "SELECT t.code, w.code FROM {} t JOIN networks w ON w.id = t.network_id "
                "WHERE t.code = ANY(%s) AND w.code <> %s ORDER BY t.code LIMIT 6"
            ).format(sql.Identifier(table)),
            ([i.code for i in items], network.info.code),
        ).fetchall()
        if rows:
            names = ", ".join(f"{c} (in {w})" for c, w in rows[:5])
            raise NetworkConflictError(
                f"{table} of network '{network.info.code}' already belong to another network: "
                f"{names}{' ...' if len(rows) > 5 else ''}. Import with a prefix for the IDs "
                "(--prefix, or prefix: in the site file) or under the other network's code."
            )


def load_networks(conn: Conn, network: str | None = None) -> list[Network]:
    """The networks in the database (or just one), elements sorted by code."""
    infos = [n for n in list_networks(conn) if network is None or n.code == network]
    return [
        Network(
            info,
            tuple(list_nodes(conn, info.code)),
            tuple(list_pipes(conn, info.code)),
            tuple(list_valves(conn, info.code)),
            tuple(list_pumps(conn, info.code)),
        )
        for info in infos
    ]


def export_geojson(conn: Conn, *, zones: bool = True, network: str | None = None) -> dict[str, Any]:
    """The registry's networks (and zones) as a GeoJSON FeatureCollection."""
    return to_geojson(load_networks(conn, network), list_zones(conn) if zones else None)
