"""Leak analytics per zone (DMA) as pure functions over numpy arrays.

* :func:`bucket_mean` / :func:`counter_consumption` turn raw readings into regular buckets
  (zone inflow in L/s, customer consumption in m³ per bucket from meter counters).
* :func:`mnf_check`: minimum night flow against a learned baseline, with an allowance for
  legitimate night use per connection.
* :func:`water_balance` / :func:`nrw_rise`: DMA water balance and non-revenue water %.
* :func:`profile` / :func:`cusum_update`: burst detection by a one-sided CUSUM on residuals
  against a learned daily profile; :func:`burst_step` is the whole burst detector, one bucket
  at a time, with its state in a :class:`BurstState` (stored and restored explicitly).
* :class:`SlotProfile`: a learned profile per day type (weekday, Sunday ...) and slot of the day.
* :func:`theil_sen` / :func:`mann_kendall_z`: a robust slope and its significance (growing leaks).
* :func:`interp_at`: a level or register interpolated at bucket edges.
* :func:`customer_leak`: a customer meter that never reads zero in any hour of a day.
* :func:`baseline_mnf_alarms`: the plain MNF rule used as the benchmark baseline.

Every threshold is documented in docs/alarms.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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


def read_windows(
    ts: F64, register: F64, ends: F64, *, step_s: float, n_back: int, max_span_s: float
) -> tuple[F64, F64]:
    """A meter's last read window at each time of ``ends``: its last two reads at or before
    that time. Returns the register's rate over each window (units a second; NaN where there
    is none) and, per time, how much of the window falls in each of the ``n_back`` buckets of
    ``step_s`` that end at that time (oldest first; shares that sum to 1, or zeros). A window
    longer than ``max_span_s``, one that reaches back beyond the ``n_back`` buckets, and one
    over which the register fell (a reset, an exchanged meter) is none. Readings must be
    sorted by time; non-finite values are dropped."""
    ok = np.isfinite(ts) & np.isfinite(register)
    t_v, r_v = ts[ok], register[ok]
    rate = np.full(ends.size, np.nan)
    shares = np.zeros((ends.size, n_back))
    if t_v.size < 2:
        return rate, shares
    i1 = np.clip(np.searchsorted(t_v, ends, side="right") - 1, 1, t_v.size - 1)
    t1, t0 = t_v[i1], t_v[i1 - 1]
    span = t1 - t0
    rise = r_v[i1] - r_v[i1 - 1]
    good = (t1 <= ends) & (span > 0) & (span <= max_span_s) & (rise >= 0)
    good &= t0 >= ends - n_back * step_s
    lo = ends[:, None] - (n_back - np.arange(n_back)[None, :]) * step_s
    cover = np.minimum(t1[:, None], lo + step_s) - np.maximum(t0[:, None], lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(good, rise / span, np.nan)
        shares = np.where(good[:, None], np.clip(cover, 0.0, None) / span[:, None], 0.0)
    return np.asarray(rate, dtype=np.float64), np.asarray(shares, dtype=np.float64)


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


@dataclass(frozen=True)
class BurstParams:
    """Settings of the burst detector (the ``burst`` rule's params; docs/alarms.md)."""

    n_slots: int = 24
    baseline_days: int = 14
    min_history_days: int = 7
    min_sigma: float = 0.125  # L/s: max(0.1, min_excess_lps / 4)
    cusum_k: float = 0.5
    cusum_h: float = 8.0
    z_clip: float = 4.0
    accept_after_h: float = 48.0


@dataclass
class BurstState:
    """What the burst detector remembers between evaluations.

    ``hist``: the learned (slot, value) pairs (at most baseline_days x n_slots); ``s``: the
    CUSUM statistic; ``active``: the detector's condition; ``since``: when it became active;
    ``shifts``: the residuals seen while active (their median is the level change).
    Stored in ``alarm_rule_state.eval_state`` under the keys ``_hist``, ``_S``, ``_since`` and
    ``_shift`` by :meth:`to_json` and restored by :meth:`from_json`.
    """

    hist: list[tuple[int, float]] = field(default_factory=list)
    s: float = 0.0
    active: bool = False
    since: float | None = None
    shifts: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "_hist": [[float(sl), v] for sl, v in self.hist],
            "_S": self.s,
            "_since": self.since,
            "_shift": list(self.shifts),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], *, active: bool = False) -> BurstState:
        return cls(
            hist=[(int(sl), float(v)) for sl, v in d.get("_hist", [])],
            s=float(d.get("_S", 0.0)),
            active=active,
            since=None if d.get("_since") is None else float(d["_since"]),
            shifts=[float(x) for x in d.get("_shift", [])],
        )


@dataclass(frozen=True)
class BurstSignal:
    """The burst condition switched: ``why`` is ``raise``, ``accept`` (a lasting level change
    taken as the new normal) or ``clear``."""

    on: bool
    why: str
    ts: float
    value: float
    usual: float  # the profile's median for this slot
    shift: float  # accept: the median level change; raise: the residual
    s: float


def burst_step(
    st: BurstState, p: BurstParams, t_end: float, slot: int, x: float
) -> tuple[BurstState, BurstSignal | None]:
    """Feed one bucket (ending at ``t_end``, slot of the day ``slot``, value ``x``) to the
    burst detector; returns the new state and the switch of its condition, if any.

    The residual against the learned profile (median per slot of the last ``baseline_days``)
    is standardised by a robust sigma (per slot, at least the pooled sigma, 2 % of the median
    and ``min_sigma``), clipped to ±``z_clip`` and fed to a one-sided CUSUM (``cusum_k``,
    ``cusum_h``). The condition clears when the CUSUM is back to 0, or when a rise lasts
    ``accept_after_h``: then it is the new level and the profile moves by the median shift.
    Buckets are learned only while the condition is off and the CUSUM is below half of h.
    """
    if not math.isfinite(x):
        return st, None
    keep = p.baseline_days * p.n_slots
    hist, s, since, shifts = list(st.hist), st.s, st.since, list(st.shifts)
    active = st.active
    h = np.array(hist, dtype=np.float64).reshape(-1, 2)
    med, sig = profile(h[:, 1].copy(), h[:, 0].astype(np.int64), p.n_slots, p.min_sigma)
    usual = float(med[slot])
    sig_out: BurstSignal | None = None
    if len(h) >= p.min_history_days * p.n_slots and math.isfinite(usual):
        pooled = pooled_sigma(h[:, 1].copy(), h[:, 0].astype(np.int64), med)
        sig_s = max(float(sig[slot]), 0.02 * abs(usual))
        if math.isfinite(pooled):
            sig_s = max(sig_s, pooled)
        # clipped: one wild hour (a missing register, a meter glitch) is not a burst
        z = min(p.z_clip, max(-p.z_clip, (x - usual) / sig_s))
        stats, _ = cusum_update(np.array([z]), p.cusum_k, p.cusum_h, s)
        s = float(stats[-1])
        if active:
            shifts.append(x - usual)
    on = s > p.cusum_h if not active else s > 0.0
    accepted = on and active and since is not None and t_end - since >= p.accept_after_h * 3600
    if accepted:
        # a lasting change of level: it becomes the new normal (the profile is moved by the
        # median shift seen while alarmed) so that the next burst is seen again
        step_up = float(np.median(shifts)) if shifts else 0.0
        hist = [(sl, v + step_up) for sl, v in hist]
        on, s = False, 0.0
    if on != active:
        if on:
            since, shifts = t_end, []
            sig_out = BurstSignal(True, "raise", t_end, x, usual, x - usual, s)
        elif accepted:
            shift = float(np.median(shifts)) if shifts else 0.0
            since, shifts = None, []
            sig_out = BurstSignal(False, "accept", t_end, x, usual, shift, s)
        else:
            since = None
            sig_out = BurstSignal(False, "clear", t_end, x, usual, 0.0, s)
        active = on
    if s <= p.cusum_h / 2 and not active:
        hist.append((slot, x))
        hist = hist[-keep:]
    return BurstState(hist, s, active, since, shifts[-keep:]), sig_out


# ------------------------------------------------------------------ learned profiles
@dataclass
class SlotProfile:
    """A learned profile of a bucketed series per day type and slot of the day.

    ``values`` holds (day type, slot, value) of the last ``keep`` learned buckets, oldest
    first. The usual value of a bucket is the median of its day type and slot (no verdict
    while that day type has not been seen). Its sigma is the larger of the slot's robust
    sigma (1.4826·MAD of the residuals against the slot's median), the relative robust sigma
    pooled over every slot times the usual value, 2 % of the usual value and ``min_sigma``;
    doubled while the day type has fewer than ``min_same`` days, and widened for a short
    history.
    """

    values: list[tuple[int, int, float]] = field(default_factory=list)
    _cache: dict[int, tuple[Any, Any, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def add(self, day_type: int, slot: int, value: float, keep: int) -> None:
        if not math.isfinite(value):
            return
        self.values.append((day_type, slot, value))
        self._cache.pop(slot, None)
        if len(self.values) > keep:
            for _, sl, _ in self.values[: len(self.values) - keep]:
                self._cache.pop(sl, None)
            del self.values[: len(self.values) - keep]

    def days(self, n_slots: int) -> float:
        return len(self.values) / n_slots

    def _slot(self, slot: int) -> tuple[Any, Any, Any]:
        got = self._cache.get(slot)
        if got is None:
            sel = [(dt, v) for dt, sl, v in self.values if sl == slot]
            dts = np.array([a for a, _ in sel], dtype=np.int64)
            v = np.array([b for _, b in sel], dtype=np.float64)
            res = np.abs(v - np.median(v)) if v.size else v
            got = (dts, v, res)
            self._cache[slot] = got
        return got

    def expect(
        self,
        day_type: int,
        slot: int,
        *,
        min_sigma: float,
        min_same: int = 3,
        pooled: bool = True,
    ) -> tuple[float, float]:
        """(usual value, sigma) of a bucket; NaN when the slot has fewer than 3 values.

        ``pooled``: the sigma is at least the slot's median times the relative robust sigma
        pooled over every slot (for a series of positive flows; off for a series of
        changes, whose slots have no common scale)."""
        dts, v, res = self._slot(slot)
        if v.size < 3:
            return math.nan, math.nan
        same = dts == day_type
        n_same = int(same.sum())
        if n_same == 0:
            return math.nan, math.nan  # a day type not seen yet: no verdict
        med = float(np.median(v[same]))
        # few days of this type: less sure (a sigma from a handful of values is too small)
        widen = (1.0 if n_same >= min_same else 2.0) * (1 + 2.5 / v.size)
        own = 1.4826 * float(np.median(res))
        floor = 0.0
        if pooled:
            rel = []
            for sl in {sl for _, sl, _ in self.values}:
                _, vs, rs = self._slot(sl)
                scale = abs(float(np.median(vs))) if vs.size else 0.0
                if scale > 0:
                    rel.append(rs / scale)
            if rel:
                floor = 1.4826 * float(np.median(np.concatenate(rel))) * abs(med)
            floor = max(floor, 0.02 * abs(med))
        return med, widen * max(own, floor, min_sigma)

    def to_json(self) -> list[list[float]]:
        return [[float(a), float(b), c] for a, b, c in self.values]

    @classmethod
    def from_json(cls, d: Any) -> SlotProfile:
        return cls([(int(a), int(b), float(c)) for a, b, c in (d or [])])


# ------------------------------------------------------------------ trends (growing leaks)
def theil_sen(y: F64) -> tuple[float, float]:
    """Theil-Sen robust line through (i, y[i]) for the finite values: (slope, value at the
    last index). NaN when fewer than 3 values are finite."""
    i = np.flatnonzero(np.isfinite(y)).astype(np.float64)
    if i.size < 3:
        return math.nan, math.nan
    v = y[np.isfinite(y)]
    di = i[None, :] - i[:, None]
    dv = v[None, :] - v[:, None]
    upper = di > 0
    slope = float(np.median(dv[upper] / di[upper]))
    level = float(np.median(v - slope * i))
    return slope, level + slope * float(y.size - 1)


def mann_kendall_z(y: F64) -> float:
    """Mann-Kendall trend statistic as a z-score (no ties correction; NaN values dropped).

    About N(0, 1) when there is no trend; large and positive for a steady rise."""
    v = y[np.isfinite(y)]
    n = v.size
    if n < 4:
        return 0.0
    s = float(np.sign(v[None, :] - v[:, None])[np.triu_indices(n, 1)].sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    if s > 0:
        return (s - 1) / math.sqrt(var)
    if s < 0:
        return (s + 1) / math.sqrt(var)
    return 0.0


def robust_sigma(x: F64) -> float:
    """1.4826·MAD of the finite values (NaN for fewer than 3)."""
    v = x[np.isfinite(x)]
    if v.size < 3:
        return math.nan
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def diff_sigma(x: F64) -> float:
    """Robust sigma of a series from its day-to-day changes (1.4826·MAD / √2): insensitive to a
    slow drift of its level. NaN for fewer than 4 finite values."""
    v = x[np.isfinite(x)]
    if v.size < 4:
        return math.nan
    d = np.diff(v)
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)


def inlier_mean(x: F64, z: float) -> float:
    """The mean of the finite values of ``x`` within ``z`` robust sigmas (1.4826 MAD) of
    their median: a few values far off (a lost reading) are left out, a shift of a part of
    them by a few sigmas is not. NaN when ``x`` has no finite value."""
    v = x[np.isfinite(x)]
    if v.size == 0:
        return math.nan
    sig = robust_sigma(v)
    if not sig > 0:  # fewer than 3 values, or most of them equal
        return float(v.mean())
    return float(v[np.abs(v - np.median(v)) <= z * sig].mean())


def t_to_z(t: float, df: float) -> float:
    """A Student-t value with ``df`` degrees of freedom as the normal z of the same tail
    probability (accurate to about 1 % for df >= 3): a deviation judged against a sigma that
    was estimated from a few values counts for less."""
    if not math.isfinite(t):
        return t
    return math.copysign(math.sqrt(max(df - 0.5, 0.5) * math.log1p(t * t / df)), t)


def _bracket(t: F64, edges: F64) -> tuple[npt.NDArray[np.int64], Any, Any]:
    """For sorted reading times ``t`` (at least one): the index of the first reading at or
    after each edge, whether a reading lies exactly on the edge, and whether the edge lies
    strictly between two readings."""
    j = np.searchsorted(t, edges, side="left")
    exact = (j < t.size) & (t[np.minimum(j, t.size - 1)] == edges)
    inner = ~exact & (j > 0) & (j < t.size)
    return j, exact, inner


def interp_at(ts: F64, values: F64, edges: F64, max_gap_s: float) -> F64:
    """A level (or any sampled value) interpolated linearly at ``edges``; NaN where the
    readings around an edge are more than ``max_gap_s`` apart. Readings sorted by time."""
    ok = np.isfinite(values)
    t, v = ts[ok], values[ok]
    out = np.full(edges.size, np.nan)
    if t.size == 0:
        return out
    j, exact, inner = _bracket(t, edges)
    out[exact] = v[j[exact]]
    if inner.any():
        jj = j[inner]
        t0, t1 = t[jj - 1], t[jj]
        near = (t1 - t0) <= max_gap_s
        w = (edges[inner] - t0) / (t1 - t0)
        vals = v[jj - 1] + w * (v[jj] - v[jj - 1])
        res = np.where(near, vals, np.nan)
        out[inner] = res
    return out


def spread_edges(ts: F64, values: F64, edges: F64) -> npt.NDArray[np.bool_]:
    """Edges where :func:`interp_at` spreads a gap: no reading at the edge, and the readings
    around it further apart than 1.5 times the usual interval (a reading was lost). A
    register interpolated there shares the volume of the gap between the buckets on either
    side by time, not as the flow went (at a morning ramp, litres move from one hour to the
    next)."""
    t = ts[np.isfinite(values)]
    if t.size < 2:
        return np.zeros(edges.size, dtype=bool)
    span_s = 1.5 * float(np.median(np.diff(t)))
    j, _, inner = _bracket(t, edges)
    gap = np.zeros(edges.size)
    gap[inner] = t[j[inner]] - t[j[inner] - 1]
    return np.asarray(inner & (gap > span_s), dtype=bool)


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
