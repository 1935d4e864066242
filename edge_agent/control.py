"""The PRV pressure controller: values in, a decision out (pure; ``now`` is passed in).

:func:`decide` takes the configuration (:class:`suvnet.prvcontrol.ControlConfig`), the
controller's own memory (:class:`State`) and what it sees now (:class:`Inputs`), and returns
the setpoint to hold, whether to write it, the target and the reason
(:class:`Decision`). The agent's shell (:mod:`edge_agent.regulator`) runs it every
``interval_s`` and at once when a critical-point reading is below the low-pressure alarm;
the hydraulic simulation (:mod:`simulator.closed_loop`) runs the very same function.

The safety rules, in the order they apply (docs/pressure-management.md):

1. hand (``auto: false``), the device's own local switch, or a PRV that does not answer:
   nothing is written.
2. the mode's wish: fixed, time profile, flow curve, or the critical-point step
   ``setpoint + gain x (target + margin - lowest pressure)`` (kept when the error is inside
   the deadband).
3. a stale or missing signal, or a lost link for a signal from another gateway: the safe
   setpoint (raised to at once; lowered step by step).
4. a fresh critical-point reading below the low-pressure alarm: up by the alarm step at once,
   whatever the interval and the rate limit (once per reading taken after the last change).
5. the limits ``min_bar``..``max_bar``; the largest step; the rate limit (bar per minute since
   the last change); the device's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum

from suvnet.prvcontrol import ControlConfig, curve_value, profile_value


class Reason(IntEnum):
    """Why the controller holds the setpoint it holds (the ``ctl_reason`` reading)."""

    HOLD = 0
    """critical-point mode: the lowest pressure is within the deadband of its target."""
    FIXED = 1
    TIME = 2
    FLOW = 3
    CRITICAL_POINT = 4
    """critical-point mode: stepped towards the target."""
    LOW_ALARM = 5
    """a critical point was below the low-pressure alarm: raised at once."""
    CP_STALE = 6
    """a critical-point reading is missing, bad or too old: safe setpoint."""
    LINK_LOST = 7
    """a signal comes from another gateway or the office and the MQTT link is down: safe."""
    FLOW_STALE = 8
    """the inflow reading is missing, bad or too old: safe setpoint."""
    HAND = 9
    """hand (``auto: false``) or no controller configured: nothing is written."""
    LOCAL = 10
    """the device's own switch is on local: nothing is written."""
    PRV_OFFLINE = 11
    """the PRV controller does not answer: nothing can be written."""

    @property
    def label(self) -> str:
        return self.name.lower()


MODE_CODES = {None: 0, "fixed": 1, "time": 2, "flow": 3, "critical_point": 4}
"""The ``ctl_mode`` reading: 0 none (hand, no configuration), 1 fixed, 2 time, 3 flow,
4 critical point."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a signal: ``value`` (None when the device did not answer), its time
    (epoch seconds) and whether its quality was good."""

    value: float | None
    ts: float
    good: bool = True

    def fresh(self, now: float, stale_after_s: float) -> bool:
        return (
            self.good
            and self.value is not None
            and math.isfinite(self.value)
            and now - self.ts <= stale_after_s
        )


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the controller sees at ``now`` (epoch seconds).

    ``setpoint``: the device's setpoint as last read or written (None: not known yet).
    ``cp``: one sample per configured critical-point sensor, in configuration order (None: no
    reading yet). ``link_up``: the gateway's MQTT link (signals from elsewhere need it)."""

    now: float
    setpoint: float | None = None
    device_ok: bool = True
    remote_enable: bool | None = None
    cp: tuple[Sample | None, ...] = ()
    inflow: Sample | None = None
    link_up: bool = True


@dataclass(frozen=True, slots=True)
class State:
    """The controller's memory between decisions."""

    setpoint: float | None = None
    """the setpoint it last chose"""
    changed_at: float | None = None
    """when it last changed the setpoint (epoch seconds)"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The setpoint to hold (``setpoint``; None while it is not known), whether to write it
    now, the target of the mode (the setpoint asked for; in critical-point mode the pressure
    held at the critical point), the reason, and the lowest fresh critical-point pressure."""

    setpoint: float | None
    write: bool
    target: float | None
    reason: Reason
    cp_min: float | None
    state: State


def _lowest(samples: tuple[Sample | None, ...], now: float, stale: float) -> float | None:
    vals = [s.value for s in samples if s is not None and s.fresh(now, stale)]
    return min(v for v in vals if v is not None) if vals else None


def decide(
    cfg: ControlConfig | None, state: State, inp: Inputs, *, alarm: bool = False
) -> Decision:
    """One controller decision. ``alarm``: called out of turn because a critical-point
    reading came in below the low-pressure alarm (the interval is not waited for)."""
    now = inp.now
    current = inp.setpoint if inp.setpoint is not None else state.setpoint
    stale_s = cfg.stale_after_s if cfg is not None else 900.0
    cp_min = _lowest(inp.cp, now, stale_s)

    def hold(reason: Reason, target: float | None = None) -> Decision:
        return Decision(current, False, target, reason, cp_min, replace(state, setpoint=current))

    if cfg is None or not cfg.auto:
        return hold(Reason.HAND)
    if inp.remote_enable is False:
        return hold(Reason.LOCAL)
    if not inp.device_ok:
        return hold(Reason.PRV_OFFLINE)

    remote = bool(cfg.remote_signals())
    deadband = 0.0
    urgent = False  # an alarm raise: no interval, no rate limit
    desired: float
    target: float | None
    reason: Reason
    if cfg.mode == "fixed":
        assert cfg.setpoint_bar is not None  # config_problems
        desired = target = cfg.setpoint_bar
        reason = Reason.FIXED
    elif cfg.mode == "time":
        v = profile_value(cfg.profile, now, cfg.timezone)
        desired = target = cfg.fallback_bar if v is None else v
        reason = Reason.TIME
    elif cfg.mode == "flow":
        assert cfg.flow is not None
        q = inp.inflow
        if remote and not inp.link_up:
            desired, target, reason = cfg.fallback_bar, cfg.fallback_bar, Reason.LINK_LOST
        elif q is None or not q.fresh(now, stale_s) or q.value is None:
            desired, target, reason = cfg.fallback_bar, cfg.fallback_bar, Reason.FLOW_STALE
        else:
            desired = target = curve_value(cfg.flow.curve, cfg.flow.inflow.sign * q.value)
            reason = Reason.FLOW
            deadband = cfg.deadband_bar
    else:
        cp = cfg.critical_point
        assert cp is not None
        target = cp.aim_bar
        samples = inp.cp + (None,) * (len(cp.sensors) - len(inp.cp))
        all_fresh = all(s is not None and s.fresh(now, stale_s) for s in samples)
        if remote and not inp.link_up:
            desired, reason = cfg.fallback_bar, Reason.LINK_LOST
        elif not all_fresh or cp_min is None:
            desired, reason = cfg.fallback_bar, Reason.CP_STALE
        elif current is None:
            desired, reason = cfg.fallback_bar, Reason.CRITICAL_POINT  # start from the safe one
        elif cp_min < cp.alarm_bar:
            # only a reading taken after the last change shows what that change did
            oldest = min(s.ts for s in samples if s is not None)
            if state.changed_at is not None and oldest <= state.changed_at:
                return hold(Reason.LOW_ALARM, target)
            desired = current + (cp.alarm_step_bar or cfg.max_step_bar)
            reason = Reason.LOW_ALARM
            urgent = True
        else:
            error = cp.aim_bar - cp_min
            if abs(error) > cfg.deadband_bar:
                desired = current + cp.gain * error
                reason = Reason.CRITICAL_POINT
            elif cfg.min_bar <= current <= cfg.max_bar:
                return hold(Reason.HOLD, target)
            else:  # in the deadband but outside changed limits: into the limits
                desired, reason = current, Reason.HOLD
    if alarm and not urgent:
        return hold(reason, target)  # out of turn only for an alarm raise

    desired = min(max(desired, cfg.min_bar), cfg.max_bar)
    if current is None:
        chosen = desired  # nothing to step from: the first write
    else:
        delta = desired - current
        if reason in (Reason.CP_STALE, Reason.LINK_LOST, Reason.FLOW_STALE) and delta > 0:
            chosen = desired  # falling back upwards: at once (customers keep their water)
        elif abs(delta) <= deadband:
            chosen = current
        else:
            limit = cfg.max_step_bar
            if reason is Reason.LOW_ALARM:
                limit = max(limit, cp_alarm_step(cfg))
            elif state.changed_at is not None and not urgent:
                limit = min(limit, cfg.max_rate_bar_per_min * (now - state.changed_at) / 60.0)
            chosen = current + max(-limit, min(limit, delta))
    res = cfg.resolution_bar
    chosen = round(round(chosen / res) * res, 6)
    chosen = min(max(chosen, cfg.min_bar), cfg.max_bar)
    write = current is None or abs(chosen - current) >= res / 2
    if not write:
        return hold(reason, target)
    return Decision(chosen, True, target, reason, cp_min, State(chosen, now))


def cp_alarm_step(cfg: ControlConfig) -> float:
    cp = cfg.critical_point
    if cp is None or cp.alarm_step_bar is None:
        return cfg.max_step_bar
    return cp.alarm_step_bar


def wants_alarm_step(cfg: ControlConfig | None, value: float | None) -> bool:
    """True when a fresh critical-point reading of ``value`` calls for a decision at once."""
    if cfg is None or not cfg.auto or cfg.mode != "critical_point" or value is None:
        return False
    assert cfg.critical_point is not None
    return value < cfg.critical_point.alarm_bar
