"""Leak analytics per zone (DMA) as pure functions over numpy arrays.

* :func:`bucket_mean` / :func:`counter_consumption` turn raw readings into regular buckets
  (zone inflow in L/s, customer consumption in m³ per bucket from meter counters).
* :func:`mnf_check`: minimum night flow against a learned baseline, with an allowance for
  legitimate night use per connection.
* :func:`water_balance` / :func:`nrw_rise`: DMA water balance and non-revenue water %.
* :func:`profile` / :func:`cusum_update`: burst detection by a one-sided CUSUM on residuals
  against a learned daily profile.
* :func:`customer_leak`: a customer meter that never reads zero in any hour of a day.
* :func:`baseline_mnf_alarms`: the plain MNF rule used as the benchmark baseline.

Every threshold is documented in docs/alarms.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@numba.njit(cache=True)  # type: ignore[untyped-decorator,unused-ignore]
def _bucket_mean(ts: F64, values: F64, start: float, step: float, n: int) -> F64:
    sums = np.zeros(n)
    counts = np.zeros(n)
    for i in range(ts.shape[0]):
        v = values[i]
        if not math.isfinite(v):
            continue
        k = math.floor((ts[i] - start) / step)
        if 0 <= k < n:
            sums[k] += v
            counts[k] += 1.0
    out = np.empty(n)
    for k in range(n):
        out[k] = sums[k] / counts[k] if counts[k] > 0 else np.nan
    return out


def bucket_mean(ts: F64, values: F64, start: float, step: float, n: int) -> F64:
    """Mean of the finite values in each of ``n`` buckets ``[start + k·step, +step)``.

    Buckets without data are NaN (missing data stays visible, it is never zero).
    """
    return np.asarray(
        _bucket_mean(
            np.ascontiguousarray(ts, dtype=np.float64),
            np.ascontiguousarray(values, dtype=np.float64),
            float(start),
            float(step),
            int(n),
        )
    )


@numba.njit(cache=True)  # type: ignore[untyped-decorator,unused-ignore]
def _counter_at(ts: F64, reg: F64, edges: F64, max_gap: float) -> F64:
    """Counter value interpolated at each edge (NaN where the nearest readings are too far)."""
    out = np.full(edges.shape[0], np.nan)
    n = ts.shape[0]
    j = 0
    for e in range(edges.shape[0]):
        t = edges[e]
        while j < n and ts[j] < t:
            j += 1
        if j < n and ts[j] == t:
            out[e] = reg[j]
        elif 0 < j < n and ts[j] - ts[j - 1] <= max_gap:
            w = (t - ts[j - 1]) / (ts[j] - ts[j - 1])
            d = reg[j] - reg[j - 1]
            if d < 0:  # register reset or replaced meter between the two readings
                out[e] = np.nan
            else:
                out[e] = reg[j - 1] + w * d
    return out


def counter_consumption(ts: F64, register: F64, edges: F64, max_gap_s: float = 3 * 3600) -> F64:
    """Volume consumed in each interval ``[edges[k], edges[k+1])`` from a cumulative register.

    The register is interpolated linearly at the interval edges; a fall of the register (reset
    or meter exchange) or a gap longer than ``max_gap_s`` makes that interval NaN rather than
    inventing a number. Readings must be sorted by time; non-finite values are dropped.
    """
    ok = np.isfinite(register)
    at = _counter_at(
        np.ascontiguousarray(ts[ok], dtype=np.float64),
        np.ascontiguousarray(register[ok], dtype=np.float64),
        np.ascontiguousarray(edges, dtype=np.float64),
        float(max_gap_s),
    )
    d = np.diff(at)
    d[d < 0] = np.nan
    return np.asarray(d, dtype=np.float64)


# ------------------------------------------------------------------ minimum night flow
def night_minimum(flow_lps: F64) -> float:
    """Minimum of the night buckets (NaN if fewer than half of them have data)."""
    finite = flow_lps[np.isfinite(flow_lps)]
    if finite.size == 0 or finite.size * 2 < flow_lps.size:
        return math.nan
    return float(finite.min())


@dataclass(frozen=True)
class MnfResult:
    mnf_lps: float
    baseline_lps: float
    allowance_lps: float
    night_leakage_lps: float  # mnf - legitimate night use
    excess_lps: float  # night leakage above its learned baseline
    threshold_lps: float
    alarm: bool


def mnf_check(
    history_mnf: F64,
    mnf_lps: float,
    *,
    connections: int,
    allowance_lps_per_connection: float,
    min_excess_lps: float,
    k_sigma: float,
    min_history: int = 5,
) -> MnfResult:
    """Compare tonight's minimum night flow with the learned baseline.

    Night leakage = MNF − connections × allowance (legitimate night use). The baseline is the
    median night leakage of the leak-free history; the alarm threshold is the larger of
    ``min_excess_lps`` and ``k_sigma`` robust standard deviations (1.4826·MAD) of that history.
    With fewer than ``min_history`` days of history the check only learns (never alarms).
    """
    allowance = connections * allowance_lps_per_connection
    hist = history_mnf[np.isfinite(history_mnf)] - allowance
    leak = mnf_lps - allowance
    if hist.size < min_history or not math.isfinite(mnf_lps):
        return MnfResult(mnf_lps, math.nan, allowance, leak, math.nan, math.nan, False)
    base = float(np.median(hist))
    sigma = 1.4826 * float(np.median(np.abs(hist - base)))
    thr = max(min_excess_lps, k_sigma * sigma)
    excess = leak - base
    return MnfResult(mnf_lps, base + allowance, allowance, leak, excess, thr, excess > thr)


# ------------------------------------------------------------------ water balance
@dataclass(frozen=True)
class Balance:
    inflow_m3: float
    consumption_m3: float
    losses_m3: float
    nrw_pct: float


def water_balance(inflow_m3: float, consumption_m3: float) -> Balance:
    """Losses = system input − billed metered consumption; NRW % = losses / input × 100."""
    losses = inflow_m3 - consumption_m3
    nrw = 100.0 * losses / inflow_m3 if inflow_m3 > 0 else math.nan
    return Balance(inflow_m3, consumption_m3, losses, nrw)


def nrw_rise(history_nrw: F64, nrw_pct: float, rise_pct: float, min_history: int = 5) -> bool:
    """NRW % is more than ``rise_pct`` percentage points above the median of the history."""
    hist = history_nrw[np.isfinite(history_nrw)]
    if hist.size < min_history or not math.isfinite(nrw_pct):
        return False
    return bool(nrw_pct - float(np.median(hist)) > rise_pct)


# ------------------------------------------------------------------ bursts (CUSUM)
def profile(
    history: F64, slots: npt.NDArray[np.int64], n_slots: int, min_sigma: float
) -> tuple[F64, F64]:
    """Learned daily profile: median and robust sigma (1.4826·MAD) per slot of the day.

    ``history`` are bucket values, ``slots`` their slot of the day (0..n_slots-1). Sigma is
    floored at ``min_sigma`` so that a very quiet history does not make every wobble a burst.
    """
    med = np.full(n_slots, np.nan)
    sig = np.full(n_slots, np.nan)
    for s in range(n_slots):
        v = history[(slots == s) & np.isfinite(history)]
        if v.size >= 3:
            m = float(np.median(v))
            med[s] = m
            sig[s] = max(min_sigma, 1.4826 * float(np.median(np.abs(v - m))))
    return med, sig


def pooled_sigma(history: F64, slots: npt.NDArray[np.int64], med: F64) -> float:
    """Robust sigma (1.4826·MAD) of all residuals against the profile, pooled over slots.

    Far steadier than the per-slot estimate (14 values a slot): the burst rule uses the larger
    of the two, so that a slot whose few values happen to agree does not cry wolf.
    """
    ok = np.isfinite(history) & np.isfinite(med[slots])
    if not ok.any():
        return math.nan
    r = history[ok] - med[slots[ok]]
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


@numba.njit(cache=True)  # type: ignore[untyped-decorator,unused-ignore]
def _cusum(z: F64, k: float, h: float, s0: float) -> tuple[F64, int]:
    s = s0
    out = np.empty(z.shape[0])
    first = -1
    for i in range(z.shape[0]):
        zi = z[i]
        if math.isfinite(zi):
            s = max(0.0, s + zi - k)
            s = min(s, 3.0 * h)  # bounded so that it comes down soon after a repair
        out[i] = s
        if first < 0 and s > h:
            first = i
    return out, first


def cusum_update(z: F64, k: float, h: float, s0: float = 0.0) -> tuple[F64, int]:
    """One-sided upper CUSUM S_t = max(0, S_{t-1} + z_t − k) over standardized residuals.

    Returns the statistic after every step and the index of the first step above ``h``
    (−1 if none). Missing residuals (NaN) leave S unchanged.
    """
    out, first = _cusum(np.ascontiguousarray(z, dtype=np.float64), float(k), float(h), float(s0))
    return np.asarray(out), int(first)


# ------------------------------------------------------------------ customer-side leaks
def customer_leak(hourly_m3: F64, zero_threshold_m3: float) -> bool:
    """True when every hour of the window has consumption above ``zero_threshold_m3``.

    A household that never stops drawing water for a whole day almost always has a leak
    (a running toilet, a dripping pipe) on its side of the meter. Missing hours: no verdict.
    """
    if hourly_m3.size == 0 or not bool(np.all(np.isfinite(hourly_m3))):
        return False
    return bool(np.all(hourly_m3 > zero_threshold_m3))


# ------------------------------------------------------------------ benchmark baseline
def baseline_mnf_alarms(daily_mnf: F64, gamma: float, history: int = 10) -> npt.NDArray[np.bool_]:
    """The plain MNF rule: alarm on day d when MNF_d − min(MNF of the previous ``history``
    leak-free days) > γ · that minimum. Days that alarmed are not used as history."""
    n = daily_mnf.size
    alarm = np.zeros(n, dtype=np.bool_)
    clean: list[float] = []
    for d in range(n):
        m = float(daily_mnf[d])
        if len(clean) >= history and math.isfinite(m):
            ref = min(clean[-history:])
            alarm[d] = m - ref > gamma * ref
        if math.isfinite(m) and not alarm[d]:
            clean.append(m)
    return alarm
