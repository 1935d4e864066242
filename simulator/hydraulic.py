"""Hydraulic simulation of a village network (WNTR / EPANET) for the demo and tests.

Pure in the sense that matters: an .inp file and a few parameters in, arrays out. A leak is
modelled as an extra demand at a junction from its start time on (abrupt) or growing linearly
over ``ramp_h`` hours (incipient). Customer meters are not in the hydraulic model: their
consumption is drawn from the same daily pattern, so that the meters, the district inflow and
the billing agree in shape.
"""

# wntr is imported where the hydraulics run: it takes about a second to load (start-up time).
from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

M_HEAD_TO_BAR = 0.0980665
"""Metres of water head to bar."""

VILLAGE_DAILY_PATTERN: tuple[float, ...] = (
    0.35, 0.3, 0.28, 0.28, 0.35, 0.7, 1.3, 1.7, 1.5, 1.1, 1.0, 1.0,
    1.1, 1.0, 0.9, 0.9, 1.0, 1.2, 1.5, 1.65, 1.45, 1.1, 0.8, 0.5,
)  # fmt: skip
"""Hourly demand multipliers of a village day (mean 0.95): night minimum, morning and
evening peaks."""


@dataclass(frozen=True)
class LeakSpec:
    """A leak at ``node`` of ``rate_lps`` litres per second starting ``start_h`` hours in."""

    node: str
    start_h: float
    rate_lps: float
    ramp_h: float = 0.0  # 0 = abrupt; otherwise grows linearly to rate_lps over ramp_h


@dataclass(frozen=True)
class HydraulicRun:
    """Hourly results of a simulation: pressures per node, flows per link."""

    step_s: int
    times_s: npt.NDArray[np.float64]
    pressure_bar: dict[str, npt.NDArray[np.float64]]
    flow_m3h: dict[str, npt.NDArray[np.float64]]
    leak: LeakSpec | None = None
    valve_nodes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def sample(self, series: npt.NDArray[np.float64], t_s: float) -> float:
        """Linear interpolation of an hourly series at ``t_s`` seconds from the start."""
        t = min(max(t_s, 0.0), self.duration_s)
        return float(np.interp(t, self.times_s, series))

    def pressure(self, node: str, t_s: float) -> float:
        return self.sample(self.pressure_bar[node], t_s)

    def flow(self, link: str, t_s: float) -> float:
        return self.sample(self.flow_m3h[link], t_s)

    def volume_m3(self, link: str, t_s: float) -> tuple[float, float]:
        """Forward and reverse volume through ``link`` from the start to ``t_s`` (m³)."""
        q = self.flow_m3h[link]
        dt_h = self.step_s / 3600.0
        t = min(max(t_s, 0.0), self.duration_s)
        k = int(t // self.step_s)
        fwd = float(np.clip(q[:k], 0, None).sum() * dt_h)
        rev = float(np.clip(-q[:k], 0, None).sum() * dt_h)
        frac_h = (t - k * self.step_s) / 3600.0
        if k < len(q):
            fwd += max(float(q[k]), 0.0) * frac_h
            rev += max(-float(q[k]), 0.0) * frac_h
        return fwd, rev


def leak_pattern(spec: LeakSpec, hours: int) -> list[float]:
    """Hourly multipliers (0..1) of a leak's full rate."""
    out: list[float] = []
    for h in range(hours + 1):
        if h < spec.start_h:
            out.append(0.0)
        elif spec.ramp_h <= 0:
            out.append(1.0)
        else:
            out.append(min(1.0, (h - spec.start_h + 1) / spec.ramp_h))
    return out


def mean_daily_demand_m3(
    inp: Path,
    nodes: Iterable[str],
    pattern: tuple[float, ...] = VILLAGE_DAILY_PATTERN,
    demand_scale: float = 1.0,
) -> float:
    """The mean daily demand (m³) of these junctions of ``inp`` under ``pattern``: what the
    households the model stands for draw. Names that are not junctions of the model count 0."""
    import wntr

    wn = wntr.network.WaterNetworkModel(str(inp))
    junctions = set(wn.junction_name_list) & set(nodes)
    m3s = sum(d.base_value for n in junctions for d in wn.get_node(n).demand_timeseries_list)
    return float(m3s) * 86400.0 * (sum(pattern) / len(pattern)) * demand_scale


def simulate(
    inp: Path,
    *,
    days: int,
    leak: LeakSpec | None = None,
    pattern: tuple[float, ...] = VILLAGE_DAILY_PATTERN,
    demand_scale: float = 1.0,
) -> HydraulicRun:
    """Run an extended-period simulation of ``days`` days with hourly steps."""
    import wntr

    if days < 1:
        raise ValueError("days must be >= 1")
    wn = wntr.network.WaterNetworkModel(str(inp))
    hours = days * 24
    opts = wn.options.time
    opts.duration = hours * 3600
    opts.hydraulic_timestep = 3600
    opts.report_timestep = 3600
    opts.pattern_timestep = 3600
    wn.add_pattern("suvnet_daily", [p * demand_scale for p in pattern])
    for _name, junction in wn.junctions():
        for demand in junction.demand_timeseries_list:
            demand.pattern_name = "suvnet_daily"
    if leak is not None:
        if leak.node not in wn.junction_name_list:
            raise ValueError(f"leak node {leak.node!r} is not a junction of {inp.name}")
        wn.add_pattern("suvnet_leak", leak_pattern(leak, hours))
        wn.get_node(leak.node).add_demand(leak.rate_lps / 1000.0, "suvnet_leak")
    with tempfile.TemporaryDirectory(prefix="suvnet-epanet-") as tmp:
        # EPANET writes its .inp/.rpt/.bin working files; keep them out of the cwd
        res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(Path(tmp) / "sim"))
    times = res.node["pressure"].index.to_numpy(dtype=np.float64)
    pressure = {
        str(n): res.node["pressure"][n].to_numpy(dtype=np.float64) * M_HEAD_TO_BAR
        for n in res.node["pressure"].columns
    }
    flow = {
        str(link): res.link["flowrate"][link].to_numpy(dtype=np.float64) * 3600.0
        for link in res.link["flowrate"].columns
    }
    valves = {str(name): (str(v.start_node_name), str(v.end_node_name)) for name, v in wn.valves()}
    return HydraulicRun(3600, times, pressure, flow, leak, valves)


@dataclass
class CustomerConsumption:
    """Synthetic hourly consumption of one household meter (m³ per hour).

    ``daily_m3`` is the mean daily use; ``leak_m3h`` a constant customer-side leak (a running
    toilet) that keeps the meter from ever reading zero.
    """

    daily_m3: float
    seed: int
    leak_m3h: float = 0.0
    pattern: tuple[float, ...] = VILLAGE_DAILY_PATTERN

    def hourly(self, hours: int) -> npt.NDArray[np.float64]:
        rng = np.random.default_rng(self.seed)
        mean = sum(self.pattern) / len(self.pattern)
        base = np.array([self.pattern[h % 24] / mean for h in range(hours)]) * (
            self.daily_m3 / 24.0
        )
        noise = rng.gamma(2.0, 0.5, size=hours)  # mean 1, skewed like real use
        use = base * noise
        # households sleep: nothing from 02:00 to 04:00, often nothing from 01:00 and to 05:00
        # (so that only a real customer-side leak keeps a meter from ever reading zero)
        hour = np.arange(hours) % 24
        use[(hour == 2) | (hour == 3)] = 0.0
        use[((hour == 1) | (hour == 4)) & (rng.random(hours) < 0.7)] = 0.0
        return use + self.leak_m3h

    def register_m3(self, hours: int, start_m3: float = 0.0) -> npt.NDArray[np.float64]:
        """Cumulative register at the end of every hour (index 0 = the start)."""
        return start_m3 + np.concatenate(([0.0], np.cumsum(self.hourly(hours))))


def head_to_bar(m: float) -> float:
    return m * M_HEAD_TO_BAR


def bar_to_head(bar: float) -> float:
    return bar / M_HEAD_TO_BAR if math.isfinite(bar) else bar
