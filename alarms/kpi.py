"""Alarm-system KPIs per ISA-18.2 (pure computation plus one query)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alarms.store import Conn

STALE_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class AlarmRow:
    rule: str
    kind: str
    position: str
    raised_at: datetime
    cleared_at: datetime | None
    closed_at: datetime | None
    chattering: bool


@dataclass
class Kpis:
    period_start: datetime
    period_end: datetime
    alarms: int = 0
    per_position_avg_per_10min: dict[str, float] = field(default_factory=dict)
    per_position_max_per_10min: dict[str, int] = field(default_factory=dict)
    time_in_flood_pct: float = 0.0
    top10: list[tuple[str, int]] = field(default_factory=list)
    chattering_alarms: int = 0
    chattering_rules: list[str] = field(default_factory=list)
    stale_alarms: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "alarms": self.alarms,
            "alarms_per_position_avg_per_10min": self.per_position_avg_per_10min,
            "alarms_per_position_max_per_10min": self.per_position_max_per_10min,
            "time_in_flood_pct": self.time_in_flood_pct,
            "top10": [{"rule": r, "alarms": n} for r, n in self.top10],
            "chattering_alarms": self.chattering_alarms,
            "chattering_rules": self.chattering_rules,
            "stale_alarms": self.stale_alarms,
        }


def compute_kpis(rows: list[AlarmRow], start: datetime, end: datetime) -> Kpis:
    """KPIs over [start, end). Flood alarms count toward time in flood, not as alarms.

    * alarms per position per 10 min: average and worst 10-minute window (ISA-18.2 target:
      about 1 per 10 min on average, and no window above 10);
    * time in flood: share of the period with a flood alarm active at any position;
    * top 10 contributors: rules with the most alarms;
    * chattering: alarms flagged chattering (3 activations within 60 s by default);
    * stale: alarms still open more than 24 h after they were raised, at the end of the period.
    """
    k = Kpis(start, end)
    span_s = max((end - start).total_seconds(), 1.0)
    windows = max(1, int(span_s // 600))
    in_period = [r for r in rows if start <= r.raised_at < end and r.kind != "flood"]
    k.alarms = len(in_period)
    by_pos: dict[str, Counter[int]] = {}
    for r in in_period:
        w = int((r.raised_at - start).total_seconds() // 600)
        by_pos.setdefault(r.position, Counter())[w] += 1
    for pos, c in sorted(by_pos.items()):
        k.per_position_avg_per_10min[pos] = round(sum(c.values()) / windows, 3)
        k.per_position_max_per_10min[pos] = max(c.values())
    flood_s = 0.0
    for r in rows:
        if r.kind != "flood":
            continue
        a = max(r.raised_at, start)
        b = min(r.cleared_at or end, end)
        if b > a:
            flood_s += (b - a).total_seconds()
    k.time_in_flood_pct = round(100.0 * min(flood_s, span_s) / span_s, 3)
    k.top10 = Counter(r.rule for r in in_period).most_common(10)
    chat = [r for r in in_period if r.chattering]
    k.chattering_alarms = len(chat)
    k.chattering_rules = sorted({r.rule for r in chat})
    k.stale_alarms = sum(
        1
        for r in rows
        if r.kind != "flood"
        and r.raised_at <= end - STALE_AFTER
        and (r.closed_at is None or r.closed_at > end)
    )
    return k


def load_kpis(conn: Conn, start: datetime, end: datetime, *, run_id: int = 0) -> Kpis:
    rows = conn.execute(
        "SELECT r.code, a.kind, p.code, a.raised_at, a.cleared_at, a.closed_at, a.chattering "
        "FROM alarms a JOIN alarm_rules r ON r.id = a.rule_id "
        "JOIN alarm_positions p ON p.id = a.position_id "
        "WHERE a.run_id = %s AND a.raised_at < %s AND (a.closed_at IS NULL OR a.closed_at >= %s "
        "OR a.raised_at >= %s)",
        (run_id, end, start - STALE_AFTER, start - STALE_AFTER),
    ).fetchall()
    return compute_kpis([AlarmRow(*r) for r in rows], start, end)
