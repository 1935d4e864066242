"""Screen a change of the leak detector on the leak benchmark's own inputs, in minutes.

``bench.leak_detection`` builds each scenario's database, imports its readings and runs
``suvnet alarms replay``: about 14 minutes for the four rural families. Most of that time is
spent reading the readings and forming each DMA's hourly demand, which a change of the
detector (alarms/leak.py) or of its settings does not alter.

``record`` runs the benchmark's scenarios (the rural families; ``--families
hourly,sparse,...`` names others) once, exactly as the benchmark does (the same
databases, import and replay code path), and saves what the leak rule gave the detector in each
DMA: every hour's demand with its neighbours and flags, every night and every day's balance
figures, and the rule's settings. ``screen`` feeds those inputs to the detector as it is now in
the working tree (with ``--set name=value`` overriding its settings) and scores the alarms with
the benchmark's own scoring, next to the recorded run's alarms in the same table. A setting
the rule left at its default takes the detector's default as it is now, so a new default in
alarms/leak.py is screened without ``--set``.

``trace`` replays one recording for one DMA and prints every night's and day's verdict (the
value judged, its excess over the usual, sigma, z and CUSUM) and every signal: why a leak was
found when it was, or not at all. ``--windows`` adds each hour's verdict of the ``window``
detector (the inflow over the customer meters' last read windows against their use).

The screen is a development aid, not the benchmark: a change found good here is measured with
``python -m bench.leak_detection`` before it is reported. A change of alarms/leakrule.py or
of alarms/zone.py (what the detector is given) needs a new ``record``.

Usage:
  python -m bench.leak_screen record [--dir D] [--families F,..] [--scenarios N] [--heldout N]
                                    [--fresh]
  python -m bench.leak_screen screen [--dir D] [--set shape_z=7.5 ...] [--verbose] [--quick]
  python -m bench.leak_screen trace D/small-1007.pkl [--zone DMA1] [--from-day 20] [--windows]
The last line printed by ``screen`` is one JSON object with each family's figures for the
recorded run (``recorded``) and for the screened detector (``screened``), and their ratio of
detections (``detection_ratio``: screened over recorded, leaks >= 2 L/s within 72 h, all
families together).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alarms import engine  # noqa: E402
from alarms import leak as lk  # noqa: E402
from alarms.actions import replay  # noqa: E402
from alarms.rules import Kind  # noqa: E402
from bench import leak_detection as bl  # noqa: E402
from bench.common import server_url, with_db  # noqa: E402
from simulator import leak_families as lf  # noqa: E402
from simulator.leak_scenarios import Scenario, write_csv  # noqa: E402

DEFAULT_DIR = Path(tempfile.gettempdir()) / "suvnet-leak-screen"
RURAL = ("sparse", "growing", "small", "tank")
STEPS = ("hour_step", "night_step", "balance_step")

# one recorded call: (step name, positional args after the state and settings, keyword args);
# ("pass", (), {}) marks the end of one evaluation: the state went to JSON and back there
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


@contextmanager
def recording(into: dict[str, list[Call]], cfgs: dict[str, lk.LeakSettings]) -> Iterator[None]:
    """Record every detector step of every leak rule, keyed by the rule's code."""
    current: list[str] = []
    orig_eval = engine._ZONE_EVAL[Kind.LEAK]
    orig_steps = {name: getattr(lk, name) for name in STEPS}

    def eval_leak(ctx: Any, rule: Any, st: Any) -> None:
        current.append(rule.code)
        try:
            orig_eval(ctx, rule, st)
        finally:
            current.pop()
            into.setdefault(rule.code, []).append(("pass", (), {}))

    def wrap(name: str) -> Callable[..., list[lk.LeakSignal]]:
        fn = orig_steps[name]

        def step(st: lk.LeakState, cfg: lk.LeakSettings, *a: Any, **kw: Any) -> Any:
            code = current[-1]
            if cfgs.setdefault(code, cfg) != cfg:
                raise RuntimeError(f"rule {code}: its settings changed during the replay")
            into.setdefault(code, []).append((name, a, kw))
            return fn(st, cfg, *a, **kw)

        return step

    engine._ZONE_EVAL[Kind.LEAK] = eval_leak
    for name in STEPS:
        setattr(lk, name, wrap(name))
    try:
        yield
    finally:
        engine._ZONE_EVAL[Kind.LEAK] = orig_eval
        for name, fn in orig_steps.items():
            setattr(lk, name, fn)


def record_case(case: bl.Case, sc: Any, url: str, workdir: Path) -> dict[str, Any]:
    """Run one scenario as the benchmark does, recording the leak rules' inputs."""
    calls: dict[str, list[Call]] = {}
    cfgs: dict[str, lk.LeakSettings] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        bl.register(conn, sc)
        for z in case.dmas:
            conn.execute(
                "INSERT INTO alarm_rules (code, kind, zone_id, priority, params) "
                "SELECT %s, 'leak', id, 'high', '{}' FROM zones WHERE code = %s",
                (f"{z}-leak", z),
            )
        csv_path = workdir / f"{case.name}.csv"
        if isinstance(sc, Scenario):
            write_csv(sc, csv_path)  # the hourly family
        else:
            lf.write_csv(sc, csv_path)
        bl.cli(["readings", "import", str(csv_path)], url)
        csv_path.unlink()
        end = case.start + timedelta(days=case.days)
        with recording(calls, cfgs):
            run_id = replay(conn, case.start, end, now=end)
        alarms = conn.execute(
            "SELECT z.code, r.kind, extract(epoch FROM e.ts) FROM alarm_events e "
            "JOIN alarm_rules r ON r.id = e.rule_id JOIN zones z ON z.id = r.zone_id "
            "WHERE e.run_id = %s AND e.event = 'activate' AND e.subject = '' "
            "AND r.kind = 'leak' ORDER BY e.ts",
            (run_id,),
        ).fetchall()
        sizes = {}
        for code, series in conn.execute(
            "SELECT z.code, e.series FROM leak_events e JOIN zones z ON z.id = e.zone_id "
            "WHERE e.run_id = %s ORDER BY e.opened_at",
            (run_id,),
        ).fetchall():
            if series:
                sizes[str(code)] = tuple(float(x) for x in series[-1][:4])
    t0 = case.start.timestamp()
    return {
        "case": case,
        "alarms": [(str(z), str(k), float(t) - t0) for z, k, t in alarms],
        "sizes": sizes,
        "calls": calls,
        "cfgs": {code: dataclasses.asdict(c) for code, c in cfgs.items()},
        # the detector's defaults when recorded: a setting the rule left at its default
        # follows the default of the detector screened, not the recording's
        "defaults": dataclasses.asdict(lk.LeakSettings()),
    }


def case_seeds(
    families: list[str], n: int, n_held: int, fresh: bool = False
) -> list[tuple[str, str, int]]:
    """(label, family, seed) of every scenario, as the benchmark numbers them."""
    return [
        (lab, fam, s)
        for lab, fam, seeds in bl.seed_groups(families, n, n_held, fresh)
        for s in seeds
    ]


def cmd_record(args: argparse.Namespace) -> None:
    out_dir = Path(args.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    server = server_url()
    tpl = bl.template(server)
    todo = case_seeds(args.families.split(","), args.scenarios, args.heldout, args.fresh)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, fam, seed) in enumerate(todo, 1):
            path = out_dir / f"{label}{fam}-{seed}.pkl"
            if path.exists() and not args.again:
                print(f"[{i}/{len(todo)}] {path.name}: recorded before, kept", flush=True)
                continue
            case, sc = bl.make_case(fam, seed, "heldout" if label else "bench", args.days)
            name = bl.fresh_db(server, tpl)
            try:
                rec = record_case(case, sc, with_db(server, name), Path(tmp))
            finally:
                bl.drop_db(server, name)
            rec["label"] = label
            tmp_path = path.with_suffix(".part")
            tmp_path.write_bytes(pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL))
            tmp_path.replace(path)
            steps = sum(len(v) for v in rec["calls"].values())
            print(
                f"[{i}/{len(todo)}] {path.name}: {steps} detector steps, "
                f"{len(rec['alarms'])} alarm(s); {time.perf_counter() - t_all:.0f} s so far",
                flush=True,
            )
    print(f"recorded into {out_dir}; now: python -m bench.leak_screen screen --dir {out_dir}")


def settings_from(
    recorded: dict[str, Any], overrides: dict[str, Any], defaults: dict[str, Any] | None = None
) -> lk.LeakSettings:
    """The settings a recorded rule is screened with: the ones its rule set (those that
    differ from the recording's ``defaults``; all of them for a recording without), the
    detector's current defaults for the rest, and ``overrides`` over both."""
    known = {f.name for f in dataclasses.fields(lk.LeakSettings)}
    kept = {
        k: v
        for k, v in recorded.items()
        if k in known and (defaults is None or k not in defaults or v != defaults[k])
    }
    return lk.LeakSettings(**{**kept, **overrides})


def steps(
    calls: list[Call], cfg: lk.LeakSettings
) -> Iterator[tuple[str, tuple[Any, ...], lk.LeakState, list[lk.LeakSignal]]]:
    """Feed one rule's recorded calls to the detector as it is now: (step, its arguments,
    the state after it, its signals) for each; the state goes to JSON and back where the
    recorded evaluation did."""
    st = lk.LeakState()
    for name, a, kw in calls:
        if name == "pass":
            st = lk.LeakState.from_json(json.loads(json.dumps(st.to_json())))
            continue
        yield name, a, st, getattr(lk, name)(st, cfg, *a, **kw)


def replay_calls(
    rec: dict[str, Any], overrides: dict[str, Any]
) -> tuple[list[tuple[str, str, float]], dict[str, tuple[float, float, float, float]]]:
    """The alarms (and each DMA's last size estimate) of the detector as it is now."""
    case: bl.Case = rec["case"]
    t0 = case.start.timestamp()
    alarms: list[tuple[str, str, float]] = []
    sizes: dict[str, tuple[float, float, float, float]] = {}
    for code, calls in rec["calls"].items():
        zone = code.removesuffix("-leak")
        cfg = settings_from(rec["cfgs"][code], overrides, rec.get("defaults"))
        for _, _, _, signals in steps(calls, cfg):
            for s in signals:
                if s.kind in ("open", "regrow"):
                    alarms.append((zone, "leak", s.ts - t0))
                if s.kind in ("open", "update", "regrow"):
                    sizes[zone] = (s.ts, s.size.lps, s.size.low, s.size.high)
    alarms.sort(key=lambda a: a[2])
    return alarms, sizes


def screen_one(path: Path, overrides: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """One recorded scenario replayed (in a worker process); its inputs are left out."""
    rec = pickle.loads(path.read_bytes())
    alarms, sizes = replay_calls(rec, overrides)
    del rec["calls"]
    return rec, alarms, sizes


def parse_sets(items: list[str]) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(lk.LeakSettings)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise SystemExit(
                f"--set {item!r}: expected name=value with a name of alarms.leak.LeakSettings "
                f"({', '.join(sorted(known))})"
            )
        default = getattr(lk.LeakSettings(), name)
        try:
            out[name] = (
                value.lower() in ("1", "true", "yes") if isinstance(default, bool)
                else type(default)(value)
            )  # fmt: skip
        except ValueError:
            raise SystemExit(
                f"--set {item!r}: {value!r} is not a {type(default).__name__}"
            ) from None
    return out


KEYS = ("detection_72h", "abrupt_detection_24h", "false_per_dma_month", "events_per_leak",
        "mean_time_to_detect_h", "small_detection_72h", "size_in_interval")  # fmt: skip


def cmd_screen(args: argparse.Namespace) -> None:
    files = sorted(Path(args.dir).glob("*.pkl"))
    if args.quick:
        files = [f for f in files if f.stem.rsplit("-", 1)[1][-1] in "01"]
    if not files:
        raise SystemExit(
            f"nothing recorded in {args.dir}: run python -m bench.leak_screen record first"
        )
    overrides = parse_sets(args.set)
    t_all = time.perf_counter()
    groups: dict[str, dict[str, list[Any]]] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = pool.map(screen_one, files, [overrides] * len(files))
        for path, (rec, alarms, sizes) in zip(files, done, strict=True):
            case: bl.Case = rec["case"]
            key = f"{rec['label']}{case.family}"
            g = groups.setdefault(
                key, {"cases": [], "rec": [], "new": [], "rec_sizes": [], "sizes": []}
            )
            g["cases"].append(case)
            g["rec"].append(rec["alarms"])
            g["rec_sizes"].append(rec["sizes"])
            g["new"].append(alarms)
            g["sizes"].append(sizes)
            if args.verbose and sorted(alarms) != sorted(rec["alarms"]):
                lk_ = case.leak
                what = f"leak in {lk_.dma} at day {lk_.start_s / bl.DAY:.2f}" if lk_ else "no leak"
                show = ", ".join(f"{z} {t / bl.DAY:.2f}" for z, _, t in alarms) or "none"
                was = ", ".join(f"{z} {t / bl.DAY:.2f}" for z, _, t in rec["alarms"]) or "none"
                print(f"  {path.stem} ({what}): alarms (day) {show}; recorded {was}")
    figures: dict[str, Any] = {"recorded": {}, "screened": {}}
    det = {"rec": 0.0, "new": 0.0}
    print(f"{'family':18s}{'figure':24s}{'recorded':>10s}{'screened':>10s}")
    for key, g in groups.items():
        s_rec = bl.score(g["cases"], g["rec"], g["rec_sizes"])
        s_new = bl.score(g["cases"], g["new"], g["sizes"])
        for k in KEYS:
            a, b = s_rec[k], s_new[k]
            mark = "" if (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9 else "  *"
            print(f"{key:18s}{k:24s}{bl._fmt(a):>10s}{bl._fmt(b):>10s}{mark}")
        print()
        for label, s in (("recorded", s_rec), ("screened", s_new)):
            figures[label][key] = {k: None if math.isnan(s[k]) else round(s[k], 4) for k in KEYS}
        det["rec"] += (
            s_rec["detection_72h"] * s_rec["leaks_ge_2lps"] if s_rec["leaks_ge_2lps"] else 0
        )
        det["new"] += (
            s_new["detection_72h"] * s_new["leaks_ge_2lps"] if s_new["leaks_ge_2lps"] else 0
        )
    figures["detection_ratio"] = round(det["new"] / det["rec"], 4) if det["rec"] else None
    figures["overrides"] = overrides
    print(f"{len(files)} scenarios screened in {time.perf_counter() - t_all:.0f} s")
    print(json.dumps(figures))


@contextmanager
def verdicts(into: list[tuple[str, lk.Judgement, float, float]]) -> Iterator[None]:
    """Collect every daily verdict, and each hour's verdict on the read windows, as (which,
    judgement, CUSUM after it (NaN for the windows, which have none), value judged)."""
    judge, judge_reg, judge_window = lk._judge, lk._judge_reg, lk._judge_window

    def plain(cfg: lk.LeakSettings, det: lk.Detector, value: float) -> lk.Judgement | None:
        j = judge(cfg, det, value)
        if j is not None:
            into.append(("", j, det.s, value))
        return j

    def reg(cfg: lk.LeakSettings, det: lk.RegDetector, x: float, y: float) -> lk.Judgement | None:
        j = judge_reg(cfg, det, x, y)
        if j is not None:
            into.append(("regression", j, det.s, y))
        return j

    def window(
        cfg: lk.LeakSettings, w: lk.WindowDetector, t_end: float, x: float, y: float
    ) -> tuple[lk.Judgement, int] | None:
        v = judge_window(cfg, w, t_end, x, y)
        if v is not None:
            into.append(("window", v[0], math.nan, y))
        return v

    lk._judge, lk._judge_reg, lk._judge_window = plain, reg, window
    try:
        yield
    finally:
        lk._judge, lk._judge_reg, lk._judge_window = judge, judge_reg, judge_window


def trace_lines(
    rec: dict[str, Any],
    zone: str,
    overrides: dict[str, Any],
    days: tuple[float, float],
    windows: bool = False,
) -> Iterator[str]:
    """One DMA's daily verdicts and signals, as the detector as it is now gives them (and,
    with ``windows``, each hour's verdict on the customer meters' read windows)."""
    code = f"{zone}-leak"
    if code not in rec["calls"]:
        zones = ", ".join(sorted(c.removesuffix("-leak") for c in rec["calls"]))
        raise SystemExit(f"no leak rule of zone {zone!r} in this recording (it has {zones})")
    t0 = rec["case"].start.timestamp()
    cfg = settings_from(rec["cfgs"][code], overrides, rec.get("defaults"))
    got: list[tuple[str, lk.Judgement, float, float]] = []
    with verdicts(got):
        for name, a, st, signals in steps(rec["calls"][code], cfg):
            judged, got[:] = list(got), []  # this step's verdicts
            day = ((a[1] if name != "hour_step" else a[0].t_end) - t0) / bl.DAY
            if not days[0] <= day <= days[1]:
                continue
            what = {"night_step": "night", "balance_step": "balance"}.get(name, "")
            # a day's balance is judged against the norm, then the norm scaled by the metered
            # households' index, then (once learned) the regression on the metered use
            plain_kinds = iter(["norm", "norm x index"] if what == "balance" else [""])
            for sub_, j, cusum, value in judged:
                if sub_ == "window" and not windows:
                    continue
                label = f"{what} {sub_ or next(plain_kinds, '')}".strip()
                yield (
                    f"day {day:6.2f}  {label:20s} value {value:8.2f}  excess {j.excess:6.2f}  "
                    f"sigma {j.sigma:5.2f}  z {j.z:6.2f}"
                    + ("" if math.isnan(cusum) else f"  CUSUM {cusum:5.2f}")
                    + ("  (rising)" if j.trending else "")
                    + ("  event open" if st.event is not None else "")
                )
            for sig in signals:
                yield (
                    f"day {(sig.ts - t0) / bl.DAY:6.2f}  SIGNAL {sig.kind} by {sig.detector}: "
                    f"{sig.size.lps:.2f} L/s [{sig.size.low:.2f}, {sig.size.high:.2f}] "
                    f"{sig.detail}"
                ).rstrip()


def cmd_trace(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"{path}: no such recording (python -m bench.leak_screen record)")
    rec = pickle.loads(path.read_bytes())
    case: bl.Case = rec["case"]
    leak = case.leak
    zone = args.zone or (leak.dma if leak else None)
    if zone is None:
        raise SystemExit(f"{path.name} has no leak: name a zone with --zone")
    if leak:
        print(
            f"{path.stem}: leak of {leak.peak_lps:.2f} L/s ({leak.kind}) in {leak.dma} from day "
            f"{leak.start_s / bl.DAY:.2f}; tracing {zone}"
        )
    days = (args.from_day, args.to_day)
    for line in trace_lines(rec, zone, parse_sets(args.set), days, args.windows):
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("record", help="run the benchmark's scenarios once and save the inputs")
    rp.add_argument(
        "--dir", default=str(DEFAULT_DIR), help=f"where to save (default {DEFAULT_DIR})"
    )
    rp.add_argument(
        "--families",
        default=",".join(RURAL),
        help="families to record (default: the rural ones; hourly too if named)",
    )
    rp.add_argument("--scenarios", type=int, default=12, help="benchmark seeds per family")
    rp.add_argument("--heldout", type=int, default=8, help="held-out seeds per family")
    rp.add_argument("--days", type=int, default=35)
    rp.add_argument("--again", action="store_true", help="record scenarios saved before again")
    rp.add_argument(
        "--fresh", action="store_true",
        help="the benchmark's fresh seeds (1012-, 7008-; no setting was chosen on them): record "
        "them into a --dir of their own",
    )  # fmt: skip
    sp = sub.add_parser("screen", help="replay the saved inputs through the detector as it is now")
    sp.add_argument(
        "--dir", default=str(DEFAULT_DIR), help=f"what to replay (default {DEFAULT_DIR})"
    )
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the detector's settings (alarms.leak.LeakSettings)",
    )
    sp.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)"
    )
    sp.add_argument("--quick", action="store_true", help="two seeds per family (< 1 min)")
    sp.add_argument(
        "--verbose", action="store_true", help="list the scenarios whose alarms changed"
    )
    tp = sub.add_parser(
        "trace", help="one DMA of one recording: every night's and day's verdict, and signals"
    )
    tp.add_argument("file", help="a recording (.pkl) made by record")
    tp.add_argument("--zone", help="the DMA (default: the one with the leak)")
    tp.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override one of the detector's settings")  # fmt: skip
    tp.add_argument(
        "--from-day", type=float, default=0.0,
        help="first day shown (days since the scenario start; default 0)",
    )  # fmt: skip
    tp.add_argument(
        "--to-day", type=float, default=math.inf, help="last day shown (default: to the end)"
    )
    tp.add_argument(
        "--windows", action="store_true",
        help="also each hour's verdict on the customer meters' read windows (detector window)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.cmd == "trace":
        cmd_trace(args)
    elif args.cmd == "record":
        if os.environ.get("SUVNET_LOG_LEVEL") is None:
            os.environ["SUVNET_LOG_LEVEL"] = "WARNING"
        cmd_record(args)
    else:
        cmd_screen(args)


if __name__ == "__main__":
    main()
