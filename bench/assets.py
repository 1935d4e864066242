"""Asset-register benchmark on a generated 50,000-pipe network.

What is measured (one run, one process):

* import_features_per_s: ``suvnet assets import`` of a GeoPackage holding the network in UTM
  42N (every feature read by GDAL, checked, transformed to WGS 84 and saved with its version
  row, in one transaction);
* network_check_s: the whole network check (dangling and unsnapped ends, disconnected parts,
  zone boundaries, sewer slopes) on it, report stored;
* viewport_p50_ms / viewport_p99_ms: one map viewport (about 600 x 400 m, the view of a street
  at zoom 16-17, random places) as the map asks for it (assets.queries.map_features: the
  query and the GeoJSON bytes) under 20 concurrent clients on a pool of 20 connections;
* baseline_geojson_ms: the approach the map replaces, the whole network as one GeoJSON
  document (assets.queries.full_geojson), timed in the same run; and its size in MB.

The figures are for the spatial mode of the database (PostGIS when the server has it,
``--postgis off`` for the portable form with shapely). The clients share the machine with
the server (2 cores here), so they are a floor for a real deployment; the API's HTTP, login
and routing come on top of the viewport figure (see bench/api.py for their cost).

Usage: python bench/assets.py [--quick] [--pipes N] [--clients N] [--postgis auto|on|off]
--quick: the same 50,000 pipes, fewer viewport requests; ends within a minute. The database is
a fresh one on the server of SUVNET_BENCH_DATABASE_URL (else SUVNET_TEST_DATABASE_URL, else
127.0.0.1:5432), dropped at the end. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pyogrio.raw  # type: ignore[import-untyped]
import shapely
from psycopg_pool import AsyncConnectionPool
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets import queries as aq  # noqa: E402
from assets import service  # noqa: E402
from assets.crs import from_wgs84, resolve  # noqa: E402
from assets.files import ReadOptions  # noqa: E402
from assets.store import Actor  # noqa: E402
from bench.common import p99, server_url, with_db  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

console = Console(stderr=True)
LON0, LAT0 = 66.90, 39.60  # Samarkand region, UTM 42N
STEP_M = 50.0
VIEW_M = (600.0, 400.0)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def network_gpkg(path: Path, pipes: int, seed: int = 1) -> int:
    """A street grid of ``pipes`` pipes of 50 m (with some gaps, a few loose ends) in UTM
    42N, diameters and materials mixed; returns the number of pipes written."""
    rnd = random.Random(seed)
    n = math.ceil(math.sqrt(pipes / 2)) + 1
    utm = resolve("UTM42N")
    origin = shapely.get_coordinates(from_wgs84(shapely.Point(LON0, LAT0), utm))[0]
    x0, y0 = float(origin[0]), float(origin[1])
    lines: list[bytes] = []
    codes: list[str] = []
    diam: list[float] = []
    mat: list[str] = []
    year: list[int] = []
    for i in range(n):
        for j in range(n):
            for di, dj in ((1, 0), (0, 1)):
                if len(lines) >= pipes:
                    break
                a = (x0 + i * STEP_M, y0 + j * STEP_M)
                b = (x0 + (i + di) * STEP_M, y0 + (j + dj) * STEP_M)
                lines.append(shapely.to_wkb(shapely.LineString([a, b])))
                codes.append(f"P{i}-{j}-{di}")
                diam.append(float(rnd.choice((63, 90, 110, 160, 225, 315))))
                mat.append(rnd.choice(("PE100", "steel", "cast iron")))
                year.append(rnd.randint(1965, 2024))
    pyogrio.raw.write(
        path,
        np.array(lines, dtype=object),
        [
            np.array(codes, dtype=object),
            np.array(["pipe"] * len(codes), dtype=object),
            np.array(diam),
            np.array(mat, dtype=object),
            np.array(year),
        ],
        ["code", "kind", "diameter_mm", "material", "install_year"],
        layer="water_pipes",
        driver="GPKG",
        geometry_type="LineString",
        crs="EPSG:32642",
    )
    return len(lines)


async def viewports(url: str, clients: int, requests: int, extent: list[float]) -> list[float]:
    w, s, e, n = extent
    dx = VIEW_M[0] / (111_320 * math.cos(math.radians(LAT0)))
    dy = VIEW_M[1] / 111_320
    rnd = random.Random(7)
    boxes = []
    for _ in range(requests):
        x = rnd.uniform(w, max(w, e - dx))
        y = rnd.uniform(s, max(s, n - dy))
        boxes.append(aq.BBox(x, y, x + dx, y + dy))
    times: list[float] = []
    queue: asyncio.Queue[aq.BBox] = asyncio.Queue()
    for b in boxes:
        queue.put_nowait(b)
    async with AsyncConnectionPool(url, min_size=clients, max_size=clients, open=False) as pool:
        await pool.open(wait=True)

        async def client() -> None:
            while not queue.empty():
                box = queue.get_nowait()
                t0 = time.perf_counter()
                async with pool.connection() as conn:
                    await conn.set_autocommit(True)
                    body = await aq.map_features(conn, box, ["water", "sewer"], 4000)
                times.append((time.perf_counter() - t0) * 1000)
                assert body.startswith(b'{"type":"FeatureCollection"')

        await asyncio.gather(*(client() for _ in range(clients)))
    return times


async def baseline(url: str) -> tuple[float, int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await aq.full_geojson(conn)  # warm
        t0 = time.perf_counter()
        body = await aq.full_geojson(conn)
        return (time.perf_counter() - t0) * 1000, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pipes", type=int, default=50_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=0)
    ap.add_argument("--postgis", choices=("auto", "on", "off"), default="auto")
    args = ap.parse_args()
    requests = args.requests or (400 if args.quick else 4000)
    server = server_url()
    name = f"suvnet_bench_assets_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_db(server, name)
    result: dict[str, object] = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, timescaledb="off", postgis=args.postgis)
            mode = conn.execute(
                "SELECT value FROM suvnet_meta WHERE key = 'spatial_mode'"
            ).fetchone()
        with tempfile.TemporaryDirectory() as tmp:
            gpkg = Path(tmp) / "network.gpkg"
            written = network_gpkg(gpkg, args.pipes)
            console.print(f"network: {written} pipes in {gpkg.stat().st_size / 1e6:.1f} MB GPKG")
            with psycopg.connect(url) as conn:
                t0 = time.perf_counter()
                res = service.import_file(conn, gpkg, ReadOptions(), Actor("bench", "bench", NOW))
                took = time.perf_counter() - t0
            console.print(f"import: {len(res.created)} in {took:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE assets")
            t0 = time.perf_counter()
            _, findings = service.check_network(conn, now=NOW, by="bench")
            check_s = time.perf_counter() - t0
            row = conn.execute(
                "SELECT min(minx), min(miny), max(maxx), max(maxy) FROM assets"
            ).fetchone()
            assert row is not None
            extent = [float(v) for v in row]
        console.print(f"checks: {len(findings)} findings in {check_s:.1f} s")
        times = asyncio.run(viewports(url, args.clients, requests, extent))
        base_ms, base_bytes = asyncio.run(baseline(url))
        times.sort()
        result = {
            "pipes": written,
            "spatial_mode": mode[0] if mode else "?",
            "import_features_per_s": round(len(res.created) / took, 1),
            "network_check_s": round(check_s, 2),
            "check_findings": len(findings),
            "viewport_clients": args.clients,
            "viewport_requests": len(times),
            "viewport_p50_ms": round(times[len(times) // 2], 1),
            "viewport_p99_ms": round(p99(times), 1),
            "baseline_geojson_ms": round(base_ms, 1),
            "baseline_geojson_mb": round(base_bytes / 1e6, 1),
        }
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(result))


if __name__ == "__main__":
    main()
