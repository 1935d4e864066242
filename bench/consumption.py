"""Consumption benchmark: numba kernels vs pandas vs SQL, and the whole billing run.

Figures (one run, one process):

* kernel_readings_per_s: hourly register readings per second (best of 3 runs) through the
  consumption kernels
  (interval deltas with validation flags + period volumes with estimation + roll-ups per
  account and street), one thread, on N meters × one month (30 days × 24 h);
* pandas_ratio: time of the same rules in pandas (groupby/shift/diff, vectorised) divided by
  the kernel time on the same data; the results are checked equal;
* sql_ratio: time of the same aggregation in PostgreSQL (window functions over the same
  rows, loaded beforehand with binary COPY; loading is not timed) divided by the kernel time,
  normalised per reading when SQL runs on a subset of the meters (--sql-meters; default
  4,000 in --quick and 20,000 in full mode, to keep the COPY load short); results are checked
  equal for the SQL meters;
* billing_run_s_100k: wall time of `run_billing` (fetch, compute, post invoices and ledger
  entries; PDFs excluded) for 100,000 demo accounts. In --quick mode the run is done on
  10,000 accounts and the time is SCALED linearly to 100,000 (the printed text says so).

Full mode: 100,000 meters (72M readings). --quick: 10,000 meters, ends within a minute.
The database is a fresh one on the PostgreSQL server of SUVNET_TEST_DATABASE_URL or
127.0.0.1:5432, dropped at the end.

Usage: python bench/consumption.py [--quick] [--meters N] [--sql-meters N] [--accounts N]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import server_url, with_db  # noqa: E402
from billing import consumption as cons  # noqa: E402
from billing.config import ConsumptionParams, load_billing_config  # noqa: E402
from billing.demo import generate  # noqa: E402
from billing.run import run_billing  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

HOURS = 30 * 24
WS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
WE = WS + HOURS * 3600
P = ConsumptionParams()
PV = cons.params_vector(P)


def make_data(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    """Hourly cumulative registers with rollovers, reverse steps, bad readings, spikes,
    stopped meters, gaps and missing period ends, in CSR layout."""
    rng = np.random.default_rng(seed)
    digits = np.where(rng.random(n) < 0.2, 4, 5)
    cap = (10.0**digits).astype(np.float64)
    rate = rng.gamma(2.0, 0.01, n)  # m³/h
    rate[rng.random(n) < 0.02] = 0.0  # stopped meters
    hour = np.arange(HOURS)
    diurnal = 0.4 + 1.2 * np.exp(-(((hour % 24) - 19.0) ** 2) / 8.0)
    steps = rate[:, None] * diurnal[None, :] * rng.uniform(0.5, 1.5, (n, HOURS))
    # a little reverse flow, bad readings (big negative), spikes
    steps[rng.random((n, HOURS)) < 0.001] = -0.02
    bad = rng.random((n, HOURS)) < 0.0003
    steps[bad] = -rng.uniform(100, 500, int(bad.sum()))
    spk = rng.random((n, HOURS)) < 0.0003
    steps[spk] = rng.uniform(20, 80, int(spk.sum()))
    start = rng.uniform(0, 1, n) * cap
    near = rng.random(n) < 0.05  # close to full scale: they roll over during the month
    start[near] = cap[near] - rng.uniform(0.5, 5, int(near.sum()))
    steps[:, 0] = 0.0
    value = np.mod(start[:, None] + np.cumsum(steps, axis=1), cap[:, None])
    value = np.round(value, 3)
    keep = rng.random((n, HOURS)) >= 0.01  # 1 % readings lost
    gap_m = rng.random(n) < 0.01  # a 3-day outage
    keep[gap_m, 200:272] = False
    end_m = rng.random(n) < 0.03  # the last 5 days missing
    keep[end_m, HOURS - 120 :] = False
    keep[:, 0] = True
    counts = keep.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ts = np.broadcast_to(WS + hour.astype(np.int64) * 3600, (n, HOURS))[keep]
    return {
        "offsets": offsets,
        "ts": np.ascontiguousarray(ts, dtype=np.int64),
        "value": np.ascontiguousarray(value[keep]),
        "cap": cap,
        "meter": np.repeat(np.arange(n, dtype=np.int64), counts),
        "account": np.arange(n, dtype=np.int64) // 1,
        "street": np.arange(n, dtype=np.int64) // 40,
    }


def run_kernel(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = d["cap"].shape[0]
    ws = np.full(n, WS, dtype=np.int64)
    we = np.full(n, WE, dtype=np.int64)
    r = cons.compute(d["offsets"], d["ts"], d["value"], d["cap"], ws, we, PV)
    by_acc = cons.group_sum(r.volume, d["account"], int(d["account"].max()) + 1)
    by_street = cons.group_sum(by_acc, d["street"], int(d["street"].max()) + 1)
    _ = by_street
    return r.volume, r.flags


def run_pandas(d: dict[str, np.ndarray]) -> np.ndarray:
    """The same rules with pandas (interval flags + volumes + end estimation + roll-ups)."""
    spike, rev, lz, gap, _prol, win, hist = (float(x) for x in PV)
    df = pd.DataFrame({"meter": d["meter"], "ts": d["ts"], "value": d["value"]})
    df["cap"] = d["cap"][d["meter"]]
    g = df.groupby("meter", sort=False)
    prev_v = g["value"].shift()
    dt = (df["ts"] - g["ts"].shift()).to_numpy()
    dv = (df["value"] - prev_v).to_numpy()
    capv = df["cap"].to_numpy()
    first = prev_v.isna().to_numpy()
    roll = (
        (dv < 0) & (prev_v.to_numpy() >= capv * (1 - win)) & (df["value"].to_numpy() <= capv * win)
    )
    dv = np.where(roll, dv + capv, dv)
    reverse = (dv < 0) & (dv >= -rev)
    negative = (dv < -rev) & ~roll
    dv = np.where(negative, 0.0, dv)
    spk = (dv > 0) & (dt > 0) & (dv * 3600.0 / np.where(dt > 0, dt, 1) > spike)
    dv = np.where(spk | first, 0.0, dv)
    gapf = dt > gap
    # long zero runs: a run of zero steps starting at the reading before the first zero
    zero = (dv == 0.0) & ~first & ~negative & ~spk
    df["run"] = (~zero).astype(np.int64)
    df["run"] = df.groupby("meter", sort=False)["run"].cumsum()
    df["prev_ts"] = g["ts"].shift()
    start_ts = df.groupby(["meter", "run"], sort=False)["prev_ts"].transform("first")
    long_zero = zero & ((df["ts"] - start_ts).to_numpy() >= lz)
    flags = (
        (roll * cons.ROLLOVER)
        | (negative * cons.NEGATIVE)
        | (spk * cons.SPIKE)
        | (reverse * cons.REVERSE)
        | (gapf * cons.GAP)
        | (long_zero * cons.LONG_ZERO)
    )
    df["d"] = dv
    df["flags"] = flags
    per = df.groupby("meter", sort=False).agg(
        vol=("d", "sum"), first_ts=("ts", "first"), last_ts=("ts", "last")
    )
    # history rate over the window [last - history, last] (the whole month here)
    h0 = per["last_ts"].to_numpy()[d["meter"]] - hist
    in_hist = (df["prev_ts"].to_numpy() >= h0) & ~first
    df["hd"] = np.where(in_hist, dv, 0.0)
    df["hts"] = np.where(in_hist, df["prev_ts"].to_numpy(), np.inf)
    hh = df.groupby("meter", sort=False).agg(hsum=("hd", "sum"), hfirst=("hts", "min"))
    last = per["last_ts"].to_numpy()
    hfirst = np.minimum(hh["hfirst"].to_numpy(), last)
    span = last - hfirst
    rate = np.where(span > 0, hh["hsum"].to_numpy() / np.where(span > 0, span, 1), 0.0)
    vol = per["vol"].to_numpy() + np.where(last < WE, rate * (WE - last), 0.0)
    acc = pd.Series(vol).groupby(d["account"][: len(vol)]).sum()
    _ = acc.groupby(d["street"][: len(acc)]).sum()
    return vol


SQL = """
WITH s AS (
    SELECT r.meter, r.ts, r.value, m.cap,
           lag(r.value) OVER w AS pv, r.ts - lag(r.ts) OVER w AS dt
    FROM bench_readings r JOIN bench_meters m USING (meter)
    WHERE r.meter < %(n)s
    WINDOW w AS (PARTITION BY r.meter ORDER BY r.ts)
), c AS (
    SELECT meter, ts, dt, pv,
           CASE WHEN pv IS NULL THEN 0
                WHEN value - pv < 0 AND pv >= cap * (1 - %(win)s) AND value <= cap * %(win)s
                     THEN value - pv + cap
                WHEN value - pv < -%(rev)s THEN 0
                ELSE value - pv END AS d0
    FROM s
), v AS (
    SELECT meter, ts, dt,
           CASE WHEN d0 > 0 AND dt > 0 AND d0 * 3600.0 / dt > %(spike)s THEN 0 ELSE d0 END AS d,
           ts - dt AS prev_ts
    FROM c
), per AS (
    SELECT meter, sum(d) AS vol, min(ts) AS first_ts, max(ts) AS last_ts FROM v GROUP BY meter
), h AS (
    SELECT v.meter, sum(v.d) AS hsum, min(v.prev_ts) AS hfirst
    FROM v JOIN per USING (meter)
    WHERE v.prev_ts >= per.last_ts - %(hist)s
    GROUP BY v.meter
)
SELECT per.meter,
       per.vol + CASE WHEN per.last_ts < %(we)s AND per.last_ts > coalesce(h.hfirst, per.last_ts)
                      THEN h.hsum / (per.last_ts - h.hfirst) * (%(we)s - per.last_ts)
                      ELSE 0 END
FROM per LEFT JOIN h USING (meter)
ORDER BY per.meter
"""


def copy_binary(conn: psycopg.Connection, d: dict[str, np.ndarray], n_sql: int) -> int:
    """Load the readings of the first n_sql meters with one binary COPY (numpy-built)."""
    m = int(d["offsets"][n_sql])
    rec = np.zeros(
        m,
        dtype=[
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("meter", ">i4"),
            ("l2", ">i4"),
            ("ts", ">i8"),
            ("l3", ">i4"),
            ("value", ">f8"),
        ],
    )
    rec["nf"], rec["l1"], rec["l2"], rec["l3"] = 3, 4, 8, 8
    rec["meter"] = d["meter"][:m]
    rec["ts"] = d["ts"][:m]
    rec["value"] = d["value"][:m]
    payload = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    buf = io.BytesIO()
    buf.write(payload)
    buf.write(rec.tobytes())
    buf.write(b"\xff\xff")
    conn.execute("CREATE UNLOGGED TABLE bench_readings (meter int, ts bigint, value float8)")
    conn.execute("CREATE UNLOGGED TABLE bench_meters (meter int PRIMARY KEY, cap float8)")
    with conn.cursor().copy("COPY bench_readings FROM STDIN (FORMAT BINARY)") as cp:
        data = buf.getbuffer()
        for i in range(0, len(data), 1 << 24):
            cp.write(data[i : i + (1 << 24)])
    with conn.cursor().copy("COPY bench_meters FROM STDIN") as cp:
        for k in range(n_sql):
            cp.write_row((k, float(d["cap"][k])))
    conn.execute("CREATE INDEX ON bench_readings (meter, ts)")
    conn.execute("ANALYZE bench_readings")
    conn.execute("ANALYZE bench_meters")
    conn.commit()
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="10,000 meters; ends within a minute")
    ap.add_argument("--meters", type=int, help="meters for the kernel and pandas")
    ap.add_argument("--sql-meters", type=int, help="meters loaded into SQL (default: all)")
    ap.add_argument("--accounts", type=int, help="accounts in the billing run")
    a = ap.parse_args()
    n = a.meters or (10_000 if a.quick else 100_000)
    n_sql = min(n, a.sql_meters or (4_000 if a.quick else 20_000))
    n_acc = a.accounts or (10_000 if a.quick else 100_000)

    print(f"generating {n:,} meters × {HOURS} hourly readings ...", flush=True)
    d = make_data(n)
    readings = int(d["ts"].shape[0])
    small = make_data(50, seed=1)
    run_kernel(small)  # compile / load the numba cache outside the timing
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        vol_k, _flags = run_kernel(d)
        times.append(time.perf_counter() - t0)
    t_kernel = min(times)
    kr = readings / t_kernel
    print(
        f"kernel: {readings:,} readings in {t_kernel:.3f} s (best of 3) = {kr:,.0f} readings/s "
        "(1 thread)"
    )

    t0 = time.perf_counter()
    vol_p = run_pandas(d)
    t_pandas = time.perf_counter() - t0
    np.testing.assert_allclose(vol_p, vol_k, rtol=1e-9, atol=1e-6)
    print(
        f"pandas: {t_pandas:.3f} s, same volumes; ratio pandas/kernel = {t_pandas / t_kernel:.1f}"
    )

    url = server_url()
    name = f"suvnet_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db = with_db(url, name)
        with psycopg.connect(db) as conn:
            t0 = time.perf_counter()
            m_sql = copy_binary(conn, d, n_sql)
            print(
                f"sql: loaded {m_sql:,} readings of {n_sql:,} meters in "
                f"{time.perf_counter() - t0:.1f} s (not timed)"
            )
            t0 = time.perf_counter()
            rows = conn.execute(
                SQL,
                {
                    "n": n_sql,
                    "win": float(PV[cons.P_ROLL_WIN]),
                    "rev": float(PV[cons.P_REVERSE]),
                    "spike": float(PV[cons.P_SPIKE]),
                    "hist": float(PV[cons.P_HISTORY_S]),
                    "we": WE,
                },
            ).fetchall()
            t_sql = time.perf_counter() - t0
            conn.rollback()
            vol_s = np.array([r[1] for r in rows])
            np.testing.assert_allclose(vol_s, vol_k[:n_sql], rtol=1e-9, atol=1e-6)
            sql_ratio = (t_sql / m_sql) / (t_kernel / readings)
            print(
                f"sql: {t_sql:.3f} s for {m_sql:,} readings, same volumes; ratio per reading "
                f"sql/kernel = {sql_ratio:.1f}"
                + ("" if n_sql == n else f" (SQL on {n_sql:,} of {n:,} meters)")
            )
            conn.execute("DROP TABLE bench_readings, bench_meters")
            conn.commit()

        with psycopg.connect(db, autocommit=True) as c:
            migrate(c)
        cfg = load_billing_config()
        with psycopg.connect(db) as conn:
            t0 = time.perf_counter()
            generate(conn, n_acc, period=date(2026, 11, 1), seed=9, tag="Bench")
            conn.commit()
            print(f"billing: generated {n_acc:,} accounts in {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            s = run_billing(conn, date(2026, 11, 1), cfg, now=datetime(2026, 12, 1, 8, tzinfo=UTC))
            t_run = time.perf_counter() - t0
            assert s.invoices_created == n_acc
        run_100k = t_run * 100_000 / n_acc
        if n_acc == 100_000:
            print(
                f"billing run: 100,000 accounts in {t_run:.1f} s "
                f"({s.invoices_created:,} invoices, fetch+compute+post, no PDFs)"
            )
        else:
            print(
                f"billing run: {n_acc:,} accounts in {t_run:.2f} s; billing_run_s_100k below is "
                f"SCALED linearly from {n_acc:,} to 100,000 accounts = {run_100k:.1f} s"
            )
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        json.dumps(
            {
                "kernel_readings_per_s": round(kr),
                "pandas_ratio": round(t_pandas / t_kernel, 2),
                "sql_ratio": round(sql_ratio, 2),
                "billing_run_s_100k": round(run_100k, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
