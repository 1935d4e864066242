"""Scale benchmark (issue 20): a generated region, measured, not scaled.

The region: ACCOUNTS accounts in 20 branches (each branch one district, made by
billing.demo.generate with its own MFYs, streets and houses; the branch owns the district,
so every account, house and meter carries the branch), a third of the accounts metered with
a year of monthly register readings, and the telemetry: 20 gateways (one per branch) with
POINTS points. Full mode: 1,000,000 accounts and 10,000 points. --quick: 10,000 accounts
and 1,000 points, 3-second API phases, the same keys, about a minute on an idle machine
(two on the shared development machine).

Keys (the last line is one JSON object):

* billing_run_s_1m: ``billing.run.run_billing`` of October 2026 for every account of every
  branch, one process, measured (fetch, compute, post invoices and ledger entries, no PDFs).
  In --quick mode it is the time for the quick region (NOT scaled to a million; the JSON
  says how many accounts were billed, ``accounts``);
* billing_run_branch_parallel_s: November 2026 billed branch by branch in parallel
  processes (``--procs``, default: the cores), with billing.run's own batch functions (the
  invoices of each branch come from its own gapless series, so branches do not wait for
  each other); the parent does what run_billing does around the batches (the accounts to
  bill, the run's row). Ratio printed: serial / parallel, per account;
* slips_pdf_per_s: payment slips (billing.documents: data and ReportLab PDF, one file per
  MFY batch as ``suvnet billing slips`` prints them) per second, one process;
* balance_p99_ms, search_p99_ms: 50 HTTP clients against one uvicorn worker (the API as
  ``suvnet api run`` serves it) while ``suvnet ingest run`` stores 20,000 readings/s from
  MQTT (a private Mosquitto, gateways emulated as in bench/ingest.py) into the same
  database; ``ingest_stored_per_s`` says what it really stored meanwhile. Baselines in the
  same run and under the same ingest load: the same balance query, and the same search
  function (billing.search), sent straight to PostgreSQL by 50 asyncio tasks over a
  20-connection pool; the ratios are API p99 / baseline p99;
* api_cpu_ms_per_request and the split of it (``overhead``): where the API's time over raw
  SQL goes, from CPU time of sequential in-process requests (robust on a shared machine):
  the framework (routing, dependencies, middleware, JSON), the login check and branch
  scope statement (one round trip, issue 13 and 20), and the balance query itself.

The machine is shared (2 cores here for the database, the API, ingest, the broker and the
load generators), so latencies are a floor for real hardware; the ratios and CPU figures
travel better. The database is a fresh one on SUVNET_TEST_DATABASE_URL or 127.0.0.1:5432,
dropped at the end (``--keep`` keeps it and prints its URL).

``--only billing`` generates the region (without the accounts' search keys, which the run does
not read) and measures only billing_run_s_1m (the one-process run of October), skipping the
parallel run, the slips and the API phases; its JSON line has
``accounts``, ``generate_s`` and ``billing_run_s_1m`` (with ``billing_accounts_per_s``).

BENCH_API_WORKERS (default 1) sets the API server's uvicorn workers for the API phases.

Usage: python bench/scale.py [--quick] [--accounts N] [--points N] [--procs P] [--seconds S]
       [--only billing] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, p99, server_url, with_db  # noqa: E402
from billing.queries import BALANCE_SQL as SQL_BALANCE  # noqa: E402  (the API's own query)

BRANCHES = 20
CLIENTS = 50
OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)
NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
INGEST_RATE = 20_000
"""Readings per second the gateways send during the API phases (200 messages of 100)."""
DEVICES_PER_GATEWAY_POINTS = 4
SEARCH_TRIGGERS = tuple(
    (t, f"{t}_search_{w}")
    for t, ws in (
        ("accounts", ("insert", "update")),
        ("service_connections", ("insert", "update")),
        ("meters", ("update",)),
        ("houses", ("update",)),
        ("streets", ("update",)),
        ("mahallas", ("update",)),
    )
    for w in ws
)
"""The triggers that keep the search keys (migration 0203), off during the bulk load."""


def log(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------ the region


def make_region(url: str, accounts: int, points: int, *, search: bool = True) -> dict[str, Any]:
    """The region (see the module doc); returns what the phases need. ``search=False``
    leaves the accounts' search keys unmade (``--only billing``: the run does not read
    them, and making them for a million accounts takes a quarter of an hour)."""
    from billing.demo import generate
    from suvnet.migrate import migrate

    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO api_users (id, username, role, password_hash) OVERRIDING SYSTEM VALUE "
            "VALUES (1, 'bench', 'admin', '!')"
        )
    with psycopg.connect(url) as conn:
        branch_ids = []
        for b in range(BRANCHES):
            code = f"B{b + 1:02d}"
            row = conn.execute(
                "INSERT INTO branches (code, name, legal_name, inn, bank, bank_account, mfo, "
                "address, phone) VALUES (%s, %s, %s, %s, 'Xalq banki', %s, '00873', %s, "
                "'+998 66 233 00 00') RETURNING id",
                (
                    code,
                    f"{code} filiali",
                    f"{code} suv ta'minoti filiali",
                    f"{301_000_000 + b:09d}",
                    f"{20_210_000_000_000_000_000 + b:020d}",
                    f"{code} tumani, Mustaqillik 1",
                ),
            ).fetchone()
            assert row is not None
            branch_ids.append(int(row[0]))
        # a bulk load: the search keys are made in one statement at the end and indexed
        # afterwards (as bench/api.py does); the per-row triggers would take most of the time
        conn.execute("DROP INDEX IF EXISTS account_search_words, account_search_key_trgm")
        for table, trigger in SEARCH_TRIGGERS:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        # the register (MFYs, streets, houses, accounts, meters, readings around November)
        info = generate(conn, accounts, period=NOV, seed=20, tag="Viloyat",
                        unmetered_share=2 / 3, zones=BRANCHES)  # fmt: skip
        log(f"  {accounts:,} accounts generated ({time.perf_counter() - t0:.0f} s)")
        # each branch owns a run of the MFYs (branch_mahallas) and a zone: the MFYs'
        # streets, houses, accounts and meters follow them (the triggers of migration 0800)
        mfys = list(info.mahalla_ids)
        for b, bid in enumerate(branch_ids):
            part = mfys[b * len(mfys) // BRANCHES : (b + 1) * len(mfys) // BRANCHES]
            conn.execute(
                "INSERT INTO branch_mahallas (mahalla_id, branch_id) SELECT m, %s "
                "FROM unnest(%s::bigint[]) m",
                (bid, part),
            )
            conn.execute("UPDATE zones SET branch_id = %s WHERE id = %s", (bid, info.zone_ids[b]))
        conn.commit()
        log(f"  {BRANCHES} branches own their MFYs ({time.perf_counter() - t0:.0f} s)")
        if search:
            conn.execute("SELECT billing_search_refresh(ARRAY(SELECT id FROM accounts))")
        for table, trigger in SEARCH_TRIGGERS:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        if search:
            conn.execute("SELECT billing_search_setup('auto')")
        conn.commit()
        made = "search keys and their index" if search else "search keys skipped (--only billing)"
        log(f"  {made} ({time.perf_counter() - t0:.0f} s)")
        # a year of monthly readings: nine more months before the three demo.generate made
        conn.execute("SET LOCAL TimeZone = 'Asia/Tashkent'")
        conn.execute(
            """INSERT INTO meter_readings (meter_id, ts, value_m3, source, entered_by)
               SELECT p.meter_id, p.ts - make_interval(months => k),
                      greatest(0, round((p.value_m3 - k * (s.value_m3 - p.value_m3))::numeric, 3)),
                      'inspector', 'bench'
               FROM meter_readings p
               JOIN meter_readings s ON s.meter_id = p.meter_id AND s.ts = %s
               CROSS JOIN generate_series(1, 9) k
               WHERE p.ts = %s""",
            (datetime(2026, 11, 1).isoformat(), datetime(2026, 10, 1).isoformat()),
        )
        conn.commit()
        reads = conn.execute("SELECT count(*) FROM meter_readings").fetchone()
        # telemetry: a gateway per branch, devices of 4 points each
        conn.execute(
            "INSERT INTO gateways (code, branch_id) SELECT 'gw-' || code, id FROM branches"
        )
        devices = -(-points // DEVICES_PER_GATEWAY_POINTS)
        conn.execute(
            """INSERT INTO devices (code, gateway_id, kind, profile)
               SELECT 'dev' || d, g.id, 'pressure_sensor', 'bench'
               FROM generate_series(0, %s - 1) d
               JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM gateways) g
                 ON g.k = d %% %s""",
            (devices, BRANCHES),
        )
        conn.execute(
            """INSERT INTO points (device_id, name, poll_period_s)
               SELECT d.id, 'p' || k, 60 FROM devices d, generate_series(0, %s - 1) k""",
            (DEVICES_PER_GATEWAY_POINTS,),
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM accounts "
            "WHERE branch_id IS NOT NULL), (SELECT count(*) FROM meters), "
            "(SELECT count(*) FROM points)"
        ).fetchone()
        pts = conn.execute(
            "SELECT g.code, d.code, p.name, p.id FROM points p "
            "JOIN devices d ON d.id = p.device_id JOIN gateways g ON g.id = d.gateway_id "
            "ORDER BY p.id"
        ).fetchall()
    assert counts is not None
    assert reads is not None
    log(
        f"region: {counts[0]:,} accounts ({counts[1]:,} in {BRANCHES} branches), "
        f"{counts[2]:,} meters with {reads[0]:,} monthly readings, {counts[3]:,} telemetry "
        f"points ({time.perf_counter() - t0:.0f} s to generate)"
    )
    return {"accounts": counts[0], "points": [tuple(p) for p in pts]}


# ------------------------------------------------------------------------------ billing


def billing_serial(url: str) -> tuple[float, int]:
    from billing.config import load_billing_config
    from billing.run import run_billing

    cfg = load_billing_config()
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        s = run_billing(conn, OCT, cfg, now=NOW)
        return time.perf_counter() - t0, s.invoices_created


def _bill_branch(job: tuple[str, list[int], int]) -> int:
    """A child process: bill one branch's accounts for November, batch by batch, with
    billing.run's batch function (what run_billing does inside its loop)."""
    from billing.config import load_billing_config
    from billing.run import PeriodWindow, _bill_batch, load_norms, load_tariffs

    url, ids, run_id = job
    cfg = load_billing_config()
    win = PeriodWindow.of(NOV, cfg.timezone)
    done = 0
    with psycopg.connect(url) as conn:
        tariffs, norms = load_tariffs(conn), load_norms(conn)
        conn.commit()
        for start in range(0, len(ids), 5000):
            _bills, n = _bill_batch(
                conn, ids[start : start + 5000], win, cfg, tariffs, norms, now=NOW, run_id=run_id
            )
            done += n
    return done


def billing_parallel(url: str, procs: int) -> tuple[float, int]:
    from billing.config import load_billing_config
    from billing.run import PeriodWindow, RunSummary, _finish_run, _start_run, _unbilled

    cfg = load_billing_config()
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        win = PeriodWindow.of(NOV, cfg.timezone)
        todo, _ = _unbilled(conn, win, cfg.timezone)
        run_id = _start_run(conn, win, now=NOW, total=len(todo))
        rows = conn.execute(
            "SELECT id, coalesce(branch_id, 0) FROM accounts WHERE id = ANY(%s) ORDER BY id",
            (todo,),
        ).fetchall()
        conn.commit()
        by_branch: dict[int, list[int]] = {}
        for aid, bid in rows:
            by_branch.setdefault(int(bid), []).append(int(aid))
        jobs = [(url, ids, run_id) for ids in by_branch.values()]
        with mp.get_context("fork").Pool(procs) as pool:
            made = sum(pool.imap_unordered(_bill_branch, jobs))
        _finish_run(conn, RunSummary(NOV, False), run_id, now=NOW, total=len(todo))
    return time.perf_counter() - t0, made


# ------------------------------------------------------------------------------ slips


def slips(url: str, n: int) -> tuple[float, int, float]:
    """Slips of the first ``n`` accounts of one branch (October), rendered in batches of
    one MFY's size; returns (slips per second, slips, seconds spent fetching the data)."""
    from billing.config import load_billing_config
    from billing.documents import render_slips, slip_data

    cfg = load_billing_config()
    with psycopg.connect(url) as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM accounts WHERE branch_id = (SELECT branch_id FROM accounts "
                "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) ORDER BY id LIMIT %s",
                (n,),
            ).fetchall()
        ]
        t0 = time.perf_counter()
        t_data = 0.0
        done = 0
        for start in range(0, len(ids), 200):
            td = time.perf_counter()
            batch = [slip_data(conn, aid, OCT, cfg) for aid in ids[start : start + 200]]
            t_data += time.perf_counter() - td
            pdf = render_slips(batch, cfg, "uz")
            assert pdf.startswith(b"%PDF")
            done += len(batch)
        elapsed = time.perf_counter() - t0
    return done / elapsed, done, t_data


# ------------------------------------------------------------------------------ the API


class IngestLoad:
    """Gateways sending INGEST_RATE readings/s to a private Mosquitto, and a real
    ``suvnet ingest run`` storing them in the database (bench/ingest.py's machinery)."""

    def __init__(self, url: str, points: list[tuple[str, str, str, int]], tmp: Path) -> None:
        from bench.ingest import RawPublisher, start_broker
        from suvnet.protocol import Topics

        self.url = url
        self.points = points
        self.broker, mqtt_url = start_broker(tmp)
        self.topics = Topics(f"bench{uuid.uuid4().hex[:6]}/suvnet")
        env = dict(
            os.environ,
            SUVNET_DATABASE_URL=url,
            SUVNET_MQTT_URL=mqtt_url,
            SUVNET_TOPIC_ROOT=self.topics.root,
            SUVNET_INGEST_CLIENT_ID=f"bench-ingest-{uuid.uuid4().hex[:6]}",
            SUVNET_INGEST_METRICS_PORT="0",
            SUVNET_LOG_LEVEL="WARNING",
        )
        self.log_path = tmp / "ingest.log"
        self.ingest = subprocess.Popen(
            [str(Path(sys.executable).parent / "suvnet"), "ingest", "run"],
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.pub = RawPublisher(mqtt_url)
        self.stop = threading.Event()
        self.sent = 0
        self.thread: threading.Thread | None = None
        self._wait_stored()

    def _rows(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as c:
            row = c.execute("SELECT count(*) FROM readings").fetchone()
        return int(row[0]) if row else 0

    def _wait_stored(self) -> None:
        """One batch stored: the worker is subscribed and writing."""
        from bench.ingest import make_batches

        msgs, _ = make_batches(self.points[:100], 100, 100, "warm", int(time.time() * 1000))
        deadline = time.monotonic() + 60
        while self._rows() == 0:
            gw, _seq, payload = msgs[0]
            self.pub.send(self.pub.packet(self.topics.telemetry(gw), payload), 1)
            time.sleep(0.5)
            if time.monotonic() > deadline or self.ingest.poll() is not None:
                raise SystemExit(f"ingest did not start; see {self.log_path}")

    def start(self, duration_s: float) -> None:
        from bench.ingest import make_batches

        # the messages of the whole load made ahead
        t0 = int(time.time() * 1000)
        total = int(INGEST_RATE * duration_s) // 100 * 100
        msgs, _ = make_batches(self.points, total, 100, uuid.uuid4().hex[:8], t0)
        packets = [self.pub.packet(self.topics.telemetry(gw), p) for gw, _s, p in msgs]
        self.rows0 = self._rows()
        self.t0 = time.perf_counter()

        def run() -> None:
            per_s = INGEST_RATE // 100
            start = time.perf_counter()
            i = 0
            while not self.stop.is_set() and i < len(packets):
                due = start + i / per_s
                now = time.perf_counter()
                if now < due:
                    time.sleep(min(0.01, due - now))
                    continue
                n = min(len(packets) - i, max(1, int((now - due) * per_s) + 1))
                self.pub.send(b"".join(packets[i : i + n]), n)
                self.sent += n * 100
                i += n

        self.thread = threading.Thread(target=run, name="bench-gateways", daemon=True)
        self.thread.start()

    def finish(self) -> tuple[float, float]:
        """Stop sending; (readings/s sent, readings/s stored) over the load's time."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        elapsed = time.perf_counter() - self.t0
        stored = self._rows() - self.rows0
        return self.sent / elapsed, stored / elapsed

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.pub.close()
        for p in (self.ingest, self.broker):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def search_texts(url: str, n: int) -> list[str]:
    """What people type: an account number, a name, a street and house, a phone's digits."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.number, a.name, s.name_uz, h.number, a.phone FROM accounts a "
            "JOIN houses h ON h.id = a.house_id JOIN streets s ON s.id = h.street_id "
            "ORDER BY md5(a.id::text) LIMIT %s",
            (n,),
        ).fetchall()
    rng = random.Random(20)
    out = []
    for number, name, street, house, phone in rows:
        kind = rng.randrange(4)
        if kind == 0:
            out.append(str(number))
        elif kind == 1:
            out.append(str(name))
        elif kind == 2:
            out.append(f"{str(street).replace(' ko' + chr(39) + 'chasi', '')} {house}")
        else:
            out.append(str(phone or number)[-7:])
    return out


async def http_phase(
    port: int, token: str, kind: str, numbers: list[str], texts: list[str], seconds: float
) -> tuple[list[float], int]:
    from urllib.parse import quote

    from bench.api import RawClient

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        rnd = random.Random(i)
        client = RawClient("127.0.0.1", port, token)
        try:
            while time.perf_counter() < stop:
                if kind == "balance":
                    path = f"/api/v1/accounts/{rnd.choice(numbers)}/balance"
                else:
                    path = f"/api/v1/search/accounts?q={quote(rnd.choice(texts))}&limit=20"
                t0 = time.perf_counter()
                status, _body = await client.get(path)
                lat.append((time.perf_counter() - t0) * 1000)
                errors += status != 200
        finally:
            await client.close()

    await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat, errors


async def sql_phase(
    url: str, kind: str, numbers: list[str], texts: list[str], seconds: float
) -> list[float]:
    from psycopg_pool import AsyncConnectionPool

    from billing import search

    lat: list[float] = []
    async with AsyncConnectionPool(url, min_size=20, max_size=20, open=False) as pool:
        await pool.open(wait=True)
        stop = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            rnd = random.Random(1000 + i)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with pool.connection() as conn:
                    await conn.set_autocommit(True)
                    if kind == "balance":
                        await (await conn.execute(SQL_BALANCE, (rnd.choice(numbers),))).fetchall()
                    else:
                        await search.search_accounts(conn, rnd.choice(texts), 20)
                    await conn.set_autocommit(False)
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return lat


def overhead_split(url: str, numbers: list[str], n: int) -> dict[str, float]:
    """CPU milliseconds per balance request, in this process, one request at a time: the
    whole app (ASGI call, no HTTP parsing), the two statements it sends (the login check
    with the branch scope, then the balance, pipelined in one round trip as the lean route
    of api.lean sends them) straight on a pooled connection, and the balance statement
    alone."""
    os.environ.update(
        SUVNET_DATABASE_URL=url,
        SUVNET_SECRET_KEY=SECRET,
        SUVNET_DB_POOL_MIN="2",
        SUVNET_DB_POOL_MAX="2",
        SUVNET_LOG_LEVEL="WARNING",
    )
    from api.cli import _factory
    from api.security import APP_ROLE, Principal, Role, make_access_token
    from api.users import CHECK_AND_SCOPE_SQL

    app = _factory()
    token = make_access_token(Principal(1, "bench", Role.ADMIN), SECRET, datetime.now(UTC))
    auth = f"Bearer {token}".encode()

    async def run() -> dict[str, float]:
        async with app.router.lifespan_context(app):

            async def call(path: str) -> int:
                scope = {
                    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                    "method": "GET", "scheme": "http", "path": path,
                    "raw_path": path.encode(), "query_string": b"", "root_path": "",
                    "headers": [(b"host", b"bench"), (b"authorization", auth)],
                    "client": ("127.0.0.1", 1), "server": ("bench", 80), "state": {},
                }  # fmt: skip
                status = 0

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": b"", "more_body": False}

                async def send(m: dict[str, Any]) -> None:
                    nonlocal status
                    if m["type"] == "http.response.start":
                        status = m["status"]

                await app(scope, receive, send)
                return status

            pool = app.state.suvnet.pool

            async def two(number: str) -> None:
                # as api.deps.scoped_read sends them: one pipeline, one round trip
                async with pool.connection() as conn:
                    await conn.set_autocommit(True)
                    async with conn.pipeline():
                        check = await conn.execute(CHECK_AND_SCOPE_SQL, (APP_ROLE, "*", 1))
                        bal = await conn.execute(SQL_BALANCE, (number,))
                        await check.fetchone()
                        await bal.fetchone()
                    await conn.set_autocommit(False)

            async def one(number: str) -> None:
                async with pool.connection() as conn:
                    await conn.set_autocommit(True)
                    await (await conn.execute(SQL_BALANCE, (number,))).fetchone()
                    await conn.set_autocommit(False)

            variants = {
                "app": lambda x: call(f"/api/v1/accounts/{x}/balance"),
                "two_statements": two,
                "balance_statement": one,
            }
            for fn in variants.values():  # warm: prepared statements, caches
                for x in numbers[:200]:
                    await fn(x)
            # the three interleaved in blocks of 50, so that the machine's other load
            # weighs on each alike; each variant's figure is its median block
            blocks: dict[str, list[float]] = {k: [] for k in variants}
            for rep in range(max(1, n // 50)):
                for name, fn in variants.items():
                    c0 = time.process_time()
                    for i in range(50):
                        await fn(numbers[(rep * 50 + i) % len(numbers)])
                    blocks[name].append((time.process_time() - c0) * 1000 / 50)
            out = {k: sorted(v)[len(v) // 2] for k, v in blocks.items()}
            assert await call(f"/api/v1/accounts/{numbers[0]}/balance") == 200
            return out

    return asyncio.run(run())


def api_phases(url: str, region: dict[str, Any], seconds: float, tmp: Path) -> dict[str, float]:
    from api.security import Principal, Role, make_access_token
    from bench.api import start_server

    with psycopg.connect(url) as conn:
        numbers = [
            str(r[0])
            for r in conn.execute(
                "SELECT number FROM accounts ORDER BY md5(number) LIMIT 20000"
            ).fetchall()
        ]
    texts = search_texts(url, 2000)
    load = IngestLoad(url, region["points"], tmp)
    proc = None
    try:
        port = free_port()
        proc = start_server(url, port, int(os.environ.get("BENCH_API_WORKERS", "1")))
        token = make_access_token(Principal(1, "bench", Role.ADMIN), SECRET, datetime.now(UTC))
        asyncio.run(http_phase(port, token, "balance", numbers, texts, 2.0))  # warm up
        load.start(3 * seconds + 10)
        bal, e1 = asyncio.run(http_phase(port, token, "balance", numbers, texts, seconds))
        srch, e2 = asyncio.run(http_phase(port, token, "search", numbers, texts, seconds))
        if e1 or e2:
            raise SystemExit(f"{e1 + e2} API requests failed")
        sql_bal = asyncio.run(sql_phase(url, "balance", numbers, texts, seconds / 2))
        sql_srch = asyncio.run(sql_phase(url, "search", numbers, texts, seconds / 2))
        sent, stored = load.finish()
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)), "
                "(SELECT count(*) FROM readings) FROM pg_inherits "
                "WHERE inhparent = 'readings'::regclass"
            ).fetchone()
        assert row is not None
        per_row = float(row[0] or 0) / max(1, int(row[1]))
        log(f"readings: {int(row[1]):,} rows stored, {per_row:.0f} bytes a row (plain "
            "PostgreSQL, table and primary key)")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        load.close()
    out = {
        "balance_p99_ms": p99(bal),
        "search_p99_ms": p99(srch),
        "balance_sql_p99_ms": p99(sql_bal),
        "search_sql_p99_ms": p99(sql_srch),
        "balance_per_s": len(bal) / seconds,
        "ingest_sent_per_s": sent,
        "ingest_stored_per_s": stored,
        "readings_bytes_per_row": per_row,
    }
    log(
        f"api under ingest ({sent:,.0f} readings/s sent, {stored:,.0f}/s stored): balance "
        f"{len(bal):,} requests, p50 {sorted(bal)[len(bal) // 2]:.1f} ms, p99 "
        f"{out['balance_p99_ms']:.1f} ms; search {len(srch):,} requests, p99 "
        f"{out['search_p99_ms']:.1f} ms"
    )
    log(
        f"baseline (the same query / search function straight to PostgreSQL, 50 tasks, same "
        f"ingest load): balance p99 {out['balance_sql_p99_ms']:.1f} ms, search p99 "
        f"{out['search_sql_p99_ms']:.1f} ms"
    )
    split = overhead_split(url, numbers, 1000)
    out |= {f"cpu_{k}_ms": v for k, v in split.items()}
    log(
        f"CPU per balance request, one at a time: app {split['app']:.2f} ms = framework "
        f"{split['app'] - split['two_statements']:.2f} (routing, dependencies, middleware, "
        f"token, JSON) + login check and scope "
        f"{split['two_statements'] - split['balance_statement']:.2f} "
        f"+ balance statement {split['balance_statement']:.2f} (psycopg and the pool, "
        "client side)"
    )
    return out


# ------------------------------------------------------------------------------ main


def _database(admin_url: str, keep: bool) -> Iterator[str]:
    name = f"suvnet_bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_db(admin_url, name)
    finally:
        if keep:
            log(f"kept: {with_db(admin_url, name)}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def other_phases(
    url: str, region: dict[str, Any], t_serial: float, procs: int, n_slips: int, seconds: float
) -> dict[str, Any]:
    """The phases after the one-process billing run; returns the JSON line's keys."""
    n = region["accounts"]
    t_par, made = billing_parallel(url, procs)
    assert made == n, f"{made} invoices for {n} accounts"
    log(
        f"billing run November, {BRANCHES} branches in {procs} processes: {t_par:.1f} s "
        f"({n / t_par:,.0f} accounts/s); ratio to the one-process run "
        f"{t_serial / t_par:.2f}x faster"
    )
    per_s, done, t_data = slips(url, n_slips)
    log(
        f"slips: {done:,} in {done / per_s:.1f} s = {per_s:.1f} slips/s "
        f"(data {t_data:.1f} s, PDF {done / per_s - t_data:.1f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="suvnet-bench-scale-") as tmp:
        api = api_phases(url, region, seconds, Path(tmp))
    bal, srch = api["balance_p99_ms"], api["search_p99_ms"]
    log(
        f"ratio to baseline (API p99 / SQL p99): balance "
        f"{bal / api['balance_sql_p99_ms']:.2f}x, search {srch / api['search_sql_p99_ms']:.2f}x"
    )
    if n < 1_000_000:
        goal = f"not measured at 1,000,000 ({n:,} accounts here)"
    else:
        goal = "met" if t_serial < 600 else "NOT met"
    log(
        f"goals: billing < 600 s for 1,000,000: {goal}; balance_p99_ms < 50: "
        f"{'met' if bal < 50 else 'NOT met'}"
    )
    return {
        "accounts": n,
        "billing_run_s_1m": round(t_serial, 2),
        "billing_run_branch_parallel_s": round(t_par, 2),
        "parallel_ratio": round(t_serial / t_par, 2),
        "slips_pdf_per_s": round(per_s, 1),
        "balance_p99_ms": round(bal, 2),
        "search_p99_ms": round(srch, 2),
        "balance_ratio": round(bal / api["balance_sql_p99_ms"], 2),
        "search_ratio": round(srch / api["search_sql_p99_ms"], 2),
        "ingest_stored_per_s": round(api["ingest_stored_per_s"]),
        "readings_bytes_per_row": round(api["readings_bytes_per_row"], 1),
        "api_cpu_ms_per_request": round(api["cpu_app_ms"], 3),
        "cpu_check_and_scope_ms": round(
            api["cpu_two_statements_ms"] - api["cpu_balance_statement_ms"], 3
        ),
        "cpu_balance_statement_ms": round(api["cpu_balance_statement_ms"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="10,000 accounts, short phases (< 1 min idle)"
    )
    ap.add_argument("--accounts", type=int, help="accounts (default 1,000,000)")
    ap.add_argument("--points", type=int, help="telemetry points (default 10,000)")
    ap.add_argument("--procs", type=int, help="processes of the parallel run (cores)")
    ap.add_argument("--seconds", type=float, help="seconds per API phase")
    ap.add_argument("--slips", type=int, help="slips to render")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument(
        "--only",
        choices=["billing"],
        help="billing: generate the region (no search keys) and measure only billing_run_s_1m "
        "(no parallel run, slips or API phases)",
    )
    a = ap.parse_args()
    accounts = a.accounts or (10_000 if a.quick else 1_000_000)
    points = a.points or (1_000 if a.quick else 10_000)
    procs = a.procs or os.cpu_count() or 1
    seconds = a.seconds or (3.0 if a.quick else 20.0)
    n_slips = a.slips or (60 if a.quick else 2_000)

    gen = _database(server_url(), a.keep)
    url = next(gen)
    try:
        t_gen = time.perf_counter()
        region = make_region(url, accounts, points, search=a.only != "billing")
        t_gen = time.perf_counter() - t_gen
        n = region["accounts"]
        t_serial, made = billing_serial(url)
        assert made == n, f"{made} invoices for {n} accounts"
        log(
            f"billing run October, one process: {n:,} accounts in {t_serial:.1f} s "
            f"({n / t_serial:,.0f} accounts/s); goal for 1,000,000: < 600 s"
            + ("" if n >= 1_000_000 else f" (this region: {n:,} accounts, not scaled)")
        )
        if a.only == "billing":
            goal = "met" if t_serial < 600 else "NOT met"
            if n < 1_000_000:
                goal = f"not measured at 1,000,000 ({n:,} accounts here)"
            log(f"goal: billing < 600 s for 1,000,000: {goal}")
            out = {
                "accounts": n,
                "generate_s": round(t_gen, 1),
                "billing_run_s_1m": round(t_serial, 2),
                "billing_accounts_per_s": round(n / t_serial),
            }
        else:
            out = other_phases(url, region, t_serial, procs, n_slips, seconds)
    finally:
        for _ in gen:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
