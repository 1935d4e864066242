"""One evaluation pass over every rule: the code path shared by the live worker and replay.

For each enabled rule the pass locks the rule's state row (``FOR UPDATE SKIP LOCKED``), reads
what arrived since the rule's watermark (readings, device state changes, complete analytics
periods), feeds it to the pure evaluators and the lifecycle, and writes the transitions, the
new evaluator state and the new watermark in the same transaction. Two workers therefore never
evaluate the same rule at once, and the unique index on open occurrences backs this up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from alarms import analytics as an
from alarms import lifecycle as lc
from alarms.errors import AlarmsError
from alarms.rules import (
    EvalState,
    Kind,
    RuleConfig,
    Sample,
    Signal,
    service_limit,
    step,
    step_offline,
    tick_offline,
)
from alarms.store import (
    Conn,
    StateRow,
    load_rules,
    lock_state,
    save_state,
    to_epoch,
    to_ts,
    write_transition,
)

log = logging.getLogger(__name__)

FLOOD_WINDOW_S = 600.0
FLOOD_THRESHOLD = 10

_FLOW_TO_LPS = {
    "l/s": 1.0,
    "lps": 1.0,
    "m3/h": 1000.0 / 3600.0,
    "m³/h": 1000.0 / 3600.0,
    "m3/s": 1000.0,
    "l/min": 1.0 / 60.0,
    "": 1.0,
}
_VOL_TO_M3 = {"m3": 1.0, "m³": 1.0, "l": 0.001, "": 1.0}


@dataclass
class PassResult:
    rules: int = 0
    samples: int = 0
    transitions: int = 0
    locked_elsewhere: int = 0
    more: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    """What one pass knows: the connection, the time window and the running totals."""

    conn: Conn
    start: datetime
    until: datetime | None
    now: datetime
    batch: int
    res: PassResult


# ------------------------------------------------------------------ applying signals
def apply_signal(conn: Conn, rule: RuleConfig, st: StateRow, sig: Signal, res: PassResult) -> None:
    ts = to_ts(sig.ts)
    if sig.kind == "suppress":
        tr = lc.suppress(st.point, sig.on, ts, sig.message)
        if tr is not None:
            write_transition(conn, rule, st, tr, value=sig.value, message=sig.message)
            res.transitions += 1
        return
    tr = lc.condition(st.point, sig.on, ts)
    if tr is None:
        return
    chattering = False
    if sig.on:
        p = rule.params
        acts = [
            float(t) for t in st.extra.get("_acts", []) if sig.ts - float(t) < p.chatter_window_s
        ]
        acts.append(sig.ts)
        st.extra["_acts"] = acts[-(p.chatter_count * 2) :]
        chattering = lc.is_chattering(acts, sig.ts, p.chatter_window_s, p.chatter_count)
    write_transition(
        conn, rule, st, tr, value=sig.value, message=sig.message, chattering=chattering
    )
    res.transitions += 1


# ------------------------------------------------------------------ point rules
def _zone_min_bar(conn: Conn, rule: RuleConfig) -> float | None:
    row = conn.execute(
        "SELECT z.min_service_pressure_bar FROM zones z WHERE z.id = coalesce(%s, "
        "(SELECT d.zone_id FROM points p JOIN devices d ON d.id = p.device_id WHERE p.id = %s))",
        (rule.zone_id, rule.point_id),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _eval_point(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    batch = ctx.batch
    limit: float | None = None
    if rule.kind is Kind.SERVICE_MIN:
        zmin = _zone_min_bar(conn, rule)
        if zmin is None:
            return  # the zone has no minimum service pressure configured
        limit = service_limit(zmin, rule.unit)
    wm = st.watermark or start
    rows = conn.execute(
        "SELECT ts, value, quality FROM readings WHERE point_id = %s AND ts > %s "
        "AND (%s::timestamptz IS NULL OR ts <= %s) ORDER BY ts LIMIT %s",
        (rule.point_id, wm, until, until, batch),
    ).fetchall()
    for ts, value, quality in rows:
        st.eval, sigs = step(rule, st.eval, Sample(to_epoch(ts), value, quality), limit)
        for sig in sigs:
            apply_signal(conn, rule, st, sig, res)
    if rows:
        st.watermark = rows[-1][0]
        res.samples += len(rows)
        res.more = res.more or len(rows) == batch


def _eval_offline(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    now = ctx.now
    device_id = rule.device_id
    if device_id is None:
        row = conn.execute(
            "SELECT device_id FROM points WHERE id = %s", (rule.point_id,)
        ).fetchone()
        device_id = None if row is None else int(row[0])
    wm = st.watermark or start
    events = conn.execute(
        "SELECT ts, state FROM device_state_history WHERE device_id = %(d)s AND ts > %(wm)s "
        "AND (%(u)s::timestamptz IS NULL OR ts <= %(u)s) "
        "UNION SELECT since, state FROM device_state WHERE device_id = %(d)s AND since > %(wm)s "
        "AND (%(u)s::timestamptz IS NULL OR since <= %(u)s) ORDER BY 1",
        {"d": device_id, "wm": wm, "u": until},
    ).fetchall()
    for ts, state in events:
        t = to_epoch(ts)
        st.eval, sigs = tick_offline(rule, st.eval, t, None)
        if state in ("online", "offline"):
            st.eval = step_offline(rule, st.eval, t, state == "online")
            more_sigs: list[Signal] = []
            if state == "online":
                st.eval, more_sigs = tick_offline(rule, st.eval, t, t)
            sigs = sigs + more_sigs
        for sig in sigs:
            apply_signal(conn, rule, st, sig, res)
        st.watermark = ts
    horizon = until if until is not None else now
    st.eval, sigs = tick_offline(rule, st.eval, to_epoch(horizon), None)
    for sig in sigs:
        apply_signal(conn, rule, st, sig, res)
    res.samples += len(events)


# ------------------------------------------------------------------ zone analytics
@dataclass(frozen=True)
class ZonePoint:
    point_id: int
    sign: float
    factor: float  # to L/s (flows) or m³ (volumes)
    device_code: str


def zone_inflow_points(conn: Conn, zone_id: int, point_name: str) -> list[ZonePoint]:
    """Flow points of the zone's district meters, signed so that + means into the zone.

    A meter on a boundary between two zones names both in devices.attrs.zone_signs
    ({"<zone id>": 1 or -1}); otherwise devices.zone_id and devices.flow_sign apply.
    """
    rows = conn.execute(
        "SELECT p.id, coalesce((d.attrs->'zone_signs'->>%(z)s)::int, d.flow_sign), p.unit, d.code "
        "FROM points p JOIN devices d ON d.id = p.device_id "
        "WHERE d.kind = 'district_meter' AND d.enabled AND p.name = %(n)s "
        "AND (d.zone_id = %(zid)s OR d.attrs->'zone_signs' ? %(z)s) ORDER BY p.id",
        {"z": str(zone_id), "zid": zone_id, "n": point_name},
    ).fetchall()
    return [
        ZonePoint(int(r[0]), float(r[1]), _FLOW_TO_LPS.get(str(r[2]).lower(), 1.0), str(r[3]))
        for r in rows
    ]


def zone_customer_points(conn: Conn, zone_id: int, point_name: str) -> list[ZonePoint]:
    rows = conn.execute(
        "SELECT p.id, p.unit, d.code FROM points p JOIN devices d ON d.id = p.device_id "
        "WHERE d.kind = 'customer_meter' AND d.enabled AND d.zone_id = %s AND p.name = %s "
        "ORDER BY p.id",
        (zone_id, point_name),
    ).fetchall()
    return [
        ZonePoint(int(r[0]), 1.0, _VOL_TO_M3.get(str(r[1]).lower(), 1.0), str(r[2])) for r in rows
    ]


def _series(
    conn: Conn, pts: list[ZonePoint], t0: datetime, t1: datetime
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if not pts:
        return out
    rows = conn.execute(
        "SELECT point_id, extract(epoch FROM ts), coalesce(value, 'NaN') FROM readings "
        "WHERE point_id = ANY(%s) AND ts >= %s AND ts <= %s AND quality = 0 ORDER BY point_id, ts",
        ([p.point_id for p in pts], t0, t1),
    ).fetchall()
    arr = np.array([(r[0], float(r[1]), float(r[2])) for r in rows], dtype=np.float64).reshape(
        -1, 3
    )
    for p in pts:
        sel = arr[arr[:, 0] == p.point_id]
        out[p.point_id] = (sel[:, 1].copy(), sel[:, 2].copy())
    return out


def _net_flow(
    pts: list[ZonePoint],
    data: dict[int, tuple[np.ndarray, np.ndarray]],
    start: float,
    step_s: float,
    n: int,
) -> np.ndarray:
    """Net zone inflow in L/s per bucket (NaN where any meter has no data)."""
    total = np.zeros(n)
    for p in pts:
        ts, v = data[p.point_id]
        total += p.sign * p.factor * an.bucket_mean(ts, v, start, step_s, n)
    return total


def _horizon(conn: Conn, pts: list[ZonePoint], until: datetime | None) -> datetime | None:
    if not pts:
        return None
    row = conn.execute(
        "SELECT max(m) FROM (SELECT (SELECT max(ts) FROM readings r WHERE r.point_id = x "
        "AND (%s::timestamptz IS NULL OR r.ts <= %s)) AS m FROM unnest(%s::bigint[]) x) s",
        (until, until, [p.point_id for p in pts]),
    ).fetchone()
    return None if row is None else row[0]


def _local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    d = start.astimezone(tz).date()
    out = []
    while datetime.combine(d, time(0), tz) <= end:
        out.append(d)
        d += timedelta(days=1)
    return out


def _at(d: date, hours: float, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tz) + timedelta(hours=hours)


def _daily_row(conn: Conn, zone_id: int, day: date, run_id: int, **vals: float | None) -> None:
    cols = list(vals)
    conn.execute(
        f"INSERT INTO zone_leak_daily (zone_id, day, run_id, {', '.join(cols)}) "
        f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(cols))}) "
        f"ON CONFLICT (zone_id, day, run_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
        + ", computed_at = now()",
        [
            zone_id,
            day,
            run_id,
            *[None if v is None or not math.isfinite(v) else v for v in vals.values()],
        ],
    )


def _nan(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _anchor(st: StateRow, start: datetime) -> None:
    """A zone rule seen for the first time starts at ``start`` for good: its watermark is
    set even before anything could be evaluated, so a sliding look-back never skips a day."""
    if st.watermark is None:
        st.watermark = start
        st.extra["_anchor"] = start.timestamp()


def _eval_mnf(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    _anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zone_inflow_points(conn, rule.zone_id, p.flow_point)
    hz = _horizon(conn, pts, until)
    if hz is None:
        return
    wm = st.watermark or start
    conns = len(zone_customer_points(conn, rule.zone_id, p.volume_point))
    for d in _local_days(wm - timedelta(days=1), hz, tz):
        n0, n1 = _at(d, p.night_start_h, tz), _at(d, p.night_end_h, tz)
        if n1 <= wm or n1 > hz:
            continue
        n = max(1, round((n1 - n0).total_seconds() / p.bucket_s))
        data = _series(conn, pts, n0, n1)
        flow = _net_flow(pts, data, to_epoch(n0), p.bucket_s, n)
        mnf = an.night_minimum(flow)
        hist = np.array([h[1] for h in st.extra.get("_hist", [])], dtype=np.float64)
        r = an.mnf_check(
            hist,
            mnf,
            min_history=p.min_history_days,
            connections=conns,
            allowance_lps_per_connection=p.allowance_lps_per_connection,
            min_excess_lps=p.min_excess_lps,
            k_sigma=p.k_sigma,
        )
        if math.isfinite(mnf):
            msg = (
                f"night flow {mnf:.2f} L/s, night leakage {r.night_leakage_lps:.2f} L/s is "
                f"{r.excess_lps:.2f} L/s above its baseline (threshold {r.threshold_lps:.2f} L/s)"
            )
            apply_signal(
                conn, rule, st, Signal("condition", r.alarm, n1.timestamp(), mnf, msg), res
            )
            if not r.alarm:
                st.extra["_hist"] = [*st.extra.get("_hist", []), [n1.timestamp(), mnf]][
                    -p.baseline_days :
                ]
        _daily_row(
            conn,
            rule.zone_id,
            d,
            st.run_id,
            mnf_lps=mnf,
            mnf_baseline_lps=r.baseline_lps,
            mnf_allowance_lps=r.allowance_lps,
        )
        st.watermark = n1
        res.samples += 1


def _consumption(
    conn: Conn, pts: list[ZonePoint], edges: np.ndarray, t0: datetime, t1: datetime
) -> np.ndarray:
    """Per-meter consumption (m³) in each interval of ``edges``: shape (meters, intervals)."""
    data = _series(conn, pts, t0 - timedelta(hours=3), t1 + timedelta(hours=3))
    out = np.full((len(pts), edges.size - 1), np.nan)
    for i, p in enumerate(pts):
        ts, v = data[p.point_id]
        out[i] = an.counter_consumption(ts, v * p.factor, edges)
    return out


def _eval_balance(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    _anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zone_inflow_points(conn, rule.zone_id, p.flow_point)
    cust = zone_customer_points(conn, rule.zone_id, p.volume_point)
    hz = _horizon(conn, pts, until)
    if hz is None:
        return
    wm = st.watermark or start
    for d in _local_days(wm, hz, tz):
        d0, d1 = _at(d, 0, tz), _at(d, 24, tz)
        if d0 < wm or d1 > hz:
            continue
        n = round(86400 / p.bucket_s)
        flow = _net_flow(pts, _series(conn, pts, d0, d1), d0.timestamp(), p.bucket_s, n)
        ok = np.isfinite(flow)
        inflow = float(np.mean(flow[ok])) * 86.4 if ok.sum() >= 0.9 * n else math.nan
        cons = _consumption(conn, cust, np.array([d0.timestamp(), d1.timestamp()]), d0, d1)
        if cust:
            metered = float(cons.sum()) if np.all(np.isfinite(cons)) else math.nan
        else:  # no customer meter: only an estimate of the unmetered use, if one is given
            metered = 0.0 if p.unmetered_m3_per_day > 0 else math.nan
        consumption = metered + p.unmetered_m3_per_day
        bal = an.water_balance(inflow, consumption)
        hist = np.array([h[1] for h in st.extra.get("_hist", [])], dtype=np.float64)
        if math.isfinite(bal.nrw_pct):
            alarm = an.nrw_rise(hist, bal.nrw_pct, p.nrw_rise_pct, p.min_history_days)
            unmetered = (
                f" + {p.unmetered_m3_per_day:.1f} m³ unmetered (estimate)"
                if p.unmetered_m3_per_day > 0
                else ""
            )
            msg = (
                f"NRW {bal.nrw_pct:.1f} % on {d}: input {bal.inflow_m3:.1f} m³, metered "
                f"{metered:.1f} m³{unmetered}, losses {bal.losses_m3:.1f} m³"
            )
            apply_signal(
                conn, rule, st, Signal("condition", alarm, d1.timestamp(), bal.nrw_pct, msg), res
            )
            if not alarm:
                st.extra["_hist"] = [*st.extra.get("_hist", []), [d1.timestamp(), bal.nrw_pct]][
                    -p.baseline_days :
                ]
        _daily_row(
            conn,
            rule.zone_id,
            d,
            st.run_id,
            inflow_m3=inflow,
            consumption_m3=consumption,
            losses_m3=bal.losses_m3,
            nrw_pct=bal.nrw_pct,
        )
        st.watermark = d1
        res.samples += 1


def _eval_burst(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    _anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zone_inflow_points(conn, rule.zone_id, p.flow_point)
    hz = _horizon(conn, pts, until)
    cust = zone_customer_points(conn, rule.zone_id, p.volume_point)
    if p.net_of_consumption:
        hc = _horizon(conn, cust, until)
        hz = None if hc is None or hz is None else min(hz, hc)
    if hz is None:
        return
    step_s = p.bucket_s
    wm = st.watermark or start
    t0 = math.ceil(wm.timestamp() / step_s) * step_s
    n = int((hz.timestamp() - t0) // step_s)
    if n <= 0:
        return
    data = _series(conn, pts, to_ts(t0), to_ts(t0 + n * step_s))
    flow = _net_flow(pts, data, t0, step_s, n)
    if p.net_of_consumption:
        edges = t0 + step_s * np.arange(n + 1, dtype=np.float64)
        cons = _consumption(conn, cust, edges, to_ts(t0), to_ts(t0 + n * step_s))
        flow = flow - cons.sum(axis=0) * 1000.0 / step_s  # NaN where any meter is unknown
    n_slots = max(1, round(86400 / step_s))
    off = to_ts(t0).astimezone(tz).utcoffset() or timedelta(0)
    hist: list[list[float]] = st.extra.get("_hist", [])
    shifts: list[float] = st.extra.get("_shift", [])  # residuals while the alarm is on
    since = st.extra.get("_since")
    s = float(st.extra.get("_S", 0.0))
    keep = p.baseline_days * n_slots
    for i in range(n):
        t_end = t0 + (i + 1) * step_s
        x = float(flow[i])
        slot = int(((t0 + i * step_s + off.total_seconds()) % 86400) // step_s)
        if math.isfinite(x):
            h = np.array(hist, dtype=np.float64).reshape(-1, 2)
            med, sig = an.profile(
                h[:, 1].copy(), h[:, 0].astype(np.int64), n_slots, max(0.1, p.min_excess_lps / 4)
            )
            if len(h) >= p.min_history_days * n_slots and math.isfinite(med[slot]):
                pooled = an.pooled_sigma(h[:, 1].copy(), h[:, 0].astype(np.int64), med)
                sig_s = max(float(sig[slot]), 0.02 * abs(float(med[slot])))
                if math.isfinite(pooled):
                    sig_s = max(sig_s, pooled)
                # clipped: one wild hour (a missing register, a meter glitch) is not a burst
                z = min(p.z_clip, max(-p.z_clip, (x - float(med[slot])) / sig_s))
                stats, _ = an.cusum_update(np.array([z]), p.cusum_k, p.cusum_h, s)
                s = float(stats[-1])
                if st.eval.active:
                    shifts.append(x - float(med[slot]))
            on = s > p.cusum_h if not st.eval.active else s > 0.0
            accepted = (
                on and st.eval.active and since is not None
                and t_end - float(since) >= p.accept_after_h * 3600
            )  # fmt: skip
            if accepted:
                # a lasting change of level: it becomes the new normal (the profile is moved
                # by the median shift seen while alarmed) so that the next burst is seen again
                step_up = float(np.median(shifts)) if shifts else 0.0
                hist = [[sl, v + step_up] for sl, v in hist]
                on, s = False, 0.0
            if on != st.eval.active:
                st.eval = replace(st.eval, active=on)
                what = "losses (inflow - metered use)" if p.net_of_consumption else "inflow"
                if on:
                    since, shifts = t_end, []
                    msg = (
                        f"zone {what} {x:.2f} L/s, usual for this hour {float(med[slot]):.2f} "
                        f"L/s (CUSUM {s:.1f} > {p.cusum_h:g})"
                    )
                elif accepted:
                    since = None
                    msg = (
                        f"zone {what} has stayed {float(np.median(shifts)):.2f} L/s above its "
                        f"profile for {p.accept_after_h:g} h: accepted as the new level"
                    )
                    shifts = []
                else:
                    since = None
                    msg = f"zone {what} back to its usual profile"
                apply_signal(conn, rule, st, Signal("condition", on, t_end, x, msg), res)
            if s <= p.cusum_h / 2 and not st.eval.active:
                hist.append([float(slot), x])
                hist = hist[-keep:]
        res.samples += 1
    st.extra["_hist"] = hist
    st.extra["_S"] = s
    st.extra["_since"] = since
    st.extra["_shift"] = shifts[-keep:]
    st.watermark = to_ts(t0 + n * step_s)


def _eval_customer_leak(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    _anchor(st, start)
    tz = ZoneInfo(p.tz)
    cust = zone_customer_points(conn, rule.zone_id, p.volume_point)
    hz = _horizon(conn, cust, until)
    if hz is None:
        return
    wm = st.watermark or start
    first_ok = float(st.extra.get("_anchor", start.timestamp()))  # no window before the anchor
    for d in _local_days(wm, hz, tz):
        d1 = _at(d, 24, tz)
        d0 = d1 - timedelta(hours=p.leak_hours)
        if d1 <= wm or d1 > hz or d0.timestamp() < first_ok:
            continue
        edges = np.arange(d0.timestamp(), d1.timestamp() + 1, 3600.0)
        cons = _consumption(conn, cust, edges, d0, d1)
        for i, cp in enumerate(cust):
            leak = an.customer_leak(cons[i], p.zero_threshold_m3)
            if not np.all(np.isfinite(cons[i])):
                continue
            sub = lock_state(conn, rule.id, st.run_id, cp.device_code, skip_locked=False)
            assert sub is not None
            lowest = float(np.min(cons[i])) * 1000
            msg = (
                f"meter {cp.device_code} never read zero for {p.leak_hours} h "
                f"(lowest hour {lowest:.1f} L)"
            )
            apply_signal(
                conn, rule, sub, Signal("condition", leak, d1.timestamp(), lowest, msg), res
            )
            save_state(conn, sub, ctx.now)
        st.watermark = d1
        res.samples += 1


# ------------------------------------------------------------------ flood
def flood_signals(
    raised: list[float], *, window_s: float, threshold: int, active: bool, after: float, now: float
) -> list[tuple[float, bool]]:
    """Flood on/off switch times in (after, now] from the alarm raise times of a position."""
    pts = sorted([(t, 1) for t in raised] + [(t + window_s, -1) for t in raised])
    count = 0
    out: list[tuple[float, bool]] = []
    for t, d in pts:
        count += d
        if t > now:
            break
        on = count > threshold
        if on != active and t > after:
            out.append((t, on))
            active = on
        elif t <= after:
            active = on
    return out


def _eval_floods(conn: Conn, run_id: int, now: datetime, res: PassResult) -> None:
    positions = conn.execute(
        "SELECT DISTINCT position_id FROM alarms WHERE run_id = %s AND kind <> 'flood'", (run_id,)
    ).fetchall()
    for (pos,) in positions:
        with conn.transaction():
            conn.execute(
                "INSERT INTO alarm_rules (code, name, kind, position_id, priority) "
                "SELECT 'flood-' || code, 'Alarm flood at ' || code, 'flood', id, 'high' "
                "FROM alarm_positions WHERE id = %s "
                "ON CONFLICT (position_id) WHERE kind = 'flood' DO NOTHING",
                (pos,),
            )
            rid = conn.execute(
                "SELECT id FROM alarm_rules WHERE kind = 'flood' AND position_id = %s", (pos,)
            ).fetchone()
            assert rid is not None
            rule = RuleConfig.build(
                id=int(rid[0]),
                code=f"flood-{pos}",
                kind="flood",
                position_id=pos,
                priority="high",
            )
            st = lock_state(conn, rule.id, run_id)
            if st is None:
                res.locked_elsewhere += 1
                continue
            after = st.watermark.timestamp() if st.watermark else -math.inf
            rows = conn.execute(
                "SELECT extract(epoch FROM raised_at) FROM alarms WHERE run_id = %s AND "
                "position_id = %s AND kind <> 'flood' AND raised_at > %s ORDER BY raised_at",
                (run_id, pos, to_ts(after - FLOOD_WINDOW_S) if math.isfinite(after) else to_ts(0)),
            ).fetchall()
            raised = [float(r[0]) for r in rows]
            for t, on in flood_signals(
                raised,
                window_s=FLOOD_WINDOW_S,
                threshold=FLOOD_THRESHOLD,
                active=st.point.active,
                after=after,
                now=now.timestamp(),
            ):
                msg = (
                    f"more than {FLOOD_THRESHOLD} alarms in {FLOOD_WINDOW_S / 60:g} min at this "
                    "position"
                    if on
                    else "alarm rate back to normal"
                )
                apply_signal(conn, rule, st, Signal("condition", on, t, None, msg), res)
                st.watermark = to_ts(t)
            if raised:
                last = max(raised)
                cand = min(last, now.timestamp())
                if st.watermark is None or cand > st.watermark.timestamp():
                    # only move past raise times, never past a pending clear time
                    pend = [
                        r + FLOOD_WINDOW_S for r in raised if r + FLOOD_WINDOW_S > now.timestamp()
                    ]
                    if not (st.point.active and pend):
                        st.watermark = to_ts(cand)
            save_state(conn, st, now)


# ------------------------------------------------------------------ the pass
_ZONE_EVAL = {
    Kind.MNF: _eval_mnf,
    Kind.WATER_BALANCE: _eval_balance,
    Kind.BURST: _eval_burst,
    Kind.CUSTOMER_LEAK: _eval_customer_leak,
}


def run_pass(
    conn: Conn,
    now: datetime,
    *,
    run_id: int = 0,
    start: datetime,
    until: datetime | None = None,
    batch: int = 5000,
    rules: list[RuleConfig] | None = None,
) -> PassResult:
    """Evaluate every rule once. ``conn`` must be in autocommit mode (one transaction per rule).

    ``start``: where a rule without a watermark begins; ``until``: ignore data after it
    (replay); ``now``: the wall clock (shelf expiry, offline checks in live mode).
    """
    res = PassResult()
    ctx = Ctx(conn, start, until, now, batch, res)
    for rule in rules if rules is not None else load_rules(conn, res.errors):
        if rule.kind is Kind.FLOOD:
            continue
        try:
            _eval_rule(ctx, rule, run_id)
        except psycopg.OperationalError:
            raise  # the connection is gone: the worker reconnects
        except (AlarmsError, psycopg.Error) as exc:
            # this rule's transaction was rolled back; the others go on
            res.errors.append(f"rule {rule.code}: {exc}")
    _report(res.errors)
    if not res.more:
        _eval_floods(conn, run_id, until or now, res)
    return res


_reported: set[str] = set()


def _report(errors: list[str]) -> None:
    """Log each distinct rule problem once per process (not on every poll)."""
    for e in errors:
        if e not in _reported:
            _reported.add(e)
            log.error("alarm rule skipped: %s", e)


def _eval_rule(ctx: Ctx, rule: RuleConfig, run_id: int) -> None:
    conn, res, now = ctx.conn, ctx.res, ctx.now
    with conn.transaction():
        st = lock_state(conn, rule.id, run_id)
        if st is None:
            res.locked_elsewhere += 1
            return
        res.rules += 1
        if run_id == 0:
            tr = lc.tick(st.point, now)
            if tr is not None:
                write_transition(conn, rule, st, tr)
                res.transitions += 1
        if rule.kind is Kind.OFFLINE:
            _eval_offline(ctx, rule, st)
        elif rule.kind in _ZONE_EVAL:
            _ZONE_EVAL[rule.kind](ctx, rule, st)
        else:
            _eval_point(ctx, rule, st)
        save_state(conn, st, now)


def eval_state_of(conn: Conn, rule_id: int, run_id: int = 0) -> dict[str, Any]:
    row = conn.execute(
        "SELECT eval_state FROM alarm_rule_state "
        "WHERE rule_id = %s AND run_id = %s AND subject = ''",
        (rule_id, run_id),
    ).fetchone()
    return {} if row is None else dict(row[0])


__all__ = ["EvalState", "PassResult", "apply_signal", "flood_signals", "run_pass"]
