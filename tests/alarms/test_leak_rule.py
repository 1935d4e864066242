"""The ``leak`` rule on real PostgreSQL: a rural DMA with a district meter (the profile's
flow_m3h and forward_m3), a few customer meters read once a day and the other households
billed by the norm. One alarm per leak, its size on the alarm, the leak event, the repair,
replay equal to live, and what billing estimates for the unmetered households."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
import shapely

from alarms import zone as zn
from alarms.actions import act, repaired, replay
from alarms.engine import run_pass
from alarms.errors import RefusedError
from alarms.leakrule import settings
from alarms.rules import Kind, RuleConfig, RuleParams
from assets import work_order_store as wos
from assets.model import Asset
from assets.store import Actor, save_assets
from billing.accountno import make_number
from billing.zone_usage import unmetered_use
from tests.alarms.conftest import add_readings, add_rule, one

START = datetime(2026, 5, 31, 19, 0, tzinfo=UTC)  # 2026-06-01 00:00 in Tashkent
DAYS = 30
LEAK_AT = START + timedelta(days=20, hours=10)
LEAK_LPS = 1.5
RESIDENTS, NORM = 4, 3.6  # m³ a person and month (0.12 a day in June)
HOUSEHOLDS, METERED = 30, 3
SHAPE = np.array(
    [0.3, 0.25, 0.2, 0.2, 0.25, 0.5, 1.2, 1.8, 1.6, 1.2, 1.0, 1.0,
     1.1, 1.0, 0.9, 0.9, 1.0, 1.3, 1.7, 1.9, 1.7, 1.2, 0.7, 0.4]
)  # fmt: skip
SHAPE = SHAPE / SHAPE.mean()


def _billing(db: psycopg.Connection[Any], zone: int, meter_points: list[int]) -> list[int]:
    """A street of households: the first ``len(meter_points)`` metered (their meters send
    telemetry), one more with a meter read by hand, the others billed by the norm."""
    db.execute("INSERT INTO regions (name_uz) VALUES ('R') ON CONFLICT DO NOTHING")
    db.execute(
        "INSERT INTO districts (region_id, name_uz) SELECT id, 'D' FROM regions "
        "WHERE name_uz = 'R' "
        "ON CONFLICT DO NOTHING"
    )
    db.execute(
        "INSERT INTO mahallas (district_id, name_uz) SELECT id, 'M' FROM districts "
        "WHERE name_uz = 'D' ON CONFLICT DO NOTHING"
    )
    street = one(
        db,
        "INSERT INTO streets (mahalla_id, name_uz) SELECT id, %s FROM mahallas "
        "WHERE name_uz = 'M' RETURNING id",
        (f"street {zone}",),
    )[0]
    db.execute(
        "INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', %s) "
        "ON CONFLICT DO NOTHING",
        (NORM,),
    )
    ids = []
    for i in range(HOUSEHOLDS):
        house = one(
            db, "INSERT INTO houses (street_id, number) VALUES (%s, %s) RETURNING id",
            (street, str(i + 1)),
        )[0]  # fmt: skip
        metered = i < len(meter_points) + 1
        acc = one(
            db,
            "INSERT INTO accounts (number, kind, category, name, house_id, zone_id, residents, "
            "metered, opened_on, status_since) VALUES (%s, 'household', 'household', %s, %s, "
            "%s, %s, %s, '2024-01-01', '2024-01-01') RETURNING id",
            (make_number(20_000_000 + zone * 100 + i), f"h{i}", house, zone, RESIDENTS, metered),
        )[0]
        ids.append(int(acc))
        if metered:
            point = meter_points[i] if i < len(meter_points) else None
            meter = one(
                db,
                "INSERT INTO meters (serial_no, point_id, zone_id) VALUES (%s, %s, %s) "
                "RETURNING id",
                (f"SN-{zone}-{i}", point, zone),
            )[0]
            db.execute(
                "INSERT INTO service_connections (account_id, meter_id, installed_at) "
                "VALUES (%s, %s, '2024-01-01')",
                (acc, meter),
            )
    return ids


def _point(
    db: psycopg.Connection[Any], device: int, name: str, unit: str, kind: str, period_s: int = 900
) -> int:
    """A point polled every ``period_s`` (15 min unless given)."""
    return int(
        one(
            db,
            "INSERT INTO points (device_id, name, unit, kind, poll_period_s) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (device, name, unit, kind, period_s),
        )[0]
    )


def _dma(
    db: psycopg.Connection[Any],
    code: str,
    *,
    leak: bool,
    params: dict[str, Any] | None = None,
    bump: tuple[datetime, datetime, float] | None = None,
) -> dict[str, int]:
    z = int(one(db, "INSERT INTO zones (code, name) VALUES (%s, 'rural') RETURNING id", (code,))[0])
    dm = one(
        db,
        "INSERT INTO devices (code, kind, profile, zone_id) "
        "VALUES (%s, 'district_meter', 'district_flow_meter', %s) RETURNING id",
        (f"dm-{code}", z),
    )[0]
    flow = _point(db, dm, "flow_m3h", "m3/h", "analog")
    counter = _point(db, dm, "forward_m3", "m3", "counter")
    rng = np.random.default_rng(7)
    weather = np.exp(rng.normal(0, 0.03, DAYS))
    # the customer meters: each household 0.6 m³ a day, read once a day at 09:00
    meter_points = []
    metered_m3h = np.zeros(DAYS * 96)
    t15 = np.arange(DAYS * 96) * 900.0
    hour = ((t15 // 3600) % 24).astype(int)
    day = (t15 // 86400).astype(int)
    for k in range(METERED):
        dev = one(
            db,
            "INSERT INTO devices (code, kind, profile, zone_id) VALUES (%s, 'customer_meter', "
            "'ultrasonic_water_meter', %s) RETURNING id",
            (f"cm-{code}-{k}", z),
        )[0]
        pid = _point(db, int(dev), "volume_m3", "m3", "counter", 86400)
        meter_points.append(pid)
        use = 0.6 * weather[day] * SHAPE[hour] / 96  # m³ per 15 min
        metered_m3h += use * 4
        reg = 100.0 + np.concatenate([[0.0], np.cumsum(use)])
        reads = [(START + timedelta(days=d, hours=9), float(reg[d * 96 + 36]), 0)
                 for d in range(DAYS)]  # fmt: skip
        add_readings(db, int(pid), reads)
    accounts = _billing(db, z, meter_points)
    # the households without a telemetered meter use what the norm says, with the weather
    others = (HOUSEHOLDS - METERED) * RESIDENTS * NORM / 30  # m³ a day
    demand = (
        others / 86.4 * weather[day] * SHAPE[hour] * (1 + rng.normal(0, 0.03, t15.size))
        + metered_m3h / 3.6
        + 0.2  # background leakage
    )
    if leak:
        demand = demand + np.where(START.timestamp() + t15 >= LEAK_AT.timestamp(), LEAK_LPS, 0.0)
    if bump is not None:  # water that is not this zone's use comes through its meter
        a, b, lps = bump
        at = START.timestamp() + t15
        demand = demand + np.where((at >= a.timestamp()) & (at < b.timestamp()), lps, 0.0)
    add_readings(
        db, int(flow),
        [(START + timedelta(seconds=float(t)), float(q) * 3.6, 0) for t, q in zip(t15, demand,
                                                                                  strict=True)],
    )  # fmt: skip
    vol = 5000.0 + np.cumsum(demand * 900 / 1000)
    add_readings(
        db, int(counter),
        [(START + timedelta(seconds=float(t) + 900), float(v), 0) for t, v in zip(t15, vol,
                                                                                  strict=True)],
    )  # fmt: skip
    rule = add_rule(db, f"{code}-leak", "leak", zone_id=z, priority="high", params=params or {})
    return {"zone": z, "rule": rule, "account": accounts[-1]}


def _activations(db: psycopg.Connection[Any], rule: int, run: int) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT ts, event, to_state FROM alarm_events WHERE rule_id = %s AND run_id = %s "
        "AND subject = '' ORDER BY id",
        (rule, run),
    ).fetchall()


@pytest.fixture(scope="module")
def dmas(db_url: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(db_url, autocommit=True) as db:
        out = {"leaky": _dma(db, "RL", leak=True), "quiet": _dma(db, "RQ", leak=False)}
        rules = [out["leaky"]["rule"], out["quiet"]["rule"]]
        from alarms.store import load_rules

        now = START + timedelta(days=DAYS)
        run_pass(db, now, start=START, rules=[r for r in load_rules(db) if r.id in rules])
    return out


def test_one_alarm_per_leak_with_its_size(
    db: psycopg.Connection[Any], dmas: dict[str, dict[str, int]]
) -> None:
    leaky, quiet = dmas["leaky"], dmas["quiet"]
    ev = _activations(db, leaky["rule"], 0)
    assert [e[1] for e in ev] == ["activate"]  # one alarm; later evidence only updates it
    assert LEAK_AT < ev[0][0] <= LEAK_AT + timedelta(hours=24)
    assert _activations(db, quiet["rule"], 0) == []
    lps, low, high, m3, msg = one(
        db,
        "SELECT leak_lps, leak_low_lps, leak_high_lps, leak_m3_day, message FROM alarms "
        "WHERE rule_id = %s AND run_id = 0 AND subject = ''",
        (leaky["rule"],),
    )
    assert low <= LEAK_LPS <= high and abs(lps - LEAK_LPS) < 0.5
    assert abs(m3 - lps * 86.4) < 1e-6
    assert msg.startswith("leak about") and "m³ a day" in msg
    opened, detector, series, closed = one(
        db,
        "SELECT opened_at, detector, series, closed_at FROM leak_events WHERE rule_id = %s "
        "AND run_id = 0",
        (leaky["rule"],),
    )
    assert opened == ev[0][0] and closed is None and detector
    assert len(series) >= 3  # every night and day after it added its estimate


def test_daily_figures_count_the_norm_billed_households(
    db: psycopg.Connection[Any], dmas: dict[str, dict[str, int]]
) -> None:
    z = dmas["quiet"]["zone"]
    metered, unmetered, inflow, losses, night = one(
        db,
        "SELECT metered_m3, unmetered_m3, inflow_m3, losses_m3, night_lps FROM zone_leak_daily "
        "WHERE zone_id = %s AND day = '2026-06-10' AND run_id = 0",
        (z,),
    )
    # 26 households billed by the norm + 1 with a meter read by hand (no invoice yet: norm)
    assert abs(unmetered - (HOUSEHOLDS - METERED) * RESIDENTS * NORM / 30) < 1e-6
    assert abs(metered - METERED * 0.6) < 0.3
    assert abs(losses - 0.2 * 86.4) < 3.0  # the background leakage
    assert inflow > metered + unmetered and night > 0


def test_replay_equals_live(db: psycopg.Connection[Any], dmas: dict[str, dict[str, int]]) -> None:
    run = replay(db, START, START + timedelta(days=DAYS), now=START + timedelta(days=DAYS))
    for d in dmas.values():
        assert [e[:2] for e in _activations(db, d["rule"], run)] == [
            e[:2] for e in _activations(db, d["rule"], 0)
        ]
    assert one(db, "SELECT problems FROM alarm_replay_runs WHERE id = %s", (run,))[0] == []


def test_repaired_closes_the_leak_event(
    db: psycopg.Connection[Any], dmas: dict[str, dict[str, int]]
) -> None:
    leaky = dmas["leaky"]
    code = "RL-leak"
    now = START + timedelta(days=DAYS, hours=1)
    with pytest.raises(RefusedError) as info:
        repaired(db, code, user="", now=now)
    assert info.value.reason == "user_required"
    with pytest.raises(RefusedError) as info:
        repaired(db, code, user="dilnoza", now=now, at=now + timedelta(hours=1))
    assert info.value.reason == "repair_in_future"
    act(db, code, "ack", user="dilnoza", comment="crew sent", now=now - timedelta(days=5))
    at = START + timedelta(days=DAYS - 1)
    trs = repaired(db, code, user="dilnoza", comment="clamp on the main", now=now, at=at)
    assert [t.event for t in trs] == ["clear"]  # it was acknowledged: clearing ends it
    state, closed = one(
        db,
        "SELECT state, closed_at FROM alarms WHERE rule_id = %s AND run_id = 0 AND subject = ''",
        (leaky["rule"],),
    )
    assert state == "normal" and closed == at
    reason, by, comment, closed_at = one(
        db,
        "SELECT close_reason, closed_by, close_comment, closed_at FROM leak_events "
        "WHERE rule_id = %s AND run_id = 0",
        (leaky["rule"],),
    )
    assert (reason, by, comment, closed_at) == ("repaired", "dilnoza", "clamp on the main", at)
    with pytest.raises(RefusedError) as info:
        repaired(db, code, user="dilnoza", now=now)
    assert info.value.reason == "no_open_leak"
    # the leak is still in the data after the "repair": nothing is judged while it settles,
    # then the rule learns afresh; the data before the repair never reopens the event
    from alarms.store import load_rules

    run_pass(db, now, start=START, rules=[r for r in load_rules(db) if r.code == code])
    assert [e[1] for e in _activations(db, leaky["rule"], 0)] == ["activate", "ack", "clear"]


def test_repaired_refuses_a_rule_that_is_not_a_leak_rule(db: psycopg.Connection[Any]) -> None:
    z = one(db, "SELECT id FROM zones WHERE code = 'RQ'")[0]
    add_rule(db, "RQ-mnf", "mnf", zone_id=z, params={})
    with pytest.raises(RefusedError) as info:
        repaired(db, "RQ-mnf", user="dilnoza", now=START + timedelta(days=DAYS))
    assert info.value.reason == "not_a_leak_rule"
    # the same through the operator actions (what the API and the alarm page call)
    with pytest.raises(RefusedError) as info:
        act(db, "RQ-mnf", "repaired", user="dilnoza", now=START + timedelta(days=DAYS))
    assert info.value.reason == "not_a_leak_rule"
    with pytest.raises(RefusedError) as info:
        act(db, "RQ-leak", "repaired", user="dilnoza", now=START + timedelta(days=DAYS))
    assert info.value.reason == "no_open_leak"


def test_unmetered_use_from_billing(db: psycopg.Connection[Any]) -> None:
    """billing.zone_usage: norm-billed accounts on their active days; a metered account whose
    meter sends no telemetry at its last invoiced average; telemetered meters left out."""
    z = one(db, "SELECT id FROM zones WHERE code = 'RQ'")[0]
    per_day = RESIDENTS * NORM / 30  # June has 30 days
    days = unmetered_use(db, z, date(2026, 6, 1), date(2026, 6, 3))
    assert [d.day for d in days] == [date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)]
    assert days[0].norm_accounts == HOUSEHOLDS - METERED  # incl. the hand-read meter
    assert abs(days[0].norm_m3 - (HOUSEHOLDS - METERED) * per_day) < 1e-9
    # the hand-read meter gets an invoice for May (9.3 m³ = 0.3 a day): from June on, that
    hand = one(
        db,
        "SELECT a.id FROM accounts a JOIN service_connections sc ON sc.account_id = a.id "
        "JOIN meters m ON m.id = sc.meter_id WHERE a.zone_id = %s AND m.point_id IS NULL",
        (z,),
    )[0]
    db.execute(
        "INSERT INTO invoices (number, account_id, period, issued_at, amount_tiyin, volume_m3) "
        "VALUES ('2026-9999901', %s, '2026-05-01', '2026-06-01', 100, 9.3)",
        (hand,),
    )
    # one norm-billed household is suspended from 2 June (no water, no norm)
    susp = one(
        db,
        "SELECT a.id FROM accounts a WHERE a.zone_id = %s AND NOT a.metered ORDER BY id LIMIT 1",
        (z,),
    )[0]
    db.execute(
        "UPDATE accounts SET status = 'suspended', status_since = '2026-06-01T19:00:00Z' "
        "WHERE id = %s",
        (susp,),
    )
    days = unmetered_use(db, z, date(2026, 6, 1), date(2026, 6, 3))
    assert days[0].manual_accounts == 1 and abs(days[0].manual_m3 - 0.3) < 1e-9
    assert days[0].norm_accounts == HOUSEHOLDS - METERED - 1
    assert days[2].norm_accounts == HOUSEHOLDS - METERED - 2  # suspended from the 2nd on
    assert abs(days[2].estimated_m3 - ((HOUSEHOLDS - METERED - 2) * per_day + 0.3)) < 1e-9
    # a zone without accounts: nothing estimated
    empty = one(db, "INSERT INTO zones (code, name) VALUES ('RE', 'e') RETURNING id")[0]
    assert [d.estimated_m3 for d in unmetered_use(db, empty, date(2026, 6, 1),
                                                  date(2026, 6, 2))] == [0.0, 0.0]  # fmt: skip


def _cli(db_url: str, *args: str) -> tuple[int, str]:
    """``suvnet alarms ...`` in-process, as in test_cli (fixed clock, errors as exit 1)."""
    import os

    from typer.testing import CliRunner

    from alarms.cli import app
    from suvnet.errors import SuvnetError
    from suvnet.settings import get_settings

    env = {
        "SUVNET_DATABASE_URL": db_url,
        "COLUMNS": "200",
        "SUVNET_NOW": (START + timedelta(days=DAYS, hours=2)).isoformat(),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, list(args))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    if isinstance(r.exception, SuvnetError):
        return 1, f"error: {r.exception}"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout


def test_cli_lists_leak_sizes_and_refuses_a_repair_without_a_leak(
    db_url: str, dmas: dict[str, dict[str, int]]
) -> None:
    import json

    code, out = _cli(db_url, "list", "--all", "--json")
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    leak = [d for d in docs if d["rule"] == "RL-leak"]
    assert leak and leak[0]["leak_lps_90"][0] <= leak[0]["leak_lps"] <= leak[0]["leak_lps_90"][1]
    assert abs(leak[0]["leak_m3_day"] - leak[0]["leak_lps"] * 86.4) < 0.1
    code, out = _cli(db_url, "list", "--all")
    assert code == 0 and "leak L/s" in out
    code, out = _cli(db_url, "repaired", "RQ-leak", "-u", "dilnoza", "-c", "nothing found")
    assert code == 1 and "no open leak event" in out
    # a replay over a window without readings names the rules that watched nothing
    code, out = _cli(db_url, "replay", "--from", "2025-01-01", "--to", "2025-01-03")
    assert code == 1 and "RL-leak: no readings from dm-RL/" in out


def test_incremental_passes_equal_one_pass(
    db: psycopg.Connection[Any], dmas: dict[str, dict[str, int]]
) -> None:
    """A live worker polling every few hours reaches the leak rule's alarms, sizes and daily
    figures of one pass over everything (its state is stored and restored between polls)."""
    from alarms.store import load_rules

    rules = [r for r in load_rules(db) if r.id == dmas["quiet"]["rule"] or r.code == "RL-leak"]
    run = 77
    now = START + timedelta(hours=20)
    while now <= START + timedelta(days=DAYS):
        run_pass(db, now, run_id=run, start=START, until=now, rules=rules)
        now += timedelta(hours=7)
    run_pass(db, START + timedelta(days=DAYS), run_id=run, start=START,
             until=START + timedelta(days=DAYS), rules=rules)  # fmt: skip
    one_pass = replay(db, START, START + timedelta(days=DAYS), now=START + timedelta(days=DAYS))
    for d in dmas.values():
        assert [e[:2] for e in _activations(db, d["rule"], run)] == [
            e[:2] for e in _activations(db, d["rule"], one_pass)
        ]
    sizes = db.execute(
        "SELECT run_id, series FROM leak_events WHERE rule_id = %s AND run_id IN (%s, %s)",
        (dmas["leaky"]["rule"], run, one_pass),
    ).fetchall()
    by_run = {r: [[round(x, 9) if isinstance(x, float) else x for x in p] for p in s]
              for r, s in sizes}  # fmt: skip
    assert by_run[run] == by_run[one_pass]  # the same to the last rounding of a sum
    daily = db.execute(
        "SELECT run_id, day, night_lps, losses_m3 FROM zone_leak_daily WHERE zone_id = %s "
        "AND run_id IN (%s, %s) AND metered_m3 IS NOT NULL ORDER BY day, run_id",
        (dmas["quiet"]["zone"], run, one_pass),
    ).fetchall()

    def r9(x: Any) -> Any:
        return round(x, 9) if isinstance(x, float) else x

    a = [(d, r9(n), r9(x)) for r, d, n, x in daily if r == run]
    b = [(d, r9(n), r9(x)) for r, d, n, x in daily if r == one_pass]
    assert a == b and len(a) >= DAYS - 3


def test_regrow_from_lps_is_a_rule_setting() -> None:
    rule = RuleConfig(id=1, code="DMA-S-leak", kind=Kind.LEAK, zone_id=1)
    assert settings(rule).regrow_from_lps == 2.0
    small = RuleConfig(
        id=1, code="DMA-S-leak", kind=Kind.LEAK, zone_id=1, params=RuleParams(regrow_from_lps=0.5)
    )
    assert settings(small).regrow_from_lps == 0.5
    with pytest.raises(ValueError, match="regrow_from_lps"):
        RuleParams(regrow_from_lps=-1)


def test_a_tank_level_that_comes_late_holds_the_hours_back(db: psycopg.Connection[Any]) -> None:
    """A tank's level sensor on another gateway reports 3 h behind the district meter. A pass
    judges only the hours whose tank level is in (an hour judged without it would be unknown
    for good); a pass after the levels have come judges the rest."""
    from alarms.store import load_rules

    z = one(db, "INSERT INTO zones (code, name) VALUES ('DMA-K', 'tank-fed') RETURNING id")[0]
    dm = one(
        db,
        "INSERT INTO devices (code, kind, profile, zone_id) "
        "VALUES ('dm-K', 'district_meter', 'district_flow_meter', %s) RETURNING id",
        (z,),
    )[0]
    flow = _point(db, dm, "flow_m3h", "m3/h", "analog")
    node = one(
        db,
        "INSERT INTO nodes (code, kind, zone_id, attrs) "
        "VALUES ('TK-K', 'tank', %s, '{\"diameter_m\": 10}') RETURNING id",
        (z,),
    )[0]
    lv = one(
        db,
        "INSERT INTO devices (code, kind, profile, zone_id, node_id) "
        "VALUES ('lv-K', 'pressure_sensor', 'x', %s, %s) RETURNING id",
        (z, node),
    )[0]
    level = _point(db, lv, "level_m", "m", "analog")
    rule = add_rule(db, "K-leak", "leak", zone_id=z, params={})
    end = START + timedelta(days=2)
    ts = [START + timedelta(minutes=15 * i) for i in range(2 * 96 + 1)]
    add_readings(db, int(flow), [(t, 36.0, 0) for t in ts])  # 10 L/s
    late = end - timedelta(hours=3)
    add_readings(db, int(level), [(t, 3.0, 0) for t in ts if t <= late])
    rules = [r for r in load_rules(db) if r.id == rule]

    def watermark() -> datetime:
        row = one(db, "SELECT watermark FROM alarm_rule_state WHERE rule_id = %s AND run_id = 5 "
                  "AND subject = ''", (rule,))  # fmt: skip
        return row[0]  # type: ignore[no-any-return]

    run_pass(db, end, run_id=5, start=START, until=end, rules=rules)
    assert watermark() == late  # the hours after the last level wait for it
    add_readings(db, int(level), [(t, 3.0, 0) for t in ts if t > late])
    run_pass(db, end, run_id=5, start=START, until=end, rules=rules)
    assert watermark() == end


def test_the_meters_read_windows_find_a_leak_before_the_calendar_day_is_known(
    db: psycopg.Connection[Any],
) -> None:
    """The customer meters are read at 09:00 local. At 09:00 the day after the leak began
    (10:00), every meter's last window holds 23 h of it: the rule, reading the meters' reads
    from the database, finds it then, with every other detector turned off. Turned off
    (window_z 0), the same DMA has no alarm by then."""
    from alarms.store import load_rules

    only = {"shape_z": 0, "shape_suspect_z": 0, "step_z": 1000, "daily_h": 1000, "trend_z": 1000}
    on = _dma(db, "RW", leak=True, params=only)
    off = _dma(db, "RW0", leak=True, params={**only, "window_z": 0})
    rules = [r for r in load_rules(db) if r.id in (on["rule"], off["rule"])]
    run_pass(db, START + timedelta(days=DAYS), run_id=91, start=START, rules=rules)
    ev = _activations(db, on["rule"], 91)
    assert [e[0] for e in ev][:1] == [LEAK_AT + timedelta(hours=23)]
    detector, detail = one(
        db,
        "SELECT e.detector, a.message FROM leak_events e JOIN alarms a ON a.rule_id = e.rule_id "
        "AND a.run_id = e.run_id AND a.subject = '' WHERE e.rule_id = %s AND e.run_id = 91",
        (on["rule"],),
    )
    assert detector == "window" and "read windows" in detail
    late = _activations(db, off["rule"], 91)
    assert all(e[0] > LEAK_AT + timedelta(hours=24) for e in late)


def _boundary(db: psycopg.Connection[Any], zone: int, code: str) -> None:
    """A neighbour zone of ``zone`` and the normally closed valve V-``code`` between them: a
    model valve between two nodes and its asset (``ref_code``), as the register holds it."""
    other = one(db, "INSERT INTO zones (code, name) VALUES (%s, 'next') RETURNING id",
                (f"{code}-N",))[0]  # fmt: skip
    for node, z in ((f"n-{code}", zone), (f"n-{code}-N", other)):
        db.execute("INSERT INTO nodes (code, kind, zone_id) VALUES (%s, 'junction', %s)",
                   (node, z))  # fmt: skip
    db.execute(
        "INSERT INTO valves (code, kind, from_node_id, to_node_id, status) SELECT %s, "
        "'isolation', a.id, b.id, 'closed' FROM nodes a, nodes b WHERE a.code = %s AND b.code = %s",
        (f"V-{code}", f"n-{code}", f"n-{code}-N"),
    )
    save_assets(db, [Asset(f"V-{code}", "valve", shapely.Point(69.2, 41.3), ref_code=f"V-{code}",
                           attrs={"valve_status": "closed"})], Actor("t", "t", START))  # fmt: skip


def _valve_work(
    db: psycopg.Connection[Any], valve: str, actions: list[tuple[str, datetime]]
) -> None:
    """A work order on ``valve`` whose crew opened and closed it as ``actions`` say."""
    crew = Actor("crew", "test", actions[0][1])
    wo = wos.create(db, valve, {"kind": "inspection", "reported_at": actions[0][1]}, crew)
    for action, at in actions:
        wos.add_valve(db, wo, valve, action, crew, at=at)


def test_boundary_valves_and_their_open_hours_come_from_the_register_and_work_orders(
    db: psycopg.Connection[Any],
) -> None:
    z = one(db, "INSERT INTO zones (code, name) VALUES ('BV', 'x') RETURNING id")[0]
    _boundary(db, z, "BV1")
    # not boundary valves of BV: a closed valve inside the zone, an open one to the neighbour
    db.execute("INSERT INTO nodes (code, kind, zone_id) VALUES ('n-BV-in', 'junction', %s)", (z,))
    save_assets(db, [
        Asset("V-BV-in", "valve", shapely.Point(69.2, 41.3),
              attrs={"valve_status": "closed", "from": "n-BV1", "to": "n-BV-in"}),
        Asset("V-BV-open", "valve", shapely.Point(69.2, 41.3),
              attrs={"valve_status": "open", "from": "n-BV1", "to": "n-BV1-N"}),
        Asset("V-BV-epanet", "valve", shapely.Point(69.2, 41.3),
              attrs={"valve_status": "Closed ", "from": "n-BV1-N", "to": "n-BV-in"}),
    ], Actor("t", "t", START))  # fmt: skip
    valves = zn.boundary_valves(db, z)
    assert [(v.code, v.neighbour) for v in valves] == [("V-BV-epanet", "BV1-N"), ("V-BV1", "BV1-N")]
    h = timedelta(hours=1)
    _valve_work(db, "V-BV1", [("opened", START + 2 * h), ("closed", START + 5.5 * h)])
    _valve_work(db, "V-BV-epanet", [("opened", START + 20 * h)])  # its closing never recorded
    _valve_work(db, "V-BV-open", [("opened", START + 10 * h), ("closed", START + 12 * h)])
    edges = START.timestamp() + 3600.0 * np.arange(101)
    want = np.zeros(100, dtype=bool)
    want[2:7] = True  # 02:00 to 05:30, and the hour after
    want[20:93] = True  # 72 h at most, and the hour after
    # both valves lead to the same neighbour: the detector is told it by name
    by = zn.valve_open_by_neighbour(db, valves, edges, settle_s=3600.0, max_open_s=72 * 3600.0)
    assert {k: v.tolist() for k, v in by.items()} == {"BV1-N": want.tolist()}


def test_the_detector_is_told_which_neighbour_an_open_boundary_valve_leads_to(
    db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule hands the detector, hour by hour, the neighbours across a boundary valve the
    work orders say is open (``Hour.valve_to``): from the opening to the closing and
    ``valve_settle_h`` after, and no other hour."""
    from alarms import leak as lk
    from alarms.store import load_rules

    a, b = START + timedelta(days=14, hours=8), START + timedelta(days=15, hours=14)
    dma = _dma(db, "TV", leak=False)
    _boundary(db, dma["zone"], "TV")
    _valve_work(db, "V-TV", [("opened", a), ("closed", b)])
    told: dict[float, tuple[str, ...]] = {}
    step = lk.hour_step

    def spy(st: lk.LeakState, cfg: lk.LeakSettings, hr: lk.Hour) -> list[lk.LeakSignal]:
        told[hr.t_end] = hr.valve_to
        return step(st, cfg, hr)

    monkeypatch.setattr(lk, "hour_step", spy)
    now = START + timedelta(days=17)
    run_pass(db, now, run_id=5, start=START,
             rules=[r for r in load_rules(db) if r.id == dma["rule"]])  # fmt: skip
    settle = timedelta(hours=RuleParams().valve_settle_h)
    end = (b + settle).timestamp()
    want = {t: ("TV-N",) for t in told if a.timestamp() < t and t - 3600 < end}
    assert len(want) == 31  # the 30 h from 08:00 on day 14 to 14:00 on day 15, and 1 h after
    assert {t: v for t, v in told.items() if v} == want


def test_a_boundary_valve_opened_in_a_work_order_pauses_the_zone(
    db: psycopg.Connection[Any],
) -> None:
    """For 30 h a neighbour takes 4 L/s of its water through this zone's district meter: the
    crew opened the normally closed boundary valve, and the work order says when. The
    neighbour has no meter that would show the transfer. The zone without such a record raises
    the rise as a leak; the zone with it does not judge those hours, and still finds its real
    leak, days later, within a day."""
    from alarms.store import load_rules

    a, b = START + timedelta(days=14, hours=8), START + timedelta(days=15, hours=14)
    paused = _dma(db, "RV", leak=True, bump=(a, b, 4.0), params={"valve_pause": True})
    _boundary(db, paused["zone"], "RV")
    _valve_work(db, "V-RV", [("opened", a), ("closed", b)])
    plain = _dma(db, "RN", leak=True, bump=(a, b, 4.0), params={"valve_pause": True})
    ids = {paused["rule"], plain["rule"]}
    now = START + timedelta(days=DAYS)
    run_pass(db, now, run_id=6, start=START, rules=[r for r in load_rules(db) if r.id in ids])
    ev = _activations(db, paused["rule"], 6)
    assert [e[1] for e in ev] == ["activate"], ev
    assert LEAK_AT < ev[0][0] <= LEAK_AT + timedelta(hours=24)
    first = _activations(db, plain["rule"], 6)[0][0]
    assert a < first < b + timedelta(hours=12)
