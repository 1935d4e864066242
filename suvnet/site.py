"""The site file: one YAML file that describes a village's zones, network, gateways and devices.

``suvnet site apply site.yaml`` makes the database match the file in ONE transaction: it creates
what is missing and updates what differs, and it leaves unchanged rows untouched, so applying
the same file twice changes nothing the second time. It never deletes: a zone, device or point
that is no longer in the file stays in the database (readings may refer to it).

A bad file fails before anything is written, with the file, the line and the field. A bad
reference (a device at a node that exists neither in the file nor in the database) fails
during the transaction, which is rolled back, so nothing is half-applied.

Other installed packages may own a top-level section of their own (``alarms:``): they
declare a handler in the entry-point group ``suvnet.site_sections`` and site apply calls it
inside the same transaction (see :data:`SectionHandler`); this module never imports them.

The format is documented in docs/site.md.
"""

# psycopg is imported by apply_site_file only: suvnet's core is also installed on gateways,
# without the server extra (psycopg), and they use this module to check site files.
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
import yaml
from psycopg.types.json import Jsonb
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from suvnet.errors import FileFormatError
from suvnet.network import (
    ChangeLog,
    Network,
    NetworkConflictError,
    Progress,
    assign_zones,
    lonlat_problem,
    read_geojson,
    read_inp,
    renamed,
    save_network,
    save_zones,
)
from suvnet.profiles import (
    CONTROLLER_POINT_NAMES,
    Profile,
    default_profiles_dir,
    load_profiles,
    published_points,
)
from suvnet.prvcontrol import (
    ControlConfig,
    SignalDevice,
    config_problems,
    resolve_signals,
    signal_loc,
)
from suvnet.registry import (
    Conn,
    Coord,
    Device,
    Gateway,
    NetworkInfo,
    Node,
    Pipe,
    Point,
    Resolver,
    UnknownReferenceError,
    Valve,
    Zone,
    list_zones,
    recheck_gateway_configs,
    upsert_device,
    upsert_gateway,
    upsert_point,
)

_log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
BAR_TO_M = 100_000 / (1000 * 9.80665)  # metres of water head per bar
SITE_LOCK_KEY = 0x5356_5349_5445  # "SVSITE": one site apply at a time

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
XY = tuple[float, float]


# ---------------------------------------------------------------------------- YAML with lines


class _LineDict(dict[Any, Any]):
    line: int = 0
    key_lines: dict[Any, int]


class _LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                key_node.start_mark,
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_with_lines(text: str, path: str) -> Any:
    """Parse YAML, keeping line numbers; a syntax error becomes a FileFormatError."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise FileFormatError(path, line, None, f"not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise FileFormatError(path, None, None, f"not valid YAML: {exc}") from exc


def line_of(data: Any, loc: Sequence[str | int]) -> int | None:
    """The line of the deepest part of ``loc`` that exists in the parsed YAML."""
    line: int | None = getattr(data, "line", None)
    cur = data
    for part in loc:
        if isinstance(cur, _LineDict) and part in cur:
            line = cur.key_lines.get(part, line)
            cur = cur[part]
        elif isinstance(cur, _LineList) and isinstance(part, int) and 0 <= part < len(cur):
            line = cur.item_lines[part]
            cur = cur[part]
        else:
            continue  # pydantic adds loc parts of its own (union members, validators)
    return line


def field_name(loc: Sequence[str | int]) -> str:
    """``("gateways", 0, "devices", 2, "unit_id")`` -> ``gateways[0].devices[2].unit_id``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


# ---------------------------------------------------------------------------- the file model


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ZoneSpec(_Spec):
    code: Code
    name: str | None = None
    kind: Literal["dma", "pressure_zone", "supply_zone"] = "dma"
    parent: str | None = None
    min_service_pressure_bar: float | None = Field(None, ge=0)
    max_service_pressure_bar: float | None = Field(None, ge=0)
    polygon: list[XY] | None = Field(
        None, description="outer ring as [x, y] positions (closed automatically)"
    )
    geometry: dict[str, Any] | None = Field(None, description="a GeoJSON Polygon/MultiPolygon")

    @field_validator("polygon")
    @classmethod
    def _ring(cls, v: list[XY] | None) -> list[XY] | None:
        if v is None:
            return v
        if len(v) < 3:
            raise ValueError("a polygon needs at least 3 corners")
        return v if v[0] == v[-1] else [*v, v[0]]

    @field_validator("geometry")
    @classmethod
    def _geometry(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and v.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("must be a GeoJSON Polygon or MultiPolygon")
        return v

    @model_validator(mode="after")
    def _one_shape(self) -> ZoneSpec:
        if self.polygon is not None and self.geometry is not None:
            raise ValueError("give either polygon or geometry, not both")
        lo, hi = self.min_service_pressure_bar, self.max_service_pressure_bar
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_service_pressure_bar is above max_service_pressure_bar")
        return self

    def to_zone(self) -> Zone:
        geometry: dict[str, Any] | None = self.geometry
        if self.polygon is not None:
            geometry = {"type": "Polygon", "coordinates": [[[x, y] for x, y in self.polygon]]}
        return Zone(
            code=self.code,
            name=self.name or self.code,
            kind=self.kind,
            parent=self.parent,
            min_service_pressure_bar=self.min_service_pressure_bar,
            max_service_pressure_bar=self.max_service_pressure_bar,
            geometry=geometry,
        )


class NodeSpec(_Spec):
    code: Code
    kind: Literal["junction", "reservoir", "tank"] = "junction"
    x: float | None = None
    y: float | None = None
    elevation_m: float | None = None
    base_demand_lps: float | None = Field(None, ge=0)
    zone: str | None = None


class PipeSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    code: Code
    from_: str = Field(alias="from")
    to: str
    diameter_mm: float = Field(gt=0)
    length_m: float | None = Field(None, ge=0, description="default: measured along the line")
    roughness: float | None = Field(None, gt=0)
    status: Literal["open", "closed", "cv"] = "open"
    material: str | None = None
    install_year: int | None = Field(None, ge=1850, le=2200)
    vertices: list[XY] = Field(default_factory=list)


class ValveSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    code: Code
    kind: Literal["PRV", "PSV", "PBV", "FCV", "TCV", "GPV", "isolation"] = "PRV"
    from_: str = Field(alias="from")
    to: str
    diameter_mm: float | None = Field(None, gt=0)
    setting_bar: float | None = Field(None, ge=0, description="PRV/PSV/PBV outlet pressure")
    setting_m: float | None = Field(None, ge=0, description="the same in metres of head")
    status: Literal["active", "open", "closed"] = "active"
    zone: str | None = None
    vertices: list[XY] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_setting(self) -> ValveSpec:
        if self.setting_bar is not None and self.setting_m is not None:
            raise ValueError("give either setting_bar or setting_m, not both")
        return self

    @property
    def setting(self) -> float | None:
        if self.setting_bar is not None:
            return round(self.setting_bar * BAR_TO_M, 6)
        return self.setting_m


class NetworkSpec(_Spec):
    code: Code | None = Field(None, description="default: the file name, or 'site'")
    name: str | None = None
    inp: str | None = Field(None, description="EPANET .inp file, relative to the site file")
    geojson: str | None = Field(None, description="GeoJSON file, relative to the site file")
    crs: Annotated[str, StringConstraints(pattern=r"^(local|EPSG:[0-9]{4,6})$")] | None = None
    prefix: str = ""
    zone: str | None = Field(None, description="zone of every node that names none")
    zones_from_polygons: bool = True
    nodes: list[NodeSpec] = Field(default_factory=list)
    pipes: list[PipeSpec] = Field(default_factory=list)
    valves: list[ValveSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_file(self) -> NetworkSpec:
        if self.inp is not None and self.geojson is not None:
            raise ValueError("give either inp or geojson, not both")
        return self


class PointSpec(_Spec):
    """Settings of one point that differ from its device profile (only the keys given count)."""

    name: Code = Field(description="a point id the device's profile publishes")
    unit: str = ""
    kind: Literal["analog", "counter", "status", "setpoint", "bitfield"] = "analog"
    poll_period_s: float = Field(60.0, gt=0)


class DeviceSpec(_Spec):
    code: Code
    kind: Literal["pressure_sensor", "prv_controller", "district_meter", "customer_meter"]
    profile: str = Field(min_length=1, description="device profile in firmware_configs/")
    unit_id: int | None = Field(None, ge=0, le=247, description="Modbus unit (slave) id")
    node: str | None = None
    pipe: str | None = None
    at: XY | None = Field(None, description="[x, y] when not at a node")
    zone: str | None = None
    flow_sign: Literal[1, -1] = Field(1, description="+1: forward flow goes into the zone")
    serial_no: str | None = None
    enabled: bool = True
    attrs: dict[str, Any] = Field(default_factory=dict)
    poll_period_s: float | None = Field(
        None,
        gt=0,
        description="how often the gateway polls this device (its gateway.yaml poll_s); "
        "default: the profile's period of each point",
    )
    points: list[PointSpec] = Field(
        default_factory=list,
        description="settings that differ from the profile; every point the profile "
        "publishes is registered anyway",
    )
    control: ControlConfig | None = Field(
        None,
        description="PRV controllers: how the gateway sets this PRV's outlet pressure "
        "(docs/pressure-management.md)",
    )


class GatewaySpec(_Spec):
    code: Code
    name: str = ""
    zone: str | None = None
    at: XY | None = None
    description: str = ""
    allowed: bool = True
    devices: list[DeviceSpec] = Field(default_factory=list)


class SiteSpec(_Spec):
    version: Literal[1] = 1
    site: str = Field(min_length=1, description="the name of the site (village)")
    profiles_dir: str | None = Field(
        None,
        description="folder of the device profiles, relative to this file; default: the "
        "firmware_configs/ folder of this suvnet",
    )
    zones: list[ZoneSpec] = Field(default_factory=list)
    network: NetworkSpec | None = None
    gateways: list[GatewaySpec] = Field(default_factory=list)


# ---------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class SiteFile:
    """A validated site file, with what is needed to point at its lines.

    ``sections`` names the extra top-level sections (handled by other packages), in file order.
    """

    path: Path
    spec: SiteSpec
    raw: Any
    sections: tuple[str, ...] = ()
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    """The device profiles the file's devices use, by name."""

    def error(self, loc: Loc, message: str) -> FileFormatError:
        return FileFormatError(str(self.path), line_of(self.raw, loc), field_name(loc), message)

    def points_of(self, device: DeviceSpec) -> list[Point]:
        """The registry points of ``device``: every point id its profile publishes (bit
        sub-points included), with the device's and the file's settings on top."""
        overrides = {p.name: p for p in device.points}
        out: list[Point] = []
        for pp in published_points(self.profiles[device.profile]):
            pt = Point(device.code, pp.name, pp.unit, pp.kind, pp.poll_s)
            if device.poll_period_s is not None:
                pt = replace(pt, poll_period_s=device.poll_period_s)
            field_spec = overrides.get(pp.bit_of or "")  # a bit is read with its register
            if field_spec is not None and "poll_period_s" in field_spec.model_fields_set:
                pt = replace(pt, poll_period_s=field_spec.poll_period_s)
            if device.control is not None and pt.name in CONTROLLER_POINT_NAMES:
                pt = replace(pt, poll_period_s=device.control.interval_s)  # one per decision
            spec = overrides.get(pt.name)
            if spec is not None:
                given = spec.model_fields_set - {"name"}
                pt = replace(pt, **{k: getattr(spec, k) for k in given})
            out.append(pt)
        return out


# ---------------------------------------------------------------------------- extra sections

SITE_SECTIONS_GROUP = "suvnet.site_sections"


@dataclass(frozen=True)
class SectionContext:
    """What a section handler gets to point at lines, raise errors and report changes.

    ``error(("rules", 2, "limit"), "needs a limit")`` returns a FileFormatError naming the
    file, the line of ``<section>.rules[2].limit`` and that field; the handler raises it.
    ``log`` is the apply's ChangeLog (add ``created``/``updated``/``unchanged`` entries).
    """

    site: SiteFile
    name: str
    log: ChangeLog

    def error(self, loc: Loc, message: str) -> FileFormatError:
        return self.site.error((self.name, *loc), message)

    def line(self, loc: Loc) -> int | None:
        return line_of(self.site.raw, (self.name, *loc))


SectionHandler = Callable[[Conn, Any, SectionContext, bool], None]
"""``handler(conn, data, ctx, dry_run)``: apply one top-level section of a site file.

It runs inside the site apply's transaction (after zones, network, gateways, devices and
points are written), so it sees them, and anything it raises rolls the whole apply back.
``data`` is the parsed YAML of the section (``None`` when it is empty). It must be
idempotent: applying the same section twice reports everything ``unchanged``.
"""


def section_handler(name: str) -> SectionHandler | None:
    """The installed handler of a top-level section, or None when no package handles it."""
    for ep in entry_points(group=SITE_SECTIONS_GROUP, name=name):
        module = ep.value.split(":", 1)[0]
        try:
            handler: SectionHandler = ep.load()
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                return None  # the package is not part of this install
            raise
        return handler
    return None


def _duplicates(spec: SiteSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []

    def check(items: Sequence[tuple[Loc, str]], what: str) -> None:
        first: dict[str, Loc] = {}
        for loc, code in items:
            if code in first:
                problems.append(
                    (loc, f"{what} '{code}' appears twice (first at {field_name(first[code])})")
                )
            else:
                first[code] = loc

    check([(("zones", i, "code"), z.code) for i, z in enumerate(spec.zones)], "zone")
    check([(("gateways", i, "code"), g.code) for i, g in enumerate(spec.gateways)], "gateway")
    check(
        [
            (("gateways", i, "devices", j, "code"), d.code)
            for i, g in enumerate(spec.gateways)
            for j, d in enumerate(g.devices)
        ],
        "device",
    )
    for i, g in enumerate(spec.gateways):
        for j, d in enumerate(g.devices):
            check(
                [
                    (("gateways", i, "devices", j, "points", k, "name"), p.name)
                    for k, p in enumerate(d.points)
                ],
                "point",
            )
            if d.node is not None and d.at is not None:
                problems.append(
                    (("gateways", i, "devices", j, "at"), "give either node or at, not both")
                )
    if spec.network is not None:
        net = spec.network
        check([(("network", "nodes", i, "code"), n.code) for i, n in enumerate(net.nodes)], "node")
        check(
            [(("network", "pipes", i, "code"), p.code) for i, p in enumerate(net.pipes)]
            + [(("network", "valves", i, "code"), v.code) for i, v in enumerate(net.valves)],
            "link",
        )
    return problems


_FRIENDLY = {
    "extra_forbidden": "unknown key (misspelt? docs/site.md lists the keys)",
    "missing": "is required",
}


def _msg(error: Any) -> str:
    return _FRIENDLY.get(str(error["type"]), str(error["msg"]))


def profiles_folder(site_path: Path, spec: SiteSpec) -> Path:
    """Where the device profiles of a site file are: its ``profiles_dir`` (relative to the
    file) or the ``firmware_configs/`` folder of this suvnet."""
    if spec.profiles_dir is None:
        return default_profiles_dir()
    folder = Path(spec.profiles_dir)
    return folder if folder.is_absolute() else site_path.parent / folder


def _check_profiles(site: SiteFile) -> SiteFile:
    """Load the profiles the devices name; check each device's kind and points against its
    profile. Returns the site with its profiles."""
    spec = site.spec
    devices = [(i, j, d) for i, g in enumerate(spec.gateways) for j, d in enumerate(g.devices)]
    if not devices:
        return site
    folder = profiles_folder(site.path, spec)
    try:
        available = load_profiles(folder)
    except FileFormatError as exc:
        where = ("profiles_dir",) if spec.profiles_dir is not None else ()
        raise site.error(where, f"cannot load the device profiles: {exc}") from exc
    for i, j, d in devices:
        loc: Loc = ("gateways", i, "devices", j)
        prof = available.get(d.profile)
        if prof is None:
            known = ", ".join(sorted(available)) or "none"
            raise site.error(
                (*loc, "profile"), f"no device profile '{d.profile}' in {folder} (known: {known})"
            )
        if prof.device_kind != d.kind:
            raise site.error(
                (*loc, "kind"),
                f"profile '{d.profile}' is for a {prof.device_kind}, not a {d.kind}",
            )
        published = {p.name for p in published_points(prof)}
        for k, p in enumerate(d.points):
            if p.name not in published:
                raise site.error(
                    (*loc, "points", k, "name"),
                    f"profile '{d.profile}' publishes no point '{p.name}' (it publishes "
                    f"{', '.join(sorted(published))}): readings of this point would never come",
                )
        if d.control is not None:
            _check_control(site, loc, d=d, prof=prof, available=available, devices=devices)
    used = {d.profile for _, _, d in devices}
    return replace(site, profiles={name: available[name] for name in sorted(used)})


def _check_control(
    site: SiteFile,
    loc: Loc,
    *,
    d: DeviceSpec,
    prof: Profile,
    available: Mapping[str, Profile],
    devices: Sequence[tuple[int, int, DeviceSpec]],
) -> None:
    """A PRV's ``control:`` against its profile and the devices of the file."""
    cfg = d.control
    assert cfg is not None
    if prof.controller is None:
        raise site.error(
            (*loc, "control"),
            f"profile '{d.profile}' has no controller section: the gateway cannot regulate it",
        )
    problems = config_problems(cfg, prof.setpoint_range)
    if problems:
        raise site.error((*loc, "control", *problems[0].loc), problems[0].message)
    in_file = {dev.code: dev for _, _, dev in devices}
    for k, sig in enumerate(cfg.signals()):
        other = in_file.get(sig.device)
        if other is None or other.profile not in available:
            continue  # checked against the database when applied
        names = {p.name for p in published_points(available[other.profile])}
        if sig.point not in names:
            raise site.error(
                (*loc, "control", *signal_loc(cfg, k), "point"),
                f"{sig.device} ({other.profile}) publishes no point '{sig.point}'",
            )


def load_site(path: Path | str) -> SiteFile:
    """Read and validate a site file; a problem raises FileFormatError (file, line, field).

    Every device's profile is loaded (``profiles_dir``) and checked: the kind must match and
    every point the file names must be one the profile publishes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileFormatError(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    raw = load_yaml_with_lines(text, str(path))
    if not isinstance(raw, dict):
        raise FileFormatError(str(path), 1, None, "a site file must be a mapping (key: value)")
    sections = tuple(k for k in raw if isinstance(k, str) and k not in SiteSpec.model_fields)
    for name in sections:
        if section_handler(name) is None:
            raise FileFormatError(
                str(path),
                line_of(raw, (name,)),
                name,
                f"unknown section '{name}': no installed package handles it "
                "(misspelt? docs/site.md lists the sections)",
            )
    try:
        spec = SiteSpec.model_validate({k: v for k, v in raw.items() if k not in sections})
    except ValidationError as exc:
        # a misspelt key gives "extra" and "missing" errors: the extra one has the line
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc = tuple(first["loc"])
        more = ""
        if len(errors) > 1:
            others = [
                f"line {line_of(raw, e['loc'])} {field_name(e['loc'])}: {_msg(e)}"
                for e in errors[1:6]
            ]
            more = f" (and {len(errors) - 1} more: " + "; ".join(others) + ")"
        raise FileFormatError(
            str(path), line_of(raw, loc), field_name(loc), f"{_msg(first)}{more}"
        ) from exc
    site = SiteFile(path, spec, raw, sections)
    problems = _duplicates(spec)
    if problems:
        loc, message = problems[0]
        raise site.error(loc, message)
    return _check_profiles(site)


# ---------------------------------------------------------------------------- network building


def _length(coords: Sequence[Coord], crs: str) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(coords):
        if crs == "EPSG:4326":  # haversine on the mean earth radius
            p1, p2 = math.radians(y1), math.radians(y2)
            dp, dl = p2 - p1, math.radians(x2 - x1)
            a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
            total += 2 * 6_371_008.8 * math.asin(math.sqrt(a))
        else:
            total += math.hypot(x2 - x1, y2 - y1)
    return round(total, 3)


def build_network(site: SiteFile, existing_zones: Sequence[Zone] = ()) -> Network | None:
    """The network the site file describes (its .inp/GeoJSON file plus inline elements)."""
    spec = site.spec.network
    if spec is None:
        return None
    base_dir = site.path.parent
    default_code = "site"
    if spec.inp is not None or spec.geojson is not None:
        rel = spec.inp or spec.geojson or ""
        key = "inp" if spec.inp is not None else "geojson"
        file = (base_dir / rel).resolve()
        if not file.exists():
            raise site.error(("network", key), f"file not found: {file}")
        try:
            if spec.inp is not None:
                net = read_inp(
                    file,
                    code=spec.code,
                    name=spec.name,
                    crs=spec.crs or "local",
                    prefix=spec.prefix,
                )
            else:
                geo = read_geojson(
                    file, default_network=spec.code or file.stem, crs=spec.crs or None
                )
                if len(geo.networks) != 1:
                    raise site.error(
                        ("network", key), "the GeoJSON file must hold exactly one network"
                    )
                net = geo.networks[0]
                code = spec.code or net.info.code or default_code
                net = renamed(net, code, spec.name, spec.prefix)
        except FileFormatError as exc:
            raise FileFormatError(
                exc.path,
                exc.line,
                exc.field,
                f"{exc.message} (named by {site.path}:{line_of(site.raw, ('network', key))})",
            ) from exc
    else:
        net = Network(
            NetworkInfo(
                code=spec.code or default_code,
                name=spec.name or site.spec.site,
                crs=spec.crs or "EPSG:4326",
                source=site.path.name,
            )
        )
    code = net.info.code
    crs = net.info.crs
    nodes = list(net.nodes)
    coords: dict[str, Coord | None] = {
        n.code: (n.x, n.y) if n.x is not None and n.y is not None else None for n in nodes
    }
    known = set(coords)
    for i, n in enumerate(spec.nodes):
        if n.code in known:
            raise site.error(
                ("network", "nodes", i, "code"),
                f"node '{n.code}' is already in {spec.inp or spec.geojson}",
            )
        nodes.append(Node(n.code, n.kind, n.x, n.y, n.elevation_m, n.base_demand_lps, n.zone, code))
        coords[n.code] = (n.x, n.y) if n.x is not None and n.y is not None else None

    def line(a: str, b: str, vertices: Sequence[XY]) -> tuple[Coord, ...] | None:
        pa, pb = coords.get(a), coords.get(b)
        if pa is None or pb is None:
            return None
        return (pa, *vertices, pb)

    link_codes = {p.code for p in net.pipes} | {v.code for v in net.valves}
    link_codes |= {u.code for u in net.pumps}
    pipes = list(net.pipes)
    for i, p in enumerate(spec.pipes):
        if p.code in link_codes:
            raise site.error(("network", "pipes", i, "code"), f"'{p.code}' is already a link")
        geom = line(p.from_, p.to, p.vertices)
        length = p.length_m
        if length is None and geom is not None:
            length = _length(geom, crs)
        pipes.append(
            Pipe(
                p.code,
                p.from_,
                p.to,
                p.diameter_mm,
                length,
                p.roughness,
                p.status,
                p.material,
                p.install_year,
                geom,
                code,
            )
        )
    valves = list(net.valves)
    for i, v in enumerate(spec.valves):
        if v.code in link_codes:
            raise site.error(("network", "valves", i, "code"), f"'{v.code}' is already a link")
        valves.append(
            Valve(
                v.code,
                v.kind,
                v.from_,
                v.to,
                v.diameter_mm,
                v.setting,
                v.status,
                v.zone,
                line(v.from_, v.to, v.vertices),
                code,
            )
        )
    if spec.zone is not None:
        nodes = [n if n.zone else replace(n, zone=spec.zone) for n in nodes]
    out = Network(net.info, tuple(nodes), tuple(pipes), tuple(valves), net.pumps)
    problem = lonlat_problem(out)
    if problem:
        raise site.error(("network", "crs") if spec.crs else ("network",), problem)
    if spec.zones_from_polygons:
        zones = {z.code: z for z in existing_zones}
        zones.update({z.code: z.to_zone() for z in site.spec.zones})
        out = assign_zones(out, list(zones.values()))
    return out


# ---------------------------------------------------------------------------- applying


def _ref_error(site: SiteFile, loc: Loc, exc: UnknownReferenceError) -> FileFormatError:
    return site.error(
        (*loc, exc.kind),
        f"{exc.kind} '{exc.code}' is neither in this file nor in the database",
    )


def _node_zone(conn: Conn, node: str) -> str | None:
    row = conn.execute(
        "SELECT z.code FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.code = %s", (node,)
    ).fetchone()
    return str(row[0]) if row else None


def apply_site(
    conn: Conn,
    site: SiteFile,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
) -> ChangeLog:
    """Make the database match the site file, in one transaction; returns what changed.

    ``progress(done, total)`` is called while the network is written. With ``dry_run`` the
    changes are computed and reported, then rolled back. Afterwards the configurations the
    gateways announced are checked against the new registry (``gateway_config``, checked at
    ``now``, default the database's time); a disagreement is logged as a warning.
    """
    spec = site.spec
    log = ChangeLog()
    try:
        with conn.transaction(force_rollback=dry_run):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SITE_LOCK_KEY,))
            r = Resolver(conn)
            try:
                save_zones(conn, [z.to_zone() for z in spec.zones], log, r)
            except UnknownReferenceError as exc:
                bad = next((i for i, z in enumerate(spec.zones) if z.parent == exc.code), 0)
                raise site.error(
                    ("zones", bad, "parent"),
                    f"zone '{exc.code}' is neither in this file nor in the database",
                ) from exc
            network = build_network(site, list_zones(conn))
            if network is not None:
                total = network.size
                done = 0

                def step(n: int) -> None:
                    nonlocal done
                    done += n
                    if progress is not None:
                        progress(done, total)

                on_step: Progress | None = step if progress is not None else None
                try:
                    save_network(conn, network, log, resolver=r, progress=on_step)
                except UnknownReferenceError as exc:
                    raise _network_ref_error(site, exc) from exc
                except NetworkConflictError as exc:
                    raise site.error(("network",), str(exc)) from exc
            for i, g in enumerate(spec.gateways):
                gloc: Loc = ("gateways", i)
                gw = Gateway(
                    code=g.code,
                    name=g.name,
                    zone=g.zone,
                    allowed=g.allowed,
                    x=g.at[0] if g.at else None,
                    y=g.at[1] if g.at else None,
                    description=g.description,
                )
                try:
                    log.add("gateways", g.code, upsert_gateway(conn, gw, r).change)
                except UnknownReferenceError as exc:
                    raise _ref_error(site, gloc, exc) from exc
                for j, d in enumerate(g.devices):
                    dloc: Loc = (*gloc, "devices", j)
                    try:
                        zone = d.zone
                        if zone is None and d.node is not None:
                            r.need("node", d.node)
                            zone = _node_zone(conn, d.node)
                        dev = Device(
                            code=d.code,
                            kind=d.kind,
                            profile=d.profile,
                            gateway=g.code,
                            unit_id=d.unit_id,
                            node=d.node,
                            pipe=d.pipe,
                            zone=zone,
                            flow_sign=d.flow_sign,
                            x=d.at[0] if d.at else None,
                            y=d.at[1] if d.at else None,
                            serial_no=d.serial_no,
                            enabled=d.enabled,
                            attrs=d.attrs,
                        )
                        log.add("devices", d.code, upsert_device(conn, dev, r).change)
                    except UnknownReferenceError as exc:
                        raise _ref_error(site, dloc, exc) from exc
                    for pt in site.points_of(d):
                        log.add("points", f"{d.code}/{pt.name}", upsert_point(conn, pt, r).change)
            _save_profiles(conn, site, log)
            _apply_controls(conn, site, log)
            for name in site.sections:
                handler = section_handler(name)
                if handler is None:  # uninstalled between load and apply
                    raise site.error((name,), f"no installed package handles section '{name}'")
                handler(conn, site.raw[name], SectionContext(site, name, log), dry_run)
            # what the gateways announced is checked again against the changed registry
            for check in recheck_gateway_configs(conn, now):
                if check.ok:
                    _log.info("%s", check.describe())
                else:
                    _log.warning("%s", check.describe())
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        diag = exc.diag.message_primary or str(exc)
        raise FileFormatError(
            str(site.path), None, None, f"the database refused the change: {diag}"
        ) from exc
    return log


def _save_profiles(conn: Conn, site: SiteFile, log: ChangeLog) -> None:
    """The profiles the file's devices use, as the office's reference (their write ranges
    check setpoints sent through the API)."""
    for name, prof in site.profiles.items():
        body = prof.model_dump(mode="json")
        row = conn.execute("SELECT body FROM device_profiles WHERE name = %s", (name,)).fetchone()
        if row is not None and row[0] == body:
            log.add("profiles", name, "unchanged")
            continue
        conn.execute(
            "INSERT INTO device_profiles (name, body) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body, updated_at = now()",
            (name, Jsonb(body)),
        )
        log.add("profiles", name, "created" if row is None else "updated")


def _apply_controls(conn: Conn, site: SiteFile, log: ChangeLog) -> None:
    """Store each PRV's controller configuration with its signals resolved: the gateway
    that polls each sensor (its ``source``), the inflow meter's sign. A sensor in another
    zone than the one the PRV feeds is refused."""
    for i, g in enumerate(site.spec.gateways):
        for j, d in enumerate(g.devices):
            if d.control is None:
                continue
            loc: Loc = ("gateways", i, "devices", j, "control")
            cfg = resolve_control(conn, d.code, g.code, d.control, _error_at(site, loc))
            row = conn.execute(
                "SELECT d.id, c.config FROM devices d LEFT JOIN prv_controls c "
                "ON c.device_id = d.id WHERE d.code = %s",
                (d.code,),
            ).fetchone()
            assert row is not None  # written above
            wire = cfg.wire()
            if row[1] == wire:
                log.add("prv controls", d.code, "unchanged")
                continue
            conn.execute(
                "INSERT INTO prv_controls (device_id, config, source, updated_by) "
                "VALUES (%s, %s, 'site', %s) ON CONFLICT (device_id) DO UPDATE SET "
                "config = EXCLUDED.config, source = 'site', updated_by = EXCLUDED.updated_by, "
                "updated_at = now()",
                (row[0], Jsonb(wire), f"site:{site.path.name}"),
            )
            log.add("prv controls", d.code, "created" if row[1] is None else "updated")


ErrorAt = Callable[[Loc, str], Exception]


def _error_at(site: SiteFile, loc: Loc) -> ErrorAt:
    def error(rel: Loc, message: str) -> Exception:
        return site.error((*loc, *rel), message)

    return error


def resolve_control(
    conn: Conn, device: str, gateway: str, cfg: ControlConfig, error: ErrorAt
) -> ControlConfig:
    """``cfg`` with its signals resolved against the registry
    (:func:`suvnet.prvcontrol.resolve_signals`); ``error(loc, message)`` makes the exception
    raised for the first problem."""
    prv = conn.execute(
        "SELECT z.code FROM devices d LEFT JOIN zones z ON z.id = d.zone_id WHERE d.code = %s",
        (device,),
    ).fetchone()
    names = [s.device for s in cfg.signals()]
    rows = conn.execute(
        "SELECT d.code, g.code, z.code, d.flow_sign, "
        "coalesce(array_agg(p.name) FILTER (WHERE p.name IS NOT NULL), '{}') "
        "FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id "
        "LEFT JOIN zones z ON z.id = d.zone_id LEFT JOIN points p ON p.device_id = d.id "
        "WHERE d.code = ANY(%s) GROUP BY d.code, g.code, z.code, d.flow_sign",
        (names,),
    ).fetchall()
    infos = {r[0]: SignalDevice(r[1], r[2], int(r[3]), frozenset(r[4])) for r in rows}
    out, problems = resolve_signals(cfg, device, gateway, prv[0] if prv else None, infos)
    if problems:
        first = problems[0]
        message = first.message.replace(
            "is not registered", "is neither in this file nor in the database"
        )
        raise error(first.loc, message)
    return out


def _network_ref_error(site: SiteFile, exc: UnknownReferenceError) -> FileFormatError:
    net = site.spec.network
    assert net is not None
    for i, n in enumerate(net.nodes):
        if exc.kind == "zone" and n.zone == exc.code:
            return _ref_error(site, ("network", "nodes", i), exc)
    for i, p in enumerate(net.pipes):
        if exc.kind == "node" and exc.code in (p.from_, p.to):
            key = "from" if p.from_ == exc.code else "to"
            return site.error(
                ("network", "pipes", i, key),
                f"node '{exc.code}' is neither in this file nor in the database",
            )
    for i, v in enumerate(net.valves):
        if exc.kind == "node" and exc.code in (v.from_, v.to):
            key = "from" if v.from_ == exc.code else "to"
            return site.error(
                ("network", "valves", i, key),
                f"node '{exc.code}' is neither in this file nor in the database",
            )
        if exc.kind == "zone" and v.zone == exc.code:
            return _ref_error(site, ("network", "valves", i), exc)
    if exc.kind == "zone" and net.zone == exc.code:
        return _ref_error(site, ("network",), exc)
    return site.error(("network",), str(exc))


def apply_site_file(
    url: str,
    path: Path | str,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
) -> ChangeLog:
    """Load, validate and apply a site file against the database at ``url``."""
    from suvnet.db import connect

    site = load_site(path)
    with connect(url) as conn:
        return apply_site(conn, site, dry_run=dry_run, progress=progress, now=now)
