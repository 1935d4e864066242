"""The leak-event detector of a DMA (rule kind ``leak``), as a pure state machine.

One rule per DMA watches its demand (net inflow of the district meters minus the filling of
its tanks, with transfers from and to neighbouring DMAs taken out) with the detectors below, and
keeps **one leak event** per leak:

* **burst** (every bucket): a one-sided CUSUM of the standardised residual against a learned
  profile per day type (weekday, Sunday ...) and hour; for large, sudden bursts.
* **night** (at the end of the night window): the mean night flow against the median of the
  last leak-free nights; a CUSUM over nights and a trend test.
* **balance** (once a day, when the daily meter reads of the day are in): the day's losses =
  inflow - metered use - the use of the households without a meter (from their norm bills).
  With meters read daily, the unmetered use is also scaled by how much the metered households
  used that day against their usual (a demand index), whichever of the two is steadier in the
  DMA's history. A CUSUM over days and a trend test. Once it has learned, a DMA with meters
  read daily is judged instead by its inflow against a line fitted over the leak-free days
  (inflow = a + b x metered use; the residual is the leak), with its own CUSUM.
* **window** (every bucket, where customer meters are read once a day or so): each meter's
  last two reads give its use over its own read window, and the DMA's demand over the same
  windows is known. Every bucket, the inflow over the windows is judged against the
  metered use over them by a line fitted on the hours of the last leak-free days that end a
  day before (the regression balance's model, on the meters' own windows instead of
  calendar days). A meter read at 09:00 has seen a leak that started at 02:00; the calendar
  day is known only about 26 h after it ends.
* **trend**: a Mann-Kendall test and a Theil-Sen slope over the last nights and days: a leak
  that grows a little every day is seen before it is large.
* **shape** (every bucket, where customers are not read hourly): a leak is a step that stays,
  while the weather moves a whole day's demand together. The leak-free days' demand curves
  are learned as a few day shapes (the first ``shape_rank`` singular vectors of the last
  ``shape_days`` days), and the buckets since the start of yesterday are fitted as each day's
  own mix of those shapes plus a step at some bucket of the last day (weighted least squares,
  weighted by each bucket's learned scatter). The step with the largest z opens the event when
  that z passes ``shape_z``: an abrupt leak is found on the day it starts, in DMAs whose
  customer meters are read once a day.
  While an event opened by a step (shape, burst) is open, the test goes on over the buckets
  after that step, with the open leak's flow as a level: a new step above ``shape_new_z``
  that fits better than a steady rise (a leak that grows) is a second leak, and raises the
  alarm again.

The first detector that fires opens the event (the alarm). Further evidence only updates its
size estimate (L/s with a 90 % interval) and its time series; the alarm is raised again only
when the estimate has grown by ``regrow_factor`` (in the first ``settle_daily_s`` of a leak
found by a daily detector: by ``regrow_factor`` squared since it was opened, as such a leak is
mostly found while it grows), and never below ``regrow_factor`` x ``regrow_from_lps``: a leak
found small follows its estimate until it is a large one. The event ends when the leak is
reported repaired (:func:`repaired`) or, without a repair, after ``close_after_days`` days in
which no detector sees it any more. Nothing is learned while an event is open.

Transfers: when a neighbouring DMA's demand falls by about as much as this DMA's rises, in
the same hour, the water was moved (a boundary valve opened), it did not leak: the rise is
taken out of this DMA's demand before any detector sees it. The DMA that gave the water sees
a night or a day far below its usual: such a one (``low_skip_z``) is not learned, up to
``low_skip_days`` in a row, as it would widen the baselines and hide a leak that follows; a
longer fall is a new level, and is learned. Where the work orders say a boundary valve to a
neighbour was open (``Hour.valve_to``), that neighbour's fall while this DMA rises is taken as
water moved however small it is or however loosely the two meters agree, and neither DMA's
hours go into this rule's hourly profiles (``valve_transfers``). With ``valve_pause`` on,
those hours (``Hour.valve_open``) are not judged and not learned at all instead: the flows
cannot tell how much water moved, least of all when the neighbour has a leak of its own.

Every input is a value; times are seconds since the epoch (reading time). The state
(:class:`LeakState`) is stored as JSON by :meth:`LeakState.to_json` and restored by
:meth:`LeakState.from_json`, so a worker keeps nothing in memory and replay equals live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from alarms.analytics import (
    F64,
    SlotProfile,
    diff_sigma,
    inlier_mean,
    mann_kendall_z,
    robust_sigma,
    t_to_z,
    theil_sen,
)

Z90 = 1.6449  # two-sided 90 % interval of a normal estimate
DF_SHARE = 0.4


@dataclass(frozen=True)
class LeakSettings:
    """The detector's settings (from the rule's params; see docs/alarms.md)."""

    n_slots: int = 24
    night_slots: int = 4  # buckets in the night window
    profile_days: int = 28  # history of the hourly profile
    baseline_days: int = 14  # nights and days in the night / balance baselines (sigma)
    level_days: int = 0  # the usual level: the median of the last ... (0: all of them)
    min_history_days: int = 10
    min_leak_lps: float = 0.5
    k: float = 1.5  # night and balance CUSUM: allowance (sigmas)
    h: float = 2.5  # night and balance CUSUM: threshold (sigmas)
    z_clip: float = 6.0
    burst_after_h: int = 3  # burst: median residual of the last 3 buckets ...
    burst_before_h: int = 6  # ... minus that of the 6 before them (a step)
    burst_z: float = 6.0  # the step, standardised by its own history at this hour
    burst_level_z: float = 4.0  # and the level is this many sigmas above the usual ...
    burst_hours: int = 4  # ... and stays at half the step or more for this many buckets
    min_burst_lps: float = 1.0
    hourly_cusum: bool = False  # the demand is the hourly losses (customers read hourly)
    hour_k: float = 0.5
    hour_h: float = 10.0
    hour_z_clip: float = 4.0
    # the day's hourly losses are judged on the mean of the hours within this many robust
    # sigmas of the day's median, and a night hour whose excess over its usual is this many
    # of its sigmas from the night's median excess is taken at its usual plus that median
    # (0: neither): an hour in which a large meter lost a reading (a boundary meter's flow
    # sample, a big customer's register) is off by tens of L/s, while a leak moves the
    # hours it runs in by a few sigmas
    hour_outlier_z: float = 4.0
    trend_days: int = 7
    trend_z: float = 2.5
    regrow_factor: float = 2.0
    # growth is counted from at least this size: a leak found at 0.5 L/s is raised again
    # when it passes regrow_factor x 2 L/s (its size on the alarm follows it until then),
    # not each time it doubles on its way there
    regrow_from_lps: float = 2.0
    settle_estimate_s: float = 30 * 3600.0  # a burst's estimate settles until the next night
    # a leak found by a daily detector is mostly found while it grows: its first estimate is
    # low, and in these first days the alarm is raised again only for regrow_factor squared
    settle_daily_s: float = 72 * 3600.0
    size_rel_sigma: float = 0.2  # the size's sigma also allows this share of the estimate
    close_after_days: int = 3
    transfer_z: float = 3.0
    settle_s: float = 7200.0  # after a repair: flows settle, nothing is judged
    min_sigma_lps: float = 0.05
    min_sigma_pct: float = 2.0  # night and balance: sigma at least this % of the level
    # the balance against the metered households (daily reads): inflow = a + b x metered use,
    # fitted over the leak-free days; its residual is the leak, judged by its own CUSUM
    reg_k: float = 1.0
    reg_h: float = 2.0
    reg_min_sigma_pct: float = 2.0  # its sigma at least this % of the day's inflow
    # the balance over the customer meters' read windows: opens the event at this z (0: off);
    # the windows lie in the last window_days of the demand
    window_z: float = 4.0
    window_days: int = 3
    window_min_sigma_pct: float = 2.0  # its sigma at least this % of the windows' inflow
    # the day-shape step test (0: off; never where the demand is the hourly losses)
    shape_z: float = 8.0
    shape_rank: int = 4  # day shapes learned
    shape_days: int = 21  # leak-free days they are learned from
    shape_min_tail: int = 3  # buckets after the step before it is judged
    # while an event opened by a step (shape, burst) is open: a new step this large (z) is a
    # second leak, and the alarm is raised again (0: not sought)
    shape_new_z: float = 8.0
    # a step under shape_z but above this (z) is a suspect: the night after it confirms it
    # when that night is suspect_night_z above its usual by half the step or more (0: off)
    shape_suspect_z: float = 6.0
    suspect_night_z: float = 2.0
    # a night or day this many sigmas below its usual is not learned, up to low_skip_days
    # of them in a row (a transfer out, a supply cut); after that it is a new level
    low_skip_z: float = 2.0
    low_skip_days: int = 2
    # while a boundary valve of the zone is open (Hour.valve_open) its demand is not judged
    # nor learned: the water moved through the valve is not measured, and a neighbour's own
    # leak would make any estimate of it wrong. Off by default: a leak that starts while the
    # valve is open is found late (docs/alarms.md)
    valve_pause: bool = False
    # while a boundary valve to a neighbour is open (Hour.valve_to, from the work orders),
    # the neighbour's fall while this zone rises is water moved through it, however small or
    # ill-matched, and neither zone's hours go into the hourly profiles (valve_pause wins)
    valve_transfers: bool = True


@dataclass(frozen=True)
class Size:
    """A leak-size estimate in L/s with its 90 % interval."""

    lps: float
    low: float
    high: float

    @property
    def m3_per_day(self) -> float:
        return self.lps * 86.4

    @property
    def sigma(self) -> float:
        """The estimate's sigma (from the upper bound: :meth:`of` clips the lower one at 0)."""
        return (self.high - self.lps) / Z90

    def to_json(self) -> list[float]:
        return [self.lps, self.low, self.high]

    @classmethod
    def of(cls, est: float, sigma: float) -> Size:
        return cls(est, max(0.0, est - Z90 * sigma), est + Z90 * sigma)


@dataclass
class Evidence:
    """The latest excess seen by one detector: L/s above its baseline, sigma, time."""

    lps: float
    sigma: float
    ts: float


@dataclass
class Suspect:
    """A step the day-shape test found under ``shape_z``: the night after it may confirm it."""

    lps: float
    sigma: float
    z: float
    ts: float  # when it stepped
    minute: int  # its local time of day
    day: int  # its local day

    def to_json(self) -> list[float]:
        return [self.lps, self.sigma, self.z, self.ts, self.minute, self.day]

    @classmethod
    def from_json(cls, v: Any) -> Suspect | None:
        if not v:
            return None
        lps, sigma, z, ts, minute, day = v
        return cls(float(lps), float(sigma), float(z), float(ts), int(minute), int(day))


@dataclass
class LeakEvent:
    opened_at: float
    detector: str
    size: Size
    alarmed: float  # the size when the alarm was last raised
    quiet_days: int = 0
    first: float = math.nan  # the size when it was opened (or last raised in its first days)
    stepped: float = math.nan  # the day-shape test looks for a new step after this time
    low: float = math.nan  # the lowest estimate since the alarm was last raised

    def __post_init__(self) -> None:
        if not math.isfinite(self.first):
            self.first = self.alarmed
        if not math.isfinite(self.stepped):
            self.stepped = self.opened_at


@dataclass
class DayAcc:
    """The demand of one local day, bucket by bucket (after transfers are taken out)."""

    sum_lps: float = 0.0
    n: int = 0
    night_sum: float = 0.0
    night_n: int = 0
    transfer_m3: float = 0.0
    start: float = math.inf
    night_lps: float = math.nan  # the night's mean, once judged
    hours: list[float] = field(default_factory=list)  # each bucket's (hourly losses only)
    # each night bucket's value, its usual value and scatter (hourly losses only)
    night_hours: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class DayFigures:
    """What the balance of one day found (for ``zone_leak_daily``)."""

    inflow_m3: float
    losses_m3: float
    night_lps: float
    transfer_m3: float


@dataclass
class Detector:
    """A daily detector's history (leak-free values), CUSUM and recent values for trends."""

    hist: list[float] = field(default_factory=list)
    s: float = 0.0
    recent: list[float] = field(default_factory=list)
    low_days: int = 0  # days in a row far below the usual (not learned: see _act)

    def to_json(self) -> dict[str, Any]:
        return {"hist": self.hist, "s": self.s, "recent": self.recent, "low_days": self.low_days}

    @classmethod
    def from_json(cls, d: Any) -> Detector:
        d = d or {}
        return cls(
            [float(x) for x in d.get("hist", [])],
            float(d.get("s", 0.0)),
            [float(x) for x in d.get("recent", [])],
            int(d.get("low_days", 0)),
        )


@dataclass
class RegDetector:
    """The regression balance: leak-free days' (metered use, inflow) in L/s, and its CUSUM."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    s: float = 0.0
    low_days: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "s": self.s, "low_days": self.low_days}

    @classmethod
    def from_json(cls, d: Any) -> RegDetector:
        d = d or {}
        return cls(
            [float(v) for v in d.get("x", [])],
            [float(v) for v in d.get("y", [])],
            float(d.get("s", 0.0)),
            int(d.get("low_days", 0)),
        )


@dataclass
class WindowDetector:
    """The balance over the customer meters' read windows: the demand of the last
    ``window_days`` (L/s a bucket after transfers, oldest first; NaN: unknown) and the learned
    hours (their end, the metered use and the inflow over their windows, L/s)."""

    q: list[float] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        q = [v if math.isfinite(v) else None for v in self.q]
        return {"q": q, "t": self.t, "x": self.x, "y": self.y}

    @classmethod
    def from_json(cls, d: Any) -> WindowDetector:
        d = d or {}
        return cls(
            [math.nan if v is None else float(v) for v in d.get("q", [])],
            *([float(v) for v in d.get(k, [])] for k in ("t", "x", "y")),
        )

    def keep_between(self, since: float, until: float) -> None:
        """Keep only the learned hours that end in [``since``, ``until``]."""
        keep = [i for i, t in enumerate(self.t) if since <= t <= until]
        self.t, self.x, self.y = ([v[i] for i in keep] for v in (self.t, self.x, self.y))


@dataclass
class LeakState:
    """Everything the leak detector of one DMA remembers (``alarm_rule_state.eval_state``)."""

    profile: SlotProfile = field(default_factory=SlotProfile)
    neighbours: dict[str, SlotProfile] = field(default_factory=dict)
    transfers: dict[str, float] = field(default_factory=dict)  # L/s moved last bucket
    resid: list[float] = field(default_factory=list)  # the last residuals (NaN: none)
    steps: SlotProfile = field(default_factory=SlotProfile)  # learned steps per hour
    hour_s: float = 0.0  # hourly CUSUM (hourly_cusum)
    hour_run: list[float] = field(default_factory=list)
    burst_hits: int = 0  # buckets since a step up, while the demand stays up
    burst_size: float = 0.0  # L/s: that step
    burst_sigma: float = 0.0
    night: Detector = field(default_factory=Detector)
    balance: Detector = field(default_factory=Detector)
    balance_idx: Detector = field(default_factory=Detector)
    balance_reg: RegDetector = field(default_factory=RegDetector)
    window: WindowDetector = field(default_factory=WindowDetector)
    per_meter: list[float] = field(default_factory=list)  # metered use per meter, clean days
    shape_hist: list[list[float]] = field(default_factory=list)  # leak-free days' demand
    shape_cur: dict[int, list[float]] = field(default_factory=dict)  # this day's and the last
    shape_quiet_until: float = -math.inf  # a transfer was under way: no day-shape verdict
    suspect: Suspect | None = None  # a step found under shape_z, waiting for the night
    days: dict[int, DayAcc] = field(default_factory=dict)
    evidence: dict[str, Evidence] = field(default_factory=dict)
    event: LeakEvent | None = None
    quiet_until: float = -math.inf
    valve_until: float = -math.inf  # the end of the last bucket with a boundary valve open
    # the figures of the days balanced by the last call (read by the caller; not stored)
    figures: dict[int, DayFigures] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        ev = self.event
        return {
            "profile": self.profile.to_json(),
            "neighbours": {k: v.to_json() for k, v in self.neighbours.items()},
            "transfers": self.transfers,
            "resid": [r if math.isfinite(r) else None for r in self.resid],
            "steps": self.steps.to_json(),
            "burst_hits": self.burst_hits,
            "hour_s": self.hour_s,
            "hour_run": self.hour_run,
            "burst_size": self.burst_size,
            "burst_sigma": self.burst_sigma,
            "night": self.night.to_json(),
            "balance": self.balance.to_json(),
            "balance_idx": self.balance_idx.to_json(),
            "balance_reg": self.balance_reg.to_json(),
            "window": self.window.to_json(),
            "per_meter": self.per_meter,
            "shape_hist": self.shape_hist,
            "shape_cur": {
                str(k): [v if math.isfinite(v) else None for v in vals]
                for k, vals in self.shape_cur.items()
            },
            "shape_quiet_until": (
                self.shape_quiet_until if math.isfinite(self.shape_quiet_until) else None
            ),
            "suspect": None if self.suspect is None else self.suspect.to_json(),
            "days": {
                str(k): [
                    d.sum_lps,
                    d.n,
                    d.night_sum,
                    d.night_n,
                    d.transfer_m3,
                    d.start,
                    d.night_lps if math.isfinite(d.night_lps) else None,
                    d.hours,
                    [[v if math.isfinite(v) else None for v in h] for h in d.night_hours],
                ]
                for k, d in self.days.items()
            },
            "evidence": {k: [e.lps, e.sigma, e.ts] for k, e in self.evidence.items()},
            "event": None
            if ev is None
            else {
                "opened_at": ev.opened_at,
                "detector": ev.detector,
                "size": ev.size.to_json(),
                "alarmed": ev.alarmed,
                "quiet_days": ev.quiet_days,
                "first": ev.first,
                "stepped": ev.stepped,
                "low": ev.low if math.isfinite(ev.low) else None,
            },
            "quiet_until": self.quiet_until if math.isfinite(self.quiet_until) else None,
            "valve_until": self.valve_until if math.isfinite(self.valve_until) else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> LeakState:
        d = d or {}
        ev = d.get("event")
        return cls(
            profile=SlotProfile.from_json(d.get("profile")),
            neighbours={k: SlotProfile.from_json(v) for k, v in d.get("neighbours", {}).items()},
            transfers={k: float(v) for k, v in d.get("transfers", {}).items()},
            resid=[math.nan if r is None else float(r) for r in d.get("resid", [])],
            steps=SlotProfile.from_json(d.get("steps")),
            burst_hits=int(d.get("burst_hits", 0)),
            hour_s=float(d.get("hour_s", 0.0)),
            hour_run=[float(x) for x in d.get("hour_run", [])],
            burst_size=float(d.get("burst_size", 0.0)),
            burst_sigma=float(d.get("burst_sigma", 0.0)),
            night=Detector.from_json(d.get("night")),
            balance=Detector.from_json(d.get("balance")),
            balance_idx=Detector.from_json(d.get("balance_idx")),
            balance_reg=RegDetector.from_json(d.get("balance_reg")),
            window=WindowDetector.from_json(d.get("window")),
            per_meter=[float(x) for x in d.get("per_meter", [])],
            shape_hist=[[float(v) for v in row] for row in d.get("shape_hist", [])],
            shape_cur={
                int(k): [math.nan if v is None else float(v) for v in vals]
                for k, vals in d.get("shape_cur", {}).items()
            },
            shape_quiet_until=-math.inf
            if d.get("shape_quiet_until") is None
            else float(d["shape_quiet_until"]),
            suspect=Suspect.from_json(d.get("suspect")),
            days={int(k): _day_acc(v) for k, v in d.get("days", {}).items()},
            evidence={
                k: Evidence(float(a), float(b), float(c))
                for k, (a, b, c) in d.get("evidence", {}).items()
            },
            event=None
            if not ev
            else LeakEvent(
                float(ev["opened_at"]),
                str(ev["detector"]),
                Size(*(float(x) for x in ev["size"])),
                float(ev["alarmed"]),
                int(ev.get("quiet_days", 0)),
                float(ev.get("first", ev["alarmed"])),
                float(ev.get("stepped", ev["opened_at"])),
                math.nan if ev.get("low") is None else float(ev["low"]),
            ),
            quiet_until=-math.inf if d.get("quiet_until") is None else float(d["quiet_until"]),
            valve_until=-math.inf if d.get("valve_until") is None else float(d["valve_until"]),
        )


def _day_acc(v: list[Any]) -> DayAcc:
    night = math.nan if len(v) < 7 or v[6] is None else float(v[6])
    hours = [float(x) for x in v[7]] if len(v) > 7 else []
    night_hours = (
        [[math.nan if x is None else float(x) for x in h] for h in v[8]] if len(v) > 8 else []
    )
    return DayAcc(
        float(v[0]), int(v[1]), float(v[2]), int(v[3]), float(v[4]), float(v[5]), night, hours,
        night_hours,
    )  # fmt: skip


SignalKind = Literal["open", "update", "regrow", "close"]


@dataclass(frozen=True)
class LeakSignal:
    """What the detector tells the alarm: ``open`` (raise the alarm), ``update`` (new size
    estimate, no new alarm), ``regrow`` (the leak has grown: raise it again), ``close`` (the
    leak is no longer seen)."""

    kind: SignalKind
    ts: float
    detector: str
    size: Size
    detail: str = ""


@dataclass(frozen=True)
class Hour:
    """One bucket of the DMA's demand."""

    t_end: float
    day: int  # the local day (any increasing day number) of the bucket's start
    day_type: int
    slot: int
    demand_lps: float  # NaN: unknown
    night: bool = False  # the bucket lies in the night window
    transient: bool = False  # a pump switched within it and its flow is a sampled mean
    spread: bool = False  # a register was interpolated across a gap: its hours are not known
    neighbours: dict[str, float] = field(default_factory=dict)
    # the customer meters' last read windows at the bucket's end (where they are read once a
    # day or so): their use (L/s, scaled to all the metered households; NaN: unknown) and how
    # much of the windows falls in each of the last buckets (oldest first, this one last;
    # sums to 1). None: no windows
    window_use_lps: float = math.nan
    window_weights: F64 | None = field(default=None, compare=False)
    # the zones (codes, as in ``neighbours``) across a boundary valve of this zone that was
    # open in the bucket (work orders)
    valve_to: tuple[str, ...] = ()

    @property
    def valve_open(self) -> bool:
        """A boundary valve between this zone and a neighbour was open in the bucket."""
        return bool(self.valve_to)


# ------------------------------------------------------------------ helpers
def _clip(z: float, c: float) -> float:
    return max(-c, min(c, z))


def _size(
    st: LeakState, now: float, since: float, rel_sigma: float = 0.0
) -> tuple[Size, float] | None:
    """The combined size estimate (inverse-variance weighted) from the detectors' evidence
    seen since ``since`` and in the last 36 hours. Its sigma adds ``rel_sigma`` of the
    estimate: a leak's flow follows the pressure over the day (the night sees more of it),
    and a baseline drifts."""
    fresh = [
        e for e in st.evidence.values() if e.ts >= since and now - e.ts <= 36 * 3600 and e.sigma > 0
    ]
    if not fresh:
        return None
    w = np.array([1.0 / e.sigma**2 for e in fresh])
    est = float(np.sum(w * np.array([e.lps for e in fresh])) / w.sum())
    sigma = float(math.hypot(1.0 / math.sqrt(w.sum()), rel_sigma * est))
    return Size.of(max(est, 0.0), sigma), sigma


def _open(
    st: LeakState,
    cfg: LeakSettings,
    ts: float,
    detector: str,
    detail: str,
    *,
    evidence: Evidence | None = None,
) -> list[LeakSignal]:
    """Open the event; ``evidence``: what the detector that opens it measured."""
    if evidence is not None:
        st.evidence[detector] = evidence
    got = _size(st, ts, ts, cfg.size_rel_sigma)
    size = got[0] if got else Size(0.0, 0.0, 0.0)
    st.event = LeakEvent(ts, detector, size, size.lps)
    # the read windows of the last day may hold the leak's start: they are not learned
    st.window.keep_between(-math.inf, ts - 86400.0)
    return [LeakSignal("open", ts, detector, size, detail)]


def _update(st: LeakState, cfg: LeakSettings, ts: float, detector: str) -> list[LeakSignal]:
    ev = st.event
    if ev is None:
        return []
    got = _size(st, ts, ev.opened_at, cfg.size_rel_sigma)
    if got is None:
        return []
    size, sigma = got
    ev.size = size
    out = [LeakSignal("update", ts, detector, size)]
    if ev.detector in ("burst", "losses") and ts - ev.opened_at < cfg.settle_estimate_s:
        # a burst found within hours is measured better by the night after: the alarm is
        # not raised again for what was a first under-estimate
        ev.alarmed = max(ev.alarmed, size.lps)
        return out
    settling = ts - ev.opened_at < cfg.settle_daily_s
    # a leak found by the nights or the balance is mostly found while it grows, and is bigger
    # by the next days: in its first days it is raised again only when it has grown by the
    # factor twice over since it was opened (a new leak under a small one), not for that growth
    ref, factor = (ev.first, cfg.regrow_factor**2) if settling else (ev.alarmed, cfg.regrow_factor)
    need = max(factor * ref, cfg.regrow_factor * cfg.regrow_from_lps)
    ev.low = min(ev.low, size.lps) if math.isfinite(ev.low) else size.lps
    grown = f"grown from {ref:.2f} L/s"
    if ev.low <= min(cfg.min_leak_lps, ev.alarmed / cfg.regrow_factor):
        # what the alarm was raised for faded to nothing since (a false alarm, or a leak that
        # stopped by itself): a new leak under it is raised again once it is regrow_factor
        # times what was raised, without waiting for regrow_factor x regrow_from_lps
        ref = ev.alarmed
        need = max(cfg.regrow_factor * ref, cfg.regrow_from_lps)
        grown = f"raised for {ref:.2f} L/s, which had faded to {ev.low:.2f} L/s"
    if size.lps > need and size.lps - ref > max(cfg.min_leak_lps, 2 * sigma):
        out.append(LeakSignal("regrow", ts, detector, size, grown))
        ev.alarmed = ev.first = ev.low = size.lps
    elif settling:
        ev.alarmed = max(ev.alarmed, size.lps)
    return out


def _quiet_day(st: LeakState, cfg: LeakSettings, ts: float, z: float) -> list[LeakSignal]:
    """While an event is open: count the days on which the leak is not seen any more."""
    ev = st.event
    if ev is None:
        return []
    ev.quiet_days = ev.quiet_days + 1 if z < 1.0 else 0
    if cfg.close_after_days > 0 and ev.quiet_days >= cfg.close_after_days:
        size = ev.size
        _reset(st, ts)
        return [
            LeakSignal("close", ts, ev.detector, size, f"not seen for {cfg.close_after_days} days")
        ]
    return []


def _reset(st: LeakState, ts: float) -> None:
    st.event = None
    st.resid, st.burst_hits, st.hour_s, st.hour_run = [], 0, 0.0, []
    for d in (st.night, st.balance, st.balance_idx):
        d.s, d.recent = 0.0, []
    st.balance_reg.s = 0.0
    st.evidence = {}
    st.shape_cur = {}
    st.suspect = None


def _baseline(hist: list[float], cfg: LeakSettings) -> tuple[float, float, float]:
    """(median, sigma, degrees of freedom) of a daily detector's recent leak-free values."""
    h = np.array(hist[-cfg.baseline_days :], dtype=np.float64)
    recent = h[-cfg.level_days :] if cfg.level_days > 0 else h
    base = float(np.median(recent))
    # the larger of the spread and the day-to-day change: neither a slow drift nor days that
    # follow each other (weather) make the sigma too small
    sig = max(robust_sigma(h), diff_sigma(h))
    if not math.isfinite(sig):
        sig = cfg.min_sigma_lps
    sig = max(sig, cfg.min_sigma_lps, cfg.min_sigma_pct / 100 * abs(base))
    # the next value scatters around an estimated median (x sqrt(1 + 1/n)); a MAD from n
    # values is about as sure as a standard deviation from 0.4 n
    return base, sig * math.sqrt(1 + 1 / recent.size), max(2.0, DF_SHARE * h.size)


@dataclass(frozen=True)
class Judgement:
    """A daily detector's verdict on one value."""

    excess: float  # L/s above the baseline
    sigma: float
    z: float
    trending: bool
    slope: float  # L/s a day over the trend window


def _judge(cfg: LeakSettings, det: Detector, value: float) -> Judgement | None:
    """Judge one value of a daily detector (night or balance, in L/s) against its baseline;
    updates its CUSUM and trend window. None while it is still learning."""
    if not math.isfinite(value) or len(det.hist) < cfg.min_history_days:
        return None
    base, sigma, df = _baseline(det.hist, cfg)
    excess = value - base
    z = t_to_z(excess / sigma, df)
    det.s = max(0.0, det.s + _clip(z, cfg.z_clip) - cfg.k)
    det.recent = [*det.recent, value][-cfg.trend_days :]
    trending, slope = False, math.nan
    if len(det.recent) >= cfg.trend_days:
        y = np.array(det.recent, dtype=np.float64)
        slope, last = theil_sen(y)
        mk = mann_kendall_z(y)
        rise = slope * (cfg.trend_days - 1)
        trending = (
            mk >= cfg.trend_z
            and rise > max(cfg.min_leak_lps, 3 * sigma)
            and last - base > max(cfg.min_leak_lps, 2 * sigma)
        )
    return Judgement(excess, sigma, z, trending, slope)


def _learn(cfg: LeakSettings, det: Detector, value: float) -> None:
    if math.isfinite(value):
        det.hist = [*det.hist, value][-cfg.baseline_days :]


def _act(
    st: LeakState,
    cfg: LeakSettings,
    name: str,
    j: Judgement | None,
    *,
    ts: float,
    det: Detector | RegDetector,
    h: float | None = None,
) -> tuple[list[LeakSignal], bool]:
    """What a daily verdict does: open the event, update it, or nothing. Returns the
    signals and whether the value may be learned (no event, nothing suspicious)."""
    if j is None:
        return [], st.event is None
    h = cfg.h if h is None else h
    st.evidence[name] = Evidence(j.excess, j.sigma, ts)
    if st.event is not None:
        return _update(st, cfg, ts, name), False
    if det.s > h and j.excess >= cfg.min_leak_lps:
        return _open(
            st, cfg, ts, name,
            f"{name}: {j.excess:.2f} L/s above its usual level (CUSUM {det.s:.1f} > {h:g})",
        ), False  # fmt: skip
    if j.trending:
        return _open(
            st, cfg, ts, f"{name}_trend",
            f"{name}: rising {j.slope:.2f} L/s a day for {cfg.trend_days} days, now "
            f"{j.excess:.2f} L/s above its usual level",
        ), False  # fmt: skip
    # a night or day far below its usual is no ordinary one (water moved out through a
    # boundary valve, a supply cut): learned, it would widen the baseline for two weeks and
    # hide a leak. Up to low_skip_days of them in a row are left out; more are a new level
    det.low_days = det.low_days + 1 if j.z <= -cfg.low_skip_z else 0
    if 0 < det.low_days <= cfg.low_skip_days:
        return [], False
    return [], det.s <= h / 2


def _judge_reg(cfg: LeakSettings, det: RegDetector, x: float, y: float) -> Judgement | None:
    """Judge a day's inflow ``y`` (L/s) against what the metered households' use ``x`` (L/s)
    predicts: a line fitted (least squares) over the last leak-free days. The line learns how
    the unmetered households follow the metered ones (weather, Sunday, a biased norm), which
    a fixed norm cannot; the leak is not in the metered use, so the residual is the leak.
    None while it is still learning (or the day has no metered use)."""
    if not (math.isfinite(x) and math.isfinite(y)) or len(det.x) < cfg.min_history_days:
        return None
    hx = np.array(det.x[-cfg.baseline_days :], dtype=np.float64)
    hy = np.array(det.y[-cfg.baseline_days :], dtype=np.float64)
    expect, sig = _line(hx, hy, x)
    sig = max(sig, cfg.min_sigma_lps, cfg.reg_min_sigma_pct / 100 * abs(y))
    excess = y - expect
    z = t_to_z(excess / sig, hx.size - 2)
    det.s = max(0.0, det.s + _clip(z, cfg.z_clip) - cfg.reg_k)
    return Judgement(excess, sig, z, False, math.nan)


def _line(hx: F64, hy: F64, x: float) -> tuple[float, float]:
    """A least-squares line through the points (hx, hy): what it predicts at ``x``, and the
    sigma of that prediction."""
    n = hx.size
    xm, ym = float(hx.mean()), float(hy.mean())
    sxx = float(np.sum((hx - xm) ** 2))
    b = float(np.sum((hx - xm) * (hy - ym)) / sxx) if sxx > 1e-12 else 0.0
    a = ym - b * xm
    resid = hy - (a + b * hx)
    sig = math.sqrt(float(np.sum(resid**2)) / (n - 2))
    lever = (x - xm) ** 2 / sxx if sxx > 1e-12 else 0.0
    return a + b * x, sig * math.sqrt(1 + 1 / n + lever)


def _judge_window(
    cfg: LeakSettings, w: WindowDetector, t_end: float, x: float, y: float
) -> tuple[Judgement, int] | None:
    """Judge the inflow over the read windows (``y``, L/s) against the metered use over them
    (``x``) on the line of the hours learned, and the whole days of hours the line stands on;
    None while fewer than half of ``min_history_days`` are learned."""
    # the hours learned: those of the last 2 x baseline_days (older ones are a stale line)
    old = t_end - 2 * cfg.baseline_days * 86400.0
    if w.t and w.t[0] < old:
        w.keep_between(old, math.inf)
    # the line is fitted on the hours that end a day or more before this one: the windows
    # of the last day may hold the start of a leak
    ht = np.array(w.t, dtype=np.float64)
    use = np.flatnonzero(ht <= t_end - 86400.0)[-cfg.baseline_days * cfg.n_slots :]
    if use.size < cfg.min_history_days * cfg.n_slots // 2:
        return None
    expect, sig = _line(np.array(w.x)[use], np.array(w.y)[use], x)
    sig = max(sig, cfg.min_sigma_lps, cfg.window_min_sigma_pct / 100 * abs(y))
    excess = y - expect
    return Judgement(excess, sig, excess / sig, False, math.nan), use.size // cfg.n_slots


def _window_step(st: LeakState, cfg: LeakSettings, hr: Hour, value: float) -> list[LeakSignal]:
    """Record one bucket of the demand (``value``, after transfers) and judge the inflow over
    the customer meters' last read windows against their use (see the module docs)."""
    w = st.window
    w.q = [*w.q, value][-cfg.window_days * cfg.n_slots :]
    wts, x = hr.window_weights, hr.window_use_lps
    if wts is None or not math.isfinite(x) or wts.size > len(w.q):
        return []
    q = np.array(w.q[-wts.size :], dtype=np.float64)
    on = wts > 0
    known = on & np.isfinite(q)
    if not known.any() or wts[on & ~known].sum() > 0.1:
        return []  # more than a tenth of the windows falls in buckets of unknown demand
    y = float(np.sum(wts[known] * q[known]) / wts[known].sum())
    bucket = 86400.0 / cfg.n_slots
    if hr.t_end - (wts.size - int(np.argmax(on))) * bucket < max(st.quiet_until, st.valve_until):
        # the windows reach back before a repair (or into its settling), or into hours with a
        # boundary valve open: the meters' use in those hours is not the zone's
        return []
    j, days = _judge_window(cfg, w, hr.t_end, x, y) or (None, 0)
    z = math.nan if j is None else j.z
    if j is not None and st.event is None and z >= cfg.window_z and j.excess >= cfg.min_leak_lps:
        return _open(
            st, cfg, hr.t_end, "window",
            f"inflow over the customer meters' last read windows {y:.2f} L/s, {j.excess:.2f} "
            f"L/s above what their use predicts (z {z:.1f} >= {cfg.window_z:g}), against "
            f"the hours of the last {days} days",
            evidence=Evidence(j.excess, j.sigma, hr.t_end),
        )  # fmt: skip
    # learned while no event is open and the hour is not far from the line (a leak that grows
    # is not taken into it; an hour far below is water moved out, or a supply cut)
    if st.event is None and (not math.isfinite(z) or -cfg.window_z < z < cfg.window_z / 2):
        w.t, w.x, w.y = [*w.t, hr.t_end], [*w.x, x], [*w.y, y]
    return []


def _median_last(resid: list[float], n: int) -> float:
    a = np.array(resid[-n:])
    ok = np.isfinite(a)
    return float(np.median(a[ok])) if ok.sum() * 2 >= a.size and a.size else math.nan


def _step(resid: list[float], cfg: LeakSettings) -> float:
    """Median residual of the last ``burst_after_h`` buckets minus that of the
    ``burst_before_h`` before them (NaN when either has less than half its buckets). Medians:
    one wild hour (a glitch, a register interpolated over a gap) is not a step."""
    if len(resid) < cfg.burst_before_h + cfg.burst_after_h:
        return math.nan
    a = np.array(resid[-cfg.burst_after_h :])
    b = np.array(resid[: cfg.burst_before_h])
    fa, fb = np.isfinite(a), np.isfinite(b)
    if fa.sum() * 2 < a.size or fb.sum() * 2 < b.size:
        return math.nan
    return float(np.median(a[fa]) - np.median(b[fb]))


def _shape_basis(hist: list[list[float]], cfg: LeakSettings) -> tuple[F64, F64] | None:
    """The learned day shapes (n_slots x rank) and each bucket's scatter around them (L/s),
    from the last ``shape_days`` leak-free days; None while fewer than ``min_history_days``."""
    if len(hist) < max(cfg.min_history_days, cfg.shape_rank + 2):
        return None
    m = np.array(hist[-cfg.shape_days :], dtype=np.float64)
    r = min(cfg.shape_rank, m.shape[1] - 1)
    _, _, vt = np.linalg.svd(m, full_matrices=False)
    basis = vt[:r].T
    resid = m - m @ basis @ basis.T
    # a bucket that weighs much in the day shapes (a peak hour) is fitted closely by each
    # day's own mix: its residuals' variance is its scatter's times (1 - its leverage).
    # Taken as it is, the peak hours' scatter would be too small, and the step test would
    # trust them too much
    lev = np.sum(basis**2, axis=1)
    sig = np.sqrt(np.mean(resid**2, axis=0) / np.clip(1.0 - lev, 0.05, None))
    floor = 0.02 * np.maximum(m.mean(axis=0), 0.0) + cfg.min_sigma_lps
    return basis, np.maximum(sig, floor)


def _shape_fit(
    y: F64,
    basis: F64,
    sig: F64,
    tau: int,
    cfg: LeakSettings,
    *,
    offset: bool = False,
    form: Literal["step", "hinge"] = "step",
) -> tuple[float, float] | None:
    """Fit the buckets ``y`` (one or two whole days from their first bucket, NaN = unknown)
    as each day's own mix of the day shapes plus a step from bucket ``tau``: (step L/s, its
    sigma), or None when the step is not measurable. ``offset``: plus a constant level (an
    open leak's flow). ``form="hinge"``: instead of the step, a steady rise (L/s a day) that
    stops at ``tau`` (a growing leak; ``tau`` past the last bucket: it goes on rising)."""
    n, r = basis.shape
    pos = np.arange(y.size)
    keep = np.isfinite(y)
    cols = []
    for k in range((y.size + n - 1) // n):
        m = (pos // n) == k
        if int((m & keep).sum()) < 2 * r + 2:
            keep &= ~m  # too few buckets to fit that day's mix: leave that day out
            continue
        c = np.zeros((y.size, r))
        c[m] = basis[pos[m] - k * n]
        cols.append(c)
    step = (pos >= tau).astype(np.float64)
    # a step needs buckets on both sides of it in its own day: from its first bucket it is
    # only that day's level, which the day's own mix may explain
    before = keep & (pos < tau) & (pos // n == tau // n)
    if form == "hinge":
        step = np.minimum(pos, tau) / n
    elif min(float(step[keep].sum()), float(before.sum())) < cfg.shape_min_tail:
        return None
    if not cols:
        return None
    w = 1.0 / sig[pos[keep] % n]
    if offset:
        # an open leak's flow: a level the day shapes do not hold
        cols.append(np.ones((y.size, 1)))
    x = np.hstack([*cols, step[:, None]])[keep] * w[:, None]
    try:
        inv = np.linalg.inv(x.T @ x)
    except np.linalg.LinAlgError:
        return None
    var = float(inv[-1, -1])
    if not var > 1e-12:
        return None
    beta = inv @ (x.T @ (y[keep] * w))
    return float(beta[-1]), math.sqrt(var)


def _grows(y: F64, basis: tuple[F64, F64], cfg: LeakSettings) -> float:
    """How well (z) the buckets ``y`` of an open leak fit a steady rise from their first bucket,
    one that stops at some bucket or one that goes on: a leak that grows makes a step test
    fire, and its growth must not be taken for a new leak."""
    zs = [0.0]
    for tau in range(1, y.size + 1):
        got = _shape_fit(y, basis[0], basis[1], tau, cfg, offset=True, form="hinge")
        if got is not None:
            zs.append(got[0] / got[1])
    return max(zs)


def _shape_step(st: LeakState, cfg: LeakSettings, hr: Hour, value: float) -> list[LeakSignal]:
    """Record one bucket for the day-shape test, learn the days that have ended, and judge
    the likeliest step of the last day (see the module docs)."""
    n = cfg.n_slots
    for k in sorted(st.shape_cur):
        if k >= hr.day - 1:
            continue
        vals = np.array(st.shape_cur.pop(k), dtype=np.float64)
        ok = np.isfinite(vals)
        # a day is learned when no event is open and it is (nearly) whole
        if st.event is None and ok.sum() >= n - n // 6:
            if not ok.all():
                vals = np.interp(np.arange(n), np.flatnonzero(ok), vals[ok])
            st.shape_hist = [*st.shape_hist, [float(v) for v in vals]][-cfg.shape_days :]
    cur = st.shape_cur.setdefault(hr.day, [math.nan] * n)
    if not 0 <= hr.slot < n:
        return []
    cur[hr.slot] = value
    ev = st.event
    if (
        (ev is not None and (cfg.shape_new_z <= 0 or ev.detector not in ("shape", "burst")))
        or not math.isfinite(value)
        or hr.t_end <= st.shape_quiet_until
    ):
        return []
    basis = _shape_basis(st.shape_hist, cfg)
    if basis is None:
        return []
    prev = st.shape_cur.get(hr.day - 1, [math.nan] * n)
    y = np.array([*prev, *cur[: hr.slot + 1]], dtype=np.float64)
    now = y.size - 1
    if ev is not None:
        # under an open event only the buckets after its step (or its last new step) count:
        # the leak's own step is not a new one
        ends = hr.t_end - 86400.0 / n * (now - np.arange(y.size))
        y[ends <= ev.stepped] = math.nan
    best: tuple[float, float, float, int] | None = None
    for tau in range(max(1, now - n + 1), now - cfg.shape_min_tail + 2):
        start = 0 if tau < n else n
        got = _shape_fit(y[start:], basis[0], basis[1], tau - start, cfg, offset=ev is not None)
        if got is None:
            continue
        step, se = got
        z = step / se
        if step >= cfg.min_burst_lps and (best is None or z > best[0]):
            best = (z, step, se, tau)
    if best is None:
        return []
    z, step, se, tau = best
    minutes = (tau % n) * 1440 // n
    if ev is None and 0 < cfg.shape_suspect_z < z <= cfg.shape_z:
        # not sure enough by itself: the night after it may confirm it (night_step)
        t_step = hr.t_end - 86400.0 / n * (now - tau + 1)
        old = st.suspect
        if old is None or z > old.z or t_step - old.ts > 86400.0:
            st.suspect = Suspect(step, se, z, t_step, minutes, hr.day - (tau < n))
    if z <= (cfg.shape_z if ev is None else cfg.shape_new_z):
        return []
    if ev is not None and _grows(y[n if tau >= n else 0 :], basis, cfg) >= z:
        return []  # the leak grows (or grew until then), no new step
    day = "yesterday" if tau < n else "today"
    if ev is not None:
        # a second step up while the leak is open: a new leak (or this one broke further)
        ev.stepped = hr.t_end
        sigma = math.hypot(ev.size.sigma, se)
        size = Size.of(ev.size.lps + step, sigma)
        ev.size, ev.alarmed, ev.first, ev.low = size, size.lps, size.lps, size.lps
        return [
            LeakSignal(
                "regrow", hr.t_end, "shape", size,
                f"demand stepped up again {step:.2f} L/s at {minutes // 60:02d}:"
                f"{minutes % 60:02d} {day} (z {z:.1f} > {cfg.shape_new_z:g})",
            )
        ]  # fmt: skip
    return _open(
        st, cfg, hr.t_end, "shape",
        f"demand stepped up {step:.2f} L/s at {minutes // 60:02d}:{minutes % 60:02d} {day} and "
        f"stayed up (z {z:.1f} > {cfg.shape_z:g}), against the shapes of the last "
        f"{len(st.shape_hist)} days",
        evidence=Evidence(step, se, hr.t_end),
    )  # fmt: skip


# ------------------------------------------------------------------ the steps
def hour_step(st: LeakState, cfg: LeakSettings, hr: Hour) -> list[LeakSignal]:
    """Feed one bucket of the DMA's demand (and its neighbours')."""
    out: list[LeakSignal] = []
    keep = cfg.profile_days * cfg.n_slots
    paused = hr.valve_open and cfg.valve_pause
    # a boundary valve is open: the hour is unknown to every test, and nothing is learned
    x = math.nan if paused else hr.demand_lps
    if paused:
        st.transfers = {}
        st.valve_until = hr.t_end
    med, sig = st.profile.expect(hr.day_type, hr.slot, min_sigma=cfg.min_sigma_lps)
    ready = st.profile.days(cfg.n_slots) >= cfg.min_history_days
    # transfers: a neighbour's demand falls by about as much as ours rises, in the same hour
    transfer = 0.0
    own = (x - med) / sig if ready and math.isfinite(x) and math.isfinite(med) else 0.0
    dip = own <= -cfg.transfer_z
    for code, xb in ({} if paused else hr.neighbours).items():
        prof = st.neighbours.setdefault(code, SlotProfile())
        mb, sb = prof.expect(hr.day_type, hr.slot, min_sigma=cfg.min_sigma_lps)
        if not math.isfinite(xb):
            continue
        zb = (xb - mb) / sb if math.isfinite(mb) else 0.0
        # a neighbour fell, or rose while this zone is below its usual (it feeds us)
        dip = dip or zb <= -cfg.transfer_z or (zb >= cfg.transfer_z and own < 0)
        through = cfg.valve_transfers and code in hr.valve_to
        if (abs(zb) < cfg.transfer_z or not math.isfinite(mb)) and not through:
            prof.add(hr.day_type, hr.slot, xb, keep)
        # a transfer under way needs less to go on (hysteresis): its evening hours are noisy
        z_need = cfg.transfer_z / 2 if st.transfers.get(code, 0.0) > 0 else cfg.transfer_z
        moved = 0.0
        if math.isfinite(x) and math.isfinite(med) and (zb <= -z_need or through):
            ra, rb = x - med - transfer, xb - mb
            tol = 0.35 * max(ra, -rb) + 2 * math.sqrt(sig**2 + sb**2)
            # the crews opened a valve to it: any fall of it while this zone rises is water
            # moved through the valve, however small or ill-matched
            if ra > 0 and rb < 0 and (through or abs(ra + rb) <= tol):
                moved = min(ra, -rb)
        st.transfers[code] = moved
        transfer += moved
    acc = st.days.setdefault(hr.day, DayAcc())
    acc.start = min(acc.start, hr.t_end - 3600.0 * 24 / cfg.n_slots)
    if cfg.shape_z > 0 and not cfg.hourly_cusum:
        if dip or transfer > 0:
            # water may be moving between zones (a boundary valve): this zone or a neighbour
            # fell below its usual, or a neighbour rose while this zone is low. Such hours are
            # no day shape, and their end is a step back up: the day-shape test waits a day
            st.shape_quiet_until = hr.t_end + 86400.0
        clean = (
            math.isfinite(x)
            and not (hr.transient or hr.spread or dip or transfer > 0)
            and hr.t_end > st.quiet_until
        )
        out += _shape_step(st, cfg, hr, x - transfer if clean else math.nan)
    if cfg.window_z > 0 and not cfg.hourly_cusum:
        out += _window_step(st, cfg, hr, x - transfer)
    if not math.isfinite(x):
        return out
    xa = x - transfer
    acc.sum_lps += xa
    acc.n += 1
    if cfg.hourly_cusum:
        acc.hours.append(xa)
    acc.transfer_m3 += transfer * 86.4 / cfg.n_slots
    if hr.night and not hr.transient:
        acc.night_sum += xa
        acc.night_n += 1
        if cfg.hourly_cusum:
            acc.night_hours.append([xa, med, sig])
    settled = hr.t_end > st.quiet_until
    r = xa - med if ready and math.isfinite(med) and not hr.transient and settled else math.nan
    st.resid = [*st.resid, r][-(cfg.burst_before_h + cfg.burst_after_h) :]
    step = _step(st.resid, cfg)
    if math.isfinite(step):
        ms, ss = st.steps.expect(hr.day_type, hr.slot, min_sigma=cfg.min_sigma_lps, pooled=False)
        z = (step - ms) / ss if math.isfinite(ms) else math.nan
        level = _median_last(st.resid, cfg.burst_after_h)
        # a step up to a level above the usual (not back up after a dip, e.g. a transfer)
        big = (
            math.isfinite(z)
            and z > cfg.burst_z
            and min(step, level) >= max(cfg.min_burst_lps, cfg.burst_level_z * sig)
        )
        if st.burst_hits == 0:
            if big:  # a step up: it is a burst if the demand stays up (not an evening peak)
                st.burst_hits, st.burst_size, st.burst_sigma = 1, min(step, level), ss
            elif (not math.isfinite(z) or z < cfg.burst_z) and st.event is None:
                st.steps.add(hr.day_type, hr.slot, step, keep)
        elif math.isfinite(level) and level >= 0.5 * st.burst_size:
            st.burst_hits += 1
        else:
            st.burst_hits = 0
        if st.burst_hits >= cfg.burst_hours:
            st.evidence["burst"] = Evidence(level, st.burst_sigma, hr.t_end)
            if st.event is None:
                out += _open(
                    st, cfg, hr.t_end, "burst",
                    f"demand stepped up {st.burst_size:.2f} L/s and stayed up for "
                    f"{st.burst_hits} h; now {xa:.2f} L/s, usual for this hour {med:.2f} L/s",
                )  # fmt: skip
            elif st.event.detector == "burst" and "night" not in st.evidence:
                out += _update(st, cfg, hr.t_end, "burst")
    if cfg.hourly_cusum and math.isfinite(r):
        # the losses are known hour by hour (every customer meter read hourly): they are
        # steady, and a CUSUM over the hours finds a leak within hours
        z = _clip(r / sig, cfg.hour_z_clip)
        st.hour_s = min(max(0.0, st.hour_s + z - cfg.hour_k), 3 * cfg.hour_h)
        st.hour_run = [*st.hour_run, r][-72:] if st.hour_s > 0 else []
        if st.hour_s > cfg.hour_h and st.hour_run:
            run = np.array(st.hour_run)
            ev_lps = float(np.median(run))
            st.evidence["losses"] = Evidence(ev_lps, sig / math.sqrt(run.size / 6 + 1), hr.t_end)
            if st.event is None and ev_lps >= cfg.min_leak_lps:
                out += _open(
                    st, cfg, hr.t_end, "losses",
                    f"hourly losses {ev_lps:.2f} L/s above their usual level "
                    f"(CUSUM {st.hour_s:.1f} > {cfg.hour_h:g})",
                )  # fmt: skip
            elif (
                st.event is not None
                and st.event.detector == "losses"
                and ("night" not in st.evidence)
            ):
                out += _update(st, cfg, hr.t_end, "losses")
    quiet = st.burst_hits == 0 and st.night.s <= cfg.h / 2 and st.hour_s <= cfg.hour_h / 2
    moving = cfg.valve_transfers and bool(hr.valve_to)  # not a usual hour of this zone
    if st.event is None and settled and not hr.transient and not moving and (quiet or not ready):
        st.profile.add(hr.day_type, hr.slot, x, keep)
    return out


def _night_inliers(hours: F64, z: float) -> float:
    """The mean of a night's hourly losses (rows: value, its hour's usual value and sigma)
    with an hour a lost reading threw off taken as its usual value plus the night's median
    excess. A leak moves every hour's excess, and the median with them; a lost reading moves
    one. The hours of a night differ by their usual pattern, so each is judged by its excess
    over its own usual and its own sigma."""
    x, usual, sig = hours[:, 0], hours[:, 1], hours[:, 2]
    ex = x - usual
    if not np.isfinite(ex).all() or not np.isfinite(sig).all():
        return float(x.mean())  # still learning the hours' usual values
    m = float(np.median(ex))
    return float(np.where(np.abs(ex - m) > z * sig, usual + m, x).mean())


def night_step(st: LeakState, cfg: LeakSettings, day: int, ts: float) -> list[LeakSignal]:
    """The night window of ``day`` has ended (at ``ts``): judge its mean flow."""
    acc = st.days.get(day)
    if acc is None or acc.night_n * 2 < cfg.night_slots:
        return []
    if acc.start < st.quiet_until:
        return []
    value = acc.night_sum / acc.night_n
    acc.night_lps = value
    if cfg.hourly_cusum and cfg.hour_outlier_z > 0 and acc.night_hours:
        value = _night_inliers(np.array(acc.night_hours), cfg.hour_outlier_z)
    start = ts - cfg.night_slots * 86400 / cfg.n_slots  # the night window's start
    shape = st.evidence.get("shape")
    if shape is not None and shape.ts <= start:
        # a night after the step measures the leak better than the hours around the step
        del st.evidence["shape"]
    was_open = st.event is not None
    j = _judge(cfg, st.night, value)
    out, learn = _act(st, cfg, "night", j, ts=ts, det=st.night)
    sus, st.suspect = st.suspect, None
    if (
        st.event is None
        and j is not None
        and sus is not None
        and start - 86400.0 <= sus.ts <= start
        and j.z >= cfg.suspect_night_z
        and j.excess >= sus.lps / 2
    ):
        # a step the day-shape test was not sure of, and the night after it is up as well
        st.evidence["shape"] = Evidence(sus.lps, sus.sigma, ts)
        when = f"{sus.minute // 60:02d}:{sus.minute % 60:02d} " + (
            "today" if sus.day >= day else "yesterday"
        )
        out += _open(
            st, cfg, ts, "shape",
            f"demand stepped up {sus.lps:.2f} L/s at {when} (z {sus.z:.1f}, under "
            f"{cfg.shape_z:g}) and the night after was {j.excess:.2f} L/s above its usual "
            f"(z {j.z:.1f} >= {cfg.suspect_night_z:g})",
        )  # fmt: skip
        learn = False
    if learn:
        _learn(cfg, st.night, value)
    if was_open and j is not None and "balance" not in st.evidence:
        out += _quiet_day(st, cfg, ts, j.z)
    return out


def balance_step(
    st: LeakState,
    cfg: LeakSettings,
    day: int,
    ts: float,
    *,
    metered_m3: float,
    meters: int,
    unmetered_m3: float,
) -> list[LeakSignal]:
    """The balance of ``day``: its inflow (from the buckets seen), what its meters read
    (``metered_m3`` over ``meters`` meters; NaN when unknown) and the estimated use of the
    households without a meter (``unmetered_m3``)."""
    acc = st.days.pop(day, None)
    for old in [d for d in st.days if d < day - 3]:
        del st.days[old]  # days that will never be judged (missing buckets)
    if acc is None or acc.n < 0.9 * cfg.n_slots or acc.start < st.quiet_until:
        return []
    if not (math.isfinite(metered_m3) and math.isfinite(unmetered_m3)):
        return []
    inflow = acc.sum_lps / acc.n * 86.4
    st.figures[day] = DayFigures(
        inflow, inflow - metered_m3 - unmetered_m3, acc.night_lps, acc.transfer_m3
    )
    # the inflow judged: the day's mean, or where the demand is the hourly losses, the mean
    # of its hours without those a lost reading threw off (the volumes above stay the sums)
    judged = inflow
    if cfg.hourly_cusum and acc.hours and cfg.hour_outlier_z > 0:
        judged = inlier_mean(np.array(acc.hours), cfg.hour_outlier_z) * 86.4
    losses = (judged - metered_m3 - unmetered_m3) / 86.4  # L/s
    index = math.nan
    if meters > 0 and len(st.per_meter) >= cfg.min_history_days:
        usual = float(np.median(st.per_meter[-cfg.baseline_days :]))
        if usual > 0:
            index = metered_m3 / meters / usual
    losses_idx = (judged - metered_m3 - unmetered_m3 * index) / 86.4
    # the steadier of the two balances judges (both keep learning)
    use_idx = False
    if math.isfinite(index) and len(st.balance_idx.hist) >= cfg.min_history_days:
        s_plain = diff_sigma(np.array(st.balance.hist[-cfg.baseline_days :]))
        s_idx = diff_sigma(np.array(st.balance_idx.hist[-cfg.baseline_days :]))
        use_idx = math.isfinite(s_idx) and (not math.isfinite(s_plain) or s_idx < s_plain)
    j_plain = _judge(cfg, st.balance, losses)
    j_idx = _judge(cfg, st.balance_idx, losses_idx)
    main_det: Detector | RegDetector
    main_det, j = (st.balance_idx, j_idx) if use_idx else (st.balance, j_plain)
    h = cfg.h
    # with metered households read daily, the regression balance judges once it has learned
    x_met = metered_m3 / 86.4 if meters > 0 else math.nan
    j_reg = _judge_reg(cfg, st.balance_reg, x_met, judged / 86.4)
    if j_reg is not None:
        main_det, j, h = st.balance_reg, j_reg, cfg.reg_h
    was_open = st.event is not None
    out, learn = _act(st, cfg, "balance", j, ts=ts, det=main_det, h=h)
    if learn:
        _learn(cfg, st.balance, losses)
        _learn(cfg, st.balance_idx, losses_idx)
        if math.isfinite(x_met):
            reg = st.balance_reg
            reg.x = [*reg.x, x_met][-cfg.baseline_days :]
            reg.y = [*reg.y, judged / 86.4][-cfg.baseline_days :]
        if meters > 0:
            st.per_meter = [*st.per_meter, metered_m3 / meters][-cfg.baseline_days :]
    if was_open and j is not None:
        out += _quiet_day(st, cfg, ts, j.z)
    return out


def repaired(st: LeakState, cfg: LeakSettings, at: float) -> LeakEvent | None:
    """The leak was repaired at ``at``: close the event; the flows are not judged until they
    have settled (``settle_s``), and nothing from before the repair opens a new event."""
    ev = st.event
    _reset(st, at)
    st.quiet_until = max(st.quiet_until, at + cfg.settle_s)
    st.days = {k: v for k, v in st.days.items() if v.start >= st.quiet_until}
    return ev


def storage_lps(level_m: F64, area_m2: float, step_s: float) -> F64:
    """Filling rate of a tank (L/s, + = filling) per bucket from its level at the bucket
    edges (``level_m`` has one more value than there are buckets)."""
    return np.asarray(np.diff(level_m) * area_m2 * 1000.0 / step_s, dtype=np.float64)
