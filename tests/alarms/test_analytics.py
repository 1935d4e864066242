"""Leak analytics as pure functions over arrays."""

from __future__ import annotations

import json
import math

import numpy as np

from alarms import analytics as an


def test_bucket_mean_keeps_missing_data_missing() -> None:
    ts = np.array([0.0, 10, 20, 125, 130, 400])
    v = np.array([1.0, 2, 3, 10, np.nan, 5])
    out = an.bucket_mean(ts, v, 0.0, 60.0, 8)
    assert out[0] == 2.0 and out[2] == 10.0 and out[6] == 5.0
    assert math.isnan(out[1]) and math.isnan(out[7])


def test_counter_consumption_interpolates_and_refuses_resets() -> None:
    ts = np.array([0.0, 3600, 7200, 10800, 14400])
    reg = np.array([100.0, 101.0, 103.0, 0.5, 1.5])  # meter exchanged between 7200 and 10800
    edges = np.array([1800.0, 5400, 9000, 12600, 14400])
    d = an.counter_consumption(ts, reg, edges)
    assert d[0] == 1.5  # 100.5 -> 102.0
    # the edge at 9000 falls in the exchange: both intervals touching it are unknown
    assert math.isnan(d[1]) and math.isnan(d[2])
    assert d[3] == 0.5  # 1.0 -> 1.5 on the new meter
    gap = an.counter_consumption(np.array([0.0, 86400]), np.array([1.0, 2.0]), edges)
    assert np.all(np.isnan(gap))  # a 24 h gap is not interpolated


def test_read_windows_are_each_meters_last_two_reads() -> None:
    """At each time, the window between the meter's last two reads: its rate, and the share
    of it in each hour of the last 3 days; none over a reset, a long gap or beyond 3 days."""
    h = 3600.0
    ts = np.array([9, 33, 57, 58, 130, 154, 178], dtype=np.float64) * h
    reg = np.array([10.0, 12.4, 14.8, 14.9, 20.0, 21.2, 2.8])  # exchanged between 154 and 178
    ends = np.array([40, 57, 60, 100, 140, 160, 200, 260], dtype=np.float64) * h
    rate, shares = an.read_windows(ts, reg, ends, step_s=h, n_back=72, max_span_s=50 * h)
    # 40: reads 9 -> 33 (2.4 m³ in 24 h), the window is the hours 9..33 of the last 72 (-32..40)
    assert math.isclose(rate[0], 2.4 / (24 * h))
    assert np.allclose(shares[0][41:65], 1 / 24) and shares[0].sum() == 1.0
    assert shares[0][:41].sum() == 0 and shares[0][65:].sum() == 0
    # 57: a read at exactly the end counts (33 -> 57); 60: the short window 57 -> 58
    assert math.isclose(rate[1], 2.4 / (24 * h)) and math.isclose(rate[2], 0.1 / h)
    assert shares[2][69] == 1.0  # the hour 57..58 of the hours -12..60
    # 100: 57 -> 58 still, 42 h back: inside 3 days; 140: 58 -> 130 is 72 h long: none
    assert math.isclose(rate[3], 0.1 / h) and math.isnan(rate[4]) and shares[4].sum() == 0
    # 160: 130 -> 154, 24 h; 200: 154 -> 178 fell (a reset): none
    assert math.isclose(rate[5], 1.2 / (24 * h)) and math.isnan(rate[6])
    # 260: the last window (154 -> 178) starts more than 3 days back: none
    assert math.isnan(rate[7]) and shares[7].sum() == 0
    # windows cut across hours: the shares follow the seconds
    rate, shares = an.read_windows(
        np.array([0.5, 2.0]) * h, np.array([0.0, 1.5]), np.array([3.0]) * h,
        step_s=h, n_back=4, max_span_s=50 * h,
    )  # fmt: skip
    assert np.allclose(shares[0], [0.0, 1 / 3, 2 / 3, 0.0]) and math.isclose(rate[0], 1 / h)


def test_mnf_check_allowance_and_threshold() -> None:
    hist = np.array([2.0, 2.1, 1.9, 2.05, 1.95, 2.0, 2.02])
    ok = an.mnf_check(
        hist,
        2.1,
        connections=100,
        allowance_lps_per_connection=0.005,
        min_excess_lps=0.5,
        k_sigma=4.0,
    )
    assert not ok.alarm and ok.allowance_lps == 0.5
    assert math.isclose(ok.night_leakage_lps, 1.6)
    bad = an.mnf_check(
        hist,
        3.0,
        connections=100,
        allowance_lps_per_connection=0.005,
        min_excess_lps=0.5,
        k_sigma=4.0,
    )
    assert bad.alarm and math.isclose(bad.excess_lps, 1.0)
    young = an.mnf_check(
        hist[:3],
        9.0,
        connections=1,
        allowance_lps_per_connection=0,
        min_excess_lps=0.5,
        k_sigma=4.0,
    )
    assert not young.alarm  # not enough history: learning only


def test_water_balance_and_nrw_rise() -> None:
    b = an.water_balance(1000.0, 800.0)
    assert b.losses_m3 == 200.0 and b.nrw_pct == 20.0
    assert math.isnan(an.water_balance(0.0, 0.0).nrw_pct)
    hist = np.array([20.0, 21, 19, 20, 20.5])
    assert an.nrw_rise(hist, 26.0, 5.0) and not an.nrw_rise(hist, 24.0, 5.0)


def test_profile_and_cusum_detect_a_step() -> None:
    rng = np.random.default_rng(1)
    days, slots = 14, 24
    base = 10 + 5 * np.sin(np.arange(slots) / slots * 2 * np.pi)
    hist = (base[None, :] + rng.normal(0, 0.3, (days, slots))).ravel()
    slot_idx = np.tile(np.arange(slots), days).astype(np.int64)
    med, sig = an.profile(hist, slot_idx, slots, 0.05)
    assert np.allclose(med, base, atol=0.4) and np.all(sig >= 0.05)
    today = base + rng.normal(0, 0.3, slots)
    today[10:] += 2.0  # a 2 L/s burst at 10:00
    z = (today - med) / sig
    _, first = an.cusum_update(z, 0.5, 8.0)
    assert 10 <= first <= 13
    pooled = an.pooled_sigma(hist, slot_idx, med)
    assert 0.2 < pooled < 0.4  # the noise was 0.3
    quiet, none = an.cusum_update((base + rng.normal(0, 0.3, slots) - med) / sig, 0.5, 8.0)
    assert none == -1 and quiet.max() < 8.0


def test_customer_leak_never_zero() -> None:
    hours = np.full(24, 0.002)
    assert an.customer_leak(hours, 0.0005)
    hours[3] = 0.0
    assert not an.customer_leak(hours, 0.0005)
    hours[3] = np.nan
    assert not an.customer_leak(hours, 0.0005)  # missing hour: no verdict


def test_plain_mnf_baseline() -> None:
    mnf = np.array([2.0] * 12 + [2.1, 3.0, 3.0, 2.0])
    alarm = an.baseline_mnf_alarms(mnf, gamma=0.2, history=10)
    assert alarm.tolist() == [False] * 13 + [True, True, False]


def _hours(days: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    slot = np.tile(np.arange(24), days)
    base = 10 + 5 * np.sin(slot / 24 * 2 * np.pi)
    return slot, base + rng.normal(0, 0.3, slot.size)


def test_burst_step_raises_then_accepts_a_lasting_level() -> None:
    """The burst detector alone, one bucket at a time, its state a typed BurstState."""
    p = an.BurstParams(accept_after_h=12)
    slot, x = _hours(12)
    x[10 * 24 + 5 :] += 3.0  # a burst at 05:00 on day 10, never repaired
    st = an.BurstState()
    sigs = []
    for i in range(x.size):
        st, sig = an.burst_step(st, p, (i + 1) * 3600.0, int(slot[i]), float(x[i]))
        if sig is not None:
            sigs.append(sig)
    assert [s.why for s in sigs] == ["raise", "accept"]
    assert 10 * 24 + 5 < sigs[0].ts / 3600 <= 10 * 24 + 9
    assert sigs[1].ts - sigs[0].ts == 12 * 3600
    assert 2.5 < sigs[1].shift < 3.5  # the level change it accepted
    assert not st.active and st.s == 0.0


def test_burst_state_is_stored_and_restored_explicitly() -> None:
    p = an.BurstParams()
    slot, x = _hours(9)
    st = an.BurstState()
    for i in range(x.size):
        st, _ = an.burst_step(st, p, (i + 1) * 3600.0, int(slot[i]), float(x[i]))
    doc = json.loads(json.dumps(st.to_json()))
    assert set(doc) == {"_hist", "_S", "_since", "_shift"}  # the stored keys stay the same
    back = an.BurstState.from_json(doc, active=st.active)
    assert back == st
    # missing value: no step, the state is untouched
    same, sig = an.burst_step(back, p, 1e9, 3, math.nan)
    assert same is back and sig is None


def test_slot_profile_per_day_type() -> None:
    prof = an.SlotProfile()
    for day in range(21):
        sunday = day % 7 == 6
        for s in range(24):
            prof.add(int(sunday), s, (20.0 if sunday else 10.0) + 0.1 * (day % 3), keep=28 * 24)
    med_w, sig_w = prof.expect(0, 5, min_sigma=0.05)
    med_s, sig_s = prof.expect(1, 5, min_sigma=0.05)
    assert abs(med_w - 10.1) < 0.11 and abs(med_s - 20.1) < 0.11
    assert sig_w >= 0.05 and sig_s >= 0.05
    assert math.isnan(prof.expect(2, 5, min_sigma=0.05)[0])  # a day type not seen: no verdict
    again = an.SlotProfile.from_json(json.loads(json.dumps(prof.to_json())))
    assert again.expect(0, 5, min_sigma=0.05) == (med_w, sig_w)


def test_trend_tests_see_a_steady_rise_and_not_noise() -> None:
    rng = np.random.default_rng(5)
    rise = 0.5 * np.arange(7) + rng.normal(0, 0.2, 7)
    slope, last = an.theil_sen(rise)
    assert 0.35 < slope < 0.65 and abs(last - 3.0) < 0.6
    assert an.mann_kendall_z(rise) > 2.5
    noise = rng.normal(0, 1.0, 7)
    assert abs(an.mann_kendall_z(noise)) < 2.5
    assert math.isnan(an.theil_sen(np.array([1.0, np.nan]))[0])


def test_t_to_z_counts_a_sigma_from_few_days_for_less() -> None:
    assert abs(an.t_to_z(3.0, 1000.0) - 3.0) < 0.01
    assert 2.2 < an.t_to_z(3.0, 6.0) < 2.3  # Student t with 6 df: about z 2.26
    assert an.t_to_z(-3.0, 6.0) == -an.t_to_z(3.0, 6.0)


def test_inlier_mean_leaves_out_values_far_off_and_keeps_a_shift() -> None:
    rng = np.random.default_rng(5)
    hours = 4.0 + rng.normal(0.0, 1.0, 24)
    off = hours.copy()
    off[23], off[5] = off[23] + 60.0, off[5] - 35.0  # two hours thrown off by lost reads
    assert abs(an.inlier_mean(off, 4.0) - hours.mean()) < 0.15
    assert abs(off.mean() - hours.mean()) > 1.0  # the plain mean is thrown off
    # a leak of 3 L/s (3 sigmas) in the last 8 hours is a shift, not outliers: all kept
    leak = hours.copy()
    leak[16:] += 3.0
    assert an.inlier_mean(leak, 4.0) == leak.mean()
    # NaNs are skipped; too few values, or no scatter, give the plain mean
    assert an.inlier_mean(np.array([1.0, math.nan, 3.0]), 4.0) == 2.0
    assert an.inlier_mean(np.array([2.0, 2.0, 2.0, 9.0]), 4.0) == 3.75
    assert math.isnan(an.inlier_mean(np.array([math.nan]), 4.0))


def test_spread_edges_are_where_a_lost_reading_was_interpolated_over() -> None:
    edges = np.arange(0.0, 5 * 3600 + 1, 3600)
    # a register read every 15 min; the 02:00 reading is lost
    ts = np.arange(0.0, 5 * 3600 + 1, 900)
    v = np.cumsum(np.ones(ts.size))
    v[ts == 7200] = np.nan
    spread = an.spread_edges(ts, v, edges)
    assert spread.tolist() == [False, False, True, False, False, False]
    # read at :07, :22 ... every 15 min: interpolated at every edge, but over no lost reading
    off = ts + 420
    assert not an.spread_edges(off, np.ones(off.size), edges).any()
    # read hourly, the 03:00 reading lost: 2 h apart around that edge
    hourly = edges.copy()
    hv = np.arange(hourly.size, dtype=np.float64)
    hv[3] = np.nan
    assert an.spread_edges(hourly, hv, edges).tolist() == [False] * 3 + [True] + [False] * 2
    assert not an.spread_edges(np.array([1.0]), np.array([1.0]), edges).any()


def test_interp_at_levels_and_gaps() -> None:
    ts = np.array([0.0, 3600, 7200, 30000])
    v = np.array([2.0, 1.0, 1.5, 3.0])
    out = an.interp_at(ts, v, np.array([0.0, 1800, 5400, 20000]), max_gap_s=7200)
    assert out[0] == 2.0 and out[1] == 1.5 and out[2] == 1.25  # falls are fine (a level)
    assert math.isnan(out[3])  # readings 22800 s apart: unknown
