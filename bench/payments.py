"""Payments benchmark: Payme and Click callbacks over real HTTP, and bank statement import.

What is measured (one run, one process for the clients, one uvicorn worker, real PostgreSQL):

* payme_payments_per_s: complete Payme payments per second (CheckPerformTransaction +
  CreateTransaction + PerformTransaction, 3 HTTP calls each) with 20 concurrent clients;
* payme_flow_p99_ms: 99th percentile time of one complete Payme payment (the 3 calls);
* click_payments_per_s: complete Click payments (Prepare + Complete) per second, 20 clients;
* statement_lines_per_s: lines per second of a generated CSV statement imported with the
  match cascade (60 % account number, 20 % INN, 20 % unmatched with name suggestions).

Baseline (same process, same database): ``billing.ledger.post_payment`` called directly, one
payment per transaction, by 20 threads on their own connections (baseline_ledger_posts_per_s).
The ratio payme_vs_baseline = payme_payments_per_s / baseline is what HTTP, JSON-RPC, the
auth check and the provider-transaction bookkeeping cost on top of the bare ledger posting.

Data: --quick 2,000 accounts, 3 s phases, a 2,000-line statement (ends within a minute);
full: 50,000 accounts, 15 s phases, a 20,000-line statement. The database is a fresh one on
the server of SUVNET_TEST_DATABASE_URL or 127.0.0.1:5432, dropped at the end. Clients share
the machine with the server, so the figures are a floor.

Usage: python bench/payments.py [--quick]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, p99, server_url, start_api_server, with_db  # noqa: E402
from billing.accountno import make_number  # noqa: E402
from billing.ledger import post_payment  # noqa: E402
from billing.payments.importer import import_statement  # noqa: E402
from billing.payments.statements import parse_statement  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

CLIENTS = 20
PAYME_KEY = "bench-payme-key"
CLICK_SECRET = "bench-click-secret"
CLICK_SERVICE = "777"
_ids = itertools.count(1)


def seed(url: str, accounts: int) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO regions (name_uz) VALUES ('Bench')")
        conn.execute("INSERT INTO districts (region_id, name_uz) VALUES (1, 'Bench')")
        conn.execute("INSERT INTO mahallas (district_id, name_uz) VALUES (1, 'Bench')")
        conn.execute(
            "INSERT INTO streets (mahalla_id, name_uz) SELECT 1, 'Street ' || g "
            "FROM generate_series(1, 200) g"
        )
        conn.execute(
            "INSERT INTO houses (street_id, number) SELECT 1 + g % 200, g::text "
            "FROM generate_series(1, 5000) g"
        )
        numbers = [make_number(i) for i in range(1, accounts + 1)]
        with conn.cursor().copy(
            "COPY accounts (number, kind, category, name, house_id, inn) FROM STDIN"
        ) as cp:
            for i, n in enumerate(numbers):
                legal = i % 10 == 0
                cp.write_row(
                    (
                        n,
                        "legal" if legal else "household",
                        "legal" if legal else "household",
                        f"{'Korxona' if legal else 'Abonent'} {i} Familiyev",
                        1 + i % 5000,
                        f"{300000000 + i:09d}" if legal else None,
                    )
                )
        conn.execute("VACUUM ANALYZE")
    return numbers


async def payme_phase(base: str, numbers: list[str], seconds: float) -> tuple[int, list[float]]:
    auth = {"Authorization": "Basic " + base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()}
    lat: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, headers=auth, limits=limits, timeout=30) as c:
        stop = time.perf_counter() + seconds

        async def call(method: str, params: dict[str, object]) -> dict[str, object]:
            r = await c.post("/api/payme", json={"id": 1, "method": method, "params": params})
            body: dict[str, object] = r.json()
            if "error" in body:
                raise SystemExit(f"payme {method} failed: {body}")
            return body

        async def worker(i: int) -> None:
            rnd = random.Random(i)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                acc = {"account": rnd.choice(numbers)}
                amount = rnd.randint(1000, 10_000_000)
                tid = f"bench-{next(_ids)}"
                await call("CheckPerformTransaction", {"amount": amount, "account": acc})
                await call(
                    "CreateTransaction",
                    {"id": tid, "time": int(time.time() * 1000), "amount": amount, "account": acc},
                )
                await call("PerformTransaction", {"id": tid})
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
        return len(lat), [time.perf_counter() - t0, *lat]


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


async def click_phase(base: str, numbers: list[str], seconds: float) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    done = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as c:
        stop = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal done
            rnd = random.Random(100 + i)
            while time.perf_counter() < stop:
                tid = str(10_000_000 + next(_ids))
                acc = rnd.choice(numbers)
                amount = f"{rnd.randint(10, 100_000)}.{rnd.randint(0, 99):02d}"
                st = "2026-11-20 10:00:00"
                f = {
                    "click_trans_id": tid,
                    "service_id": CLICK_SERVICE,
                    "click_paydoc_id": tid,
                    "merchant_trans_id": acc,
                    "amount": amount,
                    "action": "0",
                    "error": "0",
                    "error_note": "Success",
                    "sign_time": st,
                }
                f["sign_string"] = md5(tid + CLICK_SERVICE + CLICK_SECRET + acc + amount + "0" + st)
                prep = (await c.post("/api/click/prepare", data=f)).json()
                if prep["error"] != 0:
                    raise SystemExit(f"click prepare failed: {prep}")
                pid = str(prep["merchant_prepare_id"])
                f.update(action="1", merchant_prepare_id=pid)
                f["sign_string"] = md5(
                    tid + CLICK_SERVICE + CLICK_SECRET + acc + pid + amount + "1" + st
                )
                comp = (await c.post("/api/click/complete", data=f)).json()
                if comp["error"] != 0:
                    raise SystemExit(f"click complete failed: {comp}")
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
        return done, time.perf_counter() - t0


def statement_phase(db_url: str, numbers: list[str], lines: int) -> tuple[int, float]:
    rnd = random.Random(7)
    rows = [
        "account;20208000900123456001",
        "number;B1",
        "date_from;2026-11-20",
        "date_to;2026-11-20",
        "opening_balance;0",
    ]
    body = []
    total = 0
    for i in range(lines):
        amount = rnd.randint(100, 10_000_000)
        total += amount
        kind = i % 5
        acc = rnd.choice(numbers)
        if kind < 3:
            payer, inn, purpose = "Abonent", "", f"Suv uchun {acc}"
        elif kind == 3:
            j = rnd.randrange(0, len(numbers), 10)
            payer, inn, purpose = f"Korxona {j}", f"{300000000 + j:09d}", "Shartnoma bo'yicha"
        else:
            payer, inn, purpose = f"Abonent {rnd.randrange(len(numbers))} Familiyev", "", "suv"
        body.append(
            f"20.11.2026;{i + 1};{amount // 100}.{amount % 100:02d};;{payer};{inn};;;{purpose}"
        )
    rows.append(f"closing_balance;{total // 100}.{total % 100:02d}")
    rows.append("date;doc_no;credit;debit;payer_name;payer_inn;payer_account;payer_mfo;purpose")
    data = ("\n".join(rows + body) + "\n").encode()
    t0 = time.perf_counter()
    stmt = parse_statement(data, "bench.csv")
    with psycopg.connect(db_url) as conn, conn.transaction():
        s = import_statement(conn, stmt, now=datetime.now(UTC), by="bench")
    elapsed = time.perf_counter() - t0
    print(
        f"statement: {s.lines_new} lines, matched {s.matched}, review {s.review}, "
        f"suspense {s.suspense} in {elapsed:.1f} s"
    )
    return s.lines_new, elapsed


def baseline_phase(db_url: str, numbers: list[str], seconds: float) -> float:
    ids: list[int] = []
    with psycopg.connect(db_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM accounts").fetchall()]
    counts = [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        rnd = random.Random(500 + i)
        with psycopg.connect(db_url) as conn:
            while time.perf_counter() < stop:
                with conn.transaction():
                    post_payment(
                        conn,
                        amount_tiyin=rnd.randint(1000, 10**7),
                        paid_at=datetime.now(UTC),
                        source="bench",
                        external_ref=uuid.uuid4().hex,
                        account_id=rnd.choice(ids),
                    )
                counts[i] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, short phases (< 1 min)")
    args = ap.parse_args()
    accounts = 2_000 if args.quick else 50_000
    seconds = 3.0 if args.quick else 15.0
    lines = 2_000 if args.quick else 20_000

    admin_url = server_url()
    name = f"suvnet_bench_payments_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = with_db(admin_url, name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        numbers = seed(db_url, accounts)
        print(f"data: {accounts:,} accounts")
        port = free_port()
        proc = start_api_server(
            db_url,
            port,
            {
                "SUVNET_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
                "SUVNET_DB_POOL_MIN": "4",
                "SUVNET_DB_POOL_MAX": "20",
                "SUVNET_PAYME_MERCHANT_ID": "bench",
                "SUVNET_PAYME_KEY": PAYME_KEY,
                "SUVNET_CLICK_SERVICE_ID": CLICK_SERVICE,
                "SUVNET_CLICK_MERCHANT_ID": "1",
                "SUVNET_CLICK_SECRET_KEY": CLICK_SECRET,
            },
        )
        base = f"http://127.0.0.1:{port}"
        asyncio.run(payme_phase(base, numbers, 1.0))  # warm up
        n, rest = asyncio.run(payme_phase(base, numbers, seconds))
        elapsed, lat = rest[0], rest[1:]
        payme_rate = n / elapsed
        print(
            f"payme: {n} payments (3 calls each) in {elapsed:.1f} s, {payme_rate:.1f}/s, "
            f"p50 {sorted(lat)[len(lat) // 2]:.1f} ms, p99 {p99(lat):.1f} ms"
        )
        cn, celapsed = asyncio.run(click_phase(base, numbers, seconds))
        click_rate = cn / celapsed
        print(f"click: {cn} payments (2 calls each) in {celapsed:.1f} s, {click_rate:.1f}/s")
        proc.terminate()
        proc.wait(timeout=15)
        proc = None
        sl, selapsed = statement_phase(db_url, numbers, lines)
        base_rate = baseline_phase(db_url, numbers, seconds)
        print(
            f"baseline: post_payment straight to PostgreSQL, {CLIENTS} threads: "
            f"{base_rate:.1f} payments/s"
        )
        print(
            f"ratio to baseline: payme {payme_rate / base_rate:.3f}, "
            f"click {click_rate / base_rate:.3f}"
        )
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM provider_transactions p LEFT JOIN ledger l "
                "ON l.id = p.ledger_id WHERE p.state = 2 AND l.id IS NULL"
            ).fetchone()
            if row is None or row[0] != 0:
                raise SystemExit("a performed transaction lacks its ledger entry")
        print(
            json.dumps(
                {
                    "payme_payments_per_s": round(payme_rate, 1),
                    "payme_flow_p99_ms": round(p99(lat), 1),
                    "click_payments_per_s": round(click_rate, 1),
                    "statement_lines_per_s": round(sl / selapsed, 1),
                    "baseline_ledger_posts_per_s": round(base_rate, 1),
                    "payme_vs_baseline": round(payme_rate / base_rate, 3),
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
