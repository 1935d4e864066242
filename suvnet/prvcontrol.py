"""Pressure control of a PRV: the configuration the office sets and the gateway runs (pure).

One :class:`ControlConfig` per pressure reducing valve. The office writes it in the site file
(``control:`` under the PRV's device, docs/site.md) or through the API; it reaches the gateway
as a ``control`` command (docs/protocol.md), and the gateway's controller
(:mod:`edge_agent.control`) runs it. Both sides validate it with the same model and the same
:func:`config_problems`, so a configuration the office accepts is one the gateway accepts.

Modes (docs/pressure-management.md):

``fixed``
    one outlet setpoint.
``time``
    a daily or weekly profile of outlet setpoints (local time).
``flow``
    the outlet setpoint follows the zone's inflow on a curve (given, or learned from history
    with :func:`fit_flow_curve`).
``critical_point``
    closed loop on one or more remote pressure sensors: the lowest of them is held at
    ``target_bar + margin_bar``.

Nothing here does I/O and nothing reads the clock: times come in as arguments.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from suvnet.protocol import valid_id

Mode = Literal["fixed", "time", "flow", "critical_point"]
MODES: tuple[Mode, ...] = ("fixed", "time", "flow", "critical_point")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFFICE_SOURCE = "suvnet-office"
"""The ``source`` of values the office relays (its value topics: docs/protocol.md)."""
DEFAULT_TIMEZONE = "Asia/Tashkent"
HAZEN_EXPONENT = 1.852
"""Head loss grows with flow to this power (Hazen-Williams): used to learn a flow curve."""

HHMM = Annotated[str, StringConstraints(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")]
Loc = tuple[str | int, ...]

_STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)


class Signal(BaseModel):
    """A value the controller reads: a point of a device, polled by this gateway or another.

    ``source`` None: the device is polled by the same gateway as the PRV. Otherwise the
    gateway that polls it (it publishes the value on its value topic), or ``suvnet-office``
    when the office relays it."""

    model_config = _STRICT
    device: str
    point: str = "pressure_bar"
    source: str | None = None

    @field_validator("device", "point")
    @classmethod
    def _id(cls, v: str) -> str:
        if not valid_id(v):
            raise ValueError(f"{v!r} is not a valid id (1-64 of A-Z a-z 0-9 _ . -)")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        if v is not None and not valid_id(v):
            raise ValueError(f"{v!r} is not a valid gateway id")
        return v

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.point)


class FlowSignal(Signal):
    """The zone's inflow (a district meter's flow). ``sign`` -1: its forward flow leaves."""

    point: str = "flow_m3h"
    sign: Literal[1, -1] = 1


class ProfileStep(BaseModel):
    """One part of a time profile: ``setpoint_bar`` from ``from`` to ``to`` (local time) on
    ``days`` (default: every day). ``to`` may be ``24:00``; a step never runs past midnight
    (split a night step in two: ``22:00-24:00`` and ``00:00-05:00``)."""

    model_config = _STRICT
    days: tuple[Weekday, ...] = WEEKDAYS
    from_: HHMM = Field(alias="from")
    to: HHMM
    setpoint_bar: float


class FlowControl(BaseModel):
    """Flow-modulated control: the outlet setpoint follows ``curve`` [[inflow m³/h, setpoint
    bar], ...], read between its points (and held at its ends)."""

    model_config = _STRICT
    inflow: FlowSignal
    curve: tuple[tuple[float, float], ...] = Field(min_length=2, max_length=48)


class CriticalPointControl(BaseModel):
    """Critical-point control: hold the lowest of ``sensors`` at ``target_bar + margin_bar``.

    ``gain``: the share of the pressure error corrected at each step (0 < gain <= 1.5).
    ``low_alarm_bar`` (default ``target_bar``): a fresh reading below it raises the setpoint
    by ``alarm_step_bar`` (default ``max_step_bar``) at once, without waiting for the next
    step."""

    model_config = _STRICT
    sensors: tuple[Signal, ...] = Field(min_length=1, max_length=16)
    target_bar: float = Field(gt=0)
    margin_bar: float = Field(0.2, ge=0, le=5)
    gain: float = Field(0.7, gt=0, le=1.5)
    low_alarm_bar: float | None = Field(None, gt=0)
    alarm_step_bar: float | None = Field(None, gt=0, le=5)

    @property
    def aim_bar(self) -> float:
        """The pressure the lowest sensor is held at."""
        return self.target_bar + self.margin_bar

    @property
    def alarm_bar(self) -> float:
        return self.target_bar if self.low_alarm_bar is None else self.low_alarm_bar


class ControlConfig(BaseModel):
    """How the gateway sets one PRV's outlet setpoint (docs/pressure-management.md)."""

    model_config = _STRICT
    mode: Mode
    auto: bool = Field(True, description="false: hand; the controller only watches")
    min_bar: float = Field(gt=0, le=100, description="lowest setpoint it may write")
    max_bar: float = Field(gt=0, le=100, description="highest setpoint it may write")
    safe_bar: float | None = Field(
        None, gt=0, description="setpoint when the signals it needs are stale or the link is lost"
    )
    setpoint_bar: float | None = Field(None, gt=0, description="fixed mode: the setpoint")
    profile: tuple[ProfileStep, ...] = Field((), max_length=200)
    flow: FlowControl | None = None
    critical_point: CriticalPointControl | None = None
    deadband_bar: float = Field(0.05, ge=0, le=2)
    max_step_bar: float = Field(0.2, gt=0, le=10, description="largest change per step")
    max_rate_bar_per_min: float = Field(0.1, gt=0, le=10, description="rate limit")
    interval_s: float = Field(300.0, ge=1, le=3600, description="seconds between steps")
    stale_after_s: float = Field(900.0, gt=0, le=86400, description="a signal older is stale")
    resolution_bar: float = Field(0.01, gt=0, le=1, description="the device's setpoint step")
    timezone: str = DEFAULT_TIMEZONE

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (e.g. Asia/Tashkent)") from exc
        return v

    def signals(self) -> tuple[Signal, ...]:
        """Every signal the mode reads."""
        if self.mode == "critical_point" and self.critical_point is not None:
            return self.critical_point.sensors
        if self.mode == "flow" and self.flow is not None:
            return (self.flow.inflow,)
        return ()

    def remote_signals(self) -> tuple[Signal, ...]:
        return tuple(s for s in self.signals() if s.source is not None)

    @property
    def fallback_bar(self) -> float:
        """The setpoint used when the mode cannot work (stale signals, lost link)."""
        if self.safe_bar is not None:
            return self.safe_bar
        if self.setpoint_bar is not None:
            return self.setpoint_bar
        return self.max_bar

    def wire(self) -> dict[str, Any]:
        """The configuration as JSON (the ``control`` of a command; site and API store it)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ------------------------------------------------------------------------------ the checks


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where (``loc`` inside it) and what."""

    loc: Loc
    message: str

    def __str__(self) -> str:
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in self.loc)
        return f"{where.replace('.[', '[')}: {self.message}" if where else self.message


def minutes(hhmm: str) -> int:
    hh, mm = hhmm.split(":")
    return int(hh) * 60 + int(mm)


def _fmt_min(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def profile_problems(steps: Sequence[ProfileStep]) -> list[Problem]:
    """Gaps and overlaps of a time profile: each day must be covered exactly once."""
    out: list[Problem] = []
    for i, s in enumerate(steps):
        if minutes(s.to) <= minutes(s.from_):
            out.append(
                Problem(
                    ("profile", i, "to"),
                    f"a step must end after it starts ({s.from_}-{s.to}); split a step "
                    "across midnight in two (..-24:00 and 00:00-..)",
                )
            )
    if out:
        return out
    for day in WEEKDAYS:
        spans = sorted(
            (minutes(s.from_), minutes(s.to), i) for i, s in enumerate(steps) if day in s.days
        )
        at, prev = 0, None
        for lo, hi, i in spans:
            if lo < at and prev is not None:
                out.append(
                    Problem(
                        ("profile", i, "from"),
                        f"overlaps step {prev} on {day} ({_fmt_min(lo)}-{_fmt_min(min(at, hi))})",
                    )
                )
                return out
            if lo > at:
                out.append(
                    Problem(
                        ("profile", i, "from"),
                        f"leaves {day} {_fmt_min(at)}-{_fmt_min(lo)} without a setpoint (a gap)",
                    )
                )
                return out
            at, prev = hi, i
        if at < 1440:
            where: Loc = ("profile", prev, "to") if prev is not None else ("profile",)
            out.append(
                Problem(where, f"leaves {day} {_fmt_min(at)}-24:00 without a setpoint (a gap)")
            )
            return out
    return out


def config_problems(
    cfg: ControlConfig, device_range: tuple[float, float] | None = None
) -> list[Problem]:
    """Everything wrong with ``cfg`` beyond its field types, first problem first.

    ``device_range``: the range the PRV's profile allows for its setpoint point; the limits
    and every setpoint must lie inside it."""
    out: list[Problem] = []
    if cfg.min_bar >= cfg.max_bar:
        out.append(
            Problem(
                ("min_bar",),
                f"the limits cross: min_bar {cfg.min_bar:g} is not below max_bar {cfg.max_bar:g}",
            )
        )
        return out
    if device_range is not None:
        lo, hi = device_range
        for key in ("min_bar", "max_bar"):
            v = float(getattr(cfg, key))
            if not lo <= v <= hi:
                out.append(
                    Problem(
                        (key,),
                        f"{v:g} bar is outside the device's setpoint range [{lo:g}, {hi:g}]",
                    )
                )
        if out:
            return out

    def inside(loc: Loc, v: float | None) -> None:
        if v is not None and not cfg.min_bar <= v <= cfg.max_bar:
            out.append(
                Problem(loc, f"{v:g} bar is outside the limits [{cfg.min_bar:g}, {cfg.max_bar:g}]")
            )

    inside(("safe_bar",), cfg.safe_bar)
    inside(("setpoint_bar",), cfg.setpoint_bar)
    for i, s in enumerate(cfg.profile):
        inside(("profile", i, "setpoint_bar"), s.setpoint_bar)
    if cfg.flow is not None:
        flows = [q for q, _ in cfg.flow.curve]
        for i, (q, sp) in enumerate(cfg.flow.curve):
            if i and q <= flows[i - 1]:
                out.append(
                    Problem(("flow", "curve", i), "the inflows must increase point by point")
                )
            inside(("flow", "curve", i), sp)
    needs: dict[Mode, tuple[str, bool]] = {
        "fixed": ("setpoint_bar", cfg.setpoint_bar is not None),
        "time": ("profile", bool(cfg.profile)),
        "flow": ("flow", cfg.flow is not None),
        "critical_point": ("critical_point", cfg.critical_point is not None),
    }
    key, present = needs[cfg.mode]
    if not present:
        out.append(Problem((key,), f"mode {cfg.mode} needs {key}"))
    if cfg.profile:
        out.extend(profile_problems(cfg.profile))
    cp = cfg.critical_point
    if cp is not None:
        seen: set[tuple[str, str]] = set()
        for i, sensor in enumerate(cp.sensors):
            if sensor.key in seen:
                out.append(
                    Problem(
                        ("critical_point", "sensors", i),
                        f"{sensor.device}/{sensor.point} twice",
                    )
                )
            seen.add(sensor.key)
        if cp.alarm_bar > cp.aim_bar:
            out.append(
                Problem(
                    ("critical_point", "low_alarm_bar"),
                    f"{cp.alarm_bar:g} bar is above the pressure held ({cp.aim_bar:g} = "
                    "target_bar + margin_bar): the alarm would never clear",
                )
            )
    if cfg.mode in ("flow", "critical_point") and cfg.safe_bar is None:
        out.append(
            Problem(
                ("safe_bar",),
                f"mode {cfg.mode} needs safe_bar: the setpoint when its signals fail",
            )
        )
    return out


@dataclass(frozen=True)
class SignalDevice:
    """What the registry knows of a device a signal reads: the gateway that polls it, its
    zone, its ``flow_sign`` and its point ids."""

    gateway: str | None
    zone: str | None
    flow_sign: int
    points: frozenset[str]


def signal_loc(cfg: ControlConfig, k: int) -> Loc:
    """Where signal ``k`` of ``cfg`` sits in the configuration."""
    return ("flow", "inflow") if cfg.mode == "flow" else ("critical_point", "sensors", k)


def resolve_signals(
    cfg: ControlConfig,
    device: str,
    gateway: str,
    prv_zone: str | None,
    devices: Mapping[str, SignalDevice],
) -> tuple[ControlConfig, list[Problem]]:
    """``cfg`` with its signals resolved against the registry (``devices``): each signal's
    device exists, has the point and lies in the zone the PRV feeds (``prv_zone``); its
    ``source`` is the gateway that polls it (none when that is ``gateway``, the PRV's); the
    inflow meter's ``sign`` is its ``flow_sign`` unless given. The site file and the API
    both use it."""
    problems: list[Problem] = []
    resolved: list[Signal] = []
    for k, sig in enumerate(cfg.signals()):
        loc = signal_loc(cfg, k)
        info = devices.get(sig.device)
        if info is None:
            problems.append(Problem((*loc, "device"), f"device '{sig.device}' is not registered"))
            continue
        if sig.point not in info.points:
            problems.append(Problem((*loc, "point"), f"{sig.device} has no point '{sig.point}'"))
            continue
        if info.zone != prv_zone:
            what = "an inflow meter" if cfg.mode == "flow" else "a critical-point sensor"
            problems.append(
                Problem(
                    (*loc, "device"),
                    f"{sig.device} is in zone {info.zone or '(none)'} but the PRV {device} is "
                    f"in {prv_zone or '(none)'}: {what} must lie in the zone the PRV feeds",
                )
            )
            continue
        source = sig.source
        if source is None:
            source = None if info.gateway == gateway else info.gateway
        elif source not in (info.gateway, OFFICE_SOURCE):
            problems.append(
                Problem(
                    (*loc, "source"),
                    f"{sig.device} is polled by {info.gateway or 'no gateway'}, not {source} "
                    f"(or give {OFFICE_SOURCE} for a value the office relays)",
                )
            )
            continue
        update: dict[str, Any] = {"source": source}
        if isinstance(sig, FlowSignal) and "sign" not in sig.model_fields_set:
            update["sign"] = 1 if info.flow_sign >= 0 else -1
        resolved.append(sig.model_copy(update=update))
    if problems:
        return cfg, problems
    if cfg.mode == "flow" and cfg.flow is not None:
        flow = cfg.flow.model_copy(update={"inflow": resolved[0]})
        return cfg.model_copy(update={"flow": flow}), []
    if cfg.mode == "critical_point" and cfg.critical_point is not None:
        cp = cfg.critical_point.model_copy(update={"sensors": tuple(resolved)})
        return cfg.model_copy(update={"critical_point": cp}), []
    return cfg, []


# ------------------------------------------------------------------------------ evaluation


def profile_value(steps: Sequence[ProfileStep], now: float, tz: str) -> float | None:
    """The setpoint of a time profile at ``now`` (epoch seconds), in the zone ``tz``."""
    local = datetime.fromtimestamp(now, ZoneInfo(tz))
    day = WEEKDAYS[local.weekday()]
    minute = local.hour * 60 + local.minute
    for s in steps:
        if day in s.days and minutes(s.from_) <= minute < minutes(s.to):
            return s.setpoint_bar
    return None


def curve_value(curve: Sequence[tuple[float, float]], q: float) -> float:
    """Piecewise-linear ``curve`` at ``q``, held at its ends."""
    xs = [p[0] for p in curve]
    if q <= xs[0]:
        return curve[0][1]
    if q >= xs[-1]:
        return curve[-1][1]
    k = bisect.bisect_right(xs, q)
    (x0, y0), (x1, y1) = curve[k - 1], curve[k]
    return y0 + (y1 - y0) * (q - x0) / (x1 - x0)


@dataclass(frozen=True)
class FlowFit:
    """``outlet - critical point = static_bar + k * inflow**1.852`` (bar, m³/h)."""

    static_bar: float
    k: float
    samples: int
    q_max: float

    def loss(self, q: float) -> float:
        return self.static_bar + self.k * float(max(q, 0.0) ** HAZEN_EXPONENT)


class NotEnoughHistoryError(ValueError):
    """Too few usable samples to learn a flow curve."""


def fit_flow_curve(
    samples: Sequence[tuple[float, float, float]],
    aim_bar: float,
    *,
    min_bar: float,
    max_bar: float,
    points: int = 6,
    min_samples: int = 24,
) -> tuple[tuple[tuple[float, float], ...], FlowFit]:
    """Learn a flow curve from history: ``samples`` of (inflow m³/h, outlet bar, lowest
    critical-point bar), e.g. hourly means of a logging campaign.

    The pressure lost between the outlet and the critical point is fitted as
    ``static + k * q**1.852`` (least squares; ``k`` >= 0), and the curve asks for
    ``aim_bar + loss(q)`` at ``points`` inflows from 0 to 1.2 x the largest seen, within the
    limits. Raises :class:`NotEnoughHistoryError` with fewer than ``min_samples`` usable
    samples."""
    rows = [
        (q, out - cp)
        for q, out, cp in samples
        if all(math.isfinite(x) for x in (q, out, cp)) and q >= 0
    ]
    if len(rows) < min_samples:
        raise NotEnoughHistoryError(
            f"{len(rows)} usable hours of inflow, outlet and critical-point readings; "
            f"at least {min_samples} are needed"
        )
    xs = [q**HAZEN_EXPONENT for q, _ in rows]
    ys = [d for _, d in rows]
    n = len(rows)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    k = 0.0 if sxx <= 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    k = max(k, 0.0)
    static = my - k * mx
    q_max = max(q for q, _ in rows)
    fit = FlowFit(static, k, n, q_max)
    top = max(q_max * 1.2, 1e-3)
    curve = []
    for i in range(points):
        q = top * i / (points - 1)
        sp = min(max(aim_bar + fit.loss(q), min_bar), max_bar)
        curve.append((round(q, 3), round(sp, 2)))
    return tuple(curve), fit
