"""Small geometry helpers on WGS 84 coordinates (pure)."""

from __future__ import annotations

import math

from pyproj import Geod

from assets.model import Geom

GEOD = Geod(ellps="WGS84")
M_PER_DEG_LAT = 111_320.0


def geodesic_length_m(line: Geom) -> float:
    """Length of a WGS 84 line on the ellipsoid, in metres."""
    return float(GEOD.geometry_length(line))


def metres_to_degrees(metres: float, lat: float) -> tuple[float, float]:
    """(dx, dy) in degrees of longitude and latitude that make ``metres`` at latitude
    ``lat``."""
    dy = metres / M_PER_DEG_LAT
    dx = metres / (M_PER_DEG_LAT * max(0.01, math.cos(math.radians(lat))))
    return dx, dy


def local_metres(lon0: float, lat0: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude near (lon0, lat0): an equirectangular
    approximation, good to well under a percent over a village or a district."""
    return M_PER_DEG_LAT * math.cos(math.radians(lat0)), M_PER_DEG_LAT
