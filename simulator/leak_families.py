"""Leak scenario families of rural DMAs, for the leak benchmark (``bench/leak_detection.py``).

The Net3 scenarios of :mod:`simulator.leak_scenarios` meter every household every hour. A
rural utility does not look like that: most households are billed by a per-person norm, the
meters that exist send one register reading a day, some DMAs are fed from a tank that a pump
fills, and leaks are often small or grow over days. The families here model that.

Each scenario has three DMAs and a water-balance (mass-balance) model of what their meters
see; there is no pipe hydraulics (what matters for leak detection is the flow through the
meters, and the mass balance gives it exactly):

* **Households**: each DMA has a few hundred to a few thousand households of four kinds
  (ordinary, evening garden irrigation, night filling of a roof tank, flat daytime use), each
  with its own daily shape and a Sunday variant. Daily use per household = its base use ×
  the DMA's weather factor (an AR(1) process with a slow seasonal trend; irrigation is more
  weather-sensitive) × its own day factor (log-normal). Hourly flows carry the noise of many
  households drawing at random moments.
* **Metering**: a share of the households (10-30 %) has a meter that sends its register once a
  day at its own hour (under-registering 0-4 %, some reads lost); the others are billed by
  the norm (residents × norm), which is off from their real use by a factor per DMA.
* **Leakage**: background leakage (3-15 % of the demand) and the leak depend on the pressure,
  which falls when the demand is high (N1 exponent 0.5-1.2).
* **Network**: DMA1 is fed from the trunk main (FM-T1) and passes water on to DMA2 through a
  shared boundary meter (FM-12, signed -1 for DMA1 and +1 for DMA2, by zone code); DMA3 is fed
  from the trunk (FM-T3). A boundary valve between DMA2 and DMA3 (V-23, normally closed) is
  opened in some scenarios for 6-36 h: DMA3 then feeds part of DMA2 (a *transfer*: one DMA's
  inflow jumps while the other's falls; not a leak).
* **Tank-fed DMAs** (family ``tank``): DMA1 and DMA2 are each fed by a pump (PU-k) that fills
  an elevated tank (TK-k) in the DMA, by level control and a night-tariff schedule; the
  district meter measures the pump main, a level sensor the tank, and the pump reports
  whether it runs. DMA3 is fed from the trunk.
* **District meters**: a fixed bias (σ 1 %), reading noise, 15-min readings in m³/h
  (``flow_m3h``, as the device profile publishes), 1 % of readings missing, some 2-8 h outages.

Families (:data:`FAMILIES`): ``sparse`` (DMAs of 10-100 L/s, leaks 1-8 L/s, abrupt or growing
over 1-4 days), ``growing`` (leaks that grow to 2-8 L/s over 3-10 days), ``small`` (leaks of
1-3 L/s in DMAs of 5-40 L/s), ``tank`` (tank-fed DMAs). Every family meters 10-30 % of the
households with daily reads. Noise settings (:data:`NOISE`): ``bench`` and ``heldout``
(stronger weather and household variation, larger meter bias, more missing data, metered
households that are not representative), so that detection is not tuned to one set.

Everything is drawn from one seed, so a scenario can be re-made exactly.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from billing.accountno import make_number
from simulator.leak_scenarios import Leak

F64 = npt.NDArray[np.float64]

STEP_S = 900  # district meters, tank levels and pump states: every 15 min
HOUR = 3600.0
DAY = 86400.0
START = datetime(2025, 5, 31, 19, 0, tzinfo=UTC)  # 2025-06-01 00:00 in Tashkent, a Sunday


@dataclass(frozen=True)
class FamilySpec:
    """What varies between families."""

    name: str
    dma_lps: tuple[float, float]  # mean demand of a DMA (log-uniform)
    metered_share: tuple[float, float]  # share of households with a daily-read meter
    leak_lps: tuple[float, float]
    abrupt_share: float  # the others grow linearly over ramp_days
    ramp_days: tuple[float, float]
    tank_fed: bool = False
    transfers: bool = True  # the boundary valve V-23 may be opened for a while


FAMILIES: dict[str, FamilySpec] = {
    "sparse": FamilySpec("sparse", (10.0, 100.0), (0.10, 0.30), (1.0, 8.0), 0.6, (1.0, 4.0)),
    "growing": FamilySpec("growing", (10.0, 60.0), (0.10, 0.30), (2.0, 8.0), 0.0, (3.0, 10.0)),
    "small": FamilySpec("small", (5.0, 40.0), (0.10, 0.30), (1.0, 3.0), 0.6, (1.0, 3.0)),
    "tank": FamilySpec(
        "tank",
        (5.0, 30.0),
        (0.10, 0.30),
        (1.0, 8.0),
        0.6,
        (1.0, 4.0),
        tank_fed=True,
        transfers=False,
    ),
}


@dataclass(frozen=True)
class NoiseSpec:
    """How noisy the world is (the ``heldout`` set is harder than ``bench``)."""

    name: str
    weather_sigma: float  # day-to-day innovation of the DMA's weather factor (log)
    weather_phi: float
    trend_per_day: tuple[float, float]  # slow seasonal drift of the demand (log per day)
    night_sigma: float  # day-to-day variation of night tank filling (log)
    household_sigma: float  # a household's own day-to-day variation (log)
    hour_cv: float  # one household's hourly use: coefficient of variation
    meter_bias_sigma: float
    meter_noise: float  # relative noise of one flow reading
    missing: float  # share of flow / level readings lost
    outage_prob: float  # chance that a meter has one 2-8 h outage
    read_missing: float  # share of daily customer reads lost
    representativeness: float  # 0: metered households are a random sample; 1: biased
    norm_bias: tuple[float, float]  # real unmetered use / norm
    transfer_prob: float
    counter_share: float  # share of district meters whose volume register is polled


NOISE: dict[str, NoiseSpec] = {
    "bench": NoiseSpec(
        "bench", 0.04, 0.6, (-0.002, 0.004), 0.08, 0.35, 1.5, 0.01, 0.005, 0.01, 0.3, 0.03,
        0.0, (0.7, 1.3), 0.5, 1.0,
    ),
    "heldout": NoiseSpec(
        "heldout", 0.06, 0.7, (-0.003, 0.006), 0.12, 0.5, 2.0, 0.015, 0.01, 0.02, 0.5, 0.05,
        1.0, (0.6, 1.4), 0.6, 0.6,
    ),
}  # fmt: skip

# daily shapes (local hour 0..23), normalised to a mean of 1: [weekday, Sunday]
_ORDINARY = np.array(
    [0.15, 0.1, 0.1, 0.1, 0.15, 0.4, 1.2, 2.0, 1.9, 1.4, 1.1, 1.0,
     1.1, 1.0, 0.9, 0.9, 1.0, 1.3, 1.7, 1.9, 1.8, 1.3, 0.7, 0.3]
)  # fmt: skip
_ORDINARY_SUN = np.array(
    [0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 1.9, 1.8, 1.6,
     1.5, 1.3, 1.1, 1.0, 1.0, 1.2, 1.5, 1.7, 1.6, 1.2, 0.7, 0.4]
)  # fmt: skip
_GARDEN = np.array(
    [0.3, 0.1, 0.05, 0.05, 0.1, 0.8, 1.5, 1.0, 0.5, 0.3, 0.3, 0.3,
     0.3, 0.3, 0.3, 0.4, 0.8, 2.2, 3.2, 3.4, 2.8, 1.8, 1.0, 0.5]
)  # fmt: skip
_NIGHT_FILL = np.array(
    [2.4, 2.6, 2.6, 2.4, 2.0, 1.0, 0.6, 0.8, 0.6, 0.4, 0.3, 0.3,
     0.3, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.6, 2.2]
)  # fmt: skip
_FLAT = np.array(
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 1.2, 2.0, 2.2, 2.2, 2.2,
     1.8, 2.0, 2.2, 2.2, 2.0, 1.4, 0.6, 0.3, 0.2, 0.1, 0.1, 0.1]
)  # fmt: skip


def _norm(a: F64) -> F64:
    return np.asarray(a / a.mean(), dtype=np.float64)


SHAPES: tuple[tuple[F64, F64], ...] = (
    (_norm(_ORDINARY), _norm(_ORDINARY_SUN)),
    (_norm(_GARDEN), _norm(_GARDEN)),
    (_norm(_NIGHT_FILL), _norm(_NIGHT_FILL)),
    (_norm(_FLAT), _norm(_FLAT * np.where(np.arange(24) >= 7, 0.5, 1.0))),
)
KIND_NAMES = ("ordinary", "garden", "night_fill", "flat")


@dataclass(frozen=True)
class FlowMeter:
    code: str
    zone_signs: dict[str, int]  # zone code -> +1 (into the zone) or -1
    lps: F64 = field(repr=False)  # readings on the 15-min grid (NaN = missing)
    m3: F64 | None = field(default=None, repr=False)  # forward volume register (NaN = missing)


@dataclass(frozen=True)
class Tank:
    code: str  # the tank node
    dma: str
    diameter_m: float
    level_device: str
    level_m: F64 = field(repr=False)  # 15-min readings (NaN = missing)
    pump: str
    pump_device: str
    running: F64 = field(repr=False)  # 1 / 0 on the 15-min grid
    inlet_meter: str


@dataclass(frozen=True)
class Transfer:
    """The boundary valve is open: ``to_dma`` takes ``fraction`` of its demand via ``from_dma``."""

    start_s: float
    end_s: float
    from_dma: str
    to_dma: str
    fraction: float


@dataclass
class Household:
    """Arrays over the households of one DMA."""

    residents: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    metered: npt.NDArray[np.bool_]
    read_times_s: F64 = field(repr=False)  # (metered households, days) NaN = lost
    registers_m3: F64 = field(repr=False)  # same shape


@dataclass
class FamilyScenario:
    name: str
    family: str
    noise: str
    seed: int
    start: datetime
    days: int
    dmas: list[str]
    meters: list[FlowMeter]
    tanks: list[Tank]
    households: dict[str, Household]
    norm_m3_per_person_month: float
    leaks: list[Leak]
    transfers: list[Transfer]
    times_s: F64 = field(repr=False)  # the 15-min grid, seconds after start
    demand_lps: dict[str, F64] = field(repr=False)  # true DMA demand incl. leakage
    mean_lps: dict[str, float] = field(default_factory=dict)

    def dma_inflow_lps(self, dma: str) -> F64:
        """Signed net inflow of a DMA from the (noisy) district meter readings."""
        tot = np.zeros(self.times_s.size)
        for m in self.meters:
            s = m.zone_signs.get(dma)
            if s:
                tot = tot + s * m.lps
        return tot

    def dma_storage_lps(self, dma: str) -> F64:
        """Rate of filling of the DMA's tanks from the level readings (L/s, + = filling)."""
        out = np.zeros(self.times_s.size)
        for t in self.tanks:
            if t.dma != dma:
                continue
            area = math.pi * t.diameter_m**2 / 4
            lv = t.level_m
            rate = np.full(lv.size, np.nan)
            rate[:-1] = (lv[1:] - lv[:-1]) * area * 1000.0 / STEP_S
            out = out + rate
        return out

    def dma_demand_seen_lps(self, dma: str) -> F64:
        """Inflow minus tank filling, from the readings (what a plain MNF rule would use)."""
        return self.dma_inflow_lps(dma) - self.dma_storage_lps(dma)


def _lognormal(rng: np.random.Generator, sigma: float, size: Any) -> F64:
    return np.asarray(np.exp(rng.normal(-sigma * sigma / 2, sigma, size)), dtype=np.float64)


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> F64:
    x = np.zeros(n)
    e = rng.normal(0.0, sigma, n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def _meter(
    rng: np.random.Generator,
    code: str,
    signs: dict[str, int],
    q: F64,
    spec: NoiseSpec,
    *,
    q_mean: F64 | None = None,
) -> FlowMeter:
    """A district meter: flow readings every 15 min (a sample of the flow ``q`` at that
    moment) and, for most meters, the forward volume register (the integral of ``q_mean``,
    the mean flow of each 15 min), with one bias, noise, lost readings and maybe an outage."""
    bias = rng.normal(0.0, spec.meter_bias_sigma)
    out = q * (1 + bias) * (1 + rng.normal(0, spec.meter_noise, q.size))
    out = out + rng.normal(0, 0.02, q.size)
    lost = rng.random(q.size) < spec.missing
    if rng.random() < spec.outage_prob:
        a = int(rng.integers(0, q.size - 40))
        lost[a : a + int(rng.integers(8, 33))] = True
    out[lost] = np.nan
    m3: F64 | None = None
    if rng.random() < spec.counter_share:
        qm = q if q_mean is None else q_mean
        vol = np.concatenate([[0.0], np.cumsum(np.clip(qm, 0, None) * STEP_S / 1000.0)])
        reg = float(rng.uniform(1e3, 1e5)) + vol[:-1] * (1 + bias)
        m3 = np.where(lost, np.nan, np.round(reg, 2))
    return FlowMeter(code, signs, np.asarray(out, dtype=np.float64), m3)


@dataclass(frozen=True)
class _Dma:
    demand15: F64  # household demand, L/s on the 15-min grid
    households: Household
    pc_use_m3: float  # mean use per resident and day


def _households(
    rng: np.random.Generator, fam: FamilySpec, spec: NoiseSpec, mean_lps: float, days: int
) -> _Dma:
    """Household demand of one DMA on the 15-min grid, and its metered households' reads."""
    hh_use = float(rng.uniform(0.5, 1.0))  # m³ a day (rural, with gardens)
    n = max(40, round(mean_lps * 86.4 / hh_use))
    weights = rng.dirichlet(np.array([5.5, 2.5, 1.2, 0.8]) * 4)
    kind = rng.choice(4, n, p=weights).astype(np.int64)
    residents = rng.integers(2, 10, n).astype(np.int64)
    base = residents * _lognormal(rng, 0.3, n)
    base *= mean_lps * 86.4 / base.sum()  # m³ a day
    # the DMA's weather and night-filling factors per day
    trend = float(rng.uniform(*spec.trend_per_day))
    weather = _ar1(rng, days, spec.weather_phi, spec.weather_sigma) + trend * np.arange(days)
    night = _ar1(rng, days, 0.5, spec.night_sigma)
    f = np.exp(weather)
    dow = (np.arange(days) + 6) % 7  # day 0 is a Sunday: 0 = Monday ... 6 = Sunday
    sunday = dow == 6
    kind_factor = np.stack(
        [f, f**2.2, np.exp(night) * f**0.5, f**0.3 * np.where(sunday, 0.6, 1.0)]
    )  # (4, days)
    own = _lognormal(rng, spec.household_sigma, (n, days))
    vol = base[:, None] * own * kind_factor[kind]  # m³ per household and day
    # hourly demand per kind of household
    hours = days * 24
    q_hour = np.zeros(hours)
    day_of_hour = np.arange(hours) // 24
    hod = np.arange(hours) % 24
    for k in range(4):
        members = kind == k
        nk = int(members.sum())
        if nk == 0:
            continue
        v = vol[members].sum(axis=0)  # m³ a day
        shape = np.where(
            sunday[day_of_hour], SHAPES[k][1][hod], SHAPES[k][0][hod]
        )  # mean 1 over the day
        cv = spec.hour_cv / math.sqrt(nk)
        q_hour += v[day_of_hour] / 86.4 * shape * np.clip(1 + rng.normal(0, cv, hours), 0, None)
    q15 = np.repeat(q_hour, 4)
    q15 = q15 * np.clip(1 + rng.normal(0, spec.hour_cv / math.sqrt(n), q15.size), 0, None)
    # metered households: a daily register read at the meter's own hour
    share = float(rng.uniform(*fam.metered_share))
    if spec.representativeness > 0:
        # bigger users and ordinary households are more often metered
        w = base**spec.representativeness * np.where(kind == 0, 1.5, 0.7)
        p = w / w.sum()
    else:
        p = np.full(n, 1.0 / n)
    k_met = max(3, round(share * n))
    idx = np.sort(rng.choice(n, k_met, replace=False, p=p))
    metered = np.zeros(n, dtype=bool)
    metered[idx] = True
    read_hour = rng.uniform(0, 24, k_met)
    bias = rng.uniform(0, 0.04, k_met)
    reads_t = np.full((k_met, days), np.nan)
    regs = np.full((k_met, days), np.nan)
    start_reg = rng.uniform(0, 900, k_met)
    for j, h in enumerate(idx):
        shape = np.where(sunday[day_of_hour], SHAPES[kind[h]][1][hod], SHAPES[kind[h]][0][hod])
        hourly = vol[h][day_of_hour] * shape / 24.0  # m³ per hour
        cum = np.concatenate([[0.0], np.cumsum(hourly)])
        t_read = (np.arange(days) * 24 + read_hour[j] + rng.normal(0, 0.3, days)) * HOUR
        t_read = np.clip(t_read, 0, hours * HOUR - 1)
        reg = start_reg[j] + np.interp(t_read / HOUR, np.arange(hours + 1), cum) * (1 - bias[j])
        lost = rng.random(days) < spec.read_missing
        reads_t[j] = np.where(lost, np.nan, t_read)
        regs[j] = np.where(lost, np.nan, np.round(reg, 3))
    hh = Household(residents, kind, metered, reads_t, regs)
    return _Dma(q15, hh, float(base.sum() / residents.sum()))


def _pressure_factor(q: F64, swing: float) -> F64:
    """Pressure relative to its mean: it falls with the square of the flow (head loss)."""
    p = 1.0 - swing * (q / np.mean(q)) ** 2
    return np.asarray(np.clip(p, 0.2, None) / np.mean(np.clip(p, 0.2, None)), dtype=np.float64)


def _tank(
    rng: np.random.Generator, demand: F64, mean_lps: float, spec: NoiseSpec, k: int
) -> tuple[F64, F64, F64, F64, float]:
    """Simulate a tank filled by a pump (1-min steps): pump flow at each 15-min reading, its
    mean over each 15 min, level, running, diameter.

    The pump starts when the level falls below 40 % (or at any time in the night-tariff
    hours 22:00-06:00 below 85 %) and stops at 90 %; the DMA draws ``demand`` from the tank.
    """
    height = float(rng.uniform(4.0, 6.0))
    storage_m3 = float(rng.uniform(0.3, 0.6)) * mean_lps * 86.4
    area = storage_m3 / height
    diameter = math.sqrt(4 * area / math.pi)
    pump_lps = float(rng.uniform(1.8, 2.8)) * mean_lps
    dt = 60.0
    n15 = demand.size
    sub = int(STEP_S // dt)
    level = height * float(rng.uniform(0.5, 0.8))
    on = False
    flow15 = np.empty(n15)
    mean15 = np.zeros(n15)
    level15 = np.empty(n15)
    run15 = np.empty(n15)
    wobble = 1 + rng.normal(0, 0.01, n15)
    for i in range(n15):
        local_h = (i * STEP_S / HOUR) % 24  # the grid starts at local midnight
        night_tariff = local_h >= 22 or local_h < 6
        level15[i] = level
        run15[i] = 1.0 if on else 0.0
        flow15[i] = pump_lps * wobble[i] if on else 0.0
        for _ in range(sub):
            frac = level / height
            if not on and (frac < 0.4 or (night_tariff and frac < 0.85)):
                on = True
            elif on and frac >= 0.9:
                on = False
            q_in = pump_lps * wobble[i] if on else 0.0
            mean15[i] += q_in / sub
            level = max(0.0, level + (q_in - demand[i]) / 1000.0 * dt / area)
    lv = level15 + rng.normal(0, 0.005, n15)
    lv = np.round(lv, 2)
    lv[rng.random(n15) < spec.missing] = np.nan
    return flow15, mean15, lv, run15, diameter


def generate(
    family: str,
    seed: int,
    *,
    noise: Literal["bench", "heldout"] = "bench",
    days: int = 35,
    warmup_days: int = 14,
    leak: bool = True,
    start: datetime = START,
) -> FamilyScenario:
    """Make one scenario of ``family`` (see the module docs). Leaks start after the warm-up."""
    fam = FAMILIES[family]
    spec = NOISE[noise]
    rng = np.random.default_rng([seed, list(FAMILIES).index(family), list(NOISE).index(noise)])
    dmas = ["DMA1", "DMA2", "DMA3"]
    n15 = days * 86400 // STEP_S
    t = np.arange(n15, dtype=np.float64) * STEP_S
    lo, hi = fam.dma_lps
    mean = {z: float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for z in dmas}
    made = {z: _households(rng, fam, spec, mean[z], days) for z in dmas}
    households = {z: made[z].households for z in dmas}
    # the norm: what the utility bills per resident; off from the real use by a factor
    pc = float(np.mean([made[z].pc_use_m3 for z in dmas]))
    norm = round(pc * 30.4 / float(rng.uniform(*spec.norm_bias)), 2)

    leaks: list[Leak] = []
    if leak:
        dma = dmas[int(rng.integers(3))]
        peak = float(np.round(rng.uniform(*fam.leak_lps), 2))
        kind: Literal["abrupt", "incipient"] = (
            "abrupt" if rng.random() < fam.abrupt_share else "incipient"
        )
        ramp = float(rng.uniform(*fam.ramp_days) * DAY) if kind == "incipient" else 0.0
        # late enough to learn, early enough that 72 h after it reaches 2 L/s fit in
        reach = ramp * min(1.0, 2.0 / peak) if kind == "incipient" else 0.0
        t_lo = (warmup_days + 1) * DAY
        t_hi = max(t_lo + DAY, (days - 3.5) * DAY - reach)
        leaks.append(Leak(dma, f"N-{dma}", float(rng.uniform(t_lo, t_hi)), peak, kind, ramp))

    demand: dict[str, F64] = {}
    for z in dmas:
        q = made[z].demand15
        swing = float(rng.uniform(0.1, 0.3))
        n1 = float(rng.uniform(0.5, 1.2))
        pf = _pressure_factor(q, swing) ** n1
        background = float(rng.uniform(0.03, 0.15)) * mean[z]
        total = q + background * pf
        for lk in leaks:
            if lk.dma == z:
                total = total + lk.rate_lps(t) * pf
        demand[z] = np.asarray(total, dtype=np.float64)

    transfers: list[Transfer] = []
    share = np.zeros(n15)  # part of DMA2's demand fed through the boundary valve from DMA3
    if fam.transfers and rng.random() < spec.transfer_prob:
        t0 = float(rng.uniform((warmup_days + 0.5) * DAY, (days - 1.5) * DAY))
        dur = float(rng.uniform(6, 36)) * HOUR
        frac = float(rng.uniform(0.2, 0.6))
        transfers.append(Transfer(t0, t0 + dur, "DMA3", "DMA2", frac))
        share = np.where((t >= t0) & (t < t0 + dur), frac, 0.0)

    meters: list[FlowMeter] = []
    tanks: list[Tank] = []
    if fam.tank_fed:
        for k, z in enumerate(("DMA1", "DMA2"), 1):
            flow, flow_mean, lv, run, diam = _tank(rng, demand[z], mean[z], spec, k)
            meters.append(_meter(rng, f"FM-P{k}", {z: 1}, flow, spec, q_mean=flow_mean))
            tanks.append(
                Tank(f"TK-{k}", z, diam, f"LT-{k}", lv, f"PU-{k}", f"PC-{k}", run, f"FM-P{k}")
            )
        meters.append(_meter(rng, "FM-T3", {"DMA3": 1}, demand["DMA3"], spec))
    else:
        d2_via_1 = demand["DMA2"] * (1 - share)
        d3 = demand["DMA3"] + demand["DMA2"] * share
        meters.append(_meter(rng, "FM-T1", {"DMA1": 1}, demand["DMA1"] + d2_via_1, spec))
        meters.append(_meter(rng, "FM-12", {"DMA1": -1, "DMA2": 1}, d2_via_1, spec))
        meters.append(_meter(rng, "FM-T3", {"DMA3": 1}, d3, spec))
    return FamilyScenario(
        name=f"{family}-{noise}-s{seed}",
        family=family,
        noise=noise,
        seed=seed,
        start=start,
        days=days,
        dmas=dmas,
        meters=meters,
        tanks=tanks,
        households=households,
        norm_m3_per_person_month=norm,
        leaks=leaks,
        transfers=transfers,
        times_s=t,
        demand_lps=demand,
        mean_lps=mean,
    )


# ---------------------------------------------------------------------------------- export
def registry_rows(sc: FamilyScenario) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """SQL statements with their rows (for ``executemany``) that register the scenario.

    Zones, the boundary valve and the tanks (network nodes), the pumps, the district meters
    (``flow_m3h`` in m³/h; a shared meter names its zones by code in ``attrs.zone_signs``),
    the level sensors (``level_m``), the pump state points (``running``), the customer meters
    (``volume_m3``), and for billing: a street per DMA, a house and an account per household
    (metered or billed by the norm), the meters with their service connections, the norm.
    """
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    out.append(
        (
            "INSERT INTO zones (code, name) VALUES (%s, %s)",
            [(z, f"{sc.name} {z}") for z in sc.dmas],
        )
    )
    node = (
        "INSERT INTO nodes (code, kind, zone_id, elevation_m, attrs) "
        "SELECT %s, %s, id, 0, %s FROM zones WHERE code = %s"
    )
    nodes: list[tuple[Any, ...]] = [
        ("N-23a", "junction", "{}", "DMA2"),
        ("N-23b", "junction", "{}", "DMA3"),
    ]
    for tk in sc.tanks:
        nodes.append((tk.code, "tank", json.dumps({"diameter_m": round(tk.diameter_m, 3)}), tk.dma))
        nodes.append((f"W-{tk.pump}", "reservoir", "{}", tk.dma))
    out.append((node, nodes))
    out.append(
        (
            (
                "INSERT INTO valves (code, kind, from_node_id, to_node_id, status) "
                "SELECT 'V-23', 'isolation', a.id, b.id, 'closed' FROM nodes a, nodes b "
                "WHERE a.code = %s AND b.code = %s"
            ),
            [("N-23a", "N-23b")],
        )
    )
    if sc.tanks:
        out.append(
            (
                (
                    "INSERT INTO pumps (code, from_node_id, to_node_id, zone_id) "
                    "SELECT %s, a.id, b.id, a.zone_id FROM nodes a, nodes b "
                    "WHERE a.code = %s AND b.code = %s"
                ),
                [(tk.pump, f"W-{tk.pump}", tk.code) for tk in sc.tanks],
            )
        )
    dev = (
        "INSERT INTO devices (code, kind, profile, zone_id, flow_sign, attrs, node_id) "
        "SELECT %s, %s, %s, (SELECT id FROM zones WHERE code = %s), 1, %s, "
        "(SELECT id FROM nodes WHERE code = %s)"
    )
    point = (
        "INSERT INTO points (device_id, name, unit, kind, poll_period_s) "
        "SELECT id, %s, %s, %s, %s FROM devices WHERE code = %s"
    )
    devs: list[tuple[Any, ...]] = []
    pts: list[tuple[Any, ...]] = []
    for m in sc.meters:
        first = next(iter(m.zone_signs))
        attrs = {"zone_signs": m.zone_signs} if len(m.zone_signs) > 1 else {}
        if len(m.zone_signs) == 1 and m.zone_signs[first] < 0:
            raise ValueError(f"meter {m.code}: a one-zone meter must count into its zone")
        devs.append(
            (m.code, "district_meter", "district_flow_meter", first, json.dumps(attrs), None)
        )
        pts.append(("flow_m3h", "m3/h", "analog", STEP_S, m.code))
        if m.m3 is not None:
            pts.append(("forward_m3", "m3", "counter", STEP_S, m.code))
    for tk in sc.tanks:
        devs.append(
            (tk.level_device, "pressure_sensor", "level_transmitter", tk.dma, "{}", tk.code)
        )
        pts.append(("level_m", "m", "analog", STEP_S, tk.level_device))
        devs.append(
            (tk.pump_device, "prv_controller", "pump_controller", tk.dma,
             json.dumps({"pump": tk.pump}), None)
        )  # fmt: skip
        pts.append(("running", "", "status", STEP_S, tk.pump_device))
    for z in sc.dmas:
        hh = sc.households[z]
        for j in range(int(hh.metered.sum())):
            code = f"CM-{z}-{j:05d}"
            devs.append((code, "customer_meter", "ultrasonic_water_meter", z, "{}", None))
            pts.append(("volume_m3", "m3", "counter", 86400, code))
    out.append((dev, devs))
    out.append((point, pts))
    # billing: the households as accounts
    out.append(
        (
            "INSERT INTO regions (name_uz) VALUES (%s)",
            [("Bench region",)],
        )
    )
    out.append(
        (
            "INSERT INTO districts (region_id, name_uz) SELECT id, %s FROM regions",
            [("Bench district",)],
        )
    )
    out.append(
        (
            "INSERT INTO mahallas (district_id, name_uz) SELECT id, %s FROM districts",
            [("Bench mahalla",)],
        )
    )
    out.append(
        (
            "INSERT INTO streets (mahalla_id, name_uz) SELECT id, %s FROM mahallas",
            [(f"{z} street",) for z in sc.dmas],
        )
    )
    out.append(
        (
            "INSERT INTO norms (valid_from, m3_per_person_month) VALUES (%s, %s)",
            [(date(2020, 1, 1), sc.norm_m3_per_person_month)],
        )
    )
    houses: list[tuple[Any, ...]] = []
    accounts: list[tuple[Any, ...]] = []
    meters: list[tuple[Any, ...]] = []
    conns: list[tuple[Any, ...]] = []
    serial = 0
    opened = date(2024, 1, 1)
    since = datetime(2024, 1, 1, tzinfo=UTC)
    for z in sc.dmas:
        hh = sc.households[z]
        j = 0
        for i in range(hh.residents.size):
            serial += 1
            number = make_number(10_000_000 + serial)
            houses.append((f"{z} street", str(i + 1)))
            metered = bool(hh.metered[i])
            accounts.append(
                (number, f"Household {z}-{i}", f"{z} street", str(i + 1), z,
                 int(hh.residents[i]), metered, opened, since)
            )  # fmt: skip
            if metered:
                code = f"CM-{z}-{j:05d}"
                meters.append((f"SN-{code}", code))
                conns.append((number, f"SN-{code}", since))
                j += 1
    # one statement per table (the accounts have statement-level triggers: one per row would
    # take minutes), the rows as arrays
    out.append(
        (
            (
                "INSERT INTO houses (street_id, number) SELECT s.id, x.number "
                "FROM unnest(%s::text[], %s::text[]) AS x(street, number) "
                "JOIN streets s ON s.name_uz = x.street"
            ),
            [([s for s, _ in houses], [n for _, n in houses])],
        )
    )
    out.append(
        (
            (
                "INSERT INTO accounts (number, kind, category, name, house_id, zone_id, residents, "
                "metered, opened_on, status_since) SELECT x.number, 'household', 'household', "
                "x.name, h.id, z.id, x.residents, x.metered, %s, %s "
                "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
                "%s::int[], %s::bool[]) "
                "AS x(number, name, street, house, zone, residents, metered) "
                "JOIN streets s ON s.name_uz = x.street "
                "JOIN houses h ON h.street_id = s.id AND h.number = x.house "
                "JOIN zones z ON z.code = x.zone"
            ),
            [
                (
                    opened, since,
                    [a[0] for a in accounts], [a[1] for a in accounts], [a[2] for a in accounts],
                    [a[3] for a in accounts], [a[4] for a in accounts], [a[5] for a in accounts],
                    [a[6] for a in accounts],
                )
            ],
        )
    )  # fmt: skip
    out.append(
        (
            (
                "INSERT INTO meters (serial_no, device_id, point_id, zone_id) "
                "SELECT x.serial, d.id, p.id, d.zone_id FROM unnest(%s::text[], %s::text[]) "
                "AS x(serial, device) JOIN devices d ON d.code = x.device "
                "JOIN points p ON p.device_id = d.id AND p.name = 'volume_m3'"
            ),
            [([m[0] for m in meters], [m[1] for m in meters])],
        )
    )
    out.append(
        (
            (
                "INSERT INTO service_connections (account_id, meter_id, installed_at) "
                "SELECT a.id, m.id, %s FROM unnest(%s::text[], %s::text[]) AS x(number, serial) "
                "JOIN accounts a ON a.number = x.number JOIN meters m ON m.serial_no = x.serial"
            ),
            [(since, [c[0] for c in conns], [c[1] for c in conns])],
        )
    )
    return out


def write_csv(sc: FamilyScenario, path: Path) -> int:
    """Write the readings as a ``suvnet readings import`` CSV (ts, device, point, value)."""
    t0 = sc.start.timestamp()
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "device", "point", "value"])

        def series(device: str, point: str, times: F64, values: F64, fmt: str) -> None:
            nonlocal n
            for t, v in zip(times, values, strict=True):
                if np.isfinite(v) and np.isfinite(t):
                    w.writerow([round((t0 + t) * 1000), device, point, format(v, fmt)])
                    n += 1

        for m in sc.meters:
            series(m.code, "flow_m3h", sc.times_s, m.lps * 3.6, ".4f")
            if m.m3 is not None:
                series(m.code, "forward_m3", sc.times_s, m.m3, ".2f")
        for tk in sc.tanks:
            series(tk.level_device, "level_m", sc.times_s, tk.level_m, ".3f")
            series(tk.pump_device, "running", sc.times_s, tk.running, ".0f")
        for z in sc.dmas:
            hh = sc.households[z]
            for j in range(hh.read_times_s.shape[0]):
                series(
                    f"CM-{z}-{j:05d}", "volume_m3", hh.read_times_s[j], hh.registers_m3[j], ".3f"
                )
    return n


def at(sc: FamilyScenario, seconds: float) -> datetime:
    return sc.start + timedelta(seconds=seconds)
