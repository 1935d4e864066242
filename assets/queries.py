"""What the office API reads from the register (async psycopg, the API's pool): the map's
layers by bounding box, sensors with their latest values, open alarms on their assets and
zones, the check report, an asset's card with its history and documents.

The map is served by bounding box: one viewport's features at a time, the largest pipes
first, at most ``limit`` of them (the answer says when there were more), so that a 50,000
pipe network never travels as one document. With PostGIS the box is found by the GiST index
and PostgreSQL writes the GeoJSON; without it by the bounding-box columns' btree index, and
shapely writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import shapely
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from assets.model import KINDS, SEWER_KINDS

AConn = AsyncConnection[Any]
Layer = Literal["water", "sewer", "services"]
LAYER_KINDS: dict[str, tuple[str, ...]] = {
    "water": tuple(k for k in KINDS if k not in SEWER_KINDS and k != "service_connection"),
    "sewer": SEWER_KINDS,
    "services": ("service_connection",),
}
MAP_PROPS = "code, kind, system, status, diameter_mm, material, install_year, condition_grade"
MAX_LIMIT = 20_000


@dataclass(frozen=True)
class BBox:
    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        """``west,south,east,north`` in degrees (ValueError when it is not one)."""
        parts = [float(p) for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError("bbox must be west,south,east,north")
        w, s, e, n = parts
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError("bbox must be west,south,east,north in degrees, west < east")
        return cls(w, s, e, n)


async def spatial_mode(conn: AConn) -> str:
    cur = await conn.execute("SELECT value FROM suvnet_meta WHERE key = 'spatial_mode'")
    row = await cur.fetchone()
    if row is None:
        return "portable"
    value = row["value"] if isinstance(row, dict) else row[0]
    return "postgis" if value == "postgis" else "portable"


def _kinds(layers: Iterable[str]) -> list[str]:
    out: list[str] = []
    for layer in layers:
        out.extend(LAYER_KINDS.get(layer, ()))
    return out


async def _span(conn: AConn) -> float:
    """The largest width or height of any asset (degrees): how far left of the box an asset
    that reaches into it can start (the btree on minx bounds the search by it)."""
    cur = await conn.execute("SELECT max(greatest(maxx - minx, maxy - miny)) FROM assets")
    row = await cur.fetchone()
    value = (row["max"] if isinstance(row, dict) else row[0]) if row else None
    return float(value or 0.0)


async def map_features(conn: AConn, box: BBox, layers: Sequence[str], limit: int = 4000) -> bytes:
    """The assets of ``layers`` in ``box`` as a GeoJSON FeatureCollection (bytes), the
    widest pipes first; ``truncated`` says that there were more than ``limit``."""
    kinds = _kinds(layers)
    limit = max(1, min(limit, MAX_LIMIT))
    if not kinds:
        return orjson.dumps({"type": "FeatureCollection", "features": [], "truncated": False})
    if await spatial_mode(conn) == "postgis":
        cur = await conn.execute(
            "WITH hit AS ("  # noqa: S608 - constants only
            f" SELECT {MAP_PROPS}, geom, row_number() OVER (ORDER BY diameter_mm DESC NULLS LAST,"
            " code) AS rn FROM assets"
            " WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND kind = ANY(%s)"
            " ORDER BY rn LIMIT %s)"
            " SELECT count(*) AS n, coalesce(string_agg(json_build_object("
            "  'type', 'Feature', 'id', code, 'geometry', ST_AsGeoJSON(geom, 7)::json,"
            "  'properties', json_build_object('code', code, 'kind', kind, 'system', system,"
            "  'status', status, 'diameter_mm', diameter_mm, 'material', material,"
            "  'install_year', install_year, 'condition_grade', condition_grade))::text,"
            "  ',' ORDER BY rn) FILTER (WHERE rn <= %s), '') AS body FROM hit",
            (box.west, box.south, box.east, box.north, kinds, limit + 1, limit),
        )
        row = await cur.fetchone()
        assert row is not None
        n, body = (row["n"], row["body"]) if isinstance(row, dict) else row
        text: str = body
        return (
            b'{"type":"FeatureCollection","truncated":'
            + (b"true" if n > limit else b"false")
            + b',"features":['
            + text.encode()
            + b"]}"
        )
    span = await _span(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {MAP_PROPS}, geom_wkb FROM assets"  # noqa: S608 - constants only
            " WHERE minx BETWEEN %s AND %s AND maxx >= %s AND miny <= %s AND maxy >= %s"
            " AND kind = ANY(%s) ORDER BY diameter_mm DESC NULLS LAST, code LIMIT %s",
            (box.west - span, box.east, box.west, box.north, box.south, kinds, limit + 1),
        )
        rows = await cur.fetchall()
    truncated = len(rows) > limit
    rows = rows[:limit]
    geoms = shapely.to_geojson(shapely.from_wkb([bytes(r.pop("geom_wkb")) for r in rows]))
    features = [
        {"type": "Feature", "id": r["code"], "geometry": orjson.Fragment(g), "properties": r}
        for r, g in zip(rows, geoms.tolist(), strict=True)
    ]
    return orjson.dumps({"type": "FeatureCollection", "truncated": truncated, "features": features})


async def full_geojson(conn: AConn) -> bytes:
    """Every pipe as one GeoJSON document: the approach the bounding-box map replaces (the
    benchmark's baseline)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {MAP_PROPS}, geom_wkb FROM assets ORDER BY code")  # noqa: S608 - constants only
        rows = await cur.fetchall()
    geoms = shapely.to_geojson(shapely.from_wkb([bytes(r.pop("geom_wkb")) for r in rows]))
    return orjson.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": r["code"],
                    "geometry": orjson.Fragment(g),
                    "properties": r,
                }
                for r, g in zip(rows, geoms.tolist(), strict=True)
            ],
        }
    )


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


async def _rows(conn: AConn, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


SENSORS_SQL = """
SELECT d.code, d.kind, coalesce(s.state, 'unknown') AS state, s.last_seen,
       coalesce(d.x, n.x) AS x, coalesce(d.y, n.y) AS y,
       (SELECT json_agg(json_build_object('point', p.name, 'unit', p.unit, 'value', r.value,
                                          'ts', r.ts, 'quality', r.quality) ORDER BY p.name)
        FROM points p
        CROSS JOIN LATERAL (SELECT value, ts, quality FROM readings
                            WHERE point_id = p.id ORDER BY ts DESC LIMIT 1) r
        WHERE p.device_id = d.id AND p.kind IN ('analog', 'counter')) AS latest,
       (SELECT count(*) FROM alarms a WHERE a.device_id = d.id AND a.closed_at IS NULL)
           AS open_alarms
FROM devices d
LEFT JOIN nodes n ON n.id = d.node_id
LEFT JOIN networks w ON w.id = n.network_id
LEFT JOIN device_state s ON s.device_id = d.id
WHERE d.enabled AND d.kind <> 'customer_meter'
  AND (d.x IS NOT NULL OR (n.x IS NOT NULL AND w.crs = 'EPSG:4326'))
ORDER BY d.code"""


async def sensors(conn: AConn) -> dict[str, Any]:
    """The network's sensors (not customer meters) with their state, latest values and open
    alarms, as GeoJSON points."""
    rows = await _rows(conn, SENSORS_SQL)
    return _collection(
        [
            {
                "type": "Feature",
                "id": r["code"],
                "geometry": {"type": "Point", "coordinates": [r["x"], r["y"]]},
                "properties": {
                    "code": r["code"],
                    "kind": r["kind"],
                    "state": r["state"],
                    "last_seen": r["last_seen"].isoformat() if r["last_seen"] else None,
                    "latest": r["latest"] or [],
                    "open_alarms": int(r["open_alarms"]),
                },
            }
            for r in rows
        ]
    )


async def zones(conn: AConn) -> dict[str, Any]:
    """The zones with a polygon, each with its number of open alarms."""
    rows = await _rows(
        conn,
        "SELECT z.code, z.name, z.kind, z.geometry, "
        "(SELECT count(*) FROM alarms a WHERE a.zone_id = z.id AND a.closed_at IS NULL) "
        "AS open_alarms FROM zones z WHERE z.geometry IS NOT NULL ORDER BY z.code",
    )
    return _collection(
        [
            {
                "type": "Feature",
                "id": r["code"],
                "geometry": r["geometry"],
                "properties": {
                    "code": r["code"],
                    "name": r["name"],
                    "kind": r["kind"],
                    "open_alarms": int(r["open_alarms"]),
                },
            }
            for r in rows
        ]
    )


async def open_alarms(conn: AConn) -> dict[str, Any]:
    """Open alarms placed on the map: on their device's place, else on their zone (the
    zone's polygon), newest first."""
    rows = await _rows(
        conn,
        "SELECT a.id, a.kind, a.priority, a.state, a.message, a.raised_at, a.subject, "
        "z.code AS zone, z.geometry AS zone_geometry, d.code AS device, "
        "coalesce(d.x, n.x) AS x, coalesce(d.y, n.y) AS y "
        "FROM alarms a LEFT JOIN zones z ON z.id = a.zone_id "
        "LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN nodes n ON n.id = d.node_id "
        "WHERE a.closed_at IS NULL AND NOT a.replayed ORDER BY a.raised_at DESC LIMIT 500",
    )
    out: list[dict[str, Any]] = []
    for r in rows:
        if r["x"] is not None and r["y"] is not None:
            geom: dict[str, Any] | None = {"type": "Point", "coordinates": [r["x"], r["y"]]}
        else:
            geom = r["zone_geometry"]
        out.append(
            {
                "type": "Feature",
                "id": r["id"],
                "geometry": geom,
                "properties": {
                    "id": r["id"],
                    "kind": r["kind"],
                    "priority": r["priority"],
                    "state": r["state"],
                    "message": r["message"],
                    "raised_at": r["raised_at"].isoformat(),
                    "zone": r["zone"],
                    "device": r["device"],
                },
            }
        )
    return _collection(out)


async def check_findings(conn: AConn) -> dict[str, Any]:
    """The findings of the latest network-check run, as points."""
    rows = await _rows(
        conn,
        "SELECT f.check_kind, f.asset_code, f.lon, f.lat, f.detail, r.ran_at "
        "FROM asset_check_findings f JOIN asset_check_runs r ON r.id = f.run_id "
        "WHERE f.run_id = (SELECT max(id) FROM asset_check_runs) ORDER BY f.id",
    )
    return _collection(
        [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                "properties": {
                    "check": r["check_kind"],
                    "code": r["asset_code"],
                    "detail": r["detail"],
                    "ran_at": r["ran_at"].isoformat(),
                },
            }
            for r in rows
        ]
    )


CARD_SQL = """
SELECT a.id, a.code, a.system, a.kind, a.name, a.status, a.material, a.diameter_mm,
       a.install_year, a.depth_m, a.elevation_m, a.invert_start_m, a.invert_end_m,
       a.pressure_class, a.owner, a.condition_grade, a.cadastral_no, a.land_plot, a.accuracy_m,
       a.source_crs, z.code AS zone, a.ref_code, acc.number AS account_no, f.code AS feed_pipe,
       a.house_id, a.attrs, a.length_m, a.version, a.updated_at, a.updated_by, a.geom_wkb
FROM assets a LEFT JOIN zones z ON z.id = a.zone_id
LEFT JOIN accounts acc ON acc.id = a.account_id LEFT JOIN assets f ON f.id = a.feed_asset_id
WHERE a.code = %s"""


async def asset_card(conn: AConn, code: str) -> dict[str, Any] | None:
    """Everything about one asset: its fields, geometry (GeoJSON), history (newest first),
    documents, the service connections it feeds, and the sensors placed on it (through the
    hydraulic model's element of the same code) with their open alarms."""
    rows = await _rows(conn, CARD_SQL, (code,))
    if not rows:
        return None
    card = rows[0]
    card["geometry"] = json.loads(shapely.to_geojson(shapely.from_wkb(bytes(card.pop("geom_wkb")))))
    card["history"] = await _rows(
        conn,
        "SELECT version, op, changed_at, changed_by, source, changes FROM asset_versions "
        "WHERE asset_id = %s ORDER BY changed_at DESC, version DESC LIMIT 200",
        (card["id"],),
    )
    card["documents"] = await _rows(
        conn,
        "SELECT id, kind, filename, content_type, size_bytes, note, uploaded_at, uploaded_by "
        "FROM asset_documents WHERE asset_id = %s ORDER BY uploaded_at DESC, id DESC",
        (card["id"],),
    )
    card["services"] = await _rows(
        conn,
        "SELECT s.code, acc.number AS account_no FROM assets s "
        "LEFT JOIN accounts acc ON acc.id = s.account_id "
        "WHERE s.feed_asset_id = %s ORDER BY s.code LIMIT 500",
        (card["id"],),
    )
    ref = card["ref_code"] or card["code"]
    card["sensors"] = await _rows(
        conn,
        "SELECT d.code, d.kind, coalesce(s.state, 'unknown') AS state, "
        "(SELECT count(*) FROM alarms a WHERE a.device_id = d.id AND a.closed_at IS NULL) "
        "AS open_alarms FROM devices d LEFT JOIN device_state s ON s.device_id = d.id "
        "LEFT JOIN nodes n ON n.id = d.node_id LEFT JOIN pipes p ON p.id = d.pipe_id "
        "WHERE n.code = %s OR p.code = %s ORDER BY d.code",
        (ref, ref),
    )
    return card


async def document(conn: AConn, doc_id: int) -> dict[str, Any] | None:
    rows = await _rows(
        conn,
        "SELECT d.filename, d.content_type, d.content, a.code FROM asset_documents d "
        "JOIN assets a ON a.id = d.asset_id WHERE d.id = %s",
        (doc_id,),
    )
    return rows[0] if rows else None


async def extent(conn: AConn) -> list[float] | None:
    """[west, south, east, north] of the register and the zones (None when both are
    empty): where the map opens."""
    rows = await _rows(
        conn,
        "SELECT min(minx) AS w, min(miny) AS s, max(maxx) AS e, max(maxy) AS n FROM assets",
    )
    r = rows[0]
    if r["w"] is None:
        return None
    return [float(r["w"]), float(r["s"]), float(r["e"]), float(r["n"])]


async def asset_codes(conn: AConn, q: str, limit: int = 20) -> list[dict[str, Any]]:
    """Assets whose code or name contains ``q`` (the map's search box), with their centre."""
    return await _rows(
        conn,
        "SELECT code, kind, name, (minx + maxx) / 2 AS lon, (miny + maxy) / 2 AS lat "
        "FROM assets WHERE code ILIKE %s OR name ILIKE %s ORDER BY code LIMIT %s",
        (f"%{q}%", f"%{q}%", limit),
    )
