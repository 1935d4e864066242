"""The ``leak`` rule in the database: feeds :mod:`alarms.leak` and keeps its one alarm per leak.

For each bucket since the rule's watermark it reads the zone's demand (net inflow from the
district meters' volume registers or flow readings, minus the filling of the zone's tanks,
minus the customers' hourly use where every customer meter is read hourly), the demand of
the neighbouring zones, and which of them a boundary valve of the zone was open to (the work
orders' valve records); at the end of each night window it asks for the night verdict; once
the daily reads of a day are in (``balance_delay_h`` after the day's end) it adds what the
customer meters read that day and what billing estimates for the households without a meter
(:mod:`billing.zone_usage`).

What the detector says becomes the alarm: ``open`` raises it (with the size estimate on the
alarm and a row in ``leak_events``), ``update`` only changes the estimate and the event's
series, ``regrow`` raises it again (the leak grew by ``regrow_factor``), ``close`` clears it.
:func:`repair` is the hook for work orders and dispatchers: it closes the event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from psycopg.types.json import Jsonb

from alarms import analytics as an
from alarms import apply as zc
from alarms import leak as lk
from alarms import lifecycle as lc
from alarms import zone as zn
from alarms.apply import Ctx, apply_signal
from alarms.errors import RefusedError
from alarms.rules import Kind, RuleConfig, Signal
from alarms.store import Conn, StateRow, to_ts, write_transition

STATE_KEY = "_leak"
MAX_BUCKETS = 24 * 31  # per rule and pass; the worker loops until it has caught up


def settings(rule: RuleConfig) -> lk.LeakSettings:
    """The detector's settings from the rule's params."""
    p = rule.params
    night_a, night_b = p.night(Kind.LEAK)
    return lk.LeakSettings(
        n_slots=max(1, round(86400 / p.bucket_s)),
        night_slots=max(1, round((night_b - night_a) * 3600 / p.bucket_s)),
        profile_days=p.profile_days,
        baseline_days=p.baseline_days,
        min_history_days=p.history_days(Kind.LEAK),
        min_leak_lps=p.min_excess_lps,
        k=p.daily_k,
        h=p.daily_h,
        burst_z=p.step_z,
        burst_level_z=p.step_level_z,
        min_burst_lps=p.min_step_lps,
        shape_z=p.shape_z,
        shape_new_z=p.shape_new_z,
        shape_suspect_z=p.shape_suspect_z,
        suspect_night_z=p.suspect_night_z,
        trend_days=p.trend_days,
        trend_z=p.trend_z,
        regrow_factor=p.regrow_factor,
        regrow_from_lps=p.regrow_from_lps,
        close_after_days=p.close_after_days,
        transfer_z=p.transfer_z,
        settle_s=p.settle_h * 3600,
        window_z=p.window_z,
        valve_pause=p.valve_pause,
        valve_transfers=p.valve_transfers,
    )


@dataclass(frozen=True)
class Setup:
    """Everything a leak rule watches in the registry."""

    meters: list[zn.InflowMeter]
    tanks: list[zn.Tank]
    pumps: list[zn.Pump]
    customers: list[zn.ZonePoint]
    neighbours: list[tuple[str, list[zn.InflowMeter], list[zn.Tank]]]
    hourly_net: bool
    delay_h: float
    valves: list[zn.BoundaryValve]

    def inflow_points(self) -> list[zn.ZonePoint]:
        return [p for m in self.meters for p in m.points()]


def setup(conn: Conn, rule: RuleConfig) -> Setup:
    """Find the rule's points (ZoneSetupError when the zone has no inflow meter)."""
    p = rule.params
    assert rule.zone_id is not None

    def meters(zone_id: int) -> list[zn.InflowMeter]:
        return zn.inflow_meters(
            conn, zone_id, flow_point=p.flow_point, counters=p.use_counters,
            counter_point=p.counter_point,
        )  # fmt: skip

    own = meters(rule.zone_id)
    customers = zn.customer_points(conn, rule.zone_id, p.volume_point)
    hourly = bool(customers) and all(c.poll_s <= 3600 for c in customers)
    hourly_net = hourly if p.hourly_net is None else (p.hourly_net and bool(customers))
    slowest = max((c.poll_s for c in customers), default=0.0) / 3600
    delay = p.balance_delay_h
    if delay is None:
        delay = 2.0 if hourly or not customers else min(48.0, slowest + 2.0)
    neigh: list[tuple[str, list[zn.InflowMeter], list[zn.Tank]]] = []
    for zid, code in zn.neighbours(conn, rule.zone_id, p.neighbours):
        try:
            neigh.append((code, meters(zid), zn.tanks(conn, zid, p.level_point)))
        except zn.ZoneSetupError:
            continue  # a neighbour without meters cannot tell a transfer: left out
    return Setup(
        own,
        zn.tanks(conn, rule.zone_id, p.level_point),
        zn.pumps(conn, rule.zone_id, p.pump_point),
        customers,
        neigh,
        hourly_net,
        float(delay),
        zn.boundary_valves(conn, rule.zone_id),  # Hour.valve_open/valve_to told either way
    )


def _grid(t: float, step: float) -> float:
    return math.ceil(round(t / step, 6)) * step


def eval_leak(ctx: Ctx, rule: RuleConfig, st: StateRow) -> None:
    """Evaluate a ``leak`` rule over the buckets that arrived since its watermark."""
    conn, res = ctx.conn, ctx.res
    p = rule.params
    assert rule.zone_id is not None
    zc.anchor(st, ctx.start)
    if (
        ctx.live
        and st.watermark is not None
        and ctx.now - st.watermark < timedelta(seconds=p.bucket_s)
    ):
        return  # live, and no new bucket can be complete yet: nothing to look up
    su = setup(conn, rule)
    pts = su.inflow_points()
    # a bucket's demand needs the tanks' levels and the pumps' states at its end as well: the
    # horizon waits for them too (but not for one lagging more than max_lag_h)
    also = [t.level for t in su.tanks] + [u.state for u in su.pumps]
    hz = zn.horizon(conn, [x.point_id for x in pts + also], ctx.until, timedelta(hours=p.max_lag_h))
    zc.check_data(ctx, rule, st, pts, hz)
    if hz is None:
        return
    step = p.bucket_s
    wm = st.watermark or ctx.start
    t0 = _grid(wm.timestamp(), step)
    n = int((hz.timestamp() - t0) // step)
    if n <= 0:
        return
    if n > MAX_BUCKETS:
        n, res.more = MAX_BUCKETS, True
    cfg = replace(settings(rule), hourly_cusum=su.hourly_net)
    tz = ZoneInfo(p.tz)
    demand = zn.zone_demand(conn, su.meters, su.tanks, su.pumps, t0=t0, step_s=step, n=n)
    lps = np.asarray(demand.lps, dtype=np.float64)
    edges = t0 + step * np.arange(n + 1, dtype=np.float64)
    if su.hourly_net:
        use = zn.counter_use(conn, su.customers, edges, 3 * 3600.0)
        lps = lps - use.sum(axis=0) * 1000.0 / step  # NaN where any meter is unknown
    neigh = {
        code: np.asarray(zn.zone_demand(conn, m, t, [], t0=t0, step_s=step, n=n).lps)
        for code, m, t in su.neighbours
    }
    n_back = cfg.window_days * cfg.n_slots
    w_use, w_shares = np.full(n, math.nan), np.zeros((n, n_back))
    if cfg.window_z > 0 and not su.hourly_net and su.customers:
        w_use, w_shares = _windows(
            conn, su, edges[1:], step=step, n_back=n_back, read_gap_h=p.read_gap_h
        )
    valve_to = zn.valve_open_by_neighbour(
        conn, su.valves, edges, settle_s=p.valve_settle_h * 3600,
        max_open_s=p.valve_open_max_h * 3600,
    )  # fmt: skip
    night_a, night_b = p.night(Kind.LEAK)
    t_last = t0 + n * step
    days = zc.local_days(to_ts(t0) - timedelta(days=3), to_ts(t_last), tz)
    nights: dict[float, date] = {}
    balances: dict[float, date] = {}
    for d in days:
        tn = _grid(zc.at_local(d, night_b, tz).timestamp(), step)
        if t0 < tn <= t_last:
            nights[tn] = d
        tb = _grid((zc.at_local(d, 24, tz) + timedelta(hours=su.delay_h)).timestamp(), step)
        if t0 < tb <= t_last:
            balances[tb] = d
    metered = _metered(conn, su, sorted(balances.values()), tz, p.read_gap_h)
    unmetered = zc.unmetered_m3(conn, rule, sorted(balances.values()))
    state = lk.LeakState.from_json(st.extra.get(STATE_KEY))
    for i in range(n):
        t_start = t0 + i * step
        loc = datetime.fromtimestamp(t_start, tz)
        hour = loc.hour + loc.minute / 60
        hr = lk.Hour(
            t_end=t_start + step,
            day=loc.date().toordinal(),
            day_type=p.day_types[loc.weekday()],
            slot=int((loc.hour * 3600 + loc.minute * 60 + loc.second) // step),
            demand_lps=float(lps[i]),
            night=night_a <= hour < night_b,
            transient=bool(demand.transient[i]),
            spread=bool(demand.spread[i]),
            neighbours={c: float(v[i]) for c, v in neigh.items()},
            window_use_lps=float(w_use[i]),
            window_weights=w_shares[i] if math.isfinite(w_use[i]) else None,
            valve_to=tuple(c for c, v in valve_to.items() if v[i]),
        )
        sigs = lk.hour_step(state, cfg, hr)
        t_end = t_start + step
        if t_end in nights:
            sigs += lk.night_step(state, cfg, nights[t_end].toordinal(), t_end)
        if t_end in balances:
            d = balances[t_end]
            m3, meters = metered.get(d, (math.nan, 0))
            sigs += lk.balance_step(
                state, cfg, d.toordinal(), t_end, metered_m3=m3, meters=meters,
                unmetered_m3=unmetered.get(d, (0.0, 0))[0],
            )  # fmt: skip
            fig = state.figures.pop(d.toordinal(), None)
            if fig is not None:
                _daily_row(
                    conn, rule, st, d, fig=fig, metered_m3=m3,
                    unmetered_m3=unmetered.get(d, (0.0, 0))[0], state=state,
                )  # fmt: skip
        for s in sigs:
            _signal(ctx, rule, st, s)
        res.samples += 1
    st.extra[STATE_KEY] = state.to_json()
    st.watermark = to_ts(t_last)


def _windows(
    conn: Conn, su: Setup, ends: np.ndarray, *, step: float, n_back: int, read_gap_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """The customer meters' last read windows at each bucket end (``lk.Hour.window_use_lps``
    and ``window_weights``): their use in L/s, scaled to all the meters (NaN while fewer than
    half of them have a window of at most ``read_gap_h`` in the last ``n_back`` buckets), and
    the windows' shares in those buckets, averaged over the meters."""
    k = len(su.customers)
    data = zn.load_series(
        conn, [c.point_id for c in su.customers], to_ts(ends[0] - n_back * step), to_ts(ends[-1])
    )
    use, shares, n_ok = np.zeros(ends.size), np.zeros((ends.size, n_back)), np.zeros(ends.size)
    for c in su.customers:
        ts, v = data[c.point_id]
        rate, sh = an.read_windows(
            ts, v * c.factor, ends, step_s=step, n_back=n_back, max_span_s=read_gap_h * 3600
        )
        good = np.isfinite(rate)
        use += np.where(good, rate, 0.0)
        shares += sh
        n_ok += good
    enough = n_ok * 2 >= k
    with np.errstate(invalid="ignore", divide="ignore"):
        use = np.where(enough, use * 1000.0 * k / n_ok, math.nan)
        shares = np.where(enough[:, None], shares / n_ok[:, None], 0.0)
    return use, shares


def _metered(
    conn: Conn, su: Setup, days: list[date], tz: ZoneInfo, read_gap_h: float
) -> dict[date, tuple[float, int]]:
    """What the zone's customer meters read on each day (m³, meters): the registers are
    interpolated at local midnight (reads at most ``read_gap_h`` apart); meters without a
    verdict count as the average of the others (none when fewer than half have one)."""
    if su.hourly_net or not su.customers:
        return dict.fromkeys(days, (0.0, 0))  # already taken out hour by hour / nothing to read
    out: dict[date, tuple[float, int]] = {}
    for d in days:
        edges = np.array([zc.at_local(d, 0, tz).timestamp(), zc.at_local(d, 24, tz).timestamp()])
        use = zn.counter_use(conn, su.customers, edges, read_gap_h * 3600)[:, 0]
        ok = np.isfinite(use)
        k = len(su.customers)
        out[d] = (float(use[ok].mean()) * k, k) if ok.sum() * 2 >= k else (math.nan, k)
    return out


def _daily_row(
    conn: Conn,
    rule: RuleConfig,
    st: StateRow,
    d: date,
    *,
    fig: lk.DayFigures,
    metered_m3: float,
    unmetered_m3: float,
    state: lk.LeakState,
) -> None:
    assert rule.zone_id is not None
    consumption = metered_m3 + unmetered_m3
    nrw = 100 * fig.losses_m3 / fig.inflow_m3 if fig.inflow_m3 > 0 else math.nan
    zc.daily_row(
        conn,
        rule.zone_id,
        d,
        st.run_id,
        inflow_m3=fig.inflow_m3,
        consumption_m3=consumption,
        losses_m3=fig.losses_m3,
        nrw_pct=nrw,
        metered_m3=metered_m3,
        unmetered_m3=unmetered_m3,
        night_lps=fig.night_lps,
        transfer_m3=fig.transfer_m3,
        leak_lps=state.event.size.lps if state.event is not None else math.nan,
    )


def _describe(size: lk.Size) -> str:
    return (
        f"about {size.lps:.1f} L/s ({size.m3_per_day:.0f} m³ a day; 90 % between "
        f"{size.low:.1f} and {size.high:.1f} L/s)"
    )


# the alarm messages of the leak rule (the staff page translates them by these patterns:
# api/web/staff_alarms.py)
def open_message(s: lk.LeakSignal) -> str:
    return f"leak {_describe(s.size)}; found by {s.detector}: {s.detail}"


def grown_message(s: lk.LeakSignal) -> str:
    return f"the leak has grown: {_describe(s.size)} ({s.detail})"


def gone_message(s: lk.LeakSignal) -> str:
    return f"leak no longer seen ({s.detail}); last estimate {_describe(s.size)}"


def repaired_message(user: str, comment: str | None) -> str:
    return f"leak repaired by {user}" + (f": {comment}" if comment else "")


def _signal(ctx: Ctx, rule: RuleConfig, st: StateRow, s: lk.LeakSignal) -> None:
    conn = ctx.conn
    size = s.size
    if s.kind == "open":
        msg = open_message(s)
        apply_signal(conn, rule, st, Signal("condition", True, s.ts, size.lps, msg), ctx.res)
        zc.set_leak_size(conn, st, size)
        conn.execute(
            "INSERT INTO leak_events (rule_id, run_id, zone_id, alarm_id, opened_at, detector, "
            "size_lps, size_low_lps, size_high_lps, alarmed_lps, series, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                rule.id, st.run_id, rule.zone_id, st.alarm_id, to_ts(s.ts), s.detector,
                size.lps, size.low, size.high, size.lps,
                Jsonb([[s.ts, size.lps, size.low, size.high, s.detector]]), to_ts(s.ts),
            ),
        )  # fmt: skip
    elif s.kind in ("update", "regrow"):
        zc.set_leak_size(conn, st, size)
        conn.execute(
            "UPDATE leak_events SET size_lps = %s, size_low_lps = %s, size_high_lps = %s, "
            "series = series || %s, updated_at = %s, alarm_id = coalesce(%s, alarm_id), "
            "alarmed_lps = CASE WHEN %s THEN %s ELSE alarmed_lps END, "
            "realarms = realarms + CASE WHEN %s THEN 1 ELSE 0 END "
            "WHERE rule_id = %s AND run_id = %s AND closed_at IS NULL",
            (
                size.lps, size.low, size.high,
                Jsonb([[s.ts, size.lps, size.low, size.high, s.detector]]), to_ts(s.ts),
                st.alarm_id, s.kind == "regrow", size.lps, s.kind == "regrow", rule.id, st.run_id,
            ),
        )  # fmt: skip
        if s.kind == "regrow":
            tr = reannunciate(st.point, to_ts(s.ts))
            if tr is not None:
                msg = grown_message(s)
                write_transition(conn, rule, st, tr, value=size.lps, message=msg)
                ctx.res.transitions += 1
    elif s.kind == "close":
        msg = gone_message(s)
        apply_signal(conn, rule, st, Signal("condition", False, s.ts, None, msg), ctx.res)
        _close_event(conn, rule, st.run_id, s.ts, reason="gone", user=None, comment=s.detail)


def reannunciate(point: lc.AlarmPoint, now: datetime) -> lc.Transition | None:
    """An active alarm is raised again (it must be acknowledged again): the leak grew."""
    if not point.active or point.hidden:
        return None
    return lc.Transition("activate", now, point, replace(point, acked=False))


def _close_event(
    conn: Conn,
    rule: RuleConfig,
    run_id: int,
    ts: float,
    *,
    reason: str,
    user: str | None,
    comment: str | None,
) -> None:
    conn.execute(
        "UPDATE leak_events SET closed_at = %s, close_reason = %s, closed_by = %s, "
        "close_comment = %s, updated_at = %s WHERE rule_id = %s AND run_id = %s "
        "AND closed_at IS NULL",
        (to_ts(ts), reason, user, comment, to_ts(ts), rule.id, run_id),
    )


def repair(
    conn: Conn,
    rule: RuleConfig,
    st: StateRow,
    *,
    user: str,
    comment: str | None,
    at: datetime,
    now: datetime,
) -> list[lc.Transition]:
    """The leak of ``rule``'s open event was repaired at ``at``: close the event, clear the
    alarm and acknowledge it for ``user`` (the occurrence ends). The detector judges nothing
    until the flows have settled (``settle_h``) and learns the zone afresh from there."""
    if rule.kind is not Kind.LEAK:
        raise RefusedError(
            "not_a_leak_rule",
            f"rule {rule.code} is a {rule.kind.value} rule: only a leak rule has leak events",
        )
    if at > now:
        raise RefusedError("repair_in_future", "the repair time is in the future")
    state = lk.LeakState.from_json(st.extra.get(STATE_KEY))
    ev = lk.repaired(state, settings(rule), at.timestamp())
    if ev is None:
        raise RefusedError("no_open_leak", f"rule {rule.code} has no open leak event")
    out: list[lc.Transition] = []
    words = repaired_message(user, comment)
    tr = lc.condition(st.point, False, at)
    if tr is not None:
        write_transition(conn, rule, st, tr, message=words)
        out.append(tr)
    if st.point.state in (lc.State.UNACK, lc.State.RTN_UNACK):
        ack = lc.acknowledge(st.point, user, comment or "repaired", at)
        write_transition(conn, rule, st, ack, message=words)
        out.append(ack)
    _close_event(
        conn, rule, st.run_id, at.timestamp(), reason="repaired", user=user, comment=comment
    )
    st.extra[STATE_KEY] = state.to_json()
    return out
