"""Leak detection benchmark: scenario families -> readings import -> `suvnet alarms replay`.

Every scenario gets a fresh database made from a migrated template: its zones, network
elements, meters, tanks, pumps and (for the rural families) its households as billing accounts
are registered, the readings are imported with the real CLI (`suvnet readings import`) and the
alarm rules are evaluated with the real CLI (`suvnet alarms replay`), which runs the same code
path as the live worker.

Families (each reported on its own, with the plain MNF baseline on the same data):

* ``hourly``: WNTR on Net3 split into three DMAs, every household metered hourly, one leak of
  0.5-10 L/s (simulator/leak_scenarios.py);
* ``sparse``, ``growing``, ``small``, ``tank``: rural DMAs (simulator/leak_families.py): 10-30 %
  of the households metered and read once a day, the rest billed by the norm; leaks of
  1-8 L/s, leaks that grow over 3-10 days, leaks of 1-3 L/s, DMAs fed from a tank.

Each family runs on the benchmark's seeds and, as ``heldout_<family>``, on other seeds with
the harder ``heldout`` noise (stronger weather and household variation, larger meter bias,
more lost readings, metered households that are not representative, fewer volume registers).

Scoring per family (docs/alarms.md, "Measured detection quality"):

* ``detection_72h``: share of leaks of at least 2 L/s with a leak alarm in their DMA within
  72 h of the moment the leak reached 2 L/s;
* ``abrupt_detection_24h``: the same for abrupt leaks, within 24 h of their start;
* ``false_per_dma_month``: leak-alarm activations in a DMA while it had no leak, after the
  14-day learning period, per DMA per 30 days of such leak-free time;
* ``events_per_leak``: activations in the leak's DMA from its start to the end of the
  scenario, per detected leak (1.0 = one alarm per leak);
* ``mean_time_to_detect_h``: from the leak's start (detected leaks >= 2 L/s);
* ``small_detection_72h``: leaks under 2 L/s detected within 72 h of their start;
* ``size_in_interval``: share of detected leaks whose last size estimate's 90 % interval holds
  the leak's true size (leak rules only);
* ``baseline_*``: the plain MNF rule (daily MNF minus the minimum of the previous 10 leak-free
  days > gamma x that minimum; one alarm per run of alarmed days).

``--rules legacy`` evaluates the rule set the docs used before the ``leak`` rule (mnf, burst
on the losses, water_balance), for a before/after comparison.

``--fresh`` runs the fresh seeds instead (benchmark seeds from 1012, held-out from 7008): the
detector's settings were chosen while watching the default seeds, so their figures flatter
it; the fresh ones say how far those figures carry.

Usage: python -m bench.leak_detection [--quick] [--scenarios N] [--heldout N] [--families F,..]
       [--fresh]
The last line printed is one JSON object with the figures (``seeds``: which seeds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alarms import analytics as an  # noqa: E402
from assets import work_order_store as wos  # noqa: E402
from assets.model import Asset  # noqa: E402
from assets.store import Actor, save_assets  # noqa: E402
from bench.common import server_url, with_db  # noqa: E402
from simulator import leak_families as lf  # noqa: E402
from simulator.leak_scenarios import (  # noqa: E402
    Leak,
    Scenario,
    generate,
    write_csv,
    write_registry_sql,
)
from suvnet.migrate import load_migrations, migrate  # noqa: E402

TZ = ZoneInfo("Asia/Tashkent")
WARMUP_DAYS = 14
DAY = 86400.0
LEAK_KINDS = ("leak", "mnf", "burst", "water_balance")
FAMILIES = ("hourly", "sparse", "growing", "small", "tank")
TABLE_KEYS = (
    "detection_72h",
    "abrupt_detection_24h",
    "false_per_dma_month",
    "events_per_leak",
    "mean_time_to_detect_h",
    "small_detection_72h",
)
BENCH_SEED = 1000
HELDOUT_SEED = 7000
# the fresh seeds (--fresh): the 12 benchmark and 8 held-out seeds that follow the default
# ones (1012-1023, 7008-7015). No setting was chosen on them: they check, once, whether the
# figures of the seeds the detector was developed on carry to scenarios it has not seen
FRESH_OFFSET = (12, 8)


def first_seeds(fresh: bool) -> tuple[int, int]:
    """The first benchmark and held-out seeds: the default ones, or the fresh ones."""
    off = FRESH_OFFSET if fresh else (0, 0)
    return BENCH_SEED + off[0], HELDOUT_SEED + off[1]


def seed_groups(
    families: list[str], n: int, n_held: int, fresh: bool = False
) -> list[tuple[str, str, list[int]]]:
    """(label, family, seeds) of each set of scenarios scored together, in the benchmark's
    order: every family on the benchmark (or fresh) seeds, then on the held-out ones
    (label ``heldout_``). ``bench.leak_screen`` records the same scenarios."""
    seed_b, seed_h = first_seeds(fresh)
    return [
        (label, fam, [seed0 + i for i in range(count)])
        for label, seed0, count in (("", seed_b, n), ("heldout_", seed_h, n_held))
        for fam in families
        if count > 0
    ]


# the rule set of each mode: kind -> params (every DMA gets one rule of each kind)
RULES: dict[str, dict[str, dict[str, Any]]] = {
    # one leak rule per DMA, with its defaults (docs/alarms.md)
    "leak": {"leak": {}},
    # the rules as the docs set them up before the leak rule: the burst rule on the losses
    "legacy": {
        "mnf": {"min_excess_lps": 1.0, "k_sigma": 5.0, "allowance_lps_per_connection": 0.0},
        "burst": {
            "net_of_consumption": True, "cusum_k": 0.5, "cusum_h": 10.0, "min_excess_lps": 1.0,
        },
        "water_balance": {"nrw_rise_pct": 3.0},
    },
}  # fmt: skip


def template(server: str) -> str:
    digest = hashlib.sha256(
        "".join(f"{m.version}:{m.checksum}" for m in load_migrations()).encode()
    ).hexdigest()[:12]
    name = f"suvnet_bench_tpl_{digest}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(4243)")
        try:
            if not admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone():
                tmp = f"{name}_b{uuid.uuid4().hex[:6]}"
                admin.execute(f'CREATE DATABASE "{tmp}"')
                with psycopg.connect(with_db(server, tmp), autocommit=True) as c:
                    migrate(c)
                admin.execute(f'ALTER DATABASE "{tmp}" RENAME TO "{name}"')
        finally:
            admin.execute("SELECT pg_advisory_unlock(4243)")
    return name


def fresh_db(server: str, tpl: str) -> str:
    name = f"suvnet_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    return name


def drop_db(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(args: list[str], url: str, *, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, str]:
    exe = Path(sys.executable).parent / "suvnet"
    env = dict(os.environ, SUVNET_DATABASE_URL=url, SUVNET_LOG_LEVEL="WARNING", COLUMNS="200")
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, check=False)
    if r.returncode not in ok_codes:
        raise RuntimeError(f"suvnet {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return time.perf_counter() - t0, r.stdout


@dataclass
class Case:
    """One scenario, whatever its family, as the scoring sees it."""

    family: str
    name: str
    days: int
    start: datetime
    dmas: list[str]
    leak: Leak | None
    inflow: dict[str, Any] = field(repr=False)  # what the MNF baseline sees, per DMA (15 min)
    times_s: Any = field(repr=False)


@dataclass
class Outcome:
    alarms: list[tuple[str, str, float]]  # (zone, kind, seconds after start)
    sizes: dict[str, tuple[float, float, float, float]]  # zone -> (t, lps, low, high), last
    rows: int = 0
    t_import: float = 0.0
    t_replay: float = 0.0
    problems: list[str] = field(default_factory=list)


def make_case(family: str, seed: int, noise: str, days: int) -> tuple[Case, Any]:
    if family == "hourly":
        sc = generate(seed, days=days, warmup_days=WARMUP_DAYS)
        inflow = {z: sc.dma_inflow_lps(z) for z in sc.dmas}
        case = Case(family, sc.name, days, sc.start, sorted(sc.dmas),
                    sc.leaks[0] if sc.leaks else None, inflow, sc.times_s)  # fmt: skip
        return case, sc
    fs = lf.generate(family, seed, noise="heldout" if noise == "heldout" else "bench", days=days)
    inflow = {z: fs.dma_demand_seen_lps(z) for z in fs.dmas}
    case = Case(family, fs.name, days, fs.start, list(fs.dmas),
                fs.leaks[0] if fs.leaks else None, inflow, fs.times_s)  # fmt: skip
    return case, fs


def register(conn: psycopg.Connection[Any], sc: Any) -> None:
    with conn.transaction():
        if isinstance(sc, Scenario):
            for sql, args in write_registry_sql(sc):
                conn.execute(sql, args)
        else:
            with conn.cursor() as cur:
                for sql, rows in lf.registry_rows(sc):
                    cur.executemany(sql, rows)
            valve_work(conn, sc)


def valve_work(conn: psycopg.Connection[Any], sc: lf.FamilyScenario) -> None:
    """The boundary valve V-23 in the asset register (normally closed, on the model valve
    between DMA2 and DMA3), and each time the scenario opens it as the crew would record it:
    a work order with the valve opened and closed, through the work-order store."""
    actor = Actor("bench", "bench", sc.start)
    save_assets(conn, [Asset("V-23", "valve", shapely.Point(69.24, 41.31), ref_code="V-23",
                             attrs={"valve_status": "closed"})], actor)  # fmt: skip
    t0 = sc.start.timestamp()
    for tr in sc.transfers:
        opened, closed = (datetime.fromtimestamp(t0 + s, UTC) for s in (tr.start_s, tr.end_s))
        crew = Actor("bench", "bench", opened)
        what = {"kind": "inspection", "reported_at": opened,
                "description": f"{tr.from_dma} feeds {tr.to_dma}"}  # fmt: skip
        wo = wos.create(conn, "V-23", what, crew)
        wos.add_valve(conn, wo, "V-23", "opened", crew, at=opened)
        wos.add_valve(conn, wo, "V-23", "closed", Actor("bench", "bench", closed), at=closed)


def run_case(case: Case, sc: Any, url: str, workdir: Path, mode: str) -> Outcome:
    with psycopg.connect(url, autocommit=True) as conn:
        register(conn, sc)
        if mode == "legacy":
            # before issue 19 a shared meter named its zones by database id
            conn.execute(
                "UPDATE devices d SET attrs = jsonb_set(d.attrs, '{zone_signs}', ("
                "SELECT jsonb_object_agg(z.id::text, s.value) "
                "FROM jsonb_each(d.attrs->'zone_signs') s "
                "JOIN zones z ON z.code = s.key)) WHERE d.attrs ? 'zone_signs' "
                "AND EXISTS (SELECT 1 FROM jsonb_each(d.attrs->'zone_signs') s "
                "JOIN zones z ON z.code = s.key)"
            )
        for z in case.dmas:
            for kind, params in RULES[mode].items():
                p = dict(params)
                if mode == "legacy" and case.family != "hourly":
                    p.update(flow_point="flow_m3h", volume_point="volume_m3")
                conn.execute(
                    "INSERT INTO alarm_rules (code, kind, zone_id, priority, params) "
                    "SELECT %s, %s, id, 'high', %s FROM zones WHERE code = %s",
                    (f"{z}-{kind}", kind, json.dumps(p), z),
                )
        csv_path = workdir / f"{case.name}.csv"
        rows = write_csv(sc, csv_path) if isinstance(sc, Scenario) else lf.write_csv(sc, csv_path)
        t_import, _ = cli(["readings", "import", str(csv_path)], url)
        end = case.start + timedelta(days=case.days)
        t_replay, _ = cli(
            ["alarms", "replay", "--from", case.start.isoformat(), "--to", end.isoformat()],
            url,
            ok_codes=(0, 1),
        )
        run = conn.execute("SELECT max(id) FROM alarm_replay_runs").fetchone()
        problems = list(
            conn.execute(
                "SELECT problems FROM alarm_replay_runs WHERE id = %s", (run[0] if run else 0,)
            ).fetchone()[0]  # type: ignore[index]
        )
        # every activation counts: a leak alarm raised again (it grew, or the burst rule
        # fired again) is another alarm for the dispatcher
        alarms = conn.execute(
            "SELECT z.code, r.kind, extract(epoch FROM e.ts) FROM alarm_events e "
            "JOIN alarm_rules r ON r.id = e.rule_id JOIN zones z ON z.id = r.zone_id "
            "WHERE e.run_id > 0 AND e.event = 'activate' AND e.subject = '' "
            "AND r.kind = ANY(%s) ORDER BY e.ts",
            (list(LEAK_KINDS),),
        ).fetchall()
        sizes: dict[str, tuple[float, float, float, float]] = {}
        try:
            for code, series in conn.execute(
                "SELECT z.code, e.series FROM leak_events e JOIN zones z ON z.id = e.zone_id "
                "WHERE e.run_id > 0 ORDER BY e.opened_at"
            ).fetchall():
                if series:
                    last = series[-1]
                    sizes[str(code)] = (float(last[0]), float(last[1]), float(last[2]),
                                        float(last[3]))  # fmt: skip
        except psycopg.errors.UndefinedTable:
            pass  # a database without leak events (an older schema)
    csv_path.unlink()
    t0 = case.start.timestamp()
    return Outcome(
        [(str(z), str(k), float(t) - t0) for z, k, t in alarms], sizes, rows, t_import,
        t_replay, problems,
    )  # fmt: skip


def baseline_alarms(case: Case, gamma: float) -> list[tuple[str, str, float]]:
    """The plain MNF rule on the same meter data: one alarm per run of alarmed days."""
    out: list[tuple[str, str, float]] = []
    t0 = case.start.timestamp()
    first_day = case.start.astimezone(TZ).date()
    for z in case.dmas:
        flow = case.inflow[z]
        mnf = np.full(case.days, np.nan)
        for d in range(case.days):
            day = first_day + timedelta(days=d)
            n0 = datetime.combine(day, datetime.min.time(), TZ) + timedelta(hours=2)
            b = an.bucket_mean(case.times_s + t0, flow, n0.timestamp(), 3600.0, 2)
            mnf[d] = an.night_minimum(b)
        alarm = an.baseline_mnf_alarms(mnf, gamma, 10)
        for d in range(case.days):
            if alarm[d]:
                # every alarmed day can detect a leak; only the first of a run of alarmed days
                # counts as an alarm
                kind = "baseline_mnf" if d == 0 or not alarm[d - 1] else "baseline_mnf_cont"
                day = first_day + timedelta(days=d)
                n1 = datetime.combine(day, datetime.min.time(), TZ) + timedelta(hours=4)
                out.append((z, kind, n1.timestamp() - t0))
    return out


def score(
    cases: list[Case],
    alarms: list[list[tuple[str, str, float]]],
    sizes: list[dict[str, tuple[float, float, float, float]]] | None = None,
) -> dict[str, Any]:
    det72 = tot72 = det24 = tot24 = fa = small_det = small_tot = 0
    ttd: list[float] = []
    events: list[int] = []
    in_interval: list[bool] = []
    size_err: list[float] = []
    fa_kinds: dict[str, int] = {}
    free_days = 0.0
    warm = WARMUP_DAYS * DAY
    for i, (case, al) in enumerate(zip(cases, alarms, strict=True)):
        leak = case.leak
        for z in case.dmas:
            here = leak if leak is not None and leak.dma == z else None
            end_free = here.start_s if here else case.days * DAY
            free_days += max(0.0, end_free - warm) / DAY
            for dz, kind, t in al:
                if dz == z and warm <= t < end_free and not kind.endswith("_cont"):
                    fa += 1
                    fa_kinds[kind] = fa_kinds.get(kind, 0) + 1
                    if os.environ.get("BENCH_VERBOSE"):
                        print(f"  false alarm {case.name} {z} {kind} day {t / DAY:.2f}")
        if leak is None:
            continue
        after = [t for dz, k, t in al if dz == leak.dma and t >= leak.start_s]
        counted = [t for dz, k, t in al if dz == leak.dma and t >= leak.start_s
                   and not k.endswith("_cont")]  # fmt: skip
        first = min(after) if after else math.inf
        if os.environ.get("BENCH_VERBOSE"):
            reach = leak.time_reaching(2.0)
            print(
                f"  leak {case.name} {leak.dma} {leak.peak_lps:.2f} L/s {leak.kind} from day "
                f"{leak.start_s / DAY:.2f} (2 L/s at {reach / DAY:.2f}): first alarm day "
                f"{first / DAY:.2f}, activations {len(counted)}"
            )
        if leak.peak_lps >= 2.0:
            tot72 += 1
            if first <= leak.time_reaching(2.0) + 3 * DAY:
                det72 += 1
                ttd.append((first - leak.start_s) / 3600.0)
                events.append(len(counted))
                got = (sizes[i] if sizes else {}).get(leak.dma)
                if got is not None:
                    t, lps, low, high = got
                    true = float(leak.rate_lps(np.array([t - case.start.timestamp()]))[0])
                    in_interval.append(low <= true <= high)
                    size_err.append(abs(lps - true) / true)
            if leak.kind == "abrupt":
                tot24 += 1
                det24 += int(first <= leak.start_s + DAY)
        else:
            small_tot += 1
            small_det += int(first <= leak.start_s + 3 * DAY)
    nan = float("nan")
    return {
        "detection_72h": det72 / tot72 if tot72 else nan,
        "abrupt_detection_24h": det24 / tot24 if tot24 else nan,
        "false_per_dma_month": fa / (free_days / 30.0) if free_days else nan,
        "events_per_leak": float(np.mean(events)) if events else nan,
        "mean_time_to_detect_h": float(np.mean(ttd)) if ttd else nan,
        "small_detection_72h": small_det / small_tot if small_tot else nan,
        "size_in_interval": float(np.mean(in_interval)) if in_interval else nan,
        "size_error_median": float(np.median(size_err)) if size_err else nan,
        "leaks_ge_2lps": tot72,
        "abrupt_ge_2lps": tot24,
        "small_leaks": small_tot,
        "false_alarms": fa,
        "false_alarms_by_kind": fa_kinds,
        "leak_free_dma_days": free_days,
    }


GAMMAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)


def matched_baseline(cases: list[Case], our_fa: float) -> tuple[float, dict[str, Any]] | None:
    """The MNF baseline at the smallest gamma whose false-alarm rate is no higher than ours."""
    for g in GAMMAS:
        sg = score(cases, [baseline_alarms(c, g) for c in cases])
        if sg["false_per_dma_month"] <= our_fa + 1e-9:
            return g, sg
    return None


def latency(server: str, tpl: str, trials: int) -> list[float]:
    """Commit-to-alarm latency with a live worker polling every 0.1 s."""
    from alarms.notify import AlarmSettings
    from alarms.worker import run_worker

    name = fresh_db(server, tpl)
    url = with_db(server, name)
    out: list[float] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO zones (code, name) VALUES ('LZ', 'latency')")
            conn.execute(
                "INSERT INTO devices (code, kind, profile, zone_id) SELECT 'PS-L', "
                "'pressure_sensor', 'bench', id FROM zones WHERE code = 'LZ'"
            )
            pid = conn.execute(
                "INSERT INTO points (device_id, name, unit) SELECT id, 'pressure', 'bar' "
                "FROM devices WHERE code = 'PS-L' RETURNING id"
            ).fetchone()[0]  # type: ignore[index]
            rid = conn.execute(
                "INSERT INTO alarm_rules (code, kind, point_id, limit_value, unit) "
                "VALUES ('PS-L-high', 'high', %s, 5.0, 'bar') RETURNING id",
                (pid,),
            ).fetchone()[0]  # type: ignore[index]
            stop = threading.Event()
            s = AlarmSettings(poll_s=0.1, lookback_h=1.0)
            th = threading.Thread(target=run_worker, args=(url, s), kwargs={"stop": stop})
            th.start()
            try:
                t = datetime.now(UTC) - timedelta(minutes=30)
                for i in range(trials * 2):
                    t += timedelta(seconds=10)
                    high = i % 2 == 0
                    before = conn.execute(
                        "SELECT count(*) FROM alarm_events WHERE rule_id = %s", (rid,)
                    ).fetchone()[0]  # type: ignore[index]
                    conn.execute(
                        "INSERT INTO readings (ts, point_id, value) VALUES (%s, %s, %s)",
                        (t, pid, 9.0 if high else 3.0),
                    )
                    t_commit = time.perf_counter()
                    while True:
                        n = conn.execute(
                            "SELECT count(*) FROM alarm_events WHERE rule_id = %s", (rid,)
                        ).fetchone()[0]  # type: ignore[index]
                        if n > before:
                            break
                        if time.perf_counter() - t_commit > 20:
                            raise RuntimeError("no alarm within 20 s")
                        time.sleep(0.005)
                    if high:
                        out.append(time.perf_counter() - t_commit)
            finally:
                stop.set()
                th.join()
    finally:
        drop_db(server, name)
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one short scenario per family (< 1 min)")
    ap.add_argument("--scenarios", type=int, default=None, help="benchmark seeds per family")
    ap.add_argument("--heldout", type=int, default=None, help="held-out seeds per family")
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--rules", choices=sorted(RULES), default="leak")
    ap.add_argument("--gamma", type=float, default=0.1, help="baseline MNF rule gamma")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument(
        "--fresh", action="store_true",
        help="the fresh seeds (1012-, 7008-), on which no setting was chosen, instead of the "
        "benchmark's own",
    )  # fmt: skip
    args = ap.parse_args()
    n = args.scenarios if args.scenarios is not None else (1 if args.quick else 12)
    n_held = args.heldout if args.heldout is not None else (0 if args.quick else 8)
    days = args.days or (24 if args.quick else 35)
    families = [f for f in args.families.split(",") if f]
    server = server_url()
    tpl = template(server)
    t_all = time.perf_counter()
    figures: dict[str, Any] = {}
    timing = {"generate": 0.0, "import": 0.0, "replay": 0.0, "rows": 0}
    problems: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for label, fam, seeds in seed_groups(families, n, n_held, args.fresh):
            cases: list[Case] = []
            ours: list[list[tuple[str, str, float]]] = []
            sizes: list[dict[str, tuple[float, float, float, float]]] = []
            base: list[list[tuple[str, str, float]]] = []
            for seed in seeds:
                t0 = time.perf_counter()
                case, sc = make_case(fam, seed, "heldout" if label else "bench", days)
                timing["generate"] += time.perf_counter() - t0
                name = fresh_db(server, tpl)
                try:
                    out = run_case(case, sc, with_db(server, name), Path(tmp), args.rules)
                finally:
                    if not os.environ.get("BENCH_KEEP_DB"):
                        drop_db(server, name)
                    else:
                        print(f"kept database {name}")
                timing["import"] += out.t_import
                timing["replay"] += out.t_replay
                timing["rows"] += out.rows
                problems.update(out.problems)
                cases.append(case)
                ours.append(out.alarms)
                sizes.append(out.sizes)
                base.append(baseline_alarms(case, args.gamma))
                lk = case.leak
                desc = (
                    f"leak {lk.peak_lps:5.2f} L/s {lk.kind:9s} in {lk.dma} at day "
                    f"{lk.start_s / DAY:5.2f}"
                    if lk
                    else "no leak"
                )
                print(
                    f"{case.name}: {desc}; alarms {len(out.alarms)} (ours), "
                    f"{len(base[-1])} (baseline); import {out.t_import:.1f} s, replay "
                    f"{out.t_replay:.1f} s",
                    flush=True,
                )
            s_ours = score(cases, ours, sizes)
            s_base = score(cases, base)
            key = f"{label}{fam}"
            print(f"\n{key}: {len(seeds)} scenarios x {days} days, 3 DMAs each")
            print(f"{'':24s}{'suvnet':>10s}{'MNF baseline':>14s}")
            for k in TABLE_KEYS:
                print(f"{k:24s}{_fmt(s_ours[k]):>10s}{_fmt(s_base[k]):>14s}")
            print(
                f"leaks >= 2 L/s: {s_ours['leaks_ge_2lps']} ({s_ours['abrupt_ge_2lps']} "
                f"abrupt), smaller: {s_ours['small_leaks']}; false alarms "
                f"{s_ours['false_alarms']} vs {s_base['false_alarms']} over "
                f"{s_ours['leak_free_dma_days']:.0f} leak-free DMA-days; ours by rule: "
                f"{s_ours['false_alarms_by_kind']}; size in its 90 % interval: "
                f"{_fmt(s_ours['size_in_interval'])}, median error "
                f"{_fmt(s_ours['size_error_median'])}\n",
                flush=True,
            )
            for k in (*TABLE_KEYS, "size_in_interval"):
                figures[f"{key}_{k}"] = round(s_ours[k], 4)
            for k in ("detection_72h", "false_per_dma_month", "events_per_leak"):
                figures[f"{key}_baseline_{k}"] = round(s_base[k], 4)
            # the baseline at a gamma that raises no more false alarms than ours: what it
            # finds when it is made as quiet (its default gamma alarms several times a month)
            matched = matched_baseline(cases, s_ours["false_per_dma_month"])
            if matched is not None:
                gamma, s_m = matched
                print(
                    f"MNF baseline as quiet as suvnet (gamma {gamma:g}): detection_72h "
                    f"{_fmt(s_m['detection_72h'])}, false_per_dma_month "
                    f"{_fmt(s_m['false_per_dma_month'])}\n"
                )
                figures[f"{key}_baseline_matched_gamma"] = gamma
                figures[f"{key}_baseline_matched_detection_72h"] = round(s_m["detection_72h"], 4)
                figures[f"{key}_baseline_matched_false_per_dma_month"] = round(
                    s_m["false_per_dma_month"], 4
                )
            figures[f"{key}_scenarios"] = len(seeds)
    if problems:
        print("rules that watched nothing:\n  " + "\n  ".join(sorted(problems)))
    if not args.no_latency:
        lat = latency(server, tpl, 20 if args.quick else 60)
        p99 = float(np.percentile(lat, 99))
        figures["alarm_latency_p99_s"] = round(p99, 4)
        print(
            f"alarm latency commit->alarm: p50 {np.percentile(lat, 50):.3f} s, p99 {p99:.3f} s "
            f"({len(lat)} alarms, worker poll 0.1 s)"
        )
    wall = time.perf_counter() - t_all
    print(
        f"pipeline ({args.rules} rules): {timing['rows']} readings; generate "
        f"{timing['generate']:.1f} s, import {timing['import']:.1f} s, replay "
        f"{timing['replay']:.1f} s; wall {wall:.1f} s"
    )
    figures["rules"] = args.rules
    figures["seeds"] = "fresh" if args.fresh else "benchmark"
    # a figure a family cannot have (no abrupt leak in the growing family) is null, not NaN:
    # the line stays JSON for strict parsers too
    print(
        json.dumps(
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}
        )
    )


if __name__ == "__main__":
    main()
