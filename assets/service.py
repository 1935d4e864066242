"""What the command line, the API and the demo do with the register, one code path each:
import a file, export the register, run the network checks."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import shapely

from assets.checks import Finding, ZoneShape, run_checks
from assets.errors import AssetError
from assets.files import ReadOptions, read_assets, write_assets
from assets.store import (
    Actor,
    SaveResult,
    load_assets,
    local_crs,
    network_on,
    save_assets,
    save_check_run,
)

Conn = psycopg.Connection[Any]


def import_file(
    conn: Conn, path: Path, opts: ReadOptions, actor: Actor, *, update: bool = False
) -> SaveResult:
    """Read ``path`` and save every feature in one transaction (nothing on any error)."""
    opts = replace(opts, local_crs={**local_crs(conn), **opts.local_crs})
    got = read_assets(path, opts)
    with conn.transaction():
        return save_assets(
            conn, got.assets, actor, update=update, source_file=path.name, layers=got.layers
        )


def export_file(
    conn: Conn, out: Path, *, crs: str | None = None, at: datetime | None = None
) -> dict[str, int]:
    """Write the register (as it was ``at``, or now) to ``out`` (.gpkg, .geojson, .inp)."""
    items = network_on(conn, at) if at is not None else load_assets(conn)
    local = local_crs(conn)
    if out.suffix.lower() == ".inp":
        from assets.epanet import write_inp

        return write_inp(out, items, crs=crs, local=local)
    return write_assets(out, items, crs or "EPSG:4326", local)


def zone_shapes(conn: Conn) -> list[ZoneShape]:
    """The zones with a polygon (GeoJSON in WGS 84 in zones.geometry)."""
    out: list[ZoneShape] = []
    for code, geometry in conn.execute(
        "SELECT code, geometry FROM zones WHERE geometry IS NOT NULL ORDER BY code"
    ):
        try:
            g = shapely.from_geojson(json.dumps(geometry))
        except shapely.errors.GEOSException as exc:
            raise AssetError(f"zone {code}: its polygon cannot be read: {exc}") from exc
        if not shapely.is_empty(g):
            out.append(ZoneShape(str(code), g))
    return out


def check_network(conn: Conn, *, now: datetime, by: str) -> tuple[int, list[Finding]]:
    """Run every check on the current register, store the report; (report id, findings)."""
    t0 = time.perf_counter()
    items = load_assets(conn)
    findings = run_checks(items, zone_shapes(conn))
    took = time.perf_counter() - t0
    with conn.transaction():
        run_id = save_check_run(
            conn, [f.as_dict() for f in findings], at=now, by=by, assets=len(items), took_s=took
        )
    return run_id, findings
