"""Consumption from cumulative meter registers: numba kernels (pure, numpy in and out).

Input layout (CSR): the readings of all meters sorted by (meter, ts); meter ``m`` owns the
slice ``offsets[m]:offsets[m+1]`` of ``ts`` (int64 unix seconds) and ``value`` (float64 m³ on
the register). Each meter is billed over its own window ``[win_start[m], win_end[m]]`` (the
period clipped to the service connection), so a meter replaced mid-period is two windows
whose volumes add up on the account: consumption stays continuous.

Rules, per interval between two consecutive readings (``d`` = value step, ``dt`` = seconds):

* ``d < 0`` and the previous value is in the top ``rollover_window`` of the register range and
  the new one in the bottom window: **rollover**, ``d += capacity`` (capacity = 10**digits m³);
* otherwise ``-reverse_max_m3 <= d < 0``: **reverse** flow, kept (the volume is net);
* otherwise ``d < 0``: **negative** delta (a bad reading or a reset), the step is not counted;
* ``d / dt`` above ``spike_max_m3_per_h``: **spike**, not counted;
* ``dt > gap_hours``: **gap**, the step is spread linearly over the gap (interpolation) and
  the interval is marked; a gap inside the window does not change the period total (the
  register difference is exact), but a gap that crosses a window edge is shared out by time
  and that share counts as estimated (meter flag ``GAP``);
* zero steps lasting ``long_zero_days`` or more: **long zero** (stopped meter?).

The period volume is the sum of the counted steps, each multiplied by the share of its
interval inside the window (linear interpolation at the window edges). When the last reading
is before the window end (or the first after its start) the missing part is estimated from
the average consumption rate over ``history_days`` before the last reading (**estimated
end/start**). The estimated volume and seconds are returned, and **prolonged estimation** is
flagged when more than ``prolonged_estimation_days`` of the window was estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from billing.config import ConsumptionParams

# flag bits (per reading for the interval ending at it, and OR-ed per meter)
ROLLOVER = 1
NEGATIVE = 2
SPIKE = 4
LONG_ZERO = 8
REVERSE = 16
GAP = 32
ESTIMATED_END = 64
ESTIMATED_START = 128
PROLONGED_ESTIMATE = 256
NO_DATA = 512

FLAG_NAMES: dict[int, str] = {
    ROLLOVER: "rollover",
    NEGATIVE: "negative delta",
    SPIKE: "spike",
    LONG_ZERO: "long zero",
    REVERSE: "reverse flow",
    GAP: "gap interpolated",
    ESTIMATED_END: "estimated end",
    ESTIMATED_START: "estimated start",
    PROLONGED_ESTIMATE: "prolonged estimation",
    NO_DATA: "no data",
}
ESTIMATED_MASK = GAP | ESTIMATED_END | ESTIMATED_START | NO_DATA

# indices into the params vector
P_SPIKE, P_REVERSE, P_LONG_ZERO_S, P_GAP_S, P_PROLONGED_S, P_ROLL_WIN, P_HISTORY_S = range(7)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


def params_vector(p: ConsumptionParams) -> F64:
    """The rules as the float64 vector the kernels take."""
    return np.array(
        [
            p.spike_max_m3_per_h,
            p.reverse_max_m3,
            p.long_zero_days * 86400.0,
            p.gap_hours * 3600.0,
            p.prolonged_estimation_days * 86400.0,
            p.rollover_window,
            p.history_days * 86400.0,
        ],
        dtype=np.float64,
    )


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in FLAG_NAMES.items() if flags & bit]


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _step(  # noqa: PLR0917
    pv: float, v: float, pt: int, t: int, cap: float, zero_since: int, params: F64
) -> tuple[float, int, int]:  # pragma: no cover - compiled
    """The rules for one interval: (counted step, flags, start of the current zero run)."""
    dt = t - pt
    d = v - pv
    f = 0
    if d < 0.0:
        if pv >= cap * (1.0 - params[P_ROLL_WIN]) and v <= cap * params[P_ROLL_WIN]:
            d += cap
            f |= ROLLOVER
        elif d >= -params[P_REVERSE]:
            f |= REVERSE
        else:
            f |= NEGATIVE
            d = 0.0
    if d > 0.0 and dt > 0 and d * 3600.0 / dt > params[P_SPIKE]:
        f |= SPIKE
        d = 0.0
    if dt > params[P_GAP_S]:
        f |= GAP
    if d == 0.0 and (f & (NEGATIVE | SPIKE)) == 0:
        if zero_since < 0:
            zero_since = pt
        if t - zero_since >= params[P_LONG_ZERO_S]:
            f |= LONG_ZERO
    else:
        zero_since = -1
    return d, f, zero_since


@numba.njit(cache=True, nogil=True, error_model="numpy")
def interval_deltas(
    offsets: I64, ts: I64, value: F64, capacity: F64, params: F64
) -> tuple[F64, U32]:  # pragma: no cover - compiled
    """Counted step and flags of the interval ending at each reading (first of a meter: 0)."""
    n = ts.shape[0]
    delta = np.zeros(n, dtype=np.float64)
    flags = np.zeros(n, dtype=np.uint32)
    for m in range(offsets.shape[0] - 1):
        zero_since = -1
        for i in range(offsets[m] + 1, offsets[m + 1]):
            d, f, zero_since = _step(
                value[i - 1], value[i], ts[i - 1], ts[i], capacity[m], zero_since, params
            )
            delta[i] = d
            flags[i] = f
    return delta, flags


@numba.njit(cache=True, nogil=True, error_model="numpy")
def meter_consumption(  # noqa: PLR0917 - numba kernels take positional arrays
    offsets: I64,
    ts: I64,
    value: F64,
    win_start: I64,
    win_end: I64,
    capacity: F64,
    params: F64,
) -> tuple[F64, U32, F64, F64, F64, F64, F64, U32]:  # pragma: no cover - compiled
    """One pass over the readings: per reading the counted step and flags; per meter the
    volume, estimated volume, estimated seconds, start and end register, and flags."""
    n = ts.shape[0]
    nm = offsets.shape[0] - 1
    delta = np.empty(n, dtype=np.float64)  # every element is written below
    rflags = np.empty(n, dtype=np.uint32)
    vol = np.zeros(nm, dtype=np.float64)
    est = np.zeros(nm, dtype=np.float64)
    est_s = np.zeros(nm, dtype=np.float64)
    start_v = np.full(nm, np.nan)
    end_v = np.full(nm, np.nan)
    mflags = np.zeros(nm, dtype=np.uint32)
    prolonged_s = params[P_PROLONGED_S]
    history_s = params[P_HISTORY_S]
    for m in range(nm):
        o0 = offsets[m]
        o1 = offsets[m + 1]
        ws = win_start[m]
        we = win_end[m]
        cap = capacity[m]
        if o1 <= o0:
            if we > ws:
                mflags[m] = NO_DATA
                est_s[m] = we - ws
            continue
        delta[o0] = 0.0
        rflags[o0] = 0
        v = 0.0
        e = 0.0
        es = 0.0
        f = 0
        sv = np.nan
        t_first = ts[o0]
        t_last = ts[o1 - 1]
        h0 = t_last - history_s  # the history window for the average rate (same pass)
        hsum = 0.0
        hfirst = t_last
        zero_since = -1
        for i in range(o0 + 1, o1):
            t0 = ts[i - 1]
            t1 = ts[i]
            d, rf, zero_since = _step(value[i - 1], value[i], t0, t1, cap, zero_since, params)
            delta[i] = d
            rflags[i] = rf
            if t0 >= h0:
                hsum += d
                hfirst = min(hfirst, t0)
            dt = t1 - t0
            if dt > 0:
                if t1 <= ws or t0 >= we:
                    continue
                lo = t0 if t0 > ws else ws
                hi = t1 if t1 < we else we
                share = (hi - lo) / dt
                if t0 < ws < t1:
                    sv = value[i - 1] + d * (ws - t0) / dt
            elif ws < t1 <= we:
                share = 1.0
            else:
                continue
            c = d * share
            v += c
            f |= rf & ~GAP
            if (rf & GAP) and (t0 < ws or t1 > we):
                # the period total depends on how a gap at the window edge is shared out
                f |= GAP
                e += c
                es += dt * share
        if we <= ws:
            continue
        rate = hsum / (t_last - hfirst) if t_last > hfirst else 0.0
        if t_first > ws:
            span = (t_first if t_first < we else we) - ws
            v += rate * span
            e += rate * span
            es += span
            f |= ESTIMATED_START
            sv = max(value[o0] - rate * span, 0.0)
        elif np.isnan(sv):  # a reading exactly at ws, or ws after the last reading
            if t_last <= ws:
                sv = value[o1 - 1] + rate * (ws - t_last)
            else:
                for i in range(o0, o1):
                    if ts[i] == ws:
                        sv = value[i]
                        break
        if t_last < we:
            span = we - (t_last if t_last > ws else ws)
            v += rate * span
            e += rate * span
            es += span
            f |= ESTIMATED_END
        if rate == 0.0 and (f & (ESTIMATED_END | ESTIMATED_START)) and o1 - o0 < 2:
            f |= NO_DATA
        if es > prolonged_s:
            f |= PROLONGED_ESTIMATE
        vol[m] = v
        est[m] = e
        est_s[m] = es
        if not np.isnan(sv):
            sv = sv % cap
            start_v[m] = sv
            end_v[m] = (sv + v) % cap
        mflags[m] = f
    return delta, rflags, vol, est, est_s, start_v, end_v, mflags


@numba.njit(cache=True, nogil=True, error_model="numpy")
def group_sum(values: F64, group: I64, n_groups: int) -> F64:  # pragma: no cover - compiled
    """Sum of ``values`` per group index (negative index = not in any group)."""
    out = np.zeros(n_groups, dtype=np.float64)
    for i in range(values.shape[0]):
        g = group[i]
        if g >= 0:
            out[g] += values[i]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def group_or(flags: U32, group: I64, n_groups: int) -> U32:  # pragma: no cover - compiled
    """Bitwise OR of ``flags`` per group index."""
    out = np.zeros(n_groups, dtype=np.uint32)
    for i in range(flags.shape[0]):
        g = group[i]
        if g >= 0:
            out[g] |= flags[i]
    return out


@dataclass(frozen=True)
class MeterResult:
    """Per-meter results of :func:`compute`, all arrays of length n_meters."""

    volume: F64
    estimated: F64
    estimated_s: F64
    start_value: F64
    end_value: F64
    flags: U32
    delta: F64
    reading_flags: U32


def compute(  # noqa: PLR0917 - the kernel's array order
    offsets: I64,
    ts: I64,
    value: F64,
    capacity: F64,
    win_start: I64,
    win_end: I64,
    params: ConsumptionParams | F64,
) -> MeterResult:
    """Run the one-pass consumption kernel on CSR arrays (see the module doc)."""
    p = params if isinstance(params, np.ndarray) else params_vector(params)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    value = np.ascontiguousarray(value, dtype=np.float64)
    capacity = np.ascontiguousarray(capacity, dtype=np.float64)
    win_start = np.ascontiguousarray(win_start, dtype=np.int64)
    win_end = np.ascontiguousarray(win_end, dtype=np.int64)
    if offsets.shape[0] != capacity.shape[0] + 1 or win_start.shape != capacity.shape:
        raise ValueError("offsets must have n_meters+1 entries; capacity/windows n_meters")
    if ts.shape != value.shape or int(offsets[-1]) != ts.shape[0]:
        raise ValueError("ts and value must have offsets[-1] entries")
    delta, rflags, vol, est, est_s, sv, ev, mf = meter_consumption(
        offsets, ts, value, win_start, win_end, capacity, p
    )
    return MeterResult(vol, est, est_s, sv, ev, mf, delta, rflags)


def offsets_from_sorted(meter_idx: I64, n_meters: int) -> I64:
    """CSR offsets from a sorted array of meter indices (0..n_meters-1)."""
    counts = np.bincount(meter_idx, minlength=n_meters)
    out = np.zeros(n_meters + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out
