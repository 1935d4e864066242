"""Study: would a balance over each customer meter's own read window find leaks sooner?

The `leak` rule's regression balance (alarms/leak.py) judges calendar days: a day's inflow
against what the metered households used that day. Where customer meters are read once a
day, a day's use is known only when every meter has been read after its end, about 26 h
after the day ends, so this balance never finds an abrupt leak within 24 h. But each meter
is read at its own hour of the day: at any hour, the last two reads of every meter cover the
24 h before its last read. This study forms, hour by hour, the metered households' use over
those windows (M) and the district inflow over the same windows (I), and judges I against a
line a + b x M fitted on the hours of the last 14 days (the regression balance's own model,
on rolling windows instead of calendar days). A leak is in I and not in M.

It reads the rural families' simulated scenarios directly (simulator/leak_families.py), not
the database. The `leak` rule has since been given this balance as its `window` detector
(docs/alarms.md), which learns as the rule can; the study stays as the offline measure of
the balance alone. Its false alarms are a guide, not the rule's: the line is learned only
on hours before the leak and outside the windows of a transfer between DMAs (the rule
knows neither), which favours it, and each rise of z to the threshold counts as one, where
the rule would keep one event open over several, which does not. In the tank-fed DMAs the
inflow is the pump main's flow minus the tank's filling.

For each leak: the first hour after its start at which the rolling balance's z reaches
``--z``. For each DMA while it has no leak (after the 14-day warm-up): how often z rises to
``--z`` (up-crossings per DMA per 30 days). The baseline, in the same run, is the calendar
day's balance judged the same way (the day's z against the 14 days before it, each day known
26 h after it ends).

Usage: python -m bench.leak_rolling_study [--families small,sparse] [--z 4] [--quick]
The last line printed is one JSON object: per family ``rolling`` and ``daily`` figures
(``abrupt_24h``: abrupt leaks >= 2 L/s found within 24 h of their start; ``found_72h``:
leaks >= 2 L/s found within 72 h of reaching 2 L/s; ``false_per_dma_month``;
``hours_to_detect``: mean over the leaks both found), and ``ratio_hours_to_detect``:
rolling over daily, the mean time to detect over every leak of 2 L/s or more that both find.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from alarms.analytics import counter_consumption
from alarms.rules import RuleParams
from simulator.leak_families import F64, STEP_S, FamilyScenario, generate

HOUR = 3600.0
DAY = 86400.0
WARMUP_DAYS = 14
HIST_DAYS = 14
FLOOR_PCT = 2.0  # the regression balance's sigma floor (alarms/leak.py reg_min_sigma_pct)
READ_GAP_H = RuleParams().read_gap_h  # the rule's default


def _f(a: Any) -> F64:
    return np.asarray(a, dtype=np.float64)


def _inflow_cum(sc: FamilyScenario, dma: str) -> tuple[F64, F64]:
    """The DMA's net inflow (L/s, tank filling taken off) as cumulative m3 at the grid edges."""
    q = sc.dma_demand_seen_lps(dma) if sc.tanks else sc.dma_inflow_lps(dma)
    ok = np.isfinite(q)
    q = np.interp(sc.times_s, sc.times_s[ok], q[ok])
    cum = np.concatenate([[0.0], np.cumsum(q * STEP_S / 1000.0)])
    edges = np.concatenate([sc.times_s, [sc.times_s[-1] + STEP_S]])
    return edges, cum


def rolling(sc: FamilyScenario, dma: str) -> tuple[F64, F64, F64]:
    """Hour ends, the metered use over each meter's last read window (L/s, scaled to all
    metered households) and the inflow over the same windows (L/s); NaN while fewer than half
    the meters have a window of at most two days."""
    edges, cum = _inflow_cum(sc, dma)
    hh = sc.households[dma]
    hours = np.arange(1, sc.days * 24 + 1) * HOUR
    rate_sum = np.zeros(hours.size)
    infl_sum = np.zeros(hours.size)
    n_ok = np.zeros(hours.size)
    for t_r, reg in zip(hh.read_times_s, hh.registers_m3, strict=True):
        ok = np.isfinite(t_r) & np.isfinite(reg)
        t_v, r_v = t_r[ok], reg[ok]
        if t_v.size < 2:
            continue
        i1 = np.searchsorted(t_v, hours, side="right") - 1
        good = i1 >= 1
        i1c = np.clip(i1, 1, t_v.size - 1)
        t1, t0 = t_v[i1c], t_v[i1c - 1]
        span = t1 - t0
        good &= span <= 2.1 * DAY
        rate = (r_v[i1c] - r_v[i1c - 1]) / span * 1000.0
        flow = (np.interp(t1, edges, cum) - np.interp(t0, edges, cum)) / span * 1000.0
        rate_sum += np.where(good, rate, 0.0)
        infl_sum += np.where(good, flow, 0.0)
        n_ok += good
    n_met = hh.read_times_s.shape[0]
    enough = n_ok >= 0.5 * n_met
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(enough, rate_sum * n_met / n_ok, np.nan)
        i = np.where(enough, infl_sum / n_ok, np.nan)
    return _f(hours), _f(m), _f(i)


def daily(sc: FamilyScenario, dma: str) -> tuple[F64, F64, F64]:
    """Per calendar day: when it is known (26 h after its end), its metered use (registers
    interpolated to midnight, L/s scaled to all metered households) and its inflow (L/s)."""
    edges, cum = _inflow_cum(sc, dma)
    hh = sc.households[dma]
    mid = _f(np.arange(sc.days + 1) * DAY)
    use = np.zeros(sc.days)
    n_ok = np.zeros(sc.days)
    for t_r, reg in zip(hh.read_times_s, hh.registers_m3, strict=True):
        # as the rule does (alarms/leakrule.py _metered): registers at midnight, reads at
        # most read_gap_h apart
        d = counter_consumption(t_r, reg, mid, READ_GAP_H * HOUR)
        good = np.isfinite(d)
        use += np.where(good, d, 0.0)
        n_ok += good
    n_met = hh.read_times_s.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(n_ok >= 0.5 * n_met, use * n_met / n_ok / DAY * 1000.0, np.nan)
    inflow = np.diff(np.interp(mid, edges, cum)) / DAY * 1000.0
    known = mid[1:] + 26 * HOUR
    return _f(known), _f(m), _f(inflow)


def _z(t: F64, x: F64, y: F64, k: int, learn: Any) -> float:
    """z of point k against a line fitted on the learned points of the HIST_DAYS days that
    end a day before it."""
    sel = learn & (t <= t[k] - DAY) & (t > t[k] - DAY - HIST_DAYS * DAY)
    sel &= np.isfinite(x) & np.isfinite(y)
    if sel.sum() < 7 or not (math.isfinite(x[k]) and math.isfinite(y[k])):
        return math.nan
    b, a = np.polyfit(x[sel], y[sel], 1)
    res = y[sel] - (a + b * x[sel])
    sd = max(float(res.std(ddof=2)), FLOOR_PCT / 100 * abs(float(y[k])))
    return float((y[k] - (a + b * x[k])) / sd)


def _judge(
    sc: FamilyScenario,
    dma: str,
    pts: tuple[F64, F64, F64],
    window: tuple[float, float],
    zmin: float,
) -> tuple[float, int, float]:
    """(first time after the leak's start with z >= zmin, or inf; up-crossings of zmin while
    leak-free after the warm-up; leak-free days judged). ``pts``: times, metered use, inflow;
    ``window``: how far a point's window starts and ends before its time. A point is not
    learned when its window holds a transfer or the leak, nor judged as leak-free then."""
    t, x, y = pts
    span, delay = window
    leak = sc.leaks[0] if sc.leaks and sc.leaks[0].dma == dma else None
    learn = np.ones(t.size, dtype=bool)
    for tr in sc.transfers:
        learn &= ~((t - delay > tr.start_s) & (t - span < tr.end_s))
    if leak is not None:
        learn &= t - delay <= leak.start_s
    end = leak.start_s if leak is not None else sc.days * DAY
    first, ups, days_free, was = math.inf, 0, 0.0, False
    for k in range(t.size):
        if t[k] < (WARMUP_DAYS + 1) * DAY:
            continue
        z = _z(t, x, y, k, learn)
        if t[k] < end:
            if not learn[k]:
                was = False
                continue
            days_free += (t[k] - t[k - 1]) / DAY
            up = math.isfinite(z) and z >= zmin
            ups += int(up and not was)
            was = up
        elif leak is not None and t[k] - delay > leak.start_s and math.isfinite(z) and z >= zmin:
            first = min(first, t[k])
            break
    return first, ups, days_free


def study(args: tuple[str, int, str, float]) -> list[dict[str, Any]]:
    """One scenario: per DMA the rolling and the daily verdicts (see the module docs)."""
    family, seed, noise, zmin = args
    sc = generate(family, seed, noise=noise)  # type: ignore[arg-type]
    out = []
    for dma in sc.dmas:
        t, m, i = rolling(sc, dma)
        # a rolling point's windows reach back up to two days; each point is judged against
        # the points of the 14 days that end a day before it (the windows overlap)
        r = _judge(sc, dma, (t, m, i), (2 * DAY, 0.0), zmin)
        d = _judge(sc, dma, daily(sc, dma), (DAY + 26 * HOUR, 26 * HOUR), zmin)
        row: dict[str, Any] = {"scenario": sc.name, "dma": dma, "rolling": r, "daily": d}
        if sc.leaks and sc.leaks[0].dma == dma:
            lk = sc.leaks[0]
            row["leak"] = (lk.peak_lps, lk.kind, lk.start_s, lk.time_reaching(2.0))
        out.append(row)
    return out


def _score(rows: list[dict[str, Any]], which: str) -> dict[str, float]:
    a24 = a24_n = f72 = f72_n = ups = 0
    free = 0.0
    hours: list[float] = []  # over the leaks both verdicts find, so the two compare
    for row in rows:
        first, u, days_free = row[which]
        ups += u
        free += days_free
        if "leak" not in row:
            continue
        peak, kind, start, reach = row["leak"]
        if peak < 2.0:
            continue
        f72_n += 1
        f72 += int(first <= reach + 3 * DAY)
        if kind == "abrupt":
            a24_n += 1
            a24 += int(first <= start + DAY)
        if math.isfinite(row["rolling"][0]) and math.isfinite(row["daily"][0]):
            hours.append((first - start) / HOUR)
    nan = float("nan")
    return {
        "abrupt_24h": a24 / a24_n if a24_n else nan,
        "abrupt_leaks": a24_n,
        "found_72h": f72 / f72_n if f72_n else nan,
        "leaks": f72_n,
        "false_per_dma_month": ups / (free / 30.0) if free else nan,
        "hours_to_detect": float(np.mean(hours)) if hours else nan,
        "found_by_both": len(hours),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--families",
        default="small,sparse,growing,tank",
        help="rural families to study (default: all four)",
    )
    p.add_argument("--scenarios", type=int, default=12, help="benchmark seeds per family")
    p.add_argument("--heldout", type=int, default=8, help="held-out seeds per family")
    p.add_argument("--z", type=float, default=4.0, help="the z at which a verdict finds a leak")
    p.add_argument("--quick", action="store_true", help="two seeds per family, no held-out")
    p.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    a = p.parse_args()
    if a.quick:
        a.scenarios, a.heldout = 2, 0
    fams = [f.strip() for f in a.families.split(",") if f.strip()]
    jobs = [(f, 1000 + s, "bench", a.z) for f in fams for s in range(a.scenarios)]
    jobs += [(f, 7000 + s, "heldout", a.z) for f in fams for s in range(a.heldout)]
    by_set: dict[str, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(a.jobs) as ex:
        for n, (job, rows) in enumerate(zip(jobs, ex.map(study, jobs), strict=True), 1):
            key = job[0] if job[2] == "bench" else f"heldout_{job[0]}"
            by_set.setdefault(key, []).extend(rows)
            for row in rows:
                if "leak" in row:
                    peak, kind, start, _ = row["leak"]
                    hr = [(row[w][0] - start) / HOUR for w in ("rolling", "daily")]
                    print(
                        f"[{n}/{len(jobs)}] {row['scenario']} {row['dma']}: leak {peak:.2f} "
                        f"L/s {kind}; found after {hr[0]:.1f} h rolling, {hr[1]:.1f} h daily",
                        flush=True,
                    )
    result: dict[str, Any] = {"z": a.z}
    tot = {"rolling": [0.0, 0.0], "daily": [0.0, 0.0]}
    print(f"\n{'set':18} {'verdict':8} {'abrupt 24 h':>12} {'72 h':>6} {'false/DMA-month':>16}")
    for key in sorted(by_set):
        result[key] = {}
        for which in ("rolling", "daily"):
            s = _score(by_set[key], which)
            result[key][which] = {
                k: (round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v
                for k, v in s.items()
            }
            if s["abrupt_leaks"]:
                tot[which][0] += s["abrupt_24h"] * s["abrupt_leaks"]
                tot[which][1] += s["abrupt_leaks"]
            print(
                f"{key:18} {which:8} {s['abrupt_24h']:12.2f} {s['found_72h']:6.2f} "
                f"{s['false_per_dma_month']:16.2f}"
            )
    r = tot["rolling"][0] / tot["rolling"][1] if tot["rolling"][1] else math.nan
    d = tot["daily"][0] / tot["daily"][1] if tot["daily"][1] else math.nan
    print(f"abrupt leaks found within 24 h: rolling {r:.2f}, daily {d:.2f}")
    # the baseline is the calendar day's balance: time to detect, over the leaks both find
    every = [row for rows in by_set.values() for row in rows]
    roll_all, day_all = _score(every, "rolling"), _score(every, "daily")
    if roll_all["found_by_both"]:
        h_roll, h_day = roll_all["hours_to_detect"], day_all["hours_to_detect"]
        result["ratio_hours_to_detect"] = round(h_roll / h_day, 4)
        print(
            f"hours to detect, {roll_all['found_by_both']} leaks of 2 L/s or more found by "
            f"both: rolling {h_roll:.1f}, daily {h_day:.1f} (ratio {h_roll / h_day:.2f})"
        )
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
