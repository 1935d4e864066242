"""Streaming alarm rules as pure state machines.

Each rule turns a stream of samples (reading time, value, quality) into *signals*: the
debounced condition switching on or off, and suppression by design switching on or off.
The evaluator state is a small frozen dataclass that the worker stores as JSON between polls,
so a worker keeps no state of its own and live evaluation equals replay on the same samples.
Times are seconds since the epoch (reading time, never the wall clock).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from enum import IntFlag, StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alarms.errors import RuleConfigError
from alarms.lifecycle import Priority

M_HEAD_PER_BAR = 10.197162  # metres of water head per bar


class Kind(StrEnum):
    HIGH = "high"
    LOW = "low"
    HIGH_HIGH = "high_high"
    LOW_LOW = "low_low"
    RATE_OF_CHANGE = "rate_of_change"
    FLATLINE = "flatline"
    OFFLINE = "offline"
    METER_FLAGS = "meter_flags"
    SERVICE_MIN = "service_min"
    MNF = "mnf"
    WATER_BALANCE = "water_balance"
    BURST = "burst"
    CUSTOMER_LEAK = "customer_leak"
    LEAK = "leak"
    FLOOD = "flood"


POINT_KINDS = frozenset(
    {
        Kind.HIGH,
        Kind.LOW,
        Kind.HIGH_HIGH,
        Kind.LOW_LOW,
        Kind.RATE_OF_CHANGE,
        Kind.FLATLINE,
        Kind.METER_FLAGS,
        Kind.SERVICE_MIN,
    }
)
ZONE_KINDS = frozenset({Kind.MNF, Kind.WATER_BALANCE, Kind.BURST, Kind.CUSTOMER_LEAK, Kind.LEAK})
LEAK_KINDS = frozenset({Kind.MNF, Kind.WATER_BALANCE, Kind.BURST, Kind.LEAK})


class MeterFlag(IntFlag):
    """Status bits of a smart water meter's flag register (a ``bitfield`` point)."""

    LEAK = 1
    BURST = 2
    TAMPER = 4
    REVERSE = 8
    LOW_BATTERY = 16
    DRY_PIPE = 32


def flag_names(bits: int) -> list[str]:
    return [f.name.lower() for f in MeterFlag if f.name is not None and bits & f]


class RuleParams(BaseModel):
    """Kind-specific settings of a rule (``alarm_rules.params``); see docs/alarms.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # rate_of_change / flatline
    window_s: float = Field(900.0, gt=0)
    # meter_flags
    mask: int = Field(int(MeterFlag.TAMPER | MeterFlag.REVERSE | MeterFlag.LOW_BATTERY), ge=1)
    # suppression by design: samples of these qualities suppress the alarm (2 = comm-fail)
    suppress_quality: list[int] = Field(default_factory=lambda: [2])
    # chattering: this many activations in chatter_window_s
    chatter_count: int = Field(3, ge=2)
    chatter_window_s: float = Field(60.0, gt=0)
    # zone analytics (mnf, water_balance, burst, customer_leak, leak)
    tz: str = "Asia/Tashkent"
    # the night window (local hours); default 2-4 for mnf, 1-5 for leak
    night_start_h: float | None = Field(None, ge=0, lt=24)
    night_end_h: float | None = Field(None, gt=0, le=24)
    allowance_lps_per_connection: float = Field(0.002, ge=0)
    baseline_days: int = Field(14, ge=3)
    # days learned before a rule may alarm; default 7 (10 for leak)
    min_history_days: int | None = Field(None, ge=1)
    min_excess_lps: float = Field(0.5, ge=0)
    k_sigma: float = Field(4.0, gt=0)
    nrw_rise_pct: float = Field(5.0, gt=0)
    # water_balance: authorized use no meter in suvnet reports (households billed by norm,
    # standpipes, the utility's own use), m³ a day; counted with the metered consumption.
    # 0: estimated from billing (billing.zone_usage) when unmetered_from_billing is true
    unmetered_m3_per_day: float = Field(0.0, ge=0)
    unmetered_from_billing: bool = True
    cusum_k: float = Field(0.5, ge=0)
    cusum_h: float = Field(8.0, gt=0)
    z_clip: float = Field(4.0, gt=0)
    accept_after_h: float = Field(48.0, gt=0)
    bucket_s: float = Field(3600.0, gt=0)
    # the points a zone rule watches: None = found by kind and unit (alarms/zone.py)
    flow_point: str | None = None
    volume_point: str | None = None
    counter_point: str | None = None
    level_point: str | None = None
    pump_point: str | None = None
    leak_hours: int = Field(24, ge=2)
    zero_threshold_m3: float = Field(0.0005, ge=0)
    # burst: watch inflow minus metered customer consumption (the losses) instead of inflow
    net_of_consumption: bool = False
    # leak (one alarm per leak event; docs/alarms.md)
    profile_days: int = Field(28, ge=7)
    day_types: list[int] = Field(
        default_factory=lambda: [0, 0, 0, 0, 0, 0, 1], min_length=7, max_length=7
    )  # Monday .. Sunday
    daily_k: float = Field(1.5, ge=0)
    daily_h: float = Field(2.5, gt=0)
    step_z: float = Field(6.0, gt=0)
    step_level_z: float = Field(4.0, ge=0)
    min_step_lps: float = Field(1.0, ge=0)
    shape_z: float = Field(8.0, ge=0)  # the day-shape step test; 0 turns it off
    shape_new_z: float = Field(8.0, ge=0)  # a new step under an open step alarm; 0: off
    # a step between shape_suspect_z and shape_z that the night after confirms (z); 0: off
    shape_suspect_z: float = Field(6.0, ge=0)
    suspect_night_z: float = Field(2.0, gt=0)
    # the balance over the customer meters' read windows (meters read daily): z; 0: off
    window_z: float = Field(4.0, ge=0)
    trend_days: int = Field(7, ge=4, le=60)
    trend_z: float = Field(2.5, gt=0)
    regrow_factor: float = Field(2.0, gt=1)
    regrow_from_lps: float = Field(2.0, ge=0)
    close_after_days: int = Field(3, ge=0)
    transfer_z: float = Field(3.0, gt=0)
    neighbours: list[str] = Field(default_factory=list)
    settle_h: float = Field(2.0, ge=0)
    # leak: a zone's hours are not judged while a boundary valve of it is open (work orders)
    valve_pause: bool = False
    # leak: a neighbour's fall across a boundary valve the work orders say is open is a transfer
    valve_transfers: bool = True
    valve_settle_h: float = Field(1.0, ge=0)
    valve_open_max_h: float = Field(72.0, gt=0)
    balance_delay_h: float | None = Field(None, ge=0, le=96)
    read_gap_h: float = Field(50.0, gt=0)
    max_lag_h: float = Field(6.0, gt=0)
    use_counters: bool = True
    hourly_net: bool | None = None
    # health: a rule whose points sent nothing for this long raises a '<rule>:health' alarm
    # (live); default 6 h (48 h for customer_leak)
    no_data_h: float | None = Field(None, gt=0)

    def night(self, kind: Kind) -> tuple[float, float]:
        """The night window (local hours) of a rule of ``kind``."""
        dflt = (1.0, 5.0) if kind is Kind.LEAK else (2.0, 4.0)
        a = dflt[0] if self.night_start_h is None else self.night_start_h
        b = dflt[1] if self.night_end_h is None else self.night_end_h
        return a, b

    def history_days(self, kind: Kind) -> int:
        if self.min_history_days is not None:
            return self.min_history_days
        return 10 if kind is Kind.LEAK else 7

    def stale_after_h(self, kind: Kind) -> float:
        if self.no_data_h is not None:
            return self.no_data_h
        return 48.0 if kind is Kind.CUSTOMER_LEAK else 6.0


@dataclass(frozen=True)
class RuleConfig:
    """One alarm rule, validated. ``limit`` is in the point's unit."""

    id: int
    code: str
    kind: Kind
    priority: Priority = Priority.MEDIUM
    unit: str = ""
    limit: float | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    max_shelve_s: float = 8 * 3600.0
    point_id: int | None = None
    zone_id: int | None = None
    device_id: int | None = None
    position_id: int = 1
    params: RuleParams = field(default_factory=RuleParams)

    @classmethod
    def build(cls, **kw: Any) -> RuleConfig:
        """Validate a rule (from a database row or a site file); raise RuleConfigError."""
        code = str(kw.get("code", "?"))
        try:
            kind = Kind(kw["kind"])
        except (KeyError, ValueError) as exc:
            raise RuleConfigError(f"rule {code}: unknown kind {kw.get('kind')!r}", "kind") from exc
        try:
            params = RuleParams.model_validate(kw.pop("params", None) or {})
        except ValidationError as exc:
            raise RuleConfigError(f"rule {code}: bad params: {exc}", "params") from exc
        kw["kind"] = kind
        kw["priority"] = Priority(kw.get("priority", "medium"))
        cfg = cls(params=params, **kw)
        limited = (Kind.HIGH, Kind.LOW, Kind.HIGH_HIGH, Kind.LOW_LOW, Kind.RATE_OF_CHANGE)
        if kind in limited and (cfg.limit is None or not math.isfinite(cfg.limit)):
            raise RuleConfigError(f"rule {code}: a {kind.value} rule needs a limit", "limit")
        if kind in POINT_KINDS and cfg.point_id is None:
            raise RuleConfigError(f"rule {code}: a {kind.value} rule needs a point", "point")
        if kind in ZONE_KINDS and cfg.zone_id is None:
            raise RuleConfigError(f"rule {code}: a {kind.value} rule needs a zone", "zone")
        return cfg


@dataclass(frozen=True)
class Sample:
    ts: float
    value: float | None
    quality: int = 0


@dataclass(frozen=True)
class Signal:
    """``condition``: the debounced alarm condition switched; ``suppress``: design suppression."""

    kind: Literal["condition", "suppress"]
    on: bool
    ts: float
    value: float | None = None
    message: str = ""


@dataclass(frozen=True)
class EvalState:
    """Evaluator state of one rule (stored as JSON in alarm_rule_state.eval_state)."""

    active: bool = False
    pending_since: float | None = None
    ref_ts: float | None = None
    ref_value: float | None = None
    window: tuple[tuple[float, float], ...] = ()
    suppressed: bool = False
    last_ts: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = [list(p) for p in self.window]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> EvalState:
        if not d:
            return cls()
        d = dict(d)
        d["window"] = tuple((float(a), float(b)) for a, b in d.get("window", ()))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def service_limit(min_service_bar: float, unit: str) -> float:
    """The zone's minimum service pressure (bar) expressed in the point's unit."""
    u = unit.strip().lower()
    if u in ("bar", ""):
        return min_service_bar
    if u in ("m", "m head", "mh2o", "m h2o"):
        return min_service_bar * M_HEAD_PER_BAR
    if u == "kpa":
        return min_service_bar * 100.0
    raise RuleConfigError(f"cannot compare a pressure in unit {unit!r} with the zone minimum (bar)")


def _raw_condition(cfg: RuleConfig, st: EvalState, v: float, limit: float) -> bool:
    """The undebounced condition with hysteresis (deadband) around the limit."""
    high = cfg.kind in (Kind.HIGH, Kind.HIGH_HIGH)
    if high:
        if v > limit:
            return True
        return st.active and v >= limit - cfg.deadband
    if v < limit:
        return True
    return st.active and v <= limit + cfg.deadband


def _debounce(
    cfg: RuleConfig, st: EvalState, raw: bool, ts: float, *, value: float | None, msg: str
) -> tuple[EvalState, list[Signal]]:
    """On/off delays: the raw condition must hold for on_delay_s (off_delay_s) to switch."""
    if raw == st.active:
        return replace(st, pending_since=None), []
    since = st.pending_since if st.pending_since is not None else ts
    delay = cfg.on_delay_s if raw else cfg.off_delay_s
    if ts - since >= delay:
        return replace(st, active=raw, pending_since=None), [
            Signal("condition", raw, ts, value, msg if raw else "returned to normal")
        ]
    return replace(st, pending_since=since), []


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def step(
    cfg: RuleConfig, st: EvalState, s: Sample, limit: float | None = None
) -> tuple[EvalState, list[Signal]]:
    """Feed one sample to a point rule. ``limit`` overrides cfg.limit (service_min)."""
    out: list[Signal] = []
    if st.last_ts is not None and s.ts <= st.last_ts:
        return st, out  # already seen (or out of order): the watermark makes this rare
    st = replace(st, last_ts=s.ts)
    # suppression by design: the instrument says its value cannot be trusted
    bad = s.quality in cfg.params.suppress_quality
    if bad != st.suppressed:
        st = replace(st, suppressed=bad)
        out.append(Signal("suppress", bad, s.ts, s.value, f"reading quality {s.quality}"))
    if s.value is None or s.quality != 0 or not math.isfinite(s.value):
        return st, out
    v = float(s.value)
    kind = cfg.kind
    if kind in (Kind.HIGH, Kind.LOW, Kind.HIGH_HIGH, Kind.LOW_LOW, Kind.SERVICE_MIN):
        lim = limit if limit is not None else cfg.limit
        if lim is None:
            return st, out
        eff = cfg if kind is not Kind.SERVICE_MIN else replace(cfg, kind=Kind.LOW)
        raw = _raw_condition(eff, st, v, lim)
        word = "above" if kind in (Kind.HIGH, Kind.HIGH_HIGH) else "below"
        msg = f"{_fmt(v)} {cfg.unit} {word} limit {_fmt(lim)} {cfg.unit}".replace("  ", " ")
        st, sig = _debounce(cfg, st, raw, s.ts, value=v, msg=msg)
        return st, out + sig
    if kind is Kind.RATE_OF_CHANGE:
        w = cfg.params.window_s
        window = (*(p for p in st.window if p[0] >= s.ts - w), (s.ts, v))
        t0, v0 = window[0]
        rate = (v - v0) / (s.ts - t0) * 3600.0 if s.ts > t0 else 0.0
        assert cfg.limit is not None
        raw = abs(rate) > cfg.limit or (st.active and abs(rate) >= cfg.limit - cfg.deadband)
        msg = f"changing {_fmt(rate)} {cfg.unit}/h, limit {_fmt(cfg.limit)} {cfg.unit}/h"
        st, sig = _debounce(cfg, replace(st, window=window), raw, s.ts, value=v, msg=msg)
        return st, out + sig
    if kind is Kind.FLATLINE:
        if st.ref_value is None or st.ref_ts is None or abs(v - st.ref_value) > cfg.deadband:
            st = replace(st, ref_value=v, ref_ts=s.ts)
            if st.active:
                st = replace(st, active=False)
                out.append(Signal("condition", False, s.ts, v, "value moving again"))
            return st, out
        ref_ts = st.ref_ts
        if not st.active and s.ts - ref_ts >= cfg.params.window_s:
            st = replace(st, active=True)
            mins = (s.ts - ref_ts) / 60
            out.append(
                Signal("condition", True, s.ts, v, f"value stuck at {_fmt(v)} for {mins:.0f} min")
            )
        return st, out
    if kind is Kind.METER_FLAGS:
        bits = int(v) & cfg.params.mask
        msg = "meter reports " + ", ".join(flag_names(bits)) if bits else ""
        st, sig = _debounce(cfg, st, bits != 0, s.ts, value=v, msg=msg)
        return st, out + sig
    raise RuleConfigError(f"rule {cfg.code}: kind {kind.value} is not evaluated on samples")


def step_offline(cfg: RuleConfig, st: EvalState, ts: float, online: bool) -> EvalState:
    """Record a device state change (from device_state / device_state_history)."""
    if online:
        return replace(st, ref_ts=None)
    if st.ref_ts is None:
        return replace(st, ref_ts=ts)
    return st


def tick_offline(
    cfg: RuleConfig, st: EvalState, now: float, online_since: float | None
) -> tuple[EvalState, list[Signal]]:
    """The device has been offline since ``st.ref_ts``: alarm after on_delay_s.

    The signal carries the event time (offline start + delay, or the time it came back),
    not the time of the check, so live and replay agree.
    """
    if st.ref_ts is not None and not st.active and now - st.ref_ts >= cfg.on_delay_s:
        mins = cfg.on_delay_s / 60
        return replace(st, active=True), [
            Signal(
                "condition",
                True,
                st.ref_ts + cfg.on_delay_s,
                None,
                f"device offline for more than {mins:g} min",
            )
        ]
    if st.ref_ts is None and st.active:
        t = online_since if online_since is not None else now
        return replace(st, active=False), [Signal("condition", False, t, None, "device online")]
    return st, []
