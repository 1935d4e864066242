"""The PRV control configuration: what is refused and why, the profile, the curve, the fit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from suvnet.prvcontrol import (
    ControlConfig,
    NotEnoughHistoryError,
    config_problems,
    curve_value,
    fit_flow_curve,
    profile_value,
)


def make(**kw: Any) -> ControlConfig:
    base: dict[str, Any] = {"mode": "fixed", "min_bar": 1.5, "max_bar": 5.0, "setpoint_bar": 3}
    base.update(kw)
    return ControlConfig.model_validate(base)


def day(*steps: tuple[str, str, float], days: list[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for a, b, v in steps:
        step: dict[str, Any] = {"from": a, "to": b, "setpoint_bar": v}
        if days is not None:
            step["days"] = days
        out.append(step)
    return out


PROBLEMS = [
    ("limits cross", make(min_bar=4.0, max_bar=3.0, setpoint_bar=3.5),
     ("min_bar",), "the limits cross"),
    ("limits equal", make(min_bar=3.0, max_bar=3.0), ("min_bar",), "the limits cross"),
    ("max above the device", make(max_bar=9.0), ("max_bar",), "outside the device's setpoint"),
    ("setpoint outside the limits", make(setpoint_bar=5.5), ("setpoint_bar",),
     "outside the limits [1.5, 5]"),
    ("safe outside the limits", make(safe_bar=1.0), ("safe_bar",), "outside the limits"),
    ("fixed without a setpoint", make(setpoint_bar=None), ("setpoint_bar",),
     "mode fixed needs setpoint_bar"),
    ("time without a profile", make(mode="time"), ("profile",), "mode time needs profile"),
    ("a gap", make(mode="time", profile=day(("00:00", "06:00", 2.5), ("07:00", "24:00", 3.0))),
     ("profile", 1, "from"), "leaves mon 06:00-07:00 without a setpoint"),
    ("an overlap", make(mode="time", profile=day(("00:00", "06:30", 2.5),
                                                  ("06:00", "24:00", 3.0))),
     ("profile", 1, "from"), "overlaps step 0 on mon (06:00-06:30)"),
    ("the end of the day missing", make(mode="time", profile=day(("00:00", "23:00", 2.5))),
     ("profile", 0, "to"), "leaves mon 23:00-24:00"),
    ("a weekday missing", make(mode="time", profile=day(
        ("00:00", "24:00", 2.5), days=["mon", "tue", "wed", "thu", "fri", "sat"])),
     ("profile",), "leaves sun 00:00-24:00"),
    ("a step across midnight", make(mode="time", profile=day(("22:00", "05:00", 2.5))),
     ("profile", 0, "to"), "split a step across midnight"),
    ("a profile value outside the limits", make(mode="time", profile=day(
        ("00:00", "24:00", 6.0))), ("profile", 0, "setpoint_bar"), "outside the limits"),
    ("a curve that goes back", make(mode="flow", safe_bar=4, flow={
        "inflow": {"device": "dm"}, "curve": [[0, 2.5], [10, 3], [5, 3.5]]}),
     ("flow", "curve", 2), "must increase"),
    ("flow without a safe setpoint", make(mode="flow", flow={
        "inflow": {"device": "dm"}, "curve": [[0, 2.5], [10, 3]]}),
     ("safe_bar",), "mode flow needs safe_bar"),
    ("a sensor twice", make(mode="critical_point", safe_bar=4, critical_point={
        "sensors": [{"device": "a"}, {"device": "a"}], "target_bar": 2}),
     ("critical_point", "sensors", 1), "a/pressure_bar twice"),
    ("an alarm above the pressure held", make(mode="critical_point", safe_bar=4,
        critical_point={"sensors": [{"device": "a"}], "target_bar": 2, "margin_bar": 0.2,
                        "low_alarm_bar": 2.5}),
     ("critical_point", "low_alarm_bar"), "the alarm would never clear"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "c", "loc", "words"), PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_problems(name: str, c: ControlConfig, loc: tuple[Any, ...], words: str) -> None:
    probs = config_problems(c, (0.5, 8.0))
    assert probs, name
    assert probs[0].loc == loc
    assert words in probs[0].message


@pytest.mark.parametrize(
    "c",
    [
        make(),
        make(mode="time", profile=day(("00:00", "06:00", 2.5), ("06:00", "24:00", 3.0))),
        make(
            mode="time",
            profile=[
                *day(("00:00", "24:00", 2.5), days=["sat", "sun"]),
                *day(
                    ("00:00", "06:00", 2.5),
                    ("06:00", "24:00", 3.5),
                    days=["mon", "tue", "wed", "thu", "fri"],
                ),
            ],
        ),
        make(
            mode="critical_point",
            safe_bar=4.0,
            critical_point={"sensors": [{"device": "pt", "source": "gw-2"}], "target_bar": 2},
        ),
    ],
)
def test_good_configurations_pass(c: ControlConfig) -> None:
    assert config_problems(c, (0.5, 8.0)) == []
    again = ControlConfig.model_validate(c.wire())
    assert again == c  # the wire form round-trips


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "pid"),
        ("timezone", "Mars/Olympus"),
        ("max_step_bar", 0),
        ("interval_s", 0.5),
        ("min_bar", float("nan")),
        ("colour", "blue"),
    ],
)
def test_field_errors(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        make(**{field: value})


def test_profile_value_uses_local_weekday_and_time() -> None:
    steps = make(
        mode="time",
        profile=[
            *day(("00:00", "24:00", 2.0), days=["sun"]),
            *day(
                ("00:00", "23:00", 3.0),
                ("23:00", "24:00", 2.2),
                days=["mon", "tue", "wed", "thu", "fri", "sat"],
            ),
        ],
    ).profile
    # Saturday 18:30 UTC = 23:30 Saturday in Tashkent; 19:00 UTC = Sunday 00:00 there
    sat = datetime(2026, 3, 7, 18, 30, tzinfo=UTC).timestamp()
    assert profile_value(steps, sat, "Asia/Tashkent") == 2.2
    assert profile_value(steps, sat + 1800, "Asia/Tashkent") == 2.0
    assert profile_value(steps, sat, "UTC") == 3.0


def test_curve_value() -> None:
    curve = ((0.0, 2.0), (10.0, 3.0), (20.0, 3.5))
    assert curve_value(curve, -5) == 2.0
    assert curve_value(curve, 5) == pytest.approx(2.5)
    assert curve_value(curve, 15) == pytest.approx(3.25)
    assert curve_value(curve, 99) == 3.5


def test_a_flow_curve_is_learned_from_history() -> None:
    # a zone losing 0.4 bar by elevation and 0.002 * q^1.852 by friction
    samples = [(q, 2.3 + 0.4 + 0.002 * q**1.852 + 0.1, 2.3 + 0.1) for q in range(2, 40)]
    curve, fit = fit_flow_curve(samples, 2.3, min_bar=1.5, max_bar=6.0)
    assert fit.static_bar == pytest.approx(0.4, abs=1e-6)
    assert fit.k == pytest.approx(0.002, rel=1e-6)
    assert curve[0] == (0.0, 2.7)
    q_top, sp_top = curve[-1]
    assert q_top == pytest.approx(39 * 1.2, abs=1e-3)
    assert sp_top == pytest.approx(min(6.0, 2.7 + 0.002 * q_top**1.852), abs=0.01)
    with pytest.raises(NotEnoughHistoryError):
        fit_flow_curve(samples[:5], 2.3, min_bar=1.5, max_bar=6.0)
