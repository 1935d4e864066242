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
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from alarms import analytics as an
from alarms import apply as zc
from alarms import lifecycle as lc
from alarms import zone as zn
from alarms.apply import Ctx, PassResult, apply_signal, set_health
from alarms.errors import AlarmsError
from alarms.leak import Size
from alarms.leakrule import eval_leak
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
    if ctx.live and not res.more:
        _point_health(ctx, rule, st)


def _point_health(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    """A point rule whose point has sent no reading at all since the rule started (it
    watches nothing: a wrong point, a device never installed) raises its health alarm after
    ``no_data_h`` (at least 3 poll periods); the first reading clears it. A device that
    stops sending is the ``offline`` rule's business, not every point rule's."""
    if st.watermark is not None and not st.extra.get("_health"):
        return  # the usual case: it has readings and is healthy (no query)
    base = timedelta(hours=rule.params.stale_after_h(rule.kind))
    since = zc.watched_since(ctx, st)
    if st.watermark is None and ctx.now - since <= base:
        return
    row = ctx.conn.execute(
        "SELECT d.code || '/' || p.name, p.poll_period_s FROM points p "
        "JOIN devices d ON d.id = p.device_id WHERE p.id = %s",
        (rule.point_id,),
    ).fetchone()
    if row is None:
        return
    stale = max(base, timedelta(seconds=3 * float(row[1])))
    if st.watermark is None and ctx.now - since > stale:
        hours = stale.total_seconds() / 3600
        msg = f"no reading from {row[0]} since the rule started watching it ({hours:g} h)"
        set_health(ctx, rule, st, True, ts=since + stale, message=msg)
    elif st.watermark is not None:
        set_health(ctx, rule, st, False, ts=st.watermark, message="")


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
ZonePoint = zn.ZonePoint


def _horizon(conn: Conn, pts: list[ZonePoint], until: datetime | None) -> datetime | None:
    if not pts:
        return None
    row = conn.execute(
        "SELECT max(m) FROM (SELECT (SELECT max(ts) FROM readings r WHERE r.point_id = x "
        "AND (%s::timestamptz IS NULL OR r.ts <= %s)) AS m FROM unnest(%s::bigint[]) x) s",
        (until, until, [p.point_id for p in pts]),
    ).fetchone()
    return None if row is None else row[0]


def _net_flow(
    pts: list[ZonePoint], data: zn.Series, start: float, step_s: float, n: int
) -> np.ndarray:
    """Net zone inflow in L/s per bucket (NaN where any meter has no data)."""
    total = np.zeros(n)
    for p in pts:
        ts, v = data[p.point_id]
        total += p.sign * p.factor * an.bucket_mean(ts, v, start, step_s, n)
    return total


def _series(conn: Conn, pts: list[ZonePoint], t0: datetime, t1: datetime) -> zn.Series:
    return zn.load_series(conn, [p.point_id for p in pts], t0, t1)


def _eval_mnf(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    zc.anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zn.flow_points(conn, rule.zone_id, p.flow_point)
    hz = _horizon(conn, pts, until)
    zc.check_data(ctx, rule, st, pts, hz)
    if hz is None:
        return
    wm = st.watermark or start
    meters = len(zn.customer_points(conn, rule.zone_id, p.volume_point))
    night_a, night_b = p.night(rule.kind)
    days = [
        d
        for d in zc.local_days(wm - timedelta(days=1), hz, tz)
        if wm < zc.at_local(d, night_b, tz) <= hz
    ]
    unmetered = zc.unmetered_m3(conn, rule, days) if p.unmetered_from_billing else {}
    for d in days:
        n0, n1 = zc.at_local(d, night_a, tz), zc.at_local(d, night_b, tz)
        n = max(1, round((n1 - n0).total_seconds() / p.bucket_s))
        data = _series(conn, pts, n0, n1)
        flow = _net_flow(pts, data, to_epoch(n0), p.bucket_s, n)
        mnf = an.night_minimum(flow)
        hist = np.array([h[1] for h in st.extra.get("_hist", [])], dtype=np.float64)
        # legitimate night use: the telemetered meters and the accounts billed otherwise
        conns = meters + unmetered.get(d, (0.0, 0))[1]
        r = an.mnf_check(
            hist,
            mnf,
            min_history=p.history_days(rule.kind),
            connections=conns,
            allowance_lps_per_connection=p.allowance_lps_per_connection,
            min_excess_lps=p.min_excess_lps,
            k_sigma=p.k_sigma,
        )
        if math.isfinite(mnf):
            if math.isfinite(r.excess_lps):
                msg = (
                    f"night flow {mnf:.2f} L/s, night leakage {r.night_leakage_lps:.2f} L/s is "
                    f"{r.excess_lps:.2f} L/s above its baseline "
                    f"(threshold {r.threshold_lps:.2f} L/s)"
                )
            else:  # the first nights: no baseline yet, nothing to compare with
                learned = int(np.isfinite(hist).sum())
                msg = (
                    f"night flow {mnf:.2f} L/s, night leakage {r.night_leakage_lps:.2f} L/s; "
                    f"its baseline is learned from {learned} of "
                    f"{p.history_days(rule.kind)} nights so far"
                )
            apply_signal(
                conn, rule, st, Signal("condition", r.alarm, n1.timestamp(), mnf, msg), res
            )
            if r.alarm:
                sigma = r.threshold_lps / p.k_sigma
                zc.set_leak_size(conn, st, Size.of(r.excess_lps, sigma))
            else:
                st.extra["_hist"] = [*st.extra.get("_hist", []), [n1.timestamp(), mnf]][
                    -p.baseline_days :
                ]
        zc.daily_row(
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
    zc.anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zn.flow_points(conn, rule.zone_id, p.flow_point)
    cust = zn.customer_points(conn, rule.zone_id, p.volume_point)
    hz = _horizon(conn, pts, until)
    zc.check_data(ctx, rule, st, pts, hz)
    if hz is None:
        return
    wm = st.watermark or start
    days = [
        d
        for d in zc.local_days(wm, hz, tz)
        if zc.at_local(d, 0, tz) >= wm and zc.at_local(d, 24, tz) <= hz
    ]
    unmetered = zc.unmetered_m3(conn, rule, days)
    for d in days:
        d0, d1 = zc.at_local(d, 0, tz), zc.at_local(d, 24, tz)
        n = round(86400 / p.bucket_s)
        flow = _net_flow(pts, _series(conn, pts, d0, d1), d0.timestamp(), p.bucket_s, n)
        ok = np.isfinite(flow)
        inflow = float(np.mean(flow[ok])) * 86.4 if ok.sum() >= 0.9 * n else math.nan
        cons = _consumption(conn, cust, np.array([d0.timestamp(), d1.timestamp()]), d0, d1)
        est = unmetered.get(d, (0.0, 0))[0]
        if cust:
            metered = float(cons.sum()) if np.all(np.isfinite(cons)) else math.nan
        else:  # no customer meter: only an estimate of the unmetered use, if there is one
            metered = 0.0 if est > 0 else math.nan
        consumption = metered + est
        bal = an.water_balance(inflow, consumption)
        hist = np.array([h[1] for h in st.extra.get("_hist", [])], dtype=np.float64)
        if math.isfinite(bal.nrw_pct):
            alarm = an.nrw_rise(hist, bal.nrw_pct, p.nrw_rise_pct, p.history_days(rule.kind))
            source = "" if p.unmetered_m3_per_day > 0 else ", from the norm bills"
            unmetered_txt = f" + {est:.1f} m³ unmetered (estimate{source})" if est > 0 else ""
            msg = (
                f"NRW {bal.nrw_pct:.1f} % on {d}: input {bal.inflow_m3:.1f} m³, metered "
                f"{metered:.1f} m³{unmetered_txt}, losses {bal.losses_m3:.1f} m³"
            )
            apply_signal(
                conn, rule, st, Signal("condition", alarm, d1.timestamp(), bal.nrw_pct, msg), res
            )
            if alarm and hist.size:
                usual = float(np.median(hist))
                extra_lps = (bal.nrw_pct - usual) / 100 * bal.inflow_m3 / 86.4
                spread = an.robust_sigma(hist)
                sigma = (spread if math.isfinite(spread) else p.nrw_rise_pct / 3) / 100
                zc.set_leak_size(conn, st, Size.of(extra_lps, sigma * bal.inflow_m3 / 86.4))
            if not alarm:
                st.extra["_hist"] = [*st.extra.get("_hist", []), [d1.timestamp(), bal.nrw_pct]][
                    -p.baseline_days :
                ]
        zc.daily_row(
            conn,
            rule.zone_id,
            d,
            st.run_id,
            inflow_m3=inflow,
            consumption_m3=consumption,
            losses_m3=bal.losses_m3,
            nrw_pct=bal.nrw_pct,
            unmetered_m3=est,
        )
        st.watermark = d1
        res.samples += 1


def _eval_burst(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    zc.anchor(st, start)
    tz = ZoneInfo(p.tz)
    pts = zn.flow_points(conn, rule.zone_id, p.flow_point)
    hz = _horizon(conn, pts, until)
    zc.check_data(ctx, rule, st, pts, hz)
    cust = zn.customer_points(conn, rule.zone_id, p.volume_point, required=p.net_of_consumption)
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
    bp = an.BurstParams(
        n_slots=n_slots,
        baseline_days=p.baseline_days,
        min_history_days=p.history_days(rule.kind),
        min_sigma=max(0.1, p.min_excess_lps / 4),
        cusum_k=p.cusum_k,
        cusum_h=p.cusum_h,
        z_clip=p.z_clip,
        accept_after_h=p.accept_after_h,
    )
    state = an.BurstState.from_json(st.extra, active=st.eval.active)
    what = "losses (inflow - metered use)" if p.net_of_consumption else "inflow"
    for i in range(n):
        t_end = t0 + (i + 1) * step_s
        slot = int(((t0 + i * step_s + off.total_seconds()) % 86400) // step_s)
        state, sig = an.burst_step(state, bp, t_end, slot, float(flow[i]))
        res.samples += 1
        if sig is None:
            continue
        st.eval = replace(st.eval, active=sig.on)
        if sig.why == "raise":
            msg = (
                f"zone {what} {sig.value:.2f} L/s, usual for this hour {sig.usual:.2f} "
                f"L/s (CUSUM {sig.s:.1f} > {p.cusum_h:g})"
            )
        elif sig.why == "accept":
            msg = (
                f"zone {what} has stayed {sig.shift:.2f} L/s above its "
                f"profile for {p.accept_after_h:g} h: accepted as the new level"
            )
        else:
            msg = f"zone {what} back to its usual profile"
        apply_signal(conn, rule, st, Signal("condition", sig.on, t_end, sig.value, msg), res)
        if sig.on:
            sigma = max(bp.min_sigma, 0.02 * abs(sig.usual))
            zc.set_leak_size(conn, st, Size.of(sig.shift, sigma))
    st.extra.update(state.to_json())
    st.watermark = to_ts(t0 + n * step_s)


def _eval_customer_leak(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    conn, start, until, res = ctx.conn, ctx.start, ctx.until, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    zc.anchor(st, start)
    tz = ZoneInfo(p.tz)
    cust = zn.customer_points(conn, rule.zone_id, p.volume_point, required=True)
    hz = _horizon(conn, cust, until)
    zc.check_data(ctx, rule, st, cust, hz)
    if hz is None:
        return
    wm = st.watermark or start
    first_ok = float(st.extra.get("_anchor", start.timestamp()))  # no window before the anchor
    for d in zc.local_days(wm, hz, tz):
        d1 = zc.at_local(d, 24, tz)
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
    Kind.LEAK: eval_leak,
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
    ctx = Ctx(conn, start, until, now, batch, res, run_id)
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
        try:
            if rule.kind is Kind.OFFLINE:
                _eval_offline(ctx, rule, st)
            elif rule.kind in _ZONE_EVAL:
                _ZONE_EVAL[rule.kind](ctx, rule, st)
            else:
                _eval_point(ctx, rule, st)
        except zn.ZoneSetupError as exc:
            # the rule cannot find what it watches: said loudly, never silently nothing
            res.errors.append(f"rule {rule.code}: {exc}")
            set_health(ctx, rule, st, True, ts=now, message=f"the rule watches nothing: {exc}")
        save_state(conn, st, now)


def eval_state_of(conn: Conn, rule_id: int, run_id: int = 0) -> dict[str, Any]:
    row = conn.execute(
        "SELECT eval_state FROM alarm_rule_state "
        "WHERE rule_id = %s AND run_id = %s AND subject = ''",
        (rule_id, run_id),
    ).fetchone()
    return {} if row is None else dict(row[0])


__all__ = ["EvalState", "PassResult", "apply_signal", "flood_signals", "run_pass"]
