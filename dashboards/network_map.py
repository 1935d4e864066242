"""The pipes and zone outlines of the registry as one GeoJSON file for the Geomap panel.

Only networks whose coordinates are longitude/latitude (``networks.crs`` = EPSG:4326, or no
network recorded) are drawn. A pipe without its own geometry is drawn as a straight line
between its end nodes. Pure core :func:`network_geojson`; :func:`fetch_network` reads the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from dashboards.errors import DashboardsError


@dataclass(frozen=True)
class ZoneShape:
    code: str
    name: str
    geometry: Mapping[str, Any] | None


@dataclass(frozen=True)
class PipeShape:
    code: str
    zone: str | None
    diameter_mm: float | None
    material: str | None
    status: str
    geometry: Mapping[str, Any] | None
    start: tuple[float, float] | None  # (lon, lat) of the from node
    end: tuple[float, float] | None


def _valid_lonlat(p: Any) -> bool:
    return (
        isinstance(p, list | tuple)
        and len(p) >= 2
        and all(isinstance(v, int | float) for v in p[:2])
        and -180 <= p[0] <= 180
        and -90 <= p[1] <= 90
    )


def network_geojson(zones: Iterable[ZoneShape], pipes: Iterable[PipeShape]) -> dict[str, Any]:
    """A FeatureCollection: zone polygons (``kind: zone``) and pipe lines (``kind: pipe``)."""
    features: list[dict[str, Any]] = []
    for z in zones:
        if z.geometry is None:
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "zone", "code": z.code, "name": z.name},
                "geometry": dict(z.geometry),
            }
        )
    for p in pipes:
        coords: list[Any] | None = None
        if p.geometry is not None and p.geometry.get("type") == "LineString":
            coords = list(p.geometry.get("coordinates") or [])
        elif p.start is not None and p.end is not None:
            coords = [list(p.start), list(p.end)]
        if not coords or len(coords) < 2 or not all(_valid_lonlat(c) for c in coords):
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "kind": "pipe",
                    "code": p.code,
                    "zone": p.zone,
                    "diameter_mm": p.diameter_mm,
                    "material": p.material,
                    "status": p.status,
                },
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    return {"type": "FeatureCollection", "features": features}


_ZONES_SQL = "SELECT code, name, geometry FROM zones ORDER BY code"
_PIPES_SQL = """
SELECT p.code, z.code, p.diameter_mm, p.material, p.status, p.geometry,
       a.x, a.y, b.x, b.y
FROM pipes p
JOIN nodes a ON a.id = p.from_node_id
JOIN nodes b ON b.id = p.to_node_id
LEFT JOIN networks nw ON nw.id = p.network_id
LEFT JOIN zones z ON z.id = coalesce(a.zone_id, b.zone_id)
WHERE coalesce(nw.crs, 'EPSG:4326') = 'EPSG:4326'
ORDER BY p.code
"""


def _geom(v: Any) -> Mapping[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = json.loads(v)
    return v if isinstance(v, dict) else None


def _pt(x: Any, y: Any) -> tuple[float, float] | None:
    return None if x is None or y is None else (float(x), float(y))


def fetch_network(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Read zones and pipes from the registry and build the GeoJSON."""
    try:
        zones = [ZoneShape(c, n, _geom(g)) for c, n, g in conn.execute(_ZONES_SQL).fetchall()]
        pipes = [
            PipeShape(r[0], r[1], r[2], r[3], r[4], _geom(r[5]), _pt(r[6], r[7]), _pt(r[8], r[9]))
            for r in conn.execute(_PIPES_SQL).fetchall()
        ]
    except psycopg.Error as exc:
        raise DashboardsError(f"cannot read the network registry: {exc}") from exc
    return network_geojson(zones, pipes)
