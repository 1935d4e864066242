"""The office's and the gateway's one write check (suvnet.profiles.command_problem): the
reason the office refuses a command before sending it is the one the gateway would give."""

from __future__ import annotations

import pytest

from suvnet.profiles import Profile, command_problem, default_profiles_dir, load_profiles

PRV: Profile = load_profiles(default_profiles_dir())["prv_controller"]


@pytest.mark.parametrize(
    ("op", "point", "value", "schedule", "problem"),
    [
        ("write", "setpoint_bar", 3.2, (), None),
        ("write", "setpoint_bar", 999999.0, (), "out_of_range: 999999 > 8"),
        ("write", "setpoint_bar", 0.1, (), "out_of_range: 0.1 < 0.5"),
        ("write", "setpoint_bar", float("inf"), (), "bad_value: setpoint_bar takes a finite"),
        ("write", "setpoint_bar", True, (), "bad_value: setpoint_bar takes a number"),
        ("write", "outlet_bar", 3.0, (), "read_only: outlet_bar cannot be written"),
        ("write", "nope", 3.0, (), "unknown_point: nope"),
        ("write", "remote_enable", True, (), None),
        ("write", "remote_enable", 2, (), "bad_value: remote_enable takes true or false"),
        ("schedule", None, None, (("06:00", 3.5), ("23:00", 2.2)), None),
        ("schedule", None, None, (("06:00", 3.5), ("23:00", 12.0)), "out_of_range: 12 > 8"),
        ("schedule", None, None, (("06:00", 3.5),), "bad_schedule: prv_controller takes"),
        ("schedule", None, None, (("06:00", 3.5), ("06:00", 2.0)), "bad_schedule: two"),
    ],
)
def test_command_problem(
    op: str,
    point: str | None,
    value: float | bool | None,
    schedule: tuple[tuple[str, float], ...],
    problem: str | None,
) -> None:
    got = command_problem(PRV, op, point, value, schedule)
    if problem is None:
        assert got is None
    else:
        assert got is not None and got.startswith(problem), got
