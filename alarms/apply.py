"""What one evaluation pass shares between the rule evaluators: the context, the running
totals, and how a signal of an evaluator becomes a lifecycle transition in the database."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alarms import lifecycle as lc
from alarms.leak import Size
from alarms.rules import RuleConfig, Signal
from alarms.store import Conn, StateRow, lock_state, save_state, to_ts, write_transition
from alarms.zone import ZonePoint
from billing import zone_usage

HEALTH = "health"
"""Subject of a rule's health alarm: the rule cannot find its points, or they send nothing."""


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
    run_id: int = 0

    @property
    def live(self) -> bool:
        return self.run_id == 0


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


def set_health(
    ctx: Ctx, rule: RuleConfig, st: StateRow, bad: bool, *, ts: datetime, message: str
) -> None:
    """Raise or clear the rule's health alarm (``<rule>:health``), live only.

    The rule's own row remembers the health (``_health``), so the health row is locked only
    when it changes."""
    if not ctx.live or bool(st.extra.get("_health", False)) == bad:
        return
    sub = lock_state(ctx.conn, rule.id, st.run_id, HEALTH, skip_locked=False)
    assert sub is not None
    msg = message if bad else "the rule's points send readings again"
    apply_signal(ctx.conn, rule, sub, Signal("condition", bad, ts.timestamp(), None, msg), ctx.res)
    save_state(ctx.conn, sub, ctx.now)
    st.extra["_health"] = bad


# ------------------------------------------------------------------ shared by the zone rules
def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    d = start.astimezone(tz).date()
    out = []
    while datetime.combine(d, time(0), tz) <= end:
        out.append(d)
        d += timedelta(days=1)
    return out


def at_local(d: date, hours: float, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tz) + timedelta(hours=hours)


def daily_row(conn: Conn, zone_id: int, day: date, run_id: int, **vals: float | None) -> None:
    cols = list(vals)
    conn.execute(
        f"INSERT INTO zone_leak_daily (zone_id, day, run_id, {', '.join(cols)}) "  # noqa: S608 (column names are the caller's keyword names, values are parameters)
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


def anchor(st: StateRow, start: datetime) -> None:
    """A zone rule seen for the first time starts at ``start`` for good: its watermark is
    set even before anything could be evaluated, so a sliding look-back never skips a day."""
    if st.watermark is None:
        st.watermark = start
        st.extra["_anchor"] = start.timestamp()


def watched_since(ctx: Ctx, st: StateRow) -> datetime:
    """Since when a rule without readings has been watching for them. Live: the later of the
    pass's look-back start and the first pass that evaluated the rule. A rule new to the
    worker (a new system, a rule just added) had no readings in the hours before it existed,
    and that is no fault: it gets its full ``no_data_h`` from the moment it is first seen.
    In a replay: the start of the replayed window."""
    if not ctx.live:
        return ctx.start
    seen = float(st.extra.setdefault("_seen", ctx.now.timestamp()))
    return max(ctx.start, datetime.fromtimestamp(seen, ctx.start.tzinfo))


def check_data(
    ctx: Ctx, rule: RuleConfig, st: StateRow, pts: list[ZonePoint], hz: datetime | None
) -> None:
    """A rule whose points send nothing raises its health alarm (live) or, in a replay, an
    error naming them; it clears when readings come again."""
    polls = max((p.poll_s for p in pts), default=0.0)
    stale = max(timedelta(hours=rule.params.stale_after_h(rule.kind)), timedelta(seconds=3 * polls))
    ref = ctx.until if ctx.until is not None else ctx.now
    names = ", ".join(f"{p.device_code}/{p.name}" for p in pts[:5])
    if (hz is None or hz < ctx.start) and ctx.until is not None and not ctx.live:
        ctx.res.errors.append(
            f"rule {rule.code}: no readings from {names} between "
            f"{ctx.start:%Y-%m-%d %H:%M} and {ctx.until:%Y-%m-%d %H:%M} UTC"
        )
    last = hz if hz is not None else watched_since(ctx, st)
    if ref - last > stale:
        hours = stale.total_seconds() / 3600
        msg = f"no readings from {names} for more than {hours:g} h"
        set_health(ctx, rule, st, True, ts=last + stale, message=msg)
    elif hz is not None:
        set_health(ctx, rule, st, False, ts=hz, message="")


def unmetered_m3(conn: Conn, rule: RuleConfig, days: list[date]) -> dict[date, tuple[float, int]]:
    """(m³, accounts) a day of the zone's use that no telemetered meter reports: the rule's
    ``unmetered_m3_per_day`` when given, else the estimate from billing (norm bills)."""
    p = rule.params
    assert rule.zone_id is not None
    if not days:
        return {}
    if p.unmetered_m3_per_day > 0 or not p.unmetered_from_billing:
        return dict.fromkeys(days, (p.unmetered_m3_per_day, 0))
    use = zone_usage.unmetered_use(conn, rule.zone_id, min(days), max(days), p.tz)
    return {u.day: (u.estimated_m3, u.norm_accounts + u.manual_accounts) for u in use}


def set_leak_size(conn: Conn, st: StateRow, size: Size) -> None:
    """Put a leak-size estimate (L/s, 90 % interval) on the rule's open alarm."""
    if st.alarm_id is None or not math.isfinite(size.lps):
        return
    conn.execute(
        "UPDATE alarms SET leak_lps = %s, leak_low_lps = %s, leak_high_lps = %s WHERE id = %s",
        (size.lps, size.low, size.high, st.alarm_id),
    )
