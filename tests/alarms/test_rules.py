"""Each streaming rule's state machine, fed with samples on a moved clock (no sleeps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from alarms.engine import flood_signals
from alarms.errors import RuleConfigError
from alarms.rules import (
    EvalState,
    MeterFlag,
    RuleConfig,
    Sample,
    Signal,
    service_limit,
    step,
    step_offline,
    tick_offline,
)


def _feed(
    cfg: RuleConfig, values: Sequence[tuple[float, float | None, int]], limit: float | None = None
) -> tuple[EvalState, list[Signal]]:
    st = EvalState()
    out: list[Signal] = []
    for ts, v, q in values:
        st, sig = step(cfg, st, Sample(ts, v, q), limit)
        # the state survives a JSON round trip between polls
        st = EvalState.from_json(st.to_json())
        out += sig
    return st, out


def _cond(sigs: list[Signal]) -> list[tuple[float, bool]]:
    return [(s.ts, s.on) for s in sigs if s.kind == "condition"]


def rule(kind: str, **kw: Any) -> RuleConfig:
    kw.setdefault("point_id", 1)
    return RuleConfig.build(id=1, code="r", kind=kind, **kw)


def test_high_with_deadband_and_delays() -> None:
    cfg = rule("high", limit=5.0, deadband=0.5, on_delay_s=60, off_delay_s=120, unit="bar")
    vals = [
        (0, 4.0),
        (10, 5.5),
        (40, 5.6),
        (70, 5.7),
        (80, 4.8),
        (100, 4.9),
        (130, 4.4),
        (200, 4.3),
        (260, 4.2),
    ]
    _, sigs = _feed(cfg, [(t, v, 0) for t, v in vals])
    # on: above 5 since t=10, held 60 s -> at t=70; 4.8/4.9 are inside the deadband (no clear);
    # below 4.5 from t=130, held 120 s -> clear at t=260
    assert _cond(sigs) == [(70, True), (260, False)]
    assert "above limit 5 bar" in sigs[0].message


def test_high_blip_shorter_than_on_delay_does_not_alarm() -> None:
    cfg = rule("high_high", limit=5.0, on_delay_s=60)
    _, sigs = _feed(cfg, [(0, 6.0, 0), (30, 6.0, 0), (50, 4.0, 0), (80, 6.0, 0), (120, 4.0, 0)])
    assert _cond(sigs) == []


def test_low_low_immediate() -> None:
    cfg = rule("low_low", limit=1.0, deadband=0.2)
    _, sigs = _feed(cfg, [(0, 2.0, 0), (60, 0.9, 0), (120, 1.1, 0), (180, 1.25, 0)])
    assert _cond(sigs) == [(60, True), (180, False)]


def test_rate_of_change() -> None:
    cfg = rule("rate_of_change", limit=2.0, unit="bar", params={"window_s": 600})
    # 0.1 bar per minute = 6 bar/h: alarm; then steady
    vals = [(i * 60.0, 3.0 - 0.1 * max(0, i - 5) if i < 15 else 2.0, 0) for i in range(40)]
    _, sigs = _feed(cfg, vals)
    c = _cond(sigs)
    # the change over the window: 0.3 bar in 480 s = 2.25 bar/h is the first above 2 bar/h
    assert c[0] == (480.0, True)
    assert c[-1][1] is False and c[-1][0] > 900


def test_flatline_stuck_sensor() -> None:
    cfg = rule("flatline", deadband=0.001, params={"window_s": 1800})
    vals = [(i * 60.0, 3.0 + (0.05 * (i % 2) if i < 10 else 0.0), 0) for i in range(60)]
    vals.append((3600.0, 3.2, 0))
    _, sigs = _feed(cfg, vals)
    # moving until t=540 (i=9); stuck from t=600 -> 1800 s later at t=2400; moves at 3600
    assert _cond(sigs) == [(2400.0, True), (3600.0, False)]


def test_meter_flags_bitfield() -> None:
    cfg = rule("meter_flags", params={"mask": int(MeterFlag.TAMPER | MeterFlag.REVERSE)})
    low_batt = float(MeterFlag.LOW_BATTERY)
    vals = [
        (0, 0.0),
        (60, low_batt),
        (120, float(MeterFlag.TAMPER | MeterFlag.DRY_PIPE)),
        (180, 0.0),
    ]
    _, sigs = _feed(cfg, [(t, v, 0) for t, v in vals])
    assert _cond(sigs) == [(120, True), (180, False)]  # low battery is not in the mask
    assert sigs[0].message == "meter reports tamper"


def test_service_minimum_in_metres_of_head() -> None:
    cfg = rule("service_min", unit="m")
    lim = service_limit(1.5, "m")
    assert lim == pytest.approx(15.3, abs=0.01)
    _, sigs = _feed(cfg, [(0, 20.0, 0), (60, 14.0, 0), (120, 16.0, 0)], limit=lim)
    assert _cond(sigs) == [(60, True), (120, False)]
    with pytest.raises(RuleConfigError):
        service_limit(1.5, "furlong")


def test_bad_quality_suppresses_and_skips() -> None:
    cfg = rule("low", limit=2.0)
    _, sigs = _feed(cfg, [(0, 3.0, 0), (60, None, 2), (120, 1.0, 1), (180, 1.0, 0)])
    kinds = [(s.kind, s.on, s.ts) for s in sigs]
    assert kinds == [("suppress", True, 60), ("suppress", False, 120), ("condition", True, 180)]


def test_old_samples_are_ignored() -> None:
    cfg = rule("low", limit=2.0)
    st, _ = _feed(cfg, [(100, 3.0, 0)])
    st2, sig = step(cfg, st, Sample(50, 1.0, 0))
    assert st2 == st and sig == []


def test_offline_delay_uses_event_time() -> None:
    cfg = RuleConfig.build(id=1, code="o", kind="offline", device_id=3, on_delay_s=300)
    st = step_offline(cfg, EvalState(), 1000.0, online=False)
    st, s1 = tick_offline(cfg, st, 1200.0, None)
    assert s1 == []
    st, s2 = tick_offline(cfg, st, 5000.0, None)  # checked late: raised at 1000 + 300
    assert [(s.ts, s.on) for s in s2] == [(1300.0, True)]
    st = step_offline(cfg, st, 6000.0, online=True)
    st, s3 = tick_offline(cfg, st, 6000.0, 6000.0)
    assert [(s.ts, s.on) for s in s3] == [(6000.0, False)]


def test_config_errors_are_clear() -> None:
    with pytest.raises(RuleConfigError, match="needs a limit"):
        rule("high")
    with pytest.raises(RuleConfigError, match="unknown kind"):
        rule("sideways", limit=1.0)
    with pytest.raises(RuleConfigError, match="bad params"):
        rule("flatline", params={"window": 3})
    with pytest.raises(RuleConfigError, match="needs a zone"):
        RuleConfig.build(id=1, code="m", kind="mnf")


def test_flood_signals() -> None:
    raised = [float(i * 30) for i in range(12)]  # 12 alarms in 6 minutes
    sig = flood_signals(raised, window_s=600, threshold=10, active=False, after=-1, now=5000)
    assert sig == [(300.0, True), (630.0, False)]
    # already seen up to 400: only the clear remains
    sig2 = flood_signals(raised, window_s=600, threshold=10, active=True, after=400, now=5000)
    assert sig2 == [(630.0, False)]
    # the clear lies in the future: nothing yet
    assert flood_signals(raised, window_s=600, threshold=10, active=True, after=400, now=500) == []
