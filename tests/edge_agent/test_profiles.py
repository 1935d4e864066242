"""Profiles and gateway configs: the shipped files load; bad files fail with file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.decode import decode_point
from edge_agent.errors import EdgeError, ProfileError
from edge_agent.profiles import Profile, load_profile, load_profiles, published_names
from suvnet.profiles import CONTROLLER_POINT_NAMES, CONTROLLER_POINTS
from tests.edge_agent.conftest import PROFILES_DIR

GOOD = """\
profile: demo
device_kind: pressure_sensor
points:
  - name: pressure_bar
    table: input
    address: 0
    type: uint16
    scale: 0.01
  - name: setpoint_bar
    table: holding
    address: 0
    type: uint16
    access: read-write
    range: [0.5, 8]
"""


def test_shipped_profiles_have_the_agreed_points(profiles: dict[str, Profile]) -> None:
    expected = {
        "pressure_transmitter": {"pressure_bar"},
        "prv_controller": {
            "inlet_bar", "outlet_bar", "setpoint_bar", "night_setpoint_bar", "day_start_min",
            "night_start_min", "valve_position_pct", "mode",
        },
        "ultrasonic_water_meter": {"volume_m3", "flow_m3h", "reverse_volume_m3", "alarm_flags"},
        "district_flow_meter": {"forward_m3", "reverse_m3", "flow_m3h", "alarm_flags"},
    }  # fmt: skip
    for name, points in expected.items():
        have = {p.name for p in profiles[name].points}
        assert points <= have, f"{name} lacks {points - have}"
    prv = profiles["prv_controller"]
    sp = prv.point("setpoint_bar")
    assert sp is not None
    assert sp.writable
    assert sp.range == (0.5, 8.0)
    assert prv.schedule is not None
    assert len(prv.schedule.slots) == 2
    meter = profiles["ultrasonic_water_meter"]
    vol, flags = meter.point("volume_m3"), meter.point("alarm_flags")
    assert vol is not None
    assert vol.rollover == 100000
    assert flags is not None
    # the bits follow the alarms' meter-flag convention (alarms.rules.MeterFlag)
    assert {name: 1 << bit for name, bit in flags.bits.items()} == {
        "leak": 1, "burst": 2, "tamper": 4, "reverse_flow": 8, "low_battery": 16, "dry_pipe": 32,
    }  # fmt: skip
    dm_flags = profiles["district_flow_meter"].point("alarm_flags")
    assert dm_flags is not None
    assert {name: 1 << bit for name, bit in dm_flags.bits.items()} == {
        "tamper": 4, "reverse_flow": 8, "dry_pipe": 32,
    }  # fmt: skip


def test_published_points_are_what_the_decoder_sends(profiles: dict[str, Profile]) -> None:
    """The office registers ``published_points``; the gateway sends what ``decode_point``
    gives. They must be the same ids for every shipped profile."""
    for name, prof in profiles.items():
        sent: list[str] = []
        for p in prof.points:
            if p.publish:
                regs: list[int] | list[bool] = (
                    [False] * p.count if p.table in ("coil", "discrete") else [0] * p.count
                )
                sent += [v.point for v in decode_point(p, regs)]
        if prof.controller is not None:  # and the gateway's controller its decisions
            sent += [c.name for c in CONTROLLER_POINTS]
        assert published_names(prof) == tuple(sent), name


def test_a_bit_point_id_must_fit(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    long = "f" * 60
    f.write_text(
        GOOD.replace(
            "    scale: 0.01\n",
            f"    scale: 0.01\n  - name: {long}\n    table: input\n    address: 5\n"
            "    type: bitfield\n    bits: {burst: 1}\n",
        )
    )
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert exc.value.field == f"points[{long}]"
    assert "longer than 64 characters" in exc.value.message


def test_profile_inherits_orders_and_period(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    f.write_text(GOOD.replace("points:", "word_order: little\npoll_s: 3\npoints:"))
    prof = load_profile(f)
    assert all(p.word_order == "little" and p.poll_s == 3 for p in prof.points)


BAD = [
    # (replace this, with that, expected line, expected field, message part)
    ("    address: 0\n    type: uint16\n    scale", "    address: -4\n    type: uint16\n    scale",
     6, "points[pressure_bar].address", "greater than or equal to 0"),
    ("    type: uint16\n    scale", "    type: uint17\n    scale", 7, "points[pressure_bar].type",
     "'bool'"),
    ("    range: [0.5, 8]\n", "", 9, "points[setpoint_bar]", "needs range"),
    ("    range: [0.5, 8]", "    range: [9, 8]", 14, "points[setpoint_bar].range",
     "must be <="),
    ("  - name: setpoint_bar\n    table: holding", "  - name: setpoint_bar\n    table: input",
     9, "points[setpoint_bar]", "cannot be written"),
    ("    address: 0\n    type: uint16\n    access", "    address: 0\n    type: uint16\n    acces",
     13, "points[setpoint_bar].acces", "Extra inputs"),
    ("device_kind: pressure_sensor", "device_kind: toaster", 2, "device_kind", "Input should be"),
    ("  - name: setpoint_bar\n    table: holding\n    address: 0",
     "  - name: pressure_bar\n    table: holding\n    address: 0", 1, None, "used twice"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "line", "field", "msg"), BAD)
def test_bad_profile_names_file_line_field(
    tmp_path: Path, old: str, new: str, line: int, field: str | None, msg: str
) -> None:
    assert old in GOOD
    f = tmp_path / "demo.yaml"
    f.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    err = exc.value
    assert isinstance(err, EdgeError)
    assert err.path == str(f)
    assert err.line == line
    assert err.field == field
    assert msg in err.message
    assert f"{f}:{line}" in str(err)


def test_overlapping_points_and_yaml_syntax(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    f.write_text(
        "profile: demo\ndevice_kind: pressure_sensor\npoints:\n"
        "  - {name: a, table: input, address: 0, type: uint32}\n"
        "  - {name: b, table: input, address: 1, type: uint16}\n"
    )
    with pytest.raises(ProfileError, match="overlap"):
        load_profile(f)
    f.write_text("profile: demo\npoints: [\n  - oops\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert exc.value.line is not None
    assert "not valid YAML" in str(exc.value)


def test_profile_name_must_match_file(tmp_path: Path) -> None:
    f = tmp_path / "other.yaml"
    f.write_text(GOOD)
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert exc.value.line == 1
    assert exc.value.field == "profile"


def test_example_gateway_config_loads() -> None:
    loaded = load_config(PROFILES_DIR / "examples" / "gateway.yaml")
    kinds = {b.kind for b in loaded.config.buses}
    assert kinds == {"tcp", "rtu", "rtu_over_tcp"}
    assert set(loaded.profiles) == set(load_profiles(PROFILES_DIR))


def test_gateway_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    base = (
        f"gateway: gw-1\nprofiles_dir: {PROFILES_DIR}\nbuses:\n"
        "  - name: line1\n    kind: rtu\n    port: /dev/ttyUSB0\n    devices:\n"
        "      - {id: p-1, unit: 1, profile: pressure_transmitter}\n"
    )
    cfg.write_text(base.replace("pressure_transmitter", "no_such_profile"))
    with pytest.raises(ProfileError) as exc:
        load_config(cfg)
    assert exc.value.line == 8
    assert "no profile 'no_such_profile'" in str(exc.value)
    cfg.write_text(base.replace("kind: rtu", "kind: rtu\n    baudrate: 12"))
    with pytest.raises(ProfileError) as exc:
        load_config(cfg)
    assert exc.value.line == 6
    assert exc.value.field == "buses[line1].baudrate"
    cfg.write_text(base + "      - {id: p-2, unit: 1, profile: pressure_transmitter}\n")
    with pytest.raises(ProfileError, match="unit id 1 is used twice"):
        load_config(cfg)


def test_gateway_yaml_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    """The gateway reads its files through suvnet.yamlmodel (one loader for office and
    gateway); its errors stay the agent's own ProfileError, with the file."""
    cfg = tmp_path / "gateway.yaml"
    cfg.write_bytes(b"gateway: gw-\xff\xfe\n")
    with pytest.raises(ProfileError) as info:
        load_config(cfg)
    assert isinstance(info.value, EdgeError)
    assert info.value.path == str(cfg)
    assert "cannot read the file" in info.value.message


def test_comm_fail_readings_use_the_published_bit_point_ids(profiles: dict[str, Profile]) -> None:
    from edge_agent.poller import comm_fail

    for prof in profiles.values():
        names = [r.point for r in comm_fail("d", prof.points, 0)]
        expected = [n for n in published_names(prof) if n not in CONTROLLER_POINT_NAMES]
        assert names == expected, prof.profile
