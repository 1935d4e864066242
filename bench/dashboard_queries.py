"""Dashboard query benchmark: what the rollup choice saves a dispatcher opening a panel.

The panel "Average pressure by zone" (network overview) is run, with Grafana's macros expanded,
over a 30-day, a 3-day and a 6-hour time range on a fresh database holding one reading a
minute for every pressure point. Over 30 days the panel reads readings_1h; the baseline is the
same aggregation over the raw readings table (what a naive panel would do), in the same
process and database.

Figures:

* readings: raw readings in the database;
* panel_30d_ms / panel_3d_ms / panel_6h_ms: median wall time of the panel query;
* raw_30d_ms: median wall time of the baseline query over the raw table for 30 days;
* rollup_speedup: raw_30d_ms / panel_30d_ms.

Usage: python bench/dashboard_queries.py [--quick] [--points N] [--days D]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import server_url, with_db  # noqa: E402
from dashboards.boards.network import PRESSURE_BY_ZONE  # noqa: E402
from dashboards.macros import QueryContext, Variable, expand  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

TO = datetime(2026, 11, 20, tzinfo=UTC)
ZONES = 5

BASELINE = """
WITH pts AS (
    SELECT p.id, d.zone_id FROM points p JOIN devices d ON d.id = p.device_id
    JOIN zones z ON z.id = d.zone_id WHERE p.name = 'pressure' AND z.code IN ($zone)
)
SELECT $__timeGroupAlias(r.ts, $__interval), z.code AS metric, avg(r.value) AS pressure
FROM readings r JOIN pts ON pts.id = r.point_id JOIN zones z ON z.id = pts.zone_id
WHERE $__timeFilter(r.ts) AND r.quality = 0
GROUP BY 1, 2 ORDER BY 1
"""


def seed(conn: psycopg.Connection[tuple[object, ...]], points: int, days: int) -> int:
    zone_ids = [
        conn.execute(
            "INSERT INTO zones (code, name) VALUES (%s, %s) RETURNING id", (f"Z{z}", f"Zone {z}")
        ).fetchone()[0]  # type: ignore[index]
        for z in range(ZONES)
    ]
    pids = []
    for i in range(points):
        dev = conn.execute(
            "INSERT INTO devices (code, kind, profile, zone_id) VALUES (%s, 'pressure_sensor',"
            " 'bench', %s) RETURNING id",
            (f"PS{i}", zone_ids[i % ZONES]),
        ).fetchone()[0]  # type: ignore[index]
        pids.append(
            conn.execute(
                "INSERT INTO points (device_id, name, unit) VALUES (%s, 'pressure', 'bar')"
                " RETURNING id",
                (dev,),
            ).fetchone()[0]  # type: ignore[index]
        )
    start = TO - timedelta(days=days)
    conn.execute(
        "SELECT suvnet_ensure_readings_partitions(%s, %s)", (start, TO + timedelta(days=1))
    )
    minutes = days * 24 * 60
    with conn.cursor().copy(
        "COPY readings (ts, point_id, value, quality) FROM STDIN WITH (FORMAT BINARY)"
    ) as cp:
        cp.set_types(["timestamptz", "int8", "float8", "int2"])
        for m in range(minutes):
            ts = start + timedelta(minutes=m)
            v = 3.0 + (m % 1440) / 1440
            for p in pids:
                cp.write_row((ts, p, v, 0))
    for table, width in (
        ("readings_5m", "5 minutes"),
        ("readings_1h", "1 hour"),
        ("readings_1d", "1 day"),
    ):
        conn.execute(
            f"INSERT INTO {table} (point_id, bucket, min, max, sum, count, last, last_ts)"
            f" SELECT point_id, date_bin('{width}', ts, timestamptz '2000-01-01'), min(value),"
            " max(value), sum(value), count(*), (array_agg(value ORDER BY ts DESC))[1], max(ts)"
            " FROM readings GROUP BY 1, 2"
        )
    conn.execute("VACUUM ANALYZE")
    return minutes * points


def timed(conn: psycopg.Connection[tuple[object, ...]], sql: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        conn.execute(sql.encode()).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def ctx(span: timedelta) -> QueryContext:
    interval = max(timedelta(minutes=1), span / 1000)
    interval = timedelta(seconds=round(interval.total_seconds()))
    zones = Variable.of(*(f"Z{z}" for z in range(ZONES)))
    return QueryContext(TO - span, TO, interval, {"zone": zones})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (< 1 minute)")
    ap.add_argument("--points", type=int, default=None, help="pressure points (default 100)")
    ap.add_argument("--days", type=int, default=30, help="days of minute readings")
    args = ap.parse_args()
    points = args.points or (20 if args.quick else 100)
    runs = 3 if args.quick else 7
    name = f"suvnet_bench_dash_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(server_url(), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(with_db(server_url(), name), autocommit=True) as conn:
            migrate(conn, timescaledb="off")
            t0 = time.perf_counter()
            n = seed(conn, points, args.days)
            print(
                f"seeded {n:,} readings ({points} points x {args.days} days) in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            panel = PRESSURE_BY_ZONE.targets[0].sql
            month = timedelta(days=args.days)
            figures = {
                "readings": n,
                "panel_30d_ms": round(timed(conn, expand(panel, ctx(month)), runs), 2),
                "panel_3d_ms": round(timed(conn, expand(panel, ctx(timedelta(days=3))), runs), 2),
                "panel_6h_ms": round(timed(conn, expand(panel, ctx(timedelta(hours=6))), runs), 2),
                "raw_30d_ms": round(timed(conn, expand(BASELINE, ctx(month)), runs), 2),
            }
            figures["rollup_speedup"] = round(figures["raw_30d_ms"] / figures["panel_30d_ms"], 1)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print(f"panel over {args.days} days (readings_1h): {figures['panel_30d_ms']} ms")
    print(f"panel over 3 days (readings_5m):   {figures['panel_3d_ms']} ms")
    print(f"panel over 6 hours (raw readings): {figures['panel_6h_ms']} ms")
    print(f"baseline, raw readings over {args.days} days: {figures['raw_30d_ms']} ms")
    print(f"ratio to baseline (raw / rollup):  {figures['rollup_speedup']}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
