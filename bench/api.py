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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.security import Principal, Role, make_access_token  # noqa: E402
from bench.common import free_port, p99, server_url, with_db  # noqa: E402
from billing.accountno import make_number  # noqa: E402
from billing.search import to_cyrillic  # noqa: E402
from suvnet.listing import like_pattern  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

console = Console(stderr=True)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
CLIENTS = 50
END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=365)
SQL_BALANCE = "SELECT balance_tiyin FROM account_balances WHERE number = %s"
SQL_SEARCH_ILIKE = """
SELECT a.id, a.number, a.name FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
WHERE a.number = %(q)s OR a.name ILIKE %(pat)s
   OR (ad.street_uz || ' ' || ad.house_number) ILIKE %(pat)s
   OR ad.mahalla_uz ILIKE %(pat)s OR ad.street_ru ILIKE %(pat)s
   OR (length(%(digits)s) >= 5 AND a.phone LIKE '%%' || %(digits)s || '%%')
ORDER BY a.number LIMIT 20"""
"""The baseline of the search: the back office's search before issue 15 (plain ILIKE on the
name, street and house, mahalla, Russian street name; the phone's digits), the same queries."""
SQL_ROLLUP = (
    "SELECT bucket, min, max, avg, count, last FROM readings_1h WHERE point_id = %s "
    "AND bucket >= %s AND bucket < %s ORDER BY bucket"
)


STREETS = (
    ("Navoiy", "Навои"),
    ("Bog'bon", "Богбон"),
    ("Mustaqillik", "Мустакиллик"),
    ("Do'stlik", "Дустлик"),
    ("Amir Temur", "Амир Темур"),
    ("Ulug'bek", "Улугбек"),
    ("Bobur", "Бабур"),
    ("Yangi hayot", "Янги хаёт"),
    ("Paxtakor", "Пахтакор"),
    ("Chinor", "Чинар"),
    ("Gulzor", "Гулзар"),
    ("Istiqlol", "Истиклол"),
    ("Tinchlik", "Тинчлик"),
    ("Bahor", "Бахор"),
    ("Navro'z", "Навруз"),
    ("Guliston", "Гулистан"),
    ("Sharq", "Шарк"),
    ("Yoshlik", "Ёшлик"),
    ("Zarafshon", "Зарафшан"),
    ("Shodlik", "Шодлик"),
    ("Oqtepa", "Актепа"),
    ("Qo'shtepa", "Коштепа"),
    ("G'alaba", "Галаба"),
    ("Farg'ona", "Фергана"),
    ("Buxoro", "Бухара"),
    ("Xorazm", "Хорезм"),
    ("Mehrobod", "Мехрабад"),
    ("Nurafshon", "Нурафшан"),
    ("Olmazor", "Алмазар"),
    ("Bunyodkor", "Бунёдкор"),
    ("Beruniy", "Беруни"),
    ("Ibn Sino", "Ибн Сино"),
    ("Furqat", "Фуркат"),
    ("Muqimiy", "Мукими"),
    ("Cho'lpon", "Чулпан"),
    ("Abdulla Qodiriy", "Абдуллы Кадыри"),
    ("G'afur G'ulom", "Гафура Гуляма"),
    ("Hamza", "Хамзы"),
    ("Oybek", "Айбека"),
    ("Zahiriddin Bobur", "Захириддина Бабура"),
    ("Sog'lom avlod", "Соглом авлод"),
    ("Ipak yo'li", "Ипак йули"),
    ("Mirzo Ulug'bek", "Мирзо Улугбека"),
    ("Qorasuv", "Карасу"),
    ("Bo'ston", "Бустан"),
)
"""Street names of a region as the dictionary keeps them (Uzbek Latin; the Russian form)."""
MAHALLAS = (
    "Navbahor", "Obod", "Tinchlik", "Yangiobod", "Bo'ston", "Oqtepa", "Do'stlik", "Guliston",
    "Bahor", "Mehnatobod", "Chorbog'", "Qizilqum", "Sohibkor", "Nurobod", "Istiqlol",
    "Ko'kcha", "Yuksalish", "Ravot", "Qoratepa", "Bog'ishamol",
)  # fmt: skip
DISTRICTS = (
    ("Urgut", "Ургут"),
    ("Pastdarg'om", "Пастдаргом"),
    ("Kattaqo'rg'on", "Каттакурган"),
    ("Bulung'ur", "Булунгур"),
    ("Jomboy", "Джамбай"),
)
SURNAMES = (
    "Karimov", "Rahimov", "Toshmatov", "Abdullayev", "Yusupov", "Ismoilov", "Ergashev",
    "Xolmatov", "Qodirov", "Sobirov", "Nazarov", "Mirzayev", "Tursunov", "Umarov", "Aliyev",
    "Usmonov", "Jo'rayev", "Xudoyberdiyev", "Boboyev", "Normatov", "Sharipov", "Rashidov",
    "Hasanov", "Husanov", "Safarov", "Qurbonov", "Mahmudov", "Salimov", "To'xtayev", "G'aniyev",
)  # fmt: skip
FIRST_NAMES = (
    "Anvar", "Dilshod", "Olim", "Jasur", "Bahodir", "Sherzod", "Ulug'bek", "Farhod", "Otabek",
    "Shoxrux", "G'ayrat", "Sardor", "Gulnora", "Shahnoza", "Dilfuza", "Nilufar", "Mohira",
    "Zuhra", "Feruza", "Ozoda", "Yulduz", "Maftuna", "Sevara", "Dildora",
)  # fmt: skip
HOUSES_PER_STREET = 40
STREETS_PER_MAHALLA = 8


@dataclass(frozen=True)
class Subscriber:
    """What the search queries are made from."""

    number: str
    name: str
    street: str
    street_ru: str
    house: str
    phone: str
    serial: str | None
    inn: str | None


def seed_register(conn: psycopg.Connection[Any], accounts: int) -> list[Subscriber]:
    """A district register like a real one: named streets (each name in many mahallas) in
    Uzbek Latin, Uzbek Cyrillic and Russian, people's names, phones, meters (90 %), legal
    entities with an INN (3 %). Deterministic. The search keys are made by the triggers."""
    rng = random.Random(15)
    conn.execute(
        "INSERT INTO regions (name_uz, name_uz_cyrl, name_ru) "
        "VALUES ('Samarqand viloyati', 'Самарқанд вилояти', 'Самаркандская область')"
    )
    for uz, ru in DISTRICTS:
        conn.execute(
            "INSERT INTO districts (region_id, name_uz, name_uz_cyrl, name_ru) "
            "VALUES (1, %s, %s, %s)",
            (f"{uz} tumani", to_cyrillic(f"{uz} tumani"), f"{ru}ский район"),
        )
    n_streets = -(-accounts // HOUSES_PER_STREET)
    n_mahallas = -(-n_streets // STREETS_PER_MAHALLA)
    with conn.cursor().copy(
        "COPY mahallas (district_id, name_uz, name_uz_cyrl, name_ru) FROM STDIN"
    ) as cp:
        for k in range(n_mahallas):
            name = f"{MAHALLAS[k % len(MAHALLAS)]} {k // len(MAHALLAS) + 1}"
            cp.write_row(
                (
                    1 + k % len(DISTRICTS),
                    f"{name} MFY",
                    to_cyrillic(f"{name} MFY"),
                    f"махалля {name}",
                )
            )
    streets: list[tuple[str, str]] = []
    with conn.cursor().copy(
        "COPY streets (mahalla_id, name_uz, name_uz_cyrl, name_ru) FROM STDIN"
    ) as cp:
        for k in range(n_streets):
            uz, ru = STREETS[(k * 7 + k // len(STREETS)) % len(STREETS)]
            streets.append((uz, ru))
            name = f"{uz} ko'chasi"
            cp.write_row((1 + k // STREETS_PER_MAHALLA, name, to_cyrillic(name), f"улица {ru}"))
    with conn.cursor().copy("COPY houses (street_id, number) FROM STDIN") as cp:
        for i in range(accounts):
            cp.write_row((1 + i // HOUSES_PER_STREET, str(i % HOUSES_PER_STREET + 1)))
    subs: list[Subscriber] = []
    with conn.cursor().copy(
        "COPY accounts (number, kind, category, name, inn, phone, house_id) FROM STDIN"
    ) as cp:
        for i in range(accounts):
            legal = rng.random() < 0.03
            surname, first = rng.choice(SURNAMES), rng.choice(FIRST_NAMES)
            name = (
                f"{rng.choice(STREETS)[0]} {rng.choice(('MChJ', 'XK', 'OK'))}"
                if legal
                else (f"{surname} {first}")
            )
            inn = f"{300_000_000 + i:09d}" if legal else None
            phone = f"9989{rng.choice('013457')}{rng.randrange(10**7):07d}"
            kind = "legal" if legal else "household"
            number = make_number(i + 1)
            cp.write_row((number, kind, kind, name, inn, phone, i + 1))
            street, street_ru = streets[i // HOUSES_PER_STREET]
            serial = None if rng.random() < 0.1 else f"SV{2015 + i % 10}-{i:06d}"
            subs.append(
                Subscriber(number, name, street, street_ru, str(i % HOUSES_PER_STREET + 1),
                           phone, serial, inn)
            )  # fmt: skip
    with conn.cursor().copy("COPY meters (serial_no) FROM STDIN") as cp:
        for sub in subs:
            if sub.serial:
                cp.write_row((sub.serial,))
    conn.execute(
        "INSERT INTO service_connections (account_id, meter_id, installed_at) "
        "SELECT a.id, m.id, '2024-01-01' FROM meters m "
        "JOIN accounts a ON a.id = 1 + substr(m.serial_no, 8)::bigint"
    )
    return subs


def search_queries(subs: list[Subscriber], n: int, seed: int = 7) -> list[str]:
    """``n`` search texts as people type them, each from a subscriber of the register:
    street and house in Uzbek Latin, Uzbek Cyrillic, the Russian spelling or the first
    letters of the street; a name in Latin or Cyrillic; the phone's last 9 digits; the
    account number; a meter serial; an INN."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        s = rng.choice(subs)
        kind = rng.randrange(10)
        if kind == 0:
            out.append(f"{s.street} {s.house}")
        elif kind == 1:
            out.append(f"{to_cyrillic(s.street)} {s.house}")
        elif kind == 2:
            out.append(f"ул. {s.street_ru}, д. {s.house}")
        elif kind == 3:
            out.append(f"{s.street.split()[0][:4]} {s.house}")
        elif kind == 4:
            out.append(s.name)
        elif kind == 5:
            out.append(to_cyrillic(s.name))
        elif kind == 6:
            p = s.phone[-9:]
            out.append(f"{p[:2]} {p[2:5]} {p[5:7]} {p[7:]}")
        elif kind == 7:
            out.append(s.number)
        elif kind == 8 and s.serial:
            out.append(s.serial)
        elif kind == 9 and s.inn:
            out.append(s.inn)
    return out


SEARCH_TRIGGERS = (
    ("accounts", "accounts_search_insert"),
    ("service_connections", "service_connections_search_insert"),
)
"""The triggers that keep the search keys, off during the bulk load (migration 0203)."""


def seed(url: str, accounts: int, points: int) -> tuple[list[str], list[int], list[Subscriber]]:
    with psycopg.connect(url, autocommit=True) as conn, Progress(console=console) as bar:
        task = bar.add_task("preparing the database", total=5)
        migrate(conn)
        # the benchmark's login: every request's token is checked against api_users
        conn.execute(
            "INSERT INTO api_users (id, username, role, password_hash) OVERRIDING SYSTEM VALUE "
            "VALUES (1, 'bench', 'admin', '!')"
        )
        bar.advance(task)
        # a bulk load: the search keys are made in one statement and indexed afterwards
        conn.execute("DROP INDEX IF EXISTS account_search_words, account_search_key_trgm")
        with conn.transaction():
            for table, trigger in SEARCH_TRIGGERS:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            subs = seed_register(conn, accounts)
            conn.execute("SELECT billing_search_refresh(ARRAY(SELECT id FROM accounts))")
            for table, trigger in SEARCH_TRIGGERS:
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        conn.execute("SELECT billing_search_setup('auto')")
        numbers = [s.number for s in subs]
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
    return numbers, pids, subs


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
    port: int,
    token: str,
    kind: str,
    numbers: list[str],
    pids: list[int],
    seconds: float,
    queries: list[str] | None = None,
) -> tuple[dict[str, list[float]], int, float]:
    lat: dict[str, list[float]] = {"balance": [], "rollup": [], "search": [], "found": []}
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
                elif what == "search":
                    q = quote(rnd.choice(queries or [""]))
                    path = f"/api/v1/search/accounts?q={q}&limit=20"
                else:
                    path = f"/api/v1/points/{rnd.choice(pids)}/readings?from={frm}&to={to}"
                t0 = time.perf_counter()
                status, body = await client.get(path)
                lat[what].append((time.perf_counter() - t0) * 1000)
                if what == "search":
                    lat["found"].append(float(not body.startswith(b'{"items":[]')))
                if status != 200:
                    errors += 1
        finally:
            await client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat, errors, time.perf_counter() - t0


async def sql_phase(
    db_url: str,
    kind: str,
    numbers: list[str],
    pids: list[int],
    seconds: float,
    queries: list[str] | None = None,
    found: list[float] | None = None,
) -> list[float]:
    from psycopg_pool import AsyncConnectionPool

    lat: list[float] = []
    frm = END - timedelta(days=30)
    async with AsyncConnectionPool(
        db_url, min_size=20, max_size=20, open=False, timeout=600
    ) as pool:
        await pool.open(wait=True)
        stop = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            rnd = random.Random(1000 + i)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with pool.connection() as conn:
                    if kind == "balance":
                        await (await conn.execute(SQL_BALANCE, (rnd.choice(numbers),))).fetchall()
                    elif kind == "search":
                        q = rnd.choice(queries or [""])
                        digits = "".join(c for c in q if c.isdigit())
                        rows = await (
                            await conn.execute(
                                SQL_SEARCH_ILIKE, {"q": q, "pat": like_pattern(q), "digits": digits}
                            )
                        ).fetchall()
                        if found is not None:
                            found.append(float(bool(rows)))
                    else:
                        await (
                            await conn.execute(SQL_ROLLUP, (rnd.choice(pids), frm, END))
                        ).fetchall()
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat


def app_with_register() -> Any:
    """The API as ``suvnet api run`` serves it, with the register's JSON routes (the search)
    added first when the app does not have them yet (uvicorn factory of this benchmark; a
    route is found by trying the routes in order, so the busy ones come first, as in
    api.app.ROUTERS)."""
    from api.cli import _factory
    from api.routes import register

    app = _factory()
    if not any(getattr(r, "path", "") == "/api/v1/search/accounts" for r in app.routes):
        before = len(app.router.routes)
        app.include_router(register.router)
        added = app.router.routes[before:]
        del app.router.routes[before:]
        app.router.routes[0:0] = added
    return app


def start_server(db_url: str, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """One uvicorn worker (uvloop, httptools) serving :func:`app_with_register` on ``port``;
    returns once /health answers (bench.common.start_api_server, with this app)."""
    import os

    import httpx

    env = {
        **os.environ,
        "SUVNET_DATABASE_URL": db_url,
        "SUVNET_LOG_LEVEL": "WARNING",
        "SUVNET_SECRET_KEY": SECRET,
        "SUVNET_DB_POOL_MIN": "20",
        "SUVNET_DB_POOL_MAX": "20",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.api:app_with_register",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("uvicorn exited before it answered")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("uvicorn did not answer within 60 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, short phases (< 1 min)")
    ap.add_argument("--accounts", type=int, default=None, help="accounts (default 300,000)")
    ap.add_argument("--points", type=int, default=None, help="points (default 1,000)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per phase")
    args = ap.parse_args()
    accounts = args.accounts or (5_000 if args.quick else 300_000)
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
        numbers, pids, subs = seed(db_url, accounts, points)
        queries = search_queries(subs, 2000)
        print(
            f"data: {accounts:,} accounts, {points:,} points x 8,760 hourly rollups "
            f"({time.perf_counter() - t0:.1f} s to load)"
        )
        port = free_port()
        proc = start_server(db_url, port)
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

        search, errors, elapsed = asyncio.run(
            http_phase(port, token, "search", numbers, pids, seconds, queries)
        )
        if errors:
            raise SystemExit(f"{errors} search requests failed")
        found = sum(search["found"]) / max(1, len(search["found"]))
        srch = p99(search["search"])
        print(
            f"api search  : {len(search['search']):6d} requests in {elapsed:.1f} s, "
            f"{len(search['search']) / elapsed:7.1f} req/s, p50 "
            f"{sorted(search['search'])[len(search['search']) // 2]:.1f} ms, p99 {srch:.1f} ms, "
            f"found something for {found:.0%} of the queries"
        )

        base_p99: dict[str, float] = {}
        for kind in ("balance", "rollup"):
            lat_sql = asyncio.run(sql_phase(db_url, kind, numbers, pids, seconds / 2))
            base_p99[kind] = p99(lat_sql)
            print(
                f"sql {kind:8s}: {len(lat_sql):6d} queries, p99 {base_p99[kind]:.1f} ms "
                f"(baseline: the same query straight to PostgreSQL, 50 tasks)"
            )
        base_found: list[float] = []
        lat_ilike = asyncio.run(
            sql_phase(db_url, "search", numbers, pids, seconds / 2, queries, base_found)
        )
        ilike = p99(lat_ilike)
        print(
            f"sql search  : {len(lat_ilike):6d} queries, p99 {ilike:.1f} ms, found something for "
            f"{sum(base_found) / max(1, len(base_found)):.0%} (baseline: the same queries as "
            "the old plain ILIKE search, straight to PostgreSQL, 50 tasks)"
        )
        bal = p99(results["balance"]["balance"])
        rol = p99(results["rollup"]["rollup"])
        print(
            f"ratio to baseline (API p99 / SQL p99): balance {bal / base_p99['balance']:.2f}x, "
            f"rollup {rol / base_p99['rollup']:.2f}x"
        )
        print(
            f"goals: balance_p99_ms < 50 ({'met' if bal < 50 else 'NOT met'}), "
            f"rollup_p99_ms < 200 ({'met' if rol < 200 else 'NOT met'}), "
            f"search_p99_ms < 100 ({'met' if srch < 100 else 'NOT met'})"
        )
        print(
            json.dumps(
                {
                    "balance_p99_ms": round(bal, 2),
                    "rollup_p99_ms": round(rol, 2),
                    "requests_per_s": round(rps, 1),
                    "search_p99_ms": round(srch, 2),
                    "search_ilike_p99_ms": round(ilike, 2),
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
