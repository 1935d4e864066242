"""TimescaleDB sizing (issue 20): bytes per stored reading before and after compression,
and what compression costs, measured on generated telemetry.

The data: POINTS points polled once a minute for DAYS days, in the mix a rural network
sends (docs/operations.md, "TimescaleDB sizing"): 40 % pressures (bar, 0.01 bar
resolution, a daily cycle and noise), 30 % flows (L/s, 0.01), 20 % meter registers (m³,
0.001, only ever growing), 10 % states and valve positions (whole numbers, changing a few
times a day); 0.2 % of the readings are marked stale or failed. They are written into
``readings`` as suvnet's migrations make it on a TimescaleDB server (a hypertable of 7-day
chunks, compressed by point, ordered by time), then every chunk is compressed as the
compression policy would.

Figures (the last line is one JSON object):

* bytes_per_reading_uncompressed: the hypertable's size (table, indexes, TOAST) per reading
  before compression: the baseline, measured in the same run;
* bytes_per_reading_compressed: the same after compressing every chunk;
* compression_ratio: baseline / compressed;
* compress_s_per_million: seconds to compress a million readings (one process);
* point_day_ms_uncompressed / point_day_ms_compressed: reading one point's day of raw
  readings (what a trend panel over a few hours to a day does), median of 50.

It needs a PostgreSQL server with TimescaleDB: SUVNET_TSDB_URL, else
postgresql://postgres@127.0.0.1:5433/postgres (the development machine's private build,
docs/database.md); a server without it is a clear error (exit 2). The database is made and
dropped (``--keep`` keeps it).

Usage: python bench/timescale_sizing.py [--quick] [--points N] [--days D] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import with_db
from suvnet.migrate import migrate

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5433/postgres"
START = "2026-10-01 00:00:00+00"

# one INSERT per point kind, made on the server: ts every minute, the kind's value shape
_GENERATE = """
INSERT INTO readings (ts, point_id, value, quality)
SELECT t.ts, p.id,
       CASE %(kind)s
         WHEN 'pressure' THEN round((3.2 + 0.6 * sin(2 * pi() * t.m / 1440.0 + p.id)
                                   + (random() - 0.5) * 0.08)::numeric, 2)::float8
         WHEN 'flow' THEN round(greatest(0, 8 + 5 * sin(2 * pi() * t.m / 1440.0 - 1.2 + p.id)
                                   + (random() - 0.5) * 1.0)::numeric, 2)::float8
         WHEN 'register' THEN round((1000 * p.id + t.m * (0.004 + 0.003 * sin(2 * pi() * t.m
                                   / 1440.0)))::numeric, 3)::float8
         ELSE ((t.m / (300 + p.id %% 97)) %% 2)::float8
       END,
       CASE WHEN random() < 0.002 THEN 1 + (random() * 1.99)::int ELSE 0 END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS p(id)
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + make_interval(mins => m) AS ts, m
    FROM generate_series(0, %(minutes)s - 1) AS m
) AS t
"""

KINDS = (("pressure", 0.4), ("flow", 0.3), ("register", 0.2), ("state", 0.1))


def size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT sum(total_bytes)::bigint FROM hypertable_detailed_size('readings')"
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def point_day_ms(conn: psycopg.Connection[Any], points: int, days: int) -> float:
    out = []
    for i in range(50):
        pid = 1 + (i * 7919) % points
        day = i % days
        t0 = time.perf_counter()
        conn.execute(
            "SELECT ts, value FROM readings WHERE point_id = %s AND ts >= %s::timestamptz "
            "+ make_interval(days => %s) AND ts < %s::timestamptz + make_interval(days => %s) "
            "ORDER BY ts",
            (pid, START, day, START, day + 1),
        ).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 points x 7 days (< 1 min)")
    ap.add_argument("--points", type=int, help="points (default 1,000)")
    ap.add_argument("--days", type=int, help="days of one reading a minute (default 28)")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()
    points = args.points or (200 if args.quick else 1_000)
    days = args.days or (7 if args.quick else 28)
    admin_url = os.environ.get("SUVNET_TSDB_URL", DEFAULT_URL)
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            have = admin.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
            if not have:
                raise SystemExit(f"error: the server at {admin_url} has no TimescaleDB extension")
            name = f"suvnet_bench_tsdb_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(
            f"error: no PostgreSQL with TimescaleDB answers at {admin_url} (SUVNET_TSDB_URL): "
            f"{exc}".strip(),
            file=sys.stderr,
        )
        sys.exit(2)
    url = with_db(admin_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, timescaledb="on", postgis="off")
            version = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
            conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
            minutes = days * 1440
            t0 = time.perf_counter()
            lo = 1
            for kind, share in KINDS:
                n = max(1, round(points * share))
                hi = min(points, lo + n - 1) if kind != "state" else points
                if lo > hi:
                    continue
                conn.execute(
                    _GENERATE,
                    {"kind": kind, "lo": lo, "hi": hi, "start": START, "minutes": minutes},
                )
                lo = hi + 1
            load_s = time.perf_counter() - t0
            conn.execute("VACUUM ANALYZE readings")
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            readings = int(row[0]) if row else 0
            before = size(conn)
            chunks = conn.execute("SELECT count(*) FROM show_chunks('readings')").fetchone()
            q_before = point_day_ms(conn, points, days)
            print(
                f"data: {points:,} points x {days} days, one reading a minute: {readings:,} "
                f"readings in {chunks[0] if chunks else 0} chunks, written in {load_s:.1f} s "
                f"(TimescaleDB {version[0] if version else '?'})"
            )
            t0 = time.perf_counter()
            conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('readings') AS c")
            compress_s = time.perf_counter() - t0
            conn.execute("VACUUM ANALYZE readings")
            after = size(conn)
            q_after = point_day_ms(conn, points, days)
        per_before = before / readings
        per_after = after / readings
        ratio = before / after if after else float("nan")
        per_million = compress_s / (readings / 1e6)
        print(
            f"uncompressed (baseline): {before / 2**20:,.1f} MiB, {per_before:.1f} bytes a reading"
        )
        print(
            f"compressed             : {after / 2**20:,.1f} MiB, {per_after:.2f} bytes a reading "
            f"(ratio to the baseline: {ratio:.1f}x), compressing took {compress_s:.1f} s "
            f"({per_million:.2f} s per million readings)"
        )
        print(
            f"one point's day of raw readings: {q_before:.2f} ms uncompressed, "
            f"{q_after:.2f} ms compressed (median of 50)"
        )
        print(
            json.dumps(
                {
                    "readings": readings,
                    "bytes_per_reading_uncompressed": round(per_before, 1),
                    "bytes_per_reading_compressed": round(per_after, 2),
                    "compression_ratio": round(ratio, 1),
                    "compress_s_per_million": round(per_million, 2),
                    "point_day_ms_uncompressed": round(q_before, 2),
                    "point_day_ms_compressed": round(q_after, 2),
                }
            )
        )
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
