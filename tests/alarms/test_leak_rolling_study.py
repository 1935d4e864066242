"""bench.leak_rolling_study: the balance over each customer meter's own read window.

The windows are checked against the meters' reads taken one by one, and the study's verdicts
on one scenario against what each balance can know: the rolling one finds an abrupt leak
within a day, the calendar day's only once that day has been read (26 h after it ends).
"""

from __future__ import annotations

import math

import numpy as np

from bench import leak_rolling_study as st
from simulator.leak_families import generate

DAY, HOUR = st.DAY, st.HOUR


def test_each_hour_sums_every_meters_last_read_window() -> None:
    sc = generate("small", 1001, noise="bench")
    dma = "DMA2"
    hours, m, i = st.rolling(sc, dma)
    q = sc.dma_inflow_lps(dma)
    hh = sc.households[dma]
    for k in (20 * 24 + 5, 27 * 24 + 17):
        th = hours[k]
        rates, flows = [], []
        for t_r, reg in zip(hh.read_times_s, hh.registers_m3, strict=True):
            done = [(t, r) for t, r in zip(t_r, reg, strict=True) if t <= th and math.isfinite(t)]
            if len(done) < 2 or done[-1][0] - done[-2][0] > 2.1 * DAY:
                continue
            (t0, r0), (t1, r1) = done[-2], done[-1]
            rates.append((r1 - r0) / (t1 - t0) * 1000.0)
            inside = (sc.times_s >= t0) & (sc.times_s < t1) & np.isfinite(q)
            flows.append(float(np.mean(q[inside])))
        n_met = hh.read_times_s.shape[0]
        assert len(rates) >= n_met // 2
        assert math.isclose(m[k], sum(rates) * n_met / len(rates), rel_tol=1e-9)
        # the inflow over the same windows, to the 15-min grid's resolution
        assert math.isclose(i[k], float(np.mean(flows)), rel_tol=0.01)


def test_an_abrupt_leak_is_found_within_a_day_and_by_the_calendar_day_once_it_is_read() -> None:
    # small seed 1001: 2.65 L/s from day 21.92 in DMA1, a DMA of about 6 L/s
    rows = {r["dma"]: r for r in st.study(("small", 1001, "bench", 4.0))}
    leak = rows["DMA1"]["leak"]
    start = leak[2]
    first_rolling = rows["DMA1"]["rolling"][0]
    first_daily = rows["DMA1"]["daily"][0]
    assert start + 6 * HOUR < first_rolling <= start + DAY
    # the calendar day's balance finds it on its first whole day (the day it started held
    # two hours of it), known 26 h after that day ends
    assert first_daily == (math.ceil(start / DAY) + 1) * DAY + 26 * HOUR
    # and neither raises anything in the DMAs without a leak
    for dma in ("DMA2", "DMA3"):
        for which in ("rolling", "daily"):
            first, ups, free_days = rows[dma][which]
            assert first == math.inf and ups == 0 and free_days > 15
