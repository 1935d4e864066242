"""The closed-loop pressure-management simulation: the stepped hydraulics obey their physics,
and the real controller, driven through the devices' registers, saves water safely."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.closed_loop import (
    Hydraulics,
    SteppedNetwork,
    Tuning,
    calibrate,
    compare,
    configs,
    run,
    two_dma_network,
)
from simulator.hydraulic import M_HEAD_TO_BAR

NET = two_dma_network()
SHORT = Hydraulics(days=2, step_s=900)


def _solve_at(setting_bar: float, n1: float) -> dict[str, float]:
    h = Hydraulics(days=1, step_s=3600, n1=n1, demand_noise=0.0, day_to_day=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        sim = SteppedNetwork(NET, h, Path(tmp))
        try:
            sim.set_prv_bar("PRV-A", setting_bar)
            sim.set_prv_bar("PRV-B", setting_bar)
            sim.solve()
            return {
                "a00": sim.pressure_m("A00"),
                "a33": sim.pressure_m("A33"),
                "leak_a00": sim.leak_lps("A00"),
                "delivered": sum(sim.delivered_lps(n) for n in NET.dmas[0].nodes),
                "requested": sum(sim.requested_lps(n) for n in NET.dmas[0].nodes),
                "inflow_lps": sim.flow_m3h("P-A-IN") / 3.6,
                "leak_total": sum(sim.leak_lps(n) for n in NET.dmas[0].nodes),
            }
        finally:
            sim.close()


@pytest.mark.parametrize("n1", [0.5, 1.0, 1.5])
def test_leakage_follows_pressure_to_the_power_n1(n1: float) -> None:
    lo, hi = _solve_at(3.0, n1), _solve_at(4.0, n1)
    # the PRV holds its outlet node at the setting
    assert lo["a00"] == pytest.approx(3.0 / M_HEAD_TO_BAR, abs=0.05)
    assert hi["a00"] == pytest.approx(4.0 / M_HEAD_TO_BAR, abs=0.05)
    # and the critical point moves with it
    assert hi["a33"] - lo["a33"] == pytest.approx(1.0 / M_HEAD_TO_BAR, abs=0.5)
    ratio = hi["leak_a00"] / lo["leak_a00"]
    assert ratio == pytest.approx((hi["a00"] / lo["a00"]) ** n1, rel=1e-3)
    # at 30 m every node leaks the same whatever N1 is (0.04 L/s): C is scaled to it
    assert 0.04 * (lo["a00"] / 30) ** n1 == pytest.approx(lo["leak_a00"], rel=1e-3)


def test_what_goes_in_is_demand_plus_leakage() -> None:
    s = _solve_at(3.5, 1.0)
    assert s["delivered"] == pytest.approx(s["requested"], rel=1e-4)  # all pressures > 15 m
    assert s["inflow_lps"] == pytest.approx(s["delivered"] + s["leak_total"], rel=1e-3)


def test_pressure_dependent_demand_starves_customers_below_the_required_pressure() -> None:
    h = Hydraulics(days=1, step_s=3600, required_m=40.0, demand_noise=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        sim = SteppedNetwork(NET, h, Path(tmp))
        try:
            sim.set_prv_bar("PRV-A", 2.0)
            sim.solve()
            node = "A33"
            assert sim.pressure_m(node) < 40
            assert 0 < sim.delivered_lps(node) < sim.requested_lps(node)
        finally:
            sim.close()


def test_the_three_strategies_on_the_same_days() -> None:
    c = compare(NET, SHORT, Tuning())
    f = c.figures()
    assert set(f) == {
        "leakage_m3_per_day_fixed", "leakage_m3_per_day_time", "leakage_m3_per_day_cp",
        "leakage_reduction_cp", "cp_compliance", "setpoint_changes_per_day", "overshoot_m",
        "demand_delivered_ratio",
    }  # fmt: skip
    assert f["leakage_m3_per_day_cp"] < f["leakage_m3_per_day_time"]
    assert f["leakage_m3_per_day_time"] < f["leakage_m3_per_day_fixed"]
    assert f["leakage_reduction_cp"] > 0.1
    assert f["cp_compliance"] >= 0.98
    assert f["demand_delivered_ratio"] >= 0.999
    # the fixed outlet keeps its critical points up all the time: a fair baseline, and tight
    assert c.fixed.cp_compliance == 1.0
    lowest_fixed = min(d.min_cp_bar for d in c.fixed.dmas.values())
    assert 2.0 < lowest_fixed < 2.0 + Tuning().margin_bar + 0.1


def test_the_controller_writes_through_the_registers_and_keeps_its_limits() -> None:
    tune = Tuning(max_bar=4.0, min_bar=2.5)
    fixed = {"DMA-A": 3.4, "DMA-B": 3.9}
    profiles = {c: [{"from": "00:00", "to": "24:00", "setpoint_bar": v}] for c, v in fixed.items()}
    cfg = configs(NET, tune, fixed, profiles)["cp"]
    r = run(NET, SHORT, cfg, strategy="cp", fixed_bar=fixed)
    for d in r.dmas.values():
        assert d.writes > 0
        assert all(2.5 - 1e-9 <= sp <= 4.0 + 1e-9 for sp in d.setpoints)
        # the register's resolution: 0.01 bar
        assert all(abs(sp * 100 - round(sp * 100)) < 1e-6 for sp in d.setpoints)
        steps = [abs(b - a) for a, b in zip(d.setpoints, d.setpoints[1:], strict=False)]
        # one write per 5 minutes at most 0.3 bar (an alarm step may add one more)
        assert max(steps) <= 2 * tune.max_step_bar + 1e-9


def test_calibration_is_reproducible_and_day_above_night() -> None:
    fixed, profiles = calibrate(NET, SHORT, Tuning())
    again, _ = calibrate(NET, SHORT, Tuning())
    assert fixed == again
    for code, steps in profiles.items():
        night, day = steps[0]["setpoint_bar"], steps[1]["setpoint_bar"]
        assert night < day <= fixed[code]


def test_a_stiffer_n1_saves_more() -> None:
    low = compare(NET, replace(SHORT, n1=0.5), Tuning()).figures()
    high = compare(NET, replace(SHORT, n1=1.5), Tuning()).figures()
    assert high["leakage_reduction_cp"] > low["leakage_reduction_cp"] + 0.05
