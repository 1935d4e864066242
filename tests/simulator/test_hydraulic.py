from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.hydraulic import (
    CustomerConsumption,
    LeakSpec,
    leak_pattern,
    mean_daily_demand_m3,
    simulate,
)

INP = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "village.inp"


def test_leak_raises_inflow_and_lowers_pressure() -> None:
    base = simulate(INP, days=3)
    leak = LeakSpec(node="S4", start_h=36, rate_lps=2.0)
    run = simulate(INP, days=3, leak=leak)
    # before the leak nothing differs; after it, the south inlet carries 2 L/s = 7.2 m3/h more
    before = slice(0, 36)
    after = slice(37, 72)
    assert np.allclose(run.flow_m3h["P-121"][before], base.flow_m3h["P-121"][before])
    extra = run.flow_m3h["P-121"][after] - base.flow_m3h["P-121"][after]
    assert extra == pytest.approx(np.full(extra.shape, 7.2), abs=0.01)
    assert (run.pressure_bar["S4"][after] < base.pressure_bar["S4"][after]).all()
    # the north DMA is fed separately: its inlet flow does not change
    assert np.allclose(run.flow_m3h["P-102"], base.flow_m3h["P-102"], atol=1e-6)


def test_volume_integrates_flow() -> None:
    run = simulate(INP, days=1)
    fwd, rev = run.volume_m3("P-121", 24 * 3600)
    assert rev == 0.0
    assert fwd == pytest.approx(run.flow_m3h["P-121"][:24].sum())
    half_fwd, _ = run.volume_m3("P-121", 1800)
    assert half_fwd == pytest.approx(run.flow_m3h["P-121"][0] / 2)


def test_incipient_leak_pattern() -> None:
    assert leak_pattern(LeakSpec("n", start_h=2, rate_lps=1, ramp_h=4), 7) == [
        0, 0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0,
    ]  # fmt: skip


def test_customer_consumption() -> None:
    c = CustomerConsumption(daily_m3=0.4, seed=1)
    use = c.hourly(24 * 30)
    assert use.mean() * 24 == pytest.approx(0.4, rel=0.15)
    assert (use.reshape(30, 24)[:, 2:4] == 0).all()  # asleep from 02:00 to 04:00 every night
    leaky = CustomerConsumption(daily_m3=0.4, seed=1, leak_m3h=0.01).hourly(24 * 30)
    assert (leaky > 0).all()
    reg = c.register_m3(48, start_m3=100.0)
    assert reg[0] == 100.0
    assert (np.diff(reg) >= 0).all()


def test_bad_leak_node() -> None:
    with pytest.raises(ValueError, match="not a junction"):
        simulate(INP, days=1, leak=LeakSpec("R1", 1, 1.0))


def test_mean_daily_demand_is_what_the_simulated_zone_draws() -> None:
    """The demo's estimate of the unmetered use: the DMA's junction demand over a day equals
    the water the simulation sends through the DMA's inlet pipe (P-102 feeds DMA-N)."""
    dma_n = ["N1", "N2", "N3", "N4", "N5", "N6", "not-in-the-model"]
    est = mean_daily_demand_m3(INP, dma_n)
    assert est == pytest.approx(1.25 * 0.9566667 * 86.4, rel=1e-6)
    run = simulate(INP, days=2)
    inflow = run.volume_m3("P-102", 48 * 3600)[0] - run.volume_m3("P-102", 24 * 3600)[0]
    assert inflow == pytest.approx(est, rel=0.01)
    assert mean_daily_demand_m3(INP, dma_n, demand_scale=2.0) == pytest.approx(2 * est)
    assert mean_daily_demand_m3(INP, ["R1"]) == 0.0  # a reservoir draws nothing
