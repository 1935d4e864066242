"""The worker path on real PostgreSQL: raise, journal, act, replay equals live, two workers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alarms.actions import act, replay
from alarms.engine import run_pass
from alarms.errors import RefusedError
from tests.alarms.conftest import T0, add_readings, add_rule, one

NOW = T0 + timedelta(days=2)


def _events(db: psycopg.Connection[Any], rule_id: int, run_id: int) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT ts, event, from_state, to_state, value, message FROM alarm_events "
        "WHERE rule_id = %s AND run_id = %s ORDER BY id",
        (rule_id, run_id),
    ).fetchall()


def _pressure_series(n: int = 60) -> list[tuple[Any, float | None, int]]:
    # normal 3 bar, comm-fail for 3 samples, then a dip to 1.0 bar for 10 minutes
    out: list[tuple[Any, float | None, int]] = []
    for i in range(n):
        ts = T0 + timedelta(minutes=i)
        if 10 <= i < 20:
            out.append((ts, 1.0, 0))
        elif 3 <= i < 6:
            out.append((ts, None, 2))
        else:
            out.append((ts, 3.0 + 0.01 * (i % 3), 0))
    return out


def test_low_alarm_raised_journaled_and_replay_equals_live(
    db: psycopg.Connection[Any], site_factory: Any
) -> None:
    s = site_factory()
    low = add_rule(
        db,
        "low-" + str(s.pressure_point),
        "low",
        point_id=s.pressure_point,
        limit_value=2.0,
        deadband=0.2,
        on_delay_s=120,
        off_delay_s=60,
        unit="bar",
    )
    smin = add_rule(
        db, "smin-" + str(s.pressure_point), "service_min", point_id=s.pressure_point, unit="bar"
    )
    add_readings(db, s.pressure_point, _pressure_series())
    res = run_pass(db, NOW, start=T0 - timedelta(hours=1))
    assert res.samples >= 60
    live = _events(db, low, 0)
    kinds = [e[1] for e in live]
    # on-delay 120 s: the dip starting at minute 10 raises at minute 12
    assert kinds == ["suppress", "unsuppress", "activate", "clear"]
    assert live[0][0] == T0 + timedelta(minutes=3)
    assert live[2][0] == T0 + timedelta(minutes=12)
    # off-delay 60 s after the dip ended at minute 20
    assert live[3][0] == T0 + timedelta(minutes=21)
    assert "suppress" in kinds and "unsuppress" in kinds
    alarm = one(db, "SELECT id, state, closed_at, zone_id FROM alarms WHERE rule_id = %s", (low,))
    assert alarm[1] == "rtn_unack" and alarm[2] is None and alarm[3] == s.zone_id
    # a second pass with nothing new changes nothing
    again = run_pass(db, NOW, start=T0 - timedelta(hours=1))
    assert again.transitions == 0 and _events(db, low, 0) == live
    # ack closes the occurrence
    tr = act(db, str(alarm[0]), "ack", user="dilnoza", comment="crew informed", now=NOW)
    assert tr.to_state.value == "normal"
    with pytest.raises(RefusedError) as ei:
        act(db, str(alarm[0]), "ack", user="dilnoza", comment=None, now=NOW)
    assert ei.value.reason == "not_unacknowledged"
    row = one(db, "SELECT closed_at, acked_by FROM alarms WHERE id = %s", (alarm[0],))
    assert row == (NOW, "dilnoza")
    # replay over the same data gives the same evaluation events, marked replayed
    run = replay(db, T0 - timedelta(hours=1), T0 + timedelta(days=1), now=NOW)
    rep = _events(db, low, run)
    assert rep == [e for e in live if e[1] != "ack"][: len(rep)]
    assert [e[1] for e in rep] == [e[1] for e in live if e[1] != "ack"]
    assert _events(db, smin, run) == _events(db, smin, 0)
    flags = one(db, "SELECT bool_and(replayed), count(*) FROM alarms WHERE run_id = %s", (run,))
    assert flags[0] is True and flags[1] >= 2


def test_two_workers_raise_one_alarm(
    db_url: str, db: psycopg.Connection[Any], site_factory: Any
) -> None:
    s = site_factory()
    rules = [
        add_rule(
            db,
            f"hi-{s.pressure_point}-{i}",
            "high",
            point_id=s.pressure_point,
            limit_value=5.0 + i * 0.01,
            unit="bar",
        )
        for i in range(8)
    ]
    add_readings(
        db,
        s.pressure_point,
        [(T0 + timedelta(seconds=30 * i), 9.0 if i % 20 > 10 else 3.0, 0) for i in range(200)],
    )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                barrier.wait()
                for _ in range(5):
                    run_pass(conn, NOW, start=T0 - timedelta(hours=1), batch=17)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    while run_pass(db, NOW, start=T0 - timedelta(hours=1), batch=17).more:
        pass
    for rid in rules:
        n = one(
            db,
            "SELECT count(*), count(DISTINCT raised_at) FROM alarms "
            "WHERE rule_id = %s AND run_id = 0",
            (rid,),
        )
        # 200 samples, high for 10 of every 20: 10 separate excursions -> 10 activations
        acts = one(
            db,
            "SELECT count(*) FROM alarm_events WHERE rule_id = %s AND event = 'activate'",
            (rid,),
        )
        assert acts[0] == 10
        assert n[0] == 1 and n[1] == 1  # one occurrence: it was never acknowledged


def test_a_bad_rule_is_skipped_and_the_others_still_run(
    db: psycopg.Connection[Any], site_factory: Any
) -> None:
    s = site_factory()
    add_rule(db, f"bad-{s.pressure_point}", "high", point_id=s.pressure_point)  # no limit
    good = add_rule(
        db, f"ok-{s.pressure_point}", "high", point_id=s.pressure_point, limit_value=5.0
    )
    add_readings(db, s.pressure_point, [(T0 + timedelta(hours=5), 9.0, 0)])
    res = run_pass(db, NOW, start=T0 - timedelta(hours=1))
    assert any(f"bad-{s.pressure_point}" in e and "needs a limit" in e for e in res.errors)
    assert one(db, "SELECT count(*) FROM alarms WHERE rule_id = %s", (good,))[0] == 1
