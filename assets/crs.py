"""Coordinate reference systems of the asset register (pure: no database).

Everything is stored in WGS 84 (EPSG:4326, longitude/latitude). Every import names the CRS of
its coordinates; pyproj transforms them, and the asset keeps the name of the source CRS and
the survey accuracy. The names an engineer can use:

* ``EPSG:nnnn``: any system pyproj knows, for example
  ``EPSG:4326`` (WGS 84), ``EPSG:32641``/``EPSG:32642`` (UTM 41N/42N),
  ``EPSG:28410``..``EPSG:28413`` (SK-42, Pulkovo 1942, Gauss-Krüger 6-degree zones 10-13,
  which cover Uzbekistan).
* the short names in :data:`ALIASES` (``WGS84``, ``UTM41N``, ``SK42-GK12``...).
* a local system registered in the database (table ``asset_crs``), for the SK-63 district
  zones whose parameters the survey office gives (``suvnet assets crs add``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from assets.errors import CrsError
from assets.model import Geom

WGS84 = "EPSG:4326"

ALIASES: dict[str, str] = {
    "WGS84": "EPSG:4326",
    "WGS-84": "EPSG:4326",
    "UTM41N": "EPSG:32641",
    "UTM42N": "EPSG:32642",
    "SK42-GK10": "EPSG:28410",
    "SK42-GK11": "EPSG:28411",
    "SK42-GK12": "EPSG:28412",
    "SK42-GK13": "EPSG:28413",
}
"""Short names for the systems survey data in Uzbekistan usually arrives in."""

SK63_EXAMPLE = (
    "+proj=tmerc +lat_0=0 +lon_0=66.55 +k=1 +x_0=1300000 +y_0=-9214.69 +ellps=krass "
    "+towgs84=23.92,-141.27,-80.9,0,0.35,0.82,-0.12 +units=m +no_defs"
)
"""The shape of an SK-63 zone definition (Krasovsky ellipsoid, transverse Mercator, the
Pulkovo 1942 shift to WGS 84). The numbers here are an example only: each SK-63 zone has its
own central meridian and false easting/northing, given by the survey office."""

_EPSG_RE = re.compile(r"^EPSG:\d{4,6}$", re.IGNORECASE)
_LOCAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class NamedCrs:
    """A resolved CRS: the name the asset keeps (``source_crs``) and the pyproj object."""

    code: str
    crs: CRS

    @property
    def is_wgs84(self) -> bool:
        return self.code == WGS84


def normalise(code: str) -> str:
    """The canonical spelling of a CRS name (``epsg:32642`` -> ``EPSG:32642``, aliases
    resolved)."""
    c = code.strip()
    alias = ALIASES.get(c.upper())
    if alias:
        return alias
    if _EPSG_RE.match(c):
        return c.upper()
    return c


def resolve(code: str | None, local: Mapping[str, str] | None = None) -> NamedCrs:
    """The CRS named ``code``: an EPSG code, an alias, or a local system of ``local``
    (code -> PROJ definition, from the ``asset_crs`` table). A missing or unknown name is a
    :class:`CrsError` that says what is accepted."""
    if code is None or not code.strip():
        raise CrsError(
            "the coordinate system is missing: name it (for example EPSG:4326 for GPS "
            "longitude/latitude, EPSG:32642 for UTM 42N, SK42-GK12 for SK-42 zone 12)"
        )
    name = normalise(code)
    if name.lower() == "local":
        raise CrsError(
            "coordinates in 'local' drawing units cannot be placed on the map: name the "
            "survey's coordinate system"
        )
    return _resolve(name, tuple(sorted((local or {}).items())))


@lru_cache(maxsize=64)
def _resolve(name: str, local: tuple[tuple[str, str], ...]) -> NamedCrs:
    defs = dict(local)
    if name in defs:
        try:
            return NamedCrs(name, CRS.from_user_input(defs[name]))
        except PyprojCRSError as exc:
            raise CrsError(
                f"the local coordinate system {name} has a bad definition: {exc}"
            ) from exc
    if not _EPSG_RE.match(name):
        known = ", ".join(sorted(ALIASES))
        raise CrsError(
            f"unknown coordinate system {name!r}: use an EPSG code (EPSG:nnnn), one of {known}, "
            "or a local system registered with 'suvnet assets crs add'"
        )
    try:
        return NamedCrs(name, CRS.from_user_input(name))
    except PyprojCRSError as exc:
        raise CrsError(f"unknown coordinate system {name!r}: {exc}") from exc


def check_definition(definition: str) -> CRS:
    """A local system's definition read by pyproj (a :class:`CrsError` if it cannot be)."""
    try:
        crs = CRS.from_user_input(definition)
    except PyprojCRSError as exc:
        raise CrsError(f"not a coordinate system definition: {exc}") from exc
    if not crs.is_projected and not crs.is_geographic:
        raise CrsError("a local coordinate system must be projected or geographic")
    return crs


@lru_cache(maxsize=64)
def _transformer(src: CRS, dst: CRS) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def to_wgs84(geom: Geom, src: NamedCrs) -> Geom:
    """``geom`` (in ``src``) transformed to WGS 84 (2D). Raises :class:`CrsError` when the
    result is no place on Earth or lies far outside the area the source CRS is made for (the
    usual sign of a wrong CRS, such as UTM metres said to be longitudes)."""
    if src.is_wgs84:
        out = shapely.force_2d(geom)
    else:
        if src.crs.is_projected:
            minx, miny, maxx, maxy = shapely.bounds(geom).tolist()
            if minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90:
                raise CrsError(
                    f"the coordinates ({minx:.6g}, {miny:.6g}) look like longitude/latitude "
                    f"degrees, not the metres of {src.code}: is the CRS right?"
                )
        tr = _transformer(src.crs, CRS.from_epsg(4326))
        out = shapely.transform(shapely.force_2d(geom), lambda xy: _apply(tr, xy))
    check_lonlat(out, src)
    return out


def from_wgs84(geom: Geom, dst: NamedCrs) -> Geom:
    """``geom`` (WGS 84) in the coordinates of ``dst``."""
    if dst.is_wgs84:
        return geom
    tr = _transformer(CRS.from_epsg(4326), dst.crs)
    return shapely.transform(geom, lambda xy: _apply(tr, xy))


def _apply(tr: Transformer, xy: NDArray[np.float64]) -> NDArray[np.float64]:
    x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
    xy = xy.copy()
    xy[:, 0] = x
    xy[:, 1] = y
    return xy


def check_lonlat(geom: Geom, src: NamedCrs, margin_deg: float = 2.0) -> None:
    """Refuse WGS 84 coordinates that cannot come from ``src``."""
    minx, miny, maxx, maxy = shapely.bounds(geom).tolist()
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise CrsError(f"the coordinates cannot be transformed from {src.code}")
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise CrsError(
            f"the coordinates are not longitudes/latitudes in {src.code} "
            f"(x {minx:.6g}..{maxx:.6g}, y {miny:.6g}..{maxy:.6g}): is the CRS right?"
        )
    area = src.crs.area_of_use
    if (
        area is not None
        and not src.is_wgs84
        and (
            maxx < area.west - margin_deg
            or minx > area.east + margin_deg
            or maxy < area.south - margin_deg
            or miny > area.north + margin_deg
        )
    ):
        raise CrsError(
            f"the coordinates land at {minx:.4f}, {miny:.4f} (longitude, latitude), far "
            f"outside the area of {src.code} ({area.name}): is the CRS right?"
        )
