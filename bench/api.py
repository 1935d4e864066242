"""API benchmark: balance lookup and a 30-day rollup series at 50 concurrent clients against
one uvicorn worker.

What is measured (one run, one process, real HTTP on a loopback port):

* balance_p99_ms: 99th percentile latency of GET /api/v1/accounts/{number}/balance (random
  accounts) with 50 clients in parallel;
* rollup_p99_ms: 99th percentile latency of GET /api/v1/points/{id}/readings for a 30-day
  range (720 hourly rollup rows; random points) with 50 clients in parallel;
* requests_per_s: throughput of a 50/50 mix of both with 50 clients.

Baseline (same process, same data): the same two SQL queries sent straight to PostgreSQL by
50 asyncio tasks over a psycopg pool; the printed ratios are API p99 / SQL p99, i.e. what
HTTP, JSON, JWT checks and the app cost on top of the database.

Data: full mode 100,000 accounts (2 charges and 1 payment each in the ledger) and a year of
hourly rollups for 1,000 points (8.76M rows in readings_1h). --quick: 5,000 accounts and 50
points, a few seconds per phase; ends within a minute. The database is a fresh one on the
server of SUVNET_TEST_DATABASE_URL or 127.0.0.1:5432, dropped at the end. The clients share
the machine with the server (2 cores here), so the figures are a floor for a real deployment.

Usage: python bench/api.py [--quick] [--accounts N] [--points N] [--seconds S]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.security import Principal, Role, make_access_token  # noqa: E402
from bench.common import free_port, p99, server_url, start_api_server, with_db  # noqa: E402
from billing.accountno import make_number  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

console = Console(stderr=True)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
CLIENTS = 50
END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=365)
SQL_BALANCE = "SELECT balance_tiyin FROM account_balances WHERE number = %s"
SQL_ROLLUP = (
    "SELECT bucket, min, max, avg, count, last FROM readings_1h WHERE point_id = %s "
    "AND bucket >= %s AND bucket < %s ORDER BY bucket"
)


def seed(url: str, accounts: int, points: int) -> tuple[list[str], list[int]]:
    with psycopg.connect(url, autocommit=True) as conn, Progress(console=console) as bar:
        task = bar.add_task("preparing the database", total=5)
        migrate(conn)
        # the benchmark's login: every request's token is checked against api_users
        conn.execute(
            "INSERT INTO api_users (id, username, role, password_hash) OVERRIDING SYSTEM VALUE "
            "VALUES (1, 'bench', 'admin', '!')"
        )
        bar.advance(task)
        conn.execute("INSERT INTO regions (name_uz) VALUES ('Bench')")
        conn.execute("INSERT INTO districts (region_id, name_uz) VALUES (1, 'Bench')")
        conn.execute(
            "INSERT INTO mahallas (district_id, name_uz) SELECT 1, 'M' || g "
            "FROM generate_series(1, 50) g"
        )
        conn.execute(
            "INSERT INTO streets (mahalla_id, name_uz) SELECT 1 + g % 50, 'S' || g "
            "FROM generate_series(1, 1000) g"
        )
        conn.execute(
            "INSERT INTO houses (street_id, number) SELECT 1 + g % 1000, g::text "
            "FROM generate_series(1, 10000) g"
        )
        numbers = [make_number(i) for i in range(1, accounts + 1)]
        with conn.cursor().copy(
            "COPY accounts (number, kind, category, name, house_id) FROM STDIN"
        ) as cp:
            for i, n in enumerate(numbers):
                cp.write_row((n, "household", "household", f"Abonent {i}", 1 + i % 10000))
        bar.advance(task)
        posted = datetime(2026, 9, 1, tzinfo=UTC)
        with conn.cursor().copy(
            "COPY ledger (account_id, kind, amount_tiyin, value_date, posted_at, source) FROM STDIN"
        ) as cp:
            for aid in range(1, accounts + 1):
                cp.write_row((aid, "charge", 5_000_000, posted.date(), posted, "billing"))
                cp.write_row(
                    (
                        aid,
                        "charge",
                        5_500_000,
                        (posted + timedelta(days=30)).date(),
                        posted + timedelta(days=30),
                        "billing",
                    )
                )
                cp.write_row(
                    (
                        aid,
                        "payment",
                        -4_000_000 - aid % 1000,
                        (posted + timedelta(days=40)).date(),
                        posted + timedelta(days=40),
                        "payme",
                    )
                )
        bar.advance(task)
        conn.execute("INSERT INTO gateways (code) VALUES ('bench-gw')")
        conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) SELECT 'PS' || g, 1, "
            "'pressure_sensor', 'bench' FROM generate_series(1, %s) g",
            (points,),
        )
        conn.execute(
            "INSERT INTO points (device_id, name, unit) SELECT id, 'pressure', 'bar' FROM devices"
        )
        pids = [r[0] for r in conn.execute("SELECT id FROM points ORDER BY id").fetchall()]
        conn.execute(
            """INSERT INTO readings_1h (point_id, bucket, min, max, sum, count, last, last_ts)
               SELECT p.id, b, 2.5, 3.5, 3.0 * 60, 60, 3.0, b + interval '59 minutes'
               FROM points p, generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour',
                                              interval '1 hour') b""",
            (START, END),
        )
        bar.advance(task)
        conn.execute("VACUUM ANALYZE")
        bar.advance(task)
    return numbers, pids


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on one connection: the load generator must cost
    far less CPU than the server it measures (httpx costs about as much as the server)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n" + self.auth + b"\r\n"
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def http_phase(
    port: int, token: str, kind: str, numbers: list[str], pids: list[int], seconds: float
) -> tuple[dict[str, list[float]], int, float]:
    from urllib.parse import quote

    lat: dict[str, list[float]] = {"balance": [], "rollup": []}
    frm = quote((END - timedelta(days=30)).isoformat())
    to = quote(END.isoformat())
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        rnd = random.Random(i)
        client = RawClient("127.0.0.1", port, token)
        n = 0
        try:
            while time.perf_counter() < stop:
                what = kind if kind != "mix" else ("balance" if (i + n) % 2 else "rollup")
                n += 1
                if what == "balance":
                    path = f"/api/v1/accounts/{rnd.choice(numbers)}/balance"
                else:
                    path = f"/api/v1/points/{rnd.choice(pids)}/readings?from={frm}&to={to}"
                t0 = time.perf_counter()
                status, _body = await client.get(path)
                lat[what].append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    errors += 1
        finally:
            await client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat, errors, time.perf_counter() - t0


async def sql_phase(
    db_url: str, kind: str, numbers: list[str], pids: list[int], seconds: float
) -> list[float]:
    from psycopg_pool import AsyncConnectionPool

    lat: list[float] = []
    frm = END - timedelta(days=30)
    async with AsyncConnectionPool(db_url, min_size=20, max_size=20, open=False) as pool:
        await pool.open(wait=True)
        stop = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            rnd = random.Random(1000 + i)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with pool.connection() as conn:
                    if kind == "balance":
                        await (await conn.execute(SQL_BALANCE, (rnd.choice(numbers),))).fetchall()
                    else:
                        await (
                            await conn.execute(SQL_ROLLUP, (rnd.choice(pids), frm, END))
                        ).fetchall()
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, short phases (< 1 min)")
    ap.add_argument("--accounts", type=int, default=None, help="accounts (default 100,000)")
    ap.add_argument("--points", type=int, default=None, help="points (default 1,000)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per phase")
    args = ap.parse_args()
    accounts = args.accounts or (5_000 if args.quick else 100_000)
    points = args.points or (50 if args.quick else 1_000)
    seconds = args.seconds or (4.0 if args.quick else 20.0)

    admin_url = server_url()
    name = f"suvnet_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = with_db(admin_url, name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        numbers, pids = seed(db_url, accounts, points)
        print(
            f"data: {accounts:,} accounts, {points:,} points x 8,760 hourly rollups "
            f"({time.perf_counter() - t0:.1f} s to load)"
        )
        port = free_port()
        proc = start_api_server(
            db_url,
            port,
            {"SUVNET_SECRET_KEY": SECRET, "SUVNET_DB_POOL_MIN": "20", "SUVNET_DB_POOL_MAX": "20"},
            ["--loop", "uvloop", "--http", "httptools"],
        )
        token = make_access_token(Principal(1, "bench", Role.ADMIN), SECRET, datetime.now(UTC))
        # warm up the pool and the caches
        asyncio.run(http_phase(port, token, "mix", numbers, pids, 2.0))

        results: dict[str, dict[str, list[float]]] = {}
        for kind in ("balance", "rollup"):
            lat, errors, elapsed = asyncio.run(
                http_phase(port, token, kind, numbers, pids, seconds)
            )
            if errors:
                raise SystemExit(f"{errors} {kind} requests failed")
            results[kind] = lat
            print(
                f"api {kind:8s}: {len(lat[kind]):6d} requests in {elapsed:.1f} s, "
                f"{len(lat[kind]) / elapsed:7.1f} req/s, p50 "
                f"{sorted(lat[kind])[len(lat[kind]) // 2]:.1f} ms, p99 {p99(lat[kind]):.1f} ms"
            )
        mix, errors, elapsed = asyncio.run(http_phase(port, token, "mix", numbers, pids, seconds))
        if errors:
            raise SystemExit(f"{errors} mixed requests failed")
        total = len(mix["balance"]) + len(mix["rollup"])
        rps = total / elapsed
        print(f"api mixed   : {total:6d} requests in {elapsed:.1f} s, {rps:7.1f} req/s")

        base_p99: dict[str, float] = {}
        for kind in ("balance", "rollup"):
            lat_sql = asyncio.run(sql_phase(db_url, kind, numbers, pids, seconds / 2))
            base_p99[kind] = p99(lat_sql)
            print(
                f"sql {kind:8s}: {len(lat_sql):6d} queries, p99 {base_p99[kind]:.1f} ms "
                f"(baseline: the same query straight to PostgreSQL, 50 tasks)"
            )
        bal = p99(results["balance"]["balance"])
        rol = p99(results["rollup"]["rollup"])
        print(
            f"ratio to baseline (API p99 / SQL p99): balance {bal / base_p99['balance']:.2f}x, "
            f"rollup {rol / base_p99['rollup']:.2f}x"
        )
        print(
            f"goals: balance_p99_ms < 50 ({'met' if bal < 50 else 'NOT met'}), "
            f"rollup_p99_ms < 200 ({'met' if rol < 200 else 'NOT met'})"
        )
        print(
            json.dumps(
                {
                    "balance_p99_ms": round(bal, 2),
                    "rollup_p99_ms": round(rol, 2),
                    "requests_per_s": round(rps, 1),
                }
            )
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
