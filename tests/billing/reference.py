"""Plain-Python reference of the consumption rules (billing/consumption.py), for the tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

from billing import consumption as c


@dataclass
class RefMeter:
    volume: float
    estimated: float
    estimated_s: float
    flags: int
    deltas: list[float]
    reading_flags: list[int]


def reference_meter(
    readings: list[tuple[int, float]], capacity: float, ws: int, we: int, p: list[float]
) -> RefMeter:
    spike, rev, lz, gap, prol, win, hist = p
    deltas: list[float] = []
    rflags: list[int] = []
    zero_start: int | None = None
    for k, (t, v) in enumerate(readings):
        if k == 0:
            deltas.append(0.0)
            rflags.append(0)
            continue
        tp, vp = readings[k - 1]
        dt = t - tp
        d = v - vp
        f = 0
        if d < 0:
            if vp >= capacity * (1 - win) and v <= capacity * win:
                d = d + capacity
                f |= c.ROLLOVER
            elif d >= -rev:
                f |= c.REVERSE
            else:
                f |= c.NEGATIVE
                d = 0.0
        if d > 0 and dt > 0 and d * 3600.0 / dt > spike:
            f |= c.SPIKE
            d = 0.0
        if dt > gap:
            f |= c.GAP
        if d == 0.0 and not f & (c.NEGATIVE | c.SPIKE):
            if zero_start is None:
                zero_start = tp
            if t - zero_start >= lz:
                f |= c.LONG_ZERO
        else:
            zero_start = None
        deltas.append(d)
        rflags.append(f)
    if we <= ws:
        return RefMeter(0.0, 0.0, 0.0, 0, deltas, rflags)
    if not readings:
        return RefMeter(0.0, 0.0, float(we - ws), c.NO_DATA, deltas, rflags)
    vol = est = est_s = 0.0
    flags = 0
    for k in range(1, len(readings)):
        t0, t1 = readings[k - 1][0], readings[k][0]
        if t1 == t0:
            if not ws < t1 <= we:
                continue
            share = 1.0
        else:
            overlap = min(t1, we) - max(t0, ws)
            if overlap <= 0:
                continue
            share = overlap / (t1 - t0)
        part = deltas[k] * share
        vol += part
        flags |= rflags[k] & ~c.GAP
        if rflags[k] & c.GAP and (t0 < ws or t1 > we):
            flags |= c.GAP
            est += part
            est_s += (t1 - t0) * share
    first_t, last_t = readings[0][0], readings[-1][0]
    in_hist = [k for k in range(1, len(readings)) if readings[k - 1][0] >= last_t - hist]
    if in_hist:
        span = last_t - readings[in_hist[0] - 1][0]
        rate = sum(deltas[k] for k in in_hist) / span if span > 0 else 0.0
    else:
        rate = 0.0
    if first_t > ws:
        s = min(first_t, we) - ws
        vol += rate * s
        est += rate * s
        est_s += s
        flags |= c.ESTIMATED_START
    if last_t < we:
        s = we - max(last_t, ws)
        vol += rate * s
        est += rate * s
        est_s += s
        flags |= c.ESTIMATED_END
    if rate == 0.0 and flags & (c.ESTIMATED_END | c.ESTIMATED_START) and len(readings) < 2:
        flags |= c.NO_DATA
    if est_s > prol:
        flags |= c.PROLONGED_ESTIMATE
    assert not math.isnan(vol)
    return RefMeter(vol, est, est_s, flags, deltas, rflags)
