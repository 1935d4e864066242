"""What a route-map sheet shows, from the database (async, the API's pool): the focus (the
pipes of a street, a zone or a route) and every asset around it.

A street's pipes are those that feed the service connections of its houses, and those
whose ``attrs.street`` names it; a route is a list of pipes, or the shortest way along the
network between two assets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import shapely
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from assets.geo import metres_to_degrees
from assets.isolation_queries import network_graph
from assets.network_graph import route_pipes
from assets.sheets import Feature

AConn = AsyncConnection[Any]

STREETS_SQL = """
SELECT st.id, st.name_uz, st.name_uz_cyrl, st.name_ru, m.name_uz AS mahalla,
       count(DISTINCT s.feed_asset_id) AS pipes
FROM assets s
LEFT JOIN accounts acc ON acc.id = s.account_id
JOIN houses h ON h.id = coalesce(s.house_id, acc.house_id)
JOIN streets st ON st.id = h.street_id JOIN mahallas m ON m.id = st.mahalla_id
WHERE s.kind = 'service_connection' AND s.feed_asset_id IS NOT NULL
GROUP BY st.id, m.name_uz ORDER BY st.name_uz, m.name_uz"""

STREET_PIPES_SQL = """
SELECT DISTINCT f.code FROM assets s
LEFT JOIN accounts acc ON acc.id = s.account_id
JOIN houses h ON h.id = coalesce(s.house_id, acc.house_id)
JOIN assets f ON f.id = s.feed_asset_id
WHERE s.kind = 'service_connection' AND h.street_id = %s AND f.status <> 'abandoned'
UNION
SELECT a.code FROM assets a, streets st
WHERE st.id = %s AND a.kind IN ('pipe', 'gravity_sewer', 'pressure_sewer')
  AND a.status <> 'abandoned'
  AND a.attrs ->> 'street' IN (st.name_uz, st.name_ru, st.name_uz_cyrl)"""

FEATURE_COLUMNS = "code, kind, system, status, diameter_mm, material, attrs, geom_wkb"


async def _rows(conn: AConn, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def streets(conn: AConn) -> list[dict[str, Any]]:
    """The streets whose houses have service connections (the sheet page's choices)."""
    return await _rows(conn, STREETS_SQL, ())


async def street_name(conn: AConn, street_id: int) -> dict[str, Any] | None:
    rows = await _rows(
        conn,
        "SELECT st.name_uz AS street_uz, st.name_uz_cyrl AS street_uz_cyrl, "
        "st.name_ru AS street_ru, m.name_uz AS mahalla FROM streets st "
        "JOIN mahallas m ON m.id = st.mahalla_id WHERE st.id = %s",
        (street_id,),
    )
    return rows[0] if rows else None


def feature(r: dict[str, Any]) -> Feature:
    attrs = r.get("attrs") or {}
    bl = attrs.get("building_line_m")
    try:
        building = float(bl) if bl is not None else None
    except (TypeError, ValueError):
        building = None
    return Feature(
        code=r["code"],
        kind=r["kind"],
        geometry=shapely.from_wkb(bytes(r["geom_wkb"])),
        diameter_mm=r.get("diameter_mm"),
        material=r.get("material"),
        system=r.get("system") or "water",
        status=r.get("status") or "active",
        building_line_m=building,
        building_line_side=str(attrs.get("building_line_side") or "left"),
    )


async def features_by_code(conn: AConn, codes: Sequence[str]) -> list[Feature]:
    rows = await _rows(
        conn,
        f"SELECT {FEATURE_COLUMNS} FROM assets WHERE code = ANY(%s) "  # noqa: S608 - constants only
        "AND status <> 'abandoned' ORDER BY code",
        (list(codes),),
    )
    return [feature(r) for r in rows]


async def street_focus(conn: AConn, street_id: int) -> list[Feature]:
    codes = [r["code"] for r in await _rows(conn, STREET_PIPES_SQL, (street_id, street_id))]
    return await features_by_code(conn, codes)


async def zone_exists(conn: AConn, zone: str) -> bool:
    return bool(await _rows(conn, "SELECT 1 FROM zones WHERE code = %s", (zone,)))


async def zone_focus(conn: AConn, zone: str) -> list[Feature]:
    rows = await _rows(
        conn,
        f"SELECT {FEATURE_COLUMNS} FROM assets a "  # noqa: S608 - constants only
        "WHERE a.zone_id = (SELECT id FROM zones WHERE code = %s) "
        "AND a.kind IN ('pipe', 'gravity_sewer', 'pressure_sewer') AND a.status <> 'abandoned' "
        "ORDER BY a.code",
        (zone,),
    )
    return [feature(r) for r in rows]


async def route_focus(
    conn: AConn, pipes: Sequence[str], start: str | None, end: str | None
) -> list[Feature]:
    """The pipes named, or those of the shortest way from ``start`` to ``end``; only
    pipes (a point named in ``pipes`` is not drawn as the route)."""
    codes = list(pipes)
    if start and end:
        g = await network_graph(conn)
        codes = route_pipes(g, start, end)
    feats = await features_by_code(conn, codes)
    return [f for f in feats if f.kind in ("pipe", "gravity_sewer", "pressure_sewer")]


async def around(conn: AConn, focus: Sequence[Feature], margin_m: float = 400.0) -> list[Feature]:
    """Every asset (but abandoned ones) within ``margin_m`` of the focus's box."""
    if not focus:
        return []
    w, s, e, n = shapely.total_bounds([f.geometry for f in focus]).tolist()
    dx, dy = metres_to_degrees(margin_m, (s + n) / 2)
    rows = await _rows(
        conn,
        f"SELECT {FEATURE_COLUMNS} FROM assets WHERE maxx >= %s AND minx <= %s "  # noqa: S608 - constants only
        "AND maxy >= %s AND miny <= %s AND status <> 'abandoned' ORDER BY code LIMIT 20000",
        (w - dx, e + dx, s - dy, n + dy),
    )
    return [feature(r) for r in rows]
