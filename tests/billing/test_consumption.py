"""Consumption kernels: hand-computed cases and hypothesis properties against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import consumption as c
from billing.config import ConsumptionParams
from tests.billing.reference import reference_meter

H = 3600
DAY = 86400
P = ConsumptionParams()
PV = c.params_vector(P)


def run_one(readings: list[tuple[int, float]], ws: int, we: int, cap: float = 1e5) -> c.MeterResult:
    ts = np.array([t for t, _ in readings], dtype=np.int64)
    v = np.array([x for _, x in readings], dtype=np.float64)
    return c.compute(
        np.array([0, len(readings)]), ts, v, np.array([cap]), np.array([ws]), np.array([we]), P
    )


def test_plain_month_is_register_difference() -> None:
    r = run_one([(0, 100.0), (10 * DAY, 104.0), (30 * DAY, 112.5)], 0, 30 * DAY)
    assert r.volume[0] == pytest.approx(12.5)
    assert r.estimated[0] == 0.0
    assert r.start_value[0] == pytest.approx(100.0)
    assert r.end_value[0] == pytest.approx(112.5)


def test_rollover_hand_computed() -> None:
    # 5-digit register: 99 998 -> 3 wraps through 100 000
    r = run_one([(0, 99_998.0), (DAY, 3.0)], 0, DAY)
    assert r.volume[0] == pytest.approx(5.0)
    assert r.flags[0] & c.ROLLOVER
    assert r.reading_flags[1] == c.ROLLOVER


def test_negative_step_not_counted_and_reverse_kept() -> None:
    r = run_one([(0, 50.0), (H, 50.03), (2 * H, 50.0), (3 * H, 40.0), (4 * H, 40.5)], 0, 4 * H)
    # +0.03, reverse -0.03 (net), negative -10 dropped, +0.5
    assert r.volume[0] == pytest.approx(0.5)
    assert r.reading_flags[2] == c.REVERSE
    assert r.reading_flags[3] == c.NEGATIVE
    assert r.flags[0] & c.REVERSE and r.flags[0] & c.NEGATIVE


def test_spike_dropped() -> None:
    r = run_one([(0, 10.0), (H, 10.2), (2 * H, 30.0), (3 * H, 30.1)], 0, 3 * H)
    assert r.reading_flags[2] & c.SPIKE
    assert r.volume[0] == pytest.approx(0.3)


def test_long_zero_flags_stopped_meter() -> None:
    readings = [(d * DAY, 7.0) for d in range(16)]
    r = run_one(readings, 0, 15 * DAY)
    assert r.flags[0] & c.LONG_ZERO
    assert r.reading_flags[14] & c.LONG_ZERO and not r.reading_flags[13] & c.LONG_ZERO


def test_gap_at_edge_is_interpolated_and_estimated() -> None:
    # window [10 d, 20 d]; readings at 0 d (0 m³) and 20 d (20 m³): a 20-day gap across the
    # start edge, half of it inside -> 10 m³, all estimated
    r = run_one([(0, 0.0), (20 * DAY, 20.0)], 10 * DAY, 20 * DAY)
    assert r.volume[0] == pytest.approx(10.0)
    assert r.estimated[0] == pytest.approx(10.0)
    assert r.flags[0] & c.GAP
    assert r.start_value[0] == pytest.approx(10.0)


def test_missing_end_estimated_from_history() -> None:
    # 1 m³/day for 60 days, then nothing for the last 10 days of the window
    readings = [(d * DAY, float(d)) for d in range(0, 61, 5)]
    r = run_one(readings, 40 * DAY, 70 * DAY)
    assert r.volume[0] == pytest.approx(30.0)
    assert r.estimated[0] == pytest.approx(10.0)
    assert r.flags[0] & c.ESTIMATED_END
    assert not r.flags[0] & c.PROLONGED_ESTIMATE


def test_prolonged_estimation() -> None:
    readings = [(d * DAY, float(d)) for d in range(0, 31, 5)]
    r = run_one(readings, 0, 70 * DAY)
    assert r.flags[0] & c.PROLONGED_ESTIMATE
    assert r.estimated_s[0] == pytest.approx(40 * DAY)


def test_no_readings_is_no_data() -> None:
    r = c.compute(
        np.array([0, 0]),
        np.zeros(0, np.int64),
        np.zeros(0),
        np.array([1e5]),
        np.array([0]),
        np.array([DAY]),
        P,
    )
    assert r.volume[0] == 0.0
    assert r.flags[0] & c.NO_DATA


def test_meter_replacement_two_windows_sum_continuously() -> None:
    # old meter 0..15 d (0 -> 15 m³), new meter 15..30 d (0 -> 30 m³ at 2 m³/d)
    off = np.array([0, 2, 4])
    ts = np.array([0, 15 * DAY, 15 * DAY, 30 * DAY])
    v = np.array([500.0, 515.0, 0.0, 30.0])
    r = c.compute(
        off, ts, v, np.array([1e5, 1e5]), np.array([0, 15 * DAY]), np.array([15 * DAY, 30 * DAY]), P
    )
    total = c.group_sum(r.volume, np.array([0, 0]), 1)
    assert total[0] == pytest.approx(45.0)
    assert r.estimated.sum() == 0.0


def test_rollups_equal_sum_of_parts() -> None:
    rng = np.random.default_rng(3)
    vol = rng.uniform(0, 10, 1000)
    acc = rng.integers(0, 300, 1000)
    street_of_acc = rng.integers(0, 20, 300)
    by_acc = c.group_sum(vol, acc, 300)
    by_street = c.group_sum(by_acc, street_of_acc, 20)
    assert by_acc.sum() == pytest.approx(vol.sum())
    assert by_street.sum() == pytest.approx(vol.sum())
    for s in range(20):
        assert by_street[s] == pytest.approx(
            vol[np.isin(acc, np.flatnonzero(street_of_acc == s))].sum()
        )


@st.composite
def meters(
    draw: st.DrawFn,
) -> tuple[list[list[tuple[int, float]]], list[tuple[int, int]], list[float]]:
    n = draw(st.integers(1, 5))
    all_readings = []
    windows = []
    caps = []
    for _ in range(n):
        digits = draw(st.sampled_from([3, 4, 5]))
        cap = 10.0**digits
        k = draw(st.integers(0, 25))
        t = draw(st.integers(0, 5 * DAY))
        v = draw(st.floats(0, cap - 1, allow_nan=False))
        rs = []
        for _ in range(k):
            rs.append((t, round(v, 3)))
            t += draw(st.sampled_from([0, 60, H, 6 * H, DAY, 3 * DAY, 20 * DAY]))
            step = draw(
                st.one_of(
                    st.floats(0, 2, allow_nan=False),
                    st.floats(-0.06, 0, allow_nan=False),
                    st.floats(-500, 500, allow_nan=False),
                    st.just(0.0),
                )
            )
            v = (v + step) % cap
        ws = draw(st.integers(0, 40 * DAY))
        we = ws + draw(st.integers(0, 40 * DAY))
        all_readings.append(rs)
        windows.append((ws, we))
        caps.append(cap)
    return all_readings, windows, caps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meters())
def test_kernel_matches_reference(
    data: tuple[list[list[tuple[int, float]]], list[tuple[int, int]], list[float]],
) -> None:
    readings, windows, caps = data
    counts = [len(r) for r in readings]
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ts = np.array([t for r in readings for t, _ in r], dtype=np.int64)
    v = np.array([x for r in readings for _, x in r], dtype=np.float64)
    res = c.compute(
        off,
        ts,
        v,
        np.array(caps),
        np.array([w[0] for w in windows]),
        np.array([w[1] for w in windows]),
        PV,
    )
    for m, rs in enumerate(readings):
        ref = reference_meter(rs, caps[m], windows[m][0], windows[m][1], list(PV))
        sl = slice(off[m], off[m + 1])
        assert list(res.reading_flags[sl]) == ref.reading_flags
        np.testing.assert_allclose(res.delta[sl], ref.deltas, rtol=1e-12, atol=1e-9)
        assert res.volume[m] == pytest.approx(ref.volume, rel=1e-9, abs=1e-6)
        assert res.estimated[m] == pytest.approx(ref.estimated, rel=1e-9, abs=1e-6)
        assert res.estimated_s[m] == pytest.approx(ref.estimated_s)
        assert int(res.flags[m]) == ref.flags


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1.5, allow_nan=False), min_size=2, max_size=40),
    st.integers(2, 5),
)
def test_clean_series_total_is_sum_of_steps(steps: list[float], digits: int) -> None:
    cap = 10.0**digits
    ts = [k * H for k in range(len(steps) + 1)]
    vals = [0.0]
    for s in steps:
        vals.append((vals[-1] + s) % cap)
    r = run_one(list(zip(ts, vals, strict=True)), 0, ts[-1], cap)
    expected = sum(s for s in steps if s * 1.0 <= P.spike_max_m3_per_h)
    assert r.volume[0] == pytest.approx(expected, abs=1e-6)
    assert r.estimated[0] == 0.0
