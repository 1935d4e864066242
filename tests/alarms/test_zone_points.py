"""Zone rules find their points by the names the device profiles publish (or by kind and
unit), boundary meters name their zones by code, and a rule that would watch nothing is an
error when applied and a health alarm when live (issue 19)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alarms import zone as zn
from alarms.actions import replay
from alarms.cli import load_rules_file
from alarms.engine import run_pass
from alarms.errors import RuleConfigError
from alarms.rules import Kind, RuleParams
from alarms.store import RuleIn, load_rules, save_rule
from suvnet.errors import FileFormatError
from suvnet.site import apply_site, load_site
from tests.alarms.conftest import add_readings, add_rule, one
from tests.conftest import create_test_db, drop_test_db, with_dbname

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
T0 = datetime(2026, 4, 1, 19, 0, tzinfo=UTC)  # 2026-04-02 00:00 in Tashkent


def _zone(db: psycopg.Connection[Any], code: str) -> int:
    return int(
        one(db, "INSERT INTO zones (code, name) VALUES (%s, %s) RETURNING id", (code, code))[0]
    )


def _device(
    db: psycopg.Connection[Any],
    code: str,
    kind: str,
    zone: int,
    points: list[tuple[str, str, str]],
    **extra: Any,
) -> dict[str, int]:
    cols = ["code", "kind", "profile", "zone_id", *extra]
    vals = [code, kind, "p", zone, *extra.values()]
    dev = one(
        db,
        f"INSERT INTO devices ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
        "RETURNING id",
        vals,
    )[0]
    out = {}
    for name, unit, pkind in points:
        out[name] = int(
            one(
                db,
                "INSERT INTO points (device_id, name, unit, kind) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (dev, name, unit, pkind),
            )[0]
        )
    return out


METER = [("flow_m3h", "m3/h", "analog"), ("forward_m3", "m3", "counter"),
         ("reverse_m3", "m3", "counter"), ("alarm_flags", "", "bitfield")]  # fmt: skip
CUSTOMER = [("volume_m3", "m3", "counter"), ("flow_m3h", "m3/h", "analog"),
            ("reverse_volume_m3", "m3", "counter")]  # fmt: skip


def test_points_by_the_names_the_profiles_publish(db: psycopg.Connection[Any]) -> None:
    a = _zone(db, "PA")
    m = _device(db, "pa-dm", "district_meter", a, METER)
    c = _device(db, "pa-cm", "customer_meter", a, CUSTOMER)
    lps = _device(db, "pa-dm2", "district_meter", a, [("flow_lps", "L/s", "analog")])
    flows = {p.device_code: p for p in zn.flow_points(db, a, None)}
    assert flows["pa-dm"].point_id == m["flow_m3h"] and abs(flows["pa-dm"].factor - 1 / 3.6) < 1e-9
    assert flows["pa-dm2"].point_id == lps["flow_lps"] and flows["pa-dm2"].factor == 1.0
    cust = zn.customer_points(db, a, None)
    assert [p.point_id for p in cust] == [c["volume_m3"]]  # not the reverse register
    meters = {x.device_code: x for x in zn.inflow_meters(db, a, counters=True)}
    assert (
        meters["pa-dm"].forward is not None and meters["pa-dm"].forward.point_id == m["forward_m3"]
    )
    assert meters["pa-dm"].reverse is not None and meters["pa-dm"].reverse.sign == -1.0
    assert meters["pa-dm2"].forward is None  # no register: its flow readings are used
    # a rule may still name its point; one the meter does not have is an error
    with pytest.raises(zn.ZoneSetupError) as info:
        zn.flow_points(db, a, "flow")
    assert "pa-dm has no point 'flow'" in str(info.value) and info.value.path == (
        "params", "flow_point",
    )  # fmt: skip


def test_ambiguous_or_missing_points_are_named(db: psycopg.Connection[Any]) -> None:
    b = _zone(db, "PB")
    _device(db, "pb-dm", "district_meter", b, [("q1", "L/s", "analog"), ("q2", "m3/h", "analog")])
    with pytest.raises(zn.ZoneSetupError, match=r"several flow points.*params\.flow_point"):
        zn.flow_points(db, b, None)
    assert [p.name for p in zn.flow_points(db, b, "q2")] == ["q2"]
    empty = _zone(db, "PC")
    with pytest.raises(zn.ZoneSetupError, match="zone PC has no district meter") as info:
        zn.flow_points(db, empty, None)
    assert info.value.field == "zone"


def test_a_shared_boundary_meter_names_its_zones_by_code(db: psycopg.Connection[Any]) -> None:
    up, down = _zone(db, "UP"), _zone(db, "DOWN")
    _device(db, "up-in", "district_meter", up, [("flow_m3h", "m3/h", "analog")])
    _device(
        db, "up-down", "district_meter", up, [("flow_m3h", "m3/h", "analog")],
        attrs='{"zone_signs": {"UP": -1, "DOWN": 1}}',
    )  # fmt: skip
    signs_up = {p.device_code: p.sign for p in zn.flow_points(db, up, None)}
    signs_down = {p.device_code: p.sign for p in zn.flow_points(db, down, None)}
    assert signs_up == {"up-in": 1.0, "up-down": -1.0}
    assert signs_down == {"up-down": 1.0}
    assert [c for _, c in zn.neighbours(db, down)] == ["UP"]
    # the old form, by database id, is still understood
    db.execute(
        "UPDATE devices SET attrs = jsonb_build_object('zone_signs', jsonb_build_object("
        "%s::text, -1, %s::text, 1)) WHERE code = 'up-down'",
        (up, down),
    )
    assert {p.device_code: p.sign for p in zn.flow_points(db, down, None)} == {"up-down": 1.0}


def test_a_rule_that_would_watch_nothing_is_refused(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    _zone(db, "NOMETER")
    rule = RuleIn.model_validate({"code": "NM-leak", "kind": "leak", "zone": "NOMETER"})
    with pytest.raises(RuleConfigError, match="no district meter") as info:
        save_rule(db, rule)
    assert info.value.field == "zone"
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {code: NM-mnf, kind: mnf, zone: NOMETER}\n", encoding="utf-8")
    with pytest.raises(RuleConfigError, match=r"rule #1 \(NM-mnf\).*no district meter"):
        load_rules_file(db, path)
    assert one(db, "SELECT count(*) FROM alarm_rules WHERE code LIKE 'NM-%%'")[0] == 0
    # a disabled rule may wait for its meter
    off = RuleIn.model_validate(
        {"code": "NM-off", "kind": "leak", "zone": "NOMETER", "enabled": False}
    )
    assert save_rule(db, off)[0] == "created"


def test_live_health_alarm_and_replay_error_when_nothing_arrives(
    db: psycopg.Connection[Any],
) -> None:
    z = _zone(db, "QUIET")
    pts = _device(db, "q-dm", "district_meter", z, METER)
    rid = add_rule(db, "QUIET-leak", "leak", zone_id=z, params={})
    rules = [r for r in load_rules(db) if r.code == "QUIET-leak"]
    first = T0 + timedelta(days=2)
    # the worker sees the rule for the first time: nothing in its look-back is no fault yet
    run_pass(db, first, start=T0, rules=rules)
    assert not _health(db, rid)
    now = first + timedelta(hours=6, minutes=30)  # no_data_h (6) after it was first seen
    run_pass(db, now, start=T0, rules=rules)
    health = db.execute(
        "SELECT state, message FROM alarms WHERE rule_id = %s AND subject = 'health' "
        "AND run_id = 0",
        (rid,),
    ).fetchall()
    assert len(health) == 1 and health[0][0] == "unack"
    assert "no readings from q-dm/" in health[0][1]
    assert _health(db, rid) == [first + timedelta(hours=6)]  # raised when it was due
    # readings come: the health alarm clears
    add_readings(
        db, pts["flow_m3h"], [(now + timedelta(minutes=15 * i), 10.0, 0) for i in range(8)]
    )
    run_pass(db, now + timedelta(hours=2), start=T0, rules=rules)
    assert (
        one(
            db,
            "SELECT state FROM alarm_rule_state WHERE rule_id = %s AND subject = 'health' "
            "AND run_id = 0",
            (rid,),
        )[0]
        == "rtn_unack"
    )
    # a replay over a window without readings says so instead of reporting 0 alarms
    run = replay(db, T0 - timedelta(days=3), T0 - timedelta(days=1), now=now)
    problems = one(db, "SELECT problems FROM alarm_replay_runs WHERE id = %s", (run,))[0]
    assert any("QUIET-leak: no readings from q-dm/" in p for p in problems)


def _health(db: psycopg.Connection[Any], rid: int) -> list[datetime]:
    """When the rule's live health alarms were raised."""
    return [
        r[0]
        for r in db.execute(
            "SELECT raised_at FROM alarms WHERE rule_id = %s AND subject = 'health' "
            "AND run_id = 0 ORDER BY raised_at",
            (rid,),
        ).fetchall()
    ]


def test_a_new_system_whose_readings_come_within_hours_raises_no_health_alarm(
    db: psycopg.Connection[Any],
) -> None:
    """Day one: the rules are loaded and the worker starts before the first readings (its
    look-back of 24 h holds none). Readings that come within no_data_h of the rules being
    first seen raise no health alarm, for zone rules and point rules alike; a point that
    still sends nothing after that does."""
    z = _zone(db, "NEW")
    pts = _device(db, "n-dm", "district_meter", z, METER)
    pt = _device(db, "n-pt", "pressure_sensor", z, [("pressure_bar", "bar", "analog")])
    zone_rule = add_rule(db, "NEW-leak", "leak", zone_id=z, params={})
    point_rule = add_rule(db, "n-pt-hh", "high_high", point_id=pt["pressure_bar"], limit_value=9.0)
    rules = [r for r in load_rules(db) if r.code in ("NEW-leak", "n-pt-hh")]
    first = T0 + timedelta(days=5)
    for h in (0, 1, 2):  # the worker's first passes, before any reading
        run_pass(db, first + timedelta(hours=h), start=first - timedelta(hours=24), rules=rules)
    # the district meter starts sending after 3 h; the pressure sensor never does
    came = first + timedelta(hours=3)
    add_readings(
        db, pts["flow_m3h"], [(came + timedelta(minutes=15 * i), 10.0, 0) for i in range(40)]
    )
    for h in (4, 5, 7, 9):
        now = first + timedelta(hours=h)
        run_pass(db, now, start=now - timedelta(hours=24), rules=rules)
    assert _health(db, zone_rule) == []
    assert _health(db, point_rule) == [first + timedelta(hours=6)]
    msg = one(db, "SELECT message FROM alarms WHERE rule_id = %s", (point_rule,))[0]
    assert msg == "no reading from n-pt/pressure_bar since the rule started watching it (6 h)"


@pytest.fixture
def fresh_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    name = create_test_db(pg_server_url, template_db)
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        drop_test_db(pg_server_url, name)


def _site(tmp_path: Path, extra_rules: str, replace: tuple[str, str] | None = None) -> Path:
    text = (EXAMPLES / "village-site.yaml").read_text(encoding="utf-8").rstrip("\n") + "\n"
    if replace is not None:
        assert text.count(replace[0]) == 1
        text = text.replace(*replace)
    (tmp_path / "site.yaml").write_text(text + extra_rules, encoding="utf-8")
    shutil.copy(EXAMPLES / "village.inp", tmp_path / "village.inp")
    return tmp_path / "site.yaml"


def _line(path: Path, text: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if text in t)


def test_site_file_zone_rule_without_meter_names_file_line_field(
    fresh_db_url: str, tmp_path: Path
) -> None:
    path = _site(
        tmp_path,
        "    - {code: DMA-S-leak, kind: leak, zone: DMA-S}\n"
        "    - code: YANGIOBOD-leak\n      kind: leak\n      zone: YANGIOBOD\n",
    )
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(path))
    err = info.value
    assert err.path == str(path) and err.field == "alarms.rules[3].zone"
    assert err.line == _line(path, "zone: YANGIOBOD")
    assert "zone YANGIOBOD has no district meter" in err.message
    # the zone with a meter is fine: its rule finds flow_m3h by itself
    ok = _site(tmp_path, "    - {code: DMA-S-leak, kind: leak, zone: DMA-S}\n")
    with psycopg.connect(fresh_db_url) as conn:
        log = apply_site(conn, load_site(ok))
        assert "DMA-S-leak" in log.names("alarm rules", "created")
        zid = one(conn, "SELECT id FROM zones WHERE code = 'DMA-S'")[0]
        assert [p.name for p in zn.flow_points(conn, zid, None)] == ["flow_m3h"]


SOUTH = "        flow_sign: 1\n        serial_no: EM-2021-00418\n"


def test_site_file_zone_signs_by_zone_code(fresh_db_url: str, tmp_path: Path) -> None:
    bad = _site(
        tmp_path,
        "",
        replace=(SOUTH, SOUTH + "        attrs: {zone_signs: {DMA-S: 1, DMA-X: -1}}\n"),
    )
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(bad))
    assert str(info.value.field).endswith("attrs.zone_signs.DMA-X")
    assert "no zone 'DMA-X'" in info.value.message
    good = _site(
        tmp_path,
        "",
        replace=(SOUTH, SOUTH + "        attrs: {zone_signs: {DMA-S: 1, DMA-N: -1}}\n"),
    )
    with psycopg.connect(fresh_db_url) as conn:
        apply_site(conn, load_site(good))
        north = int(one(conn, "SELECT id FROM zones WHERE code = 'DMA-N'")[0])
        signs = {p.device_code: p.sign for p in zn.flow_points(conn, north, None)}
    assert signs == {"dm-north": 1.0, "dm-south": -1.0}


def test_default_params_find_points_by_kind() -> None:
    p = RuleParams()
    assert p.flow_point is None and p.volume_point is None
    assert p.night(Kind.MNF) == (2.0, 4.0) and p.night(Kind.LEAK) == (1.0, 5.0)
    assert p.history_days(Kind.LEAK) == 10 and p.history_days(Kind.BURST) == 7
