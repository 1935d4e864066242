"""The pure PRV controller: tables of (configuration, memory, inputs) -> decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_agent.control import Decision, Inputs, Reason, Sample, State, decide, wants_alarm_step
from suvnet.prvcontrol import ControlConfig

# Tuesday 2026-03-03 10:00 in Tashkent (UTC+5) = 05:00 UTC
NOW = datetime(2026, 3, 3, 5, 0, tzinfo=UTC).timestamp()
START = State(3.0, NOW - 3600)


def cfg(cp_kw: dict[str, Any] | None = None, **kw: Any) -> ControlConfig:
    base: dict[str, Any] = {
        "mode": "critical_point",
        "min_bar": 1.5,
        "max_bar": 5.0,
        "safe_bar": 4.0,
        "deadband_bar": 0.05,
        "max_step_bar": 0.2,
        "max_rate_bar_per_min": 0.1,
        "stale_after_s": 900,
        "critical_point": {
            "sensors": [{"device": "pt-1"}, {"device": "pt-2"}],
            "target_bar": 2.0,
            "margin_bar": 0.3,
            "gain": 0.5,
        },
    }
    base.update(kw)
    base["critical_point"] = {**base["critical_point"], **(cp_kw or {})}
    return ControlConfig.model_validate(base)


def cp(*values: float | None, age: float = 60.0, good: bool = True) -> tuple[Sample | None, ...]:
    return tuple(None if v is None else Sample(v, NOW - age, good) for v in values)


@dataclass(frozen=True)
class Case:
    name: str
    config: ControlConfig | None
    inputs: Inputs
    setpoint: float | None
    write: bool
    reason: Reason
    target: float | None = None
    state: State = START
    alarm: bool = False


CASES = [
    # --- critical point: the step, the deadband, the limits
    Case("below target: up by gain x error", cfg(), Inputs(NOW, 3.0, cp=cp(2.1, 2.5)),
         3.1, True, Reason.CRITICAL_POINT, 2.3),
    Case("above target: down by gain x error", cfg(), Inputs(NOW, 3.0, cp=cp(2.5, 2.7)),
         2.9, True, Reason.CRITICAL_POINT, 2.3),
    Case("inside the deadband: held", cfg(), Inputs(NOW, 3.0, cp=cp(2.33, 2.9)),
         3.0, False, Reason.HOLD, 2.3),
    Case("a big step asked: one max step", cfg({"gain": 1.5}),
         Inputs(NOW, 3.0, cp=cp(2.0, 3.0)), 3.2, True, Reason.CRITICAL_POINT, 2.3),
    Case("far above: down one max step", cfg(), Inputs(NOW, 3.0, cp=cp(3.5, 4.0)),
         2.8, True, Reason.CRITICAL_POINT, 2.3),
    Case("max limit", cfg(), Inputs(NOW, 4.95, cp=cp(2.1, 2.2)),
         5.0, True, Reason.CRITICAL_POINT, 2.3),
    Case("at the max limit: nothing to write", cfg(), Inputs(NOW, 5.0, cp=cp(2.1, 2.2)),
         5.0, False, Reason.CRITICAL_POINT, 2.3),
    Case("min limit", cfg(), Inputs(NOW, 1.6, cp=cp(3.5, 3.5)),
         1.5, True, Reason.CRITICAL_POINT, 2.3),
    Case("rate limit: 0.1 bar/min, last change 30 s ago", cfg(),
         Inputs(NOW, 3.0, cp=cp(1.9 + 0.2, 3.0)), 3.05, True, Reason.CRITICAL_POINT, 2.3,
         State(3.0, NOW - 30)),
    Case("rate limit: changed this very second", cfg(), Inputs(NOW, 3.0, cp=cp(2.1, 3.0)),
         3.0, False, Reason.CRITICAL_POINT, 2.3, State(3.0, NOW)),
    Case("resolution: 0.01 bar", cfg({"gain": 0.33}), Inputs(NOW, 3.0, cp=cp(2.2, 3.0)),
         3.03, True, Reason.CRITICAL_POINT, 2.3),
    Case("the device's setpoint counts, not the memory", cfg(),
         Inputs(NOW, 2.5, cp=cp(2.1, 3.0)), 2.6, True, Reason.CRITICAL_POINT, 2.3),
    Case("setpoint not known yet: the safe setpoint first", cfg(),
         Inputs(NOW, None, cp=cp(2.1, 3.0)), 4.0, True, Reason.CRITICAL_POINT, 2.3, State()),
    Case("deadband but outside changed limits: into them", cfg(max_bar=2.8),
         Inputs(NOW, 3.0, cp=cp(2.3, 3.0)), 2.8, True, Reason.HOLD, 2.3),
    # --- signals that fail: the safe setpoint
    Case("one sensor stale: safe setpoint at once (upwards)", cfg(),
         Inputs(NOW, 3.0, cp=(Sample(2.5, NOW - 60), Sample(2.6, NOW - 901))),
         4.0, True, Reason.CP_STALE, 2.3),
    Case("a sensor never read", cfg(), Inputs(NOW, 3.0, cp=cp(2.5)), 4.0, True,
         Reason.CP_STALE, 2.3),
    Case("bad quality counts as missing", cfg(), Inputs(NOW, 3.0, cp=cp(2.5, 2.6, good=False)),
         4.0, True, Reason.CP_STALE, 2.3),
    Case("comm-fail (no value)", cfg(),
         Inputs(NOW, 3.0, cp=(Sample(2.5, NOW), Sample(None, NOW, False))), 4.0, True,
         Reason.CP_STALE, 2.3),
    Case("safe below the setpoint: down step by step", cfg(safe_bar=3.5),
         Inputs(NOW, 4.5, cp=cp(None, None)), 4.3, True, Reason.CP_STALE, 2.3),
    Case("link lost, sensor on another gateway: safe", cfg(critical_point={
        "sensors": [{"device": "pt-9", "source": "gw-north"}], "target_bar": 2.0}),
         Inputs(NOW, 3.0, cp=cp(2.5), link_up=False), 4.0, True, Reason.LINK_LOST, 2.2),
    Case("link lost, local sensors: the loop goes on", cfg(),
         Inputs(NOW, 3.0, cp=cp(2.1, 3.0), link_up=False), 3.1, True,
         Reason.CRITICAL_POINT, 2.3),
    # --- the low-pressure alarm
    Case("alarm: up by the step at once, out of turn", cfg(),
         Inputs(NOW, 3.0, cp=cp(1.8, 3.0, age=5)), 3.2, True, Reason.LOW_ALARM, 2.3,
         State(3.0, NOW - 20), alarm=True),
    Case("alarm: its own step size", cfg(critical_point={
        "sensors": [{"device": "pt-1"}], "target_bar": 2.0, "alarm_step_bar": 0.5}),
         Inputs(NOW, 3.0, cp=cp(1.8, age=5)), 3.5, True, Reason.LOW_ALARM, 2.2,
         State(3.0, NOW - 20), alarm=True),
    Case("alarm: a reading from before the last change waits", cfg(),
         Inputs(NOW, 3.2, cp=cp(1.8, 3.0, age=30)), 3.2, False, Reason.LOW_ALARM, 2.3,
         State(3.2, NOW - 20), alarm=True),
    Case("out of turn without an alarm: nothing", cfg(),
         Inputs(NOW, 3.0, cp=cp(2.1, 3.0)), 3.0, False, Reason.CRITICAL_POINT, 2.3,
         alarm=True),
    Case("alarm: still within the max limit", cfg(),
         Inputs(NOW, 4.9, cp=cp(1.8, 3.0, age=5)), 5.0, True, Reason.LOW_ALARM, 2.3,
         State(4.9, NOW - 20), alarm=True),
    # --- hand, local, offline
    Case("hand: nothing written", cfg(auto=False), Inputs(NOW, 3.0, cp=cp(1.0, 1.0)),
         3.0, False, Reason.HAND),
    Case("no configuration: hand", None, Inputs(NOW, 3.3), 3.3, False, Reason.HAND),
    Case("the device's switch on local", cfg(), Inputs(NOW, 3.0, remote_enable=False,
         cp=cp(1.0, 1.0)), 3.0, False, Reason.LOCAL),
    Case("PRV not answering", cfg(), Inputs(NOW, 3.0, device_ok=False, cp=cp(1.0, 1.0)),
         3.0, False, Reason.PRV_OFFLINE),
    # --- fixed
    Case("fixed", cfg(mode="fixed", setpoint_bar=3.4), Inputs(NOW, 3.0), 3.2, True,
         Reason.FIXED, 3.4),
    Case("fixed, reached", cfg(mode="fixed", setpoint_bar=3.4), Inputs(NOW, 3.4), 3.4, False,
         Reason.FIXED, 3.4),
    Case("fixed, first write", cfg(mode="fixed", setpoint_bar=3.4), Inputs(NOW, None),
         3.4, True, Reason.FIXED, 3.4, State()),
    # --- time: 10:00 on a Tuesday in Tashkent
    Case("time: the day step", cfg(mode="time", profile=[
        {"from": "00:00", "to": "06:00", "setpoint_bar": 2.4},
        {"from": "06:00", "to": "23:00", "setpoint_bar": 3.2},
        {"from": "23:00", "to": "24:00", "setpoint_bar": 2.4}]),
         Inputs(NOW, 3.1), 3.2, True, Reason.TIME, 3.2),
    Case("time: weekly, Tuesday's own step", cfg(mode="time", profile=[
        {"days": ["tue"], "from": "00:00", "to": "24:00", "setpoint_bar": 2.6},
        {"days": ["mon", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00",
         "setpoint_bar": 3.6}]),
         Inputs(NOW, 2.6), 2.6, False, Reason.TIME, 2.6),
    # --- flow
    Case("flow: on the curve", cfg(mode="flow", flow={
        "inflow": {"device": "dm-1"}, "curve": [[0, 2.5], [20, 3.5]]}),
         Inputs(NOW, 3.0, inflow=Sample(12.0, NOW - 10)), 3.1, True, Reason.FLOW, 3.1),
    Case("flow: within the deadband", cfg(mode="flow", flow={
        "inflow": {"device": "dm-1"}, "curve": [[0, 2.5], [20, 3.5]]}),
         Inputs(NOW, 3.08, inflow=Sample(12.0, NOW - 10)), 3.08, False, Reason.FLOW, 3.1),
    Case("flow: the meter counts outwards", cfg(mode="flow", flow={
        "inflow": {"device": "dm-1", "sign": -1}, "curve": [[0, 2.5], [20, 3.5]]}),
         Inputs(NOW, 3.0, inflow=Sample(-20.0, NOW - 10)), 3.2, True, Reason.FLOW, 3.5),
    Case("flow: inflow stale", cfg(mode="flow", flow={
        "inflow": {"device": "dm-1"}, "curve": [[0, 2.5], [20, 3.5]]}),
         Inputs(NOW, 3.0, inflow=Sample(12.0, NOW - 1000)), 4.0, True, Reason.FLOW_STALE, 4.0),
    Case("flow: remote meter, link lost", cfg(mode="flow", flow={
        "inflow": {"device": "dm-1", "source": "gw-2"}, "curve": [[0, 2.5], [20, 3.5]]}),
         Inputs(NOW, 3.0, inflow=Sample(12.0, NOW), link_up=False), 4.0, True,
         Reason.LINK_LOST, 4.0),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    d: Decision = decide(case.config, case.state, case.inputs, alarm=case.alarm)
    assert (d.setpoint, d.write, d.reason) == pytest.approx(
        (case.setpoint, case.write, case.reason)
    ), d
    assert d.target == pytest.approx(case.target)
    if d.write:
        assert d.state == State(d.setpoint, case.inputs.now)
    else:
        assert d.state.changed_at == case.state.changed_at


def test_lowest_fresh_pressure_is_reported() -> None:
    d = decide(cfg(), State(3.0), Inputs(NOW, 3.0, cp=cp(2.4, 2.1)))
    assert d.cp_min == pytest.approx(2.1)


def test_a_closed_loop_settles_without_hunting() -> None:
    """A toy zone: the critical point sits 1.1 bar below the outlet; the loop reaches the
    target within a few steps and then writes nothing more."""
    c = cfg()
    state, sp, writes = State(), 4.0, []
    for k in range(40):
        now = NOW + 300 * k
        d = decide(c, state, Inputs(now, sp, cp=cp_at(sp - 1.1, now, 2)))
        state = d.state
        if d.write:
            assert d.setpoint is not None
            sp = d.setpoint
            writes.append(k)
    assert sp - 1.1 == pytest.approx(2.3, abs=0.06)
    assert len(writes) < 12 and max(writes) < 15


def cp_at(v: float, now: float, n: int) -> tuple[Sample, ...]:
    return tuple(Sample(v, now - 1) for _ in range(n))


def test_alarm_trigger_rule() -> None:
    assert wants_alarm_step(cfg(), 1.9)
    assert not wants_alarm_step(cfg(), 2.0)
    assert not wants_alarm_step(cfg(auto=False), 1.0)
    assert not wants_alarm_step(cfg(mode="fixed", setpoint_bar=3.0), 1.0)
    assert not wants_alarm_step(None, 1.0)
