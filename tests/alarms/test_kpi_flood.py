"""Flood detection through the engine (one summary alarm), chattering, and the KPIs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from alarms.engine import run_pass
from alarms.kpi import AlarmRow, compute_kpis, load_kpis
from tests.alarms.conftest import T0, add_readings, add_rule, one

NOW = T0 + timedelta(days=2)


def test_flood_raises_one_summary_alarm_and_kpis(
    db: psycopg.Connection[Any], site_factory: Any
) -> None:
    pos = one(db, "INSERT INTO alarm_positions (code) VALUES ('north') RETURNING id")[0]
    sites = [site_factory() for _ in range(12)]
    for i, s in enumerate(sites):
        add_rule(
            db,
            f"f-{s.pressure_point}",
            "low",
            point_id=s.pressure_point,
            limit_value=2.0,
            position_id=pos,
        )
        # 12 alarms 30 s apart: a flood from the 11th one
        add_readings(
            db,
            s.pressure_point,
            [(T0 - timedelta(minutes=1), 3.0, 0), (T0 + timedelta(seconds=30 * i + 1), 1.0, 0)],
        )
    # one chattering rule at the same position
    ch = sites[0]
    add_rule(db, f"chat-{ch.flags_point}", "meter_flags", point_id=ch.flags_point, position_id=pos)
    add_readings(
        db,
        ch.flags_point,
        [(T0 + timedelta(seconds=10 * k), 4.0 if k % 2 else 0.0, 0) for k in range(8)],
    )
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    floods = db.execute(
        "SELECT a.raised_at, a.cleared_at, a.state FROM alarms a JOIN alarm_rules r "
        "ON r.id = a.rule_id WHERE r.kind = 'flood' AND r.position_id = %s",
        (pos,),
    ).fetchall()
    # raised at the 11th alarm (>10 in 10 min); the chattering rule adds 4 more raises;
    # it clears 10 min after enough of them have aged out
    assert len(floods) == 1
    raised, cleared, _ = floods[0]
    assert T0 < raised <= T0 + timedelta(seconds=300)
    assert cleared is not None and cleared > raised
    # running again changes nothing
    before = one(db, "SELECT count(*) FROM alarm_events")[0]
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    assert one(db, "SELECT count(*) FROM alarm_events")[0] == before
    chat = one(
        db, "SELECT bool_or(chattering) FROM alarms WHERE kind = 'meter_flags' AND run_id = 0"
    )
    assert chat[0] is True
    k = load_kpis(db, T0, T0 + timedelta(days=1))
    assert k.alarms >= 13
    assert k.per_position_max_per_10min["north"] >= 13
    assert k.time_in_flood_pct > 0
    assert k.chattering_rules == [f"chat-{ch.flags_point}"]
    assert k.top10[0][1] >= 1


def test_compute_kpis_pure() -> None:
    start, end = T0, T0 + timedelta(hours=2)
    rows = [
        AlarmRow("r1", "low", "p1", T0 + timedelta(minutes=m), None, None, False)
        for m in (1, 2, 3, 15)
    ]
    rows.append(AlarmRow("r2", "high", "p2", T0 + timedelta(minutes=5), None, T0, True))
    rows.append(
        AlarmRow(
            "f", "flood", "p1", T0 + timedelta(minutes=30), T0 + timedelta(minutes=60), None, False
        )
    )
    rows.append(AlarmRow("old", "low", "p1", T0 - timedelta(hours=30), None, None, False))
    k = compute_kpis(rows, start, end)
    assert k.alarms == 5
    assert k.per_position_max_per_10min == {"p1": 3, "p2": 1}
    assert k.per_position_avg_per_10min["p1"] == round(4 / 12, 3)
    assert k.time_in_flood_pct == 25.0
    assert k.top10 == [("r1", 4), ("r2", 1)]
    assert k.chattering_alarms == 1 and k.chattering_rules == ["r2"]
    assert k.stale_alarms == 1  # "old": open for more than 24 h
