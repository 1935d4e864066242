"""What an asset is: kinds, attributes and their checks (pure: values in, values out).

The same rules are written in the database (migration 0700: CHECK constraints and the
``asset_before_write`` trigger), so a change made in QGIS or in plain SQL meets them too; the
checks here say what is wrong per field before anything is written, for whole files at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import shapely

WATER_KINDS = (
    "pipe",
    "valve",
    "hydrant",
    "prv",
    "pump",
    "pumping_station",
    "tank",
    "well",
    "meter_chamber",
    "service_connection",
    "node",
)
SEWER_KINDS = (
    "gravity_sewer",
    "pressure_sewer",
    "manhole",
    "sewer_pumping_station",
    "treatment_works",
)
KINDS = WATER_KINDS + SEWER_KINDS
LINE_KINDS = frozenset({"pipe", "service_connection", "gravity_sewer", "pressure_sewer"})
AREA_KINDS = frozenset({"pumping_station", "tank", "sewer_pumping_station", "treatment_works"})
PIPE_KINDS = frozenset({"pipe", "gravity_sewer", "pressure_sewer"})
"""Lines that carry the network (service connections hang off them)."""
NODE_KINDS = frozenset(KINDS) - LINE_KINDS
STATUSES = ("planned", "active", "abandoned")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")

System = Literal["water", "sewer"]
Geom = Any
"""A shapely geometry (typed loosely: the shapely stubs' overloads want the exact class)."""


def system_of(kind: str) -> System:
    return "sewer" if kind in SEWER_KINDS else "water"


def geometry_types(kind: str) -> tuple[str, ...]:
    if kind in LINE_KINDS:
        return ("LineString",)
    if kind in AREA_KINDS:
        return ("Point", "Polygon")
    return ("Point",)


@dataclass(frozen=True)
class Asset:
    """One asset as the register keeps it. ``geometry`` is in WGS 84 (longitude, latitude);
    ``source_crs`` and ``accuracy_m`` say how it was surveyed."""

    code: str
    kind: str
    geometry: Geom
    name: str = ""
    status: str = "active"
    material: str | None = None
    diameter_mm: float | None = None
    install_year: int | None = None
    depth_m: float | None = None
    elevation_m: float | None = None
    invert_start_m: float | None = None
    invert_end_m: float | None = None
    pressure_class: str | None = None
    owner: str | None = None
    condition_grade: int | None = None
    cadastral_no: str | None = None
    land_plot: str | None = None
    accuracy_m: float | None = None
    source_crs: str = "EPSG:4326"
    zone: str | None = None
    ref_code: str | None = None
    house_id: int | None = None
    account_no: str | None = None
    feed_pipe: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> System:
        return system_of(self.kind)

    def with_changes(self, **changes: Any) -> Asset:
        return replace(self, **changes)


NUMBER_FIELDS: dict[str, tuple[float, float]] = {
    "diameter_mm": (0.0, 5000.0),
    "depth_m": (0.0, 200.0),
    "elevation_m": (-500.0, 9000.0),
    "invert_start_m": (-500.0, 9000.0),
    "invert_end_m": (-500.0, 9000.0),
    "accuracy_m": (0.0, 1e6),
}
"""Numeric fields and their allowed range (the diameter must be above its lower bound)."""
INT_FIELDS: dict[str, tuple[int, int]] = {
    "install_year": (1850, 2200),
    "condition_grade": (1, 5),
}
TEXT_FIELDS = (
    "name",
    "material",
    "pressure_class",
    "owner",
    "cadastral_no",
    "land_plot",
    "zone",
    "ref_code",
    "account_no",
    "feed_pipe",
)
EDITABLE = tuple(
    f.name for f in fields(Asset) if f.name not in ("code", "geometry", "source_crs", "attrs")
)
"""The fields a change through the API may set (besides the geometry)."""


def problems(asset: Asset) -> list[tuple[str, str]]:
    """Every (field, message) that is wrong with ``asset``; empty when it may be saved."""
    out: list[tuple[str, str]] = []
    if not CODE_RE.match(asset.code or ""):
        out.append(
            (
                "code",
                (
                    "must be 1-64 letters, digits or _ . : / - (starting with a letter or digit), "
                    f"not {asset.code!r}"
                ),
            )
        )
    if asset.kind not in KINDS:
        out.append(("kind", f"must be one of {', '.join(KINDS)}, not {asset.kind!r}"))
    if asset.status not in STATUSES:
        out.append(("status", f"must be planned, active or abandoned, not {asset.status!r}"))
    for name, (lo, hi) in NUMBER_FIELDS.items():
        v = getattr(asset, name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            out.append((name, f"must be a number, not {v!r}"))
        elif not (lo <= v <= hi) or (name == "diameter_mm" and v <= 0):
            out.append((name, f"must be between {lo:g} and {hi:g}, not {v:g}"))
    for name, (ilo, ihi) in INT_FIELDS.items():
        v = getattr(asset, name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            out.append((name, f"must be a whole number, not {v!r}"))
        elif not (ilo <= v <= ihi):
            out.append((name, f"must be between {ilo} and {ihi}, not {v}"))
    for name in TEXT_FIELDS:
        v = getattr(asset, name)
        if v is not None and (not isinstance(v, str) or len(v) > 200):
            out.append((name, "must be text of at most 200 characters"))
    if asset.kind in KINDS:
        out.extend(geometry_problems(asset.kind, asset.geometry))
    links = (asset.house_id, asset.account_no, asset.feed_pipe)
    if asset.kind != "service_connection" and any(v is not None for v in links):
        out.append(("feed_pipe", "only a service connection links an address, account or pipe"))
    return out


_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)


def geom_type(geom: Geom) -> str:
    """The OGC type name of ``geom`` ("Point", "LineString", ...)."""
    tid = int(shapely.get_type_id(geom))
    return _TYPE_NAMES[tid] if 0 <= tid < len(_TYPE_NAMES) else "Unknown"


def geometry_problems(kind: str, geom: Geom | None) -> list[tuple[str, str]]:
    """What is wrong with ``geom`` as the geometry of a ``kind``."""
    if geom is None or shapely.is_empty(geom):
        return [("geometry", "is missing")]
    want = geometry_types(kind)
    if geom_type(geom) not in want:
        return [("geometry", f"must be {' or '.join(want)} for a {kind}, not {geom_type(geom)}")]
    if not shapely.is_valid(geom):
        return [("geometry", f"is not valid: {shapely.is_valid_reason(geom)}")]
    minx, miny, maxx, maxy = shapely.bounds(geom).tolist()
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        return [("geometry", "is not in longitude/latitude (WGS 84)")]
    if geom_type(geom) == "LineString" and shapely.length(geom) == 0:
        return [("geometry", "is a line of zero length")]
    return []
