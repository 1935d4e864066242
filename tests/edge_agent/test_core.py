"""Pure parts: read coalescing and its memory, the poll schedule, health, command checks."""

from __future__ import annotations

import pytest

from edge_agent.commands import plan_command
from edge_agent.errors import CommandRefused
from edge_agent.plan import ReadPlanner
from edge_agent.poller import DeviceHealth, PollSchedule
from edge_agent.profiles import Point, Profile
from suvnet.protocol import Command


def profile(points: list[Point], **kw: object) -> Profile:
    return Profile(profile="t", device_kind="pressure_sensor", points=tuple(points), **kw)


def reg(name: str, addr: int, type_: str = "uint16", table: str = "holding", **kw: object) -> Point:
    return Point(name=name, table=table, address=addr, type=type_, **kw)


def spans(reads: tuple[object, ...]) -> list[tuple[str, int, int]]:
    return [(r.table, r.address, r.count) for r in reads]  # type: ignore[attr-defined]


def test_coalesce_contiguous_gaps_tables_and_limit() -> None:
    pts = [
        reg("a", 0), reg("b", 1, "float32"), reg("c", 10),  # gap 7 <= 8: merged
        reg("d", 30),  # gap 19 > 8: new read
        reg("e", 0, table="input"), reg("f", 5, table="input"),
        Point(name="g", table="coil", address=0, type="bool"),
        Point(name="h", table="coil", address=100, type="bool"),  # bits: gap 99 <= 128
    ]  # fmt: skip
    plan = ReadPlanner(profile(pts)).plan(pts)
    assert spans(plan) == [
        ("coil", 0, 101),
        ("holding", 0, 11),
        ("holding", 30, 1),
        ("input", 0, 6),
    ]
    # never more than the profile's limit per read
    many = [reg(f"p{i}", i * 2, "float32") for i in range(100)]  # 200 registers, no gaps
    plan = ReadPlanner(profile(many, max_registers_per_read=125)).plan(many)
    assert [r.count for r in plan] == [124, 76]
    assert all(r.count <= 125 for r in plan)


def test_split_is_remembered() -> None:
    pts = [reg(f"p{i}", i) for i in range(8)]
    planner = ReadPlanner(profile(pts))
    (whole,) = planner.plan(pts)
    halves = planner.split(whole)
    assert halves is not None
    assert spans(halves) == [("holding", 0, 4), ("holding", 4, 4)]
    assert spans(planner.plan(pts)) == [("holding", 0, 4), ("holding", 4, 4)]
    left = planner.split(halves[0])
    assert left is not None
    assert spans(planner.plan(pts)) == [("holding", 0, 2), ("holding", 2, 2), ("holding", 4, 4)]
    single = planner.plan([pts[0]])[0]
    assert planner.split(single) is None


def test_schedule_periods_and_overruns() -> None:
    fast, slow = reg("fast", 0, poll_s=1.0), reg("slow", 1, poll_s=5.0)
    s = PollSchedule((fast, slow), start=100.0)
    assert {p.name for p in s.due(100.0)} == {"fast", "slow"}
    s.done(s.due(100.0), 100.2)
    assert s.due(100.5) == []
    assert [p.name for p in s.due(101.0)] == ["fast"]
    s.done([fast], 101.1)
    assert s.next_time() == pytest.approx(102.0)
    s.done([fast], 104.5)  # the poll took until 104.5: slots 102..104 were missed
    assert s.overruns == 1
    assert s.next_due["fast"] == pytest.approx(105.0)
    assert {p.name for p in s.due(105.0)} == {"fast", "slow"}


def test_health_offline_and_back() -> None:
    h = DeviceHealth("d", offline_after=3)
    assert not h.failure("timeout")
    assert not h.failure("timeout")
    assert h.failure("timeout")  # third in a row: offline
    assert not h.online
    assert not h.failure("timeout")  # already offline: no second transition
    assert h.success(1000)  # back online
    assert h.as_dict()["online"] is True
    assert h.success_rate == pytest.approx(1 / 5)
    assert h.as_dict()["last_error"] == "timeout"


@pytest.fixture
def prv(profiles: dict[str, Profile]) -> dict[str, Profile]:
    return {"prv-1": profiles["prv_controller"], "m-1": profiles["ultrasonic_water_meter"]}


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (Command("1", "nope", "write", "setpoint_bar", 3.0), "unknown_device: nope"),
        (Command("2", "prv-1", "write", "nope", 3.0), "unknown_point: nope"),
        (Command("3", "prv-1", "write", "inlet_bar", 3.0), "read_only: inlet_bar cannot be written"),  # noqa: E501
        (Command("4", "prv-1", "write", "setpoint_bar", 9.0), "out_of_range: 9 > 8"),
        (Command("5", "prv-1", "write", "setpoint_bar", 0.1), "out_of_range: 0.1 < 0.5"),
        (Command("6", "prv-1", "write", "setpoint_bar", True), "bad_value: setpoint_bar takes a number"),  # noqa: E501
        (Command("7", "prv-1", "write", "remote_enable", 5), "bad_value: remote_enable takes true or false"),  # noqa: E501
        (Command("8", "m-1", "schedule", schedule=(("06:00", 3.0), ("22:00", 2.0))),
         "no_schedule: ultrasonic_water_meter has no setpoint schedule"),
        (Command("9", "prv-1", "schedule", schedule=(("06:00", 3.0),)),
         "bad_schedule: prv_controller takes exactly 2 entries"),
        (Command("10", "prv-1", "schedule", schedule=(("06:00", 3.0), ("22:00", 12.0))),
         "out_of_range: 12 > 8"),
        (Command("11", "prv-1", "write", "setpoint_bar", 3.0, expires_ms=999), "expired"),
    ],
)  # fmt: skip
def test_commands_refused_with_reason(prv: dict[str, Profile], cmd: Command, reason: str) -> None:
    with pytest.raises(CommandRefused) as exc:
        plan_command(cmd, prv, now_ms=1000)
    assert exc.value.reason == reason


def test_schedule_command_is_sorted_into_slots(prv: dict[str, Profile]) -> None:
    cmd = Command("s", "prv-1", "schedule", schedule=(("22:30", 2.1), ("05:45", 3.4)))
    writes = plan_command(cmd, prv, now_ms=0)
    assert [(w.point.name, w.value) for w in writes] == [
        ("day_start_min", 345.0),
        ("setpoint_bar", 3.4),
        ("night_start_min", 1350.0),
        ("night_setpoint_bar", 2.1),
    ]
    assert writes[1].registers == (340,)
