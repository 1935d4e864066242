"""Closed-loop pressure management: EPANET (through WNTR) stepped every few minutes while the
real PRV controller chooses each PRV's setpoint from simulated sensor values.

The hydraulics (:class:`SteppedNetwork`):

* pressure-dependent demand (EPANET's PDA: full demand at ``required_m`` of pressure and
  above, none below ``minimum_m``);
* pressure-dependent background leakage: an emitter on every junction of a managed DMA,
  ``q = C p^N1`` (FAVAD's exponent ``N1``, a parameter; ``C`` is set from the leakage a node
  has at 30 m, so that runs with different ``N1`` lose the same water at that pressure);
* stepped one hydraulic step at a time (``step_s``, e.g. 5 minutes): the PRV settings chosen
  at a step act from the next one on, as a real controller's do.

The control (:func:`run`): each DMA's PRV, critical-point sensors and inflow meter are
:class:`~simulator.devices.SimulatedDevice` register images laid out by their profiles.
Every step the sensors are "polled": the hydraulic values go into the registers and come out
through the profile decoder as readings (the resolution of a 4-20 mA transmitter and of the
PRV's 0.01 bar setpoint register included). The gateway's controller
(:class:`edge_agent.regulator.Loop` around :func:`edge_agent.control.decide`) sees those
readings, and its writes go through the profile's write check into the PRV's registers; the
hydraulic PRV setting is what the PRV device then holds. Modbus framing and sockets are left
out (the agent tests cover them); ``suvnet demo`` runs the same controller over real Modbus
TCP.
"""

# wntr is imported where the hydraulics run: it takes about a second to load (start-up time).
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.commands import plan_write
from edge_agent.decode import decode_point, engineering_value
from edge_agent.profiles import Profile, default_profiles_dir, load_profiles
from edge_agent.regulator import Loop
from simulator.devices import SimulatedDevice
from simulator.hydraulic import M_HEAD_TO_BAR, VILLAGE_DAILY_PATTERN, LeakSpec
from suvnet.protocol import Reading
from suvnet.prvcontrol import ControlConfig

EN_PRESSURE, EN_DEMANDDEFICIT = 11, 27
EN_INITSETTING, EN_FLOW, EN_SETTING = 5, 8, 12
REF_PRESSURE_M = 30.0
"""Emitter coefficients are set so that a node leaks its ``leak_lps`` at this pressure."""
TZ = "Asia/Tashkent"
START = datetime(2026, 3, 2, tzinfo=ZoneInfo(TZ))  # a Monday, local midnight
"""Hour 0 of a simulation (its weekday matters to weekly time profiles only)."""


@dataclass(frozen=True)
class Dma:
    """A district metered area fed through one PRV."""

    code: str
    prv: str
    """the PRV link of the model"""
    inflow: str
    """the pipe its district meter measures (into the zone)"""
    critical: tuple[str, ...]
    """the critical-point nodes, each with a pressure sensor"""
    nodes: tuple[str, ...]
    """its junctions: their demand and their leakage are counted"""
    target_bar: float = 2.0
    """the minimum service pressure at its critical points"""
    leak_lps_at_30m: float | None = None
    """its junctions' background leakage at 30 m (default: the run's ``Hydraulics``)"""


@dataclass(frozen=True)
class Hydraulics:
    """Parameters of the stepped hydraulic model."""

    step_s: int = 300
    days: int = 7
    n1: float = 1.0
    leak_lps_at_30m: float = 0.04
    """background leakage of each DMA junction at 30 m of pressure (L/s)"""
    required_m: float = 15.0
    minimum_m: float = 0.0
    demand_noise: float = 0.05
    """relative noise of each step's demand (per DMA)"""
    day_to_day: float = 0.06
    """relative spread of one day's demand against another's"""
    seed: int = 1

    @property
    def steps(self) -> int:
        return self.days * 86400 // self.step_s


@dataclass(frozen=True)
class Network:
    """A model with its DMAs: ``build()`` makes a fresh WNTR model each time."""

    name: str
    build: Callable[[], Any]
    dmas: tuple[Dma, ...]
    others: tuple[str, ...] = ()
    """junctions outside the managed DMAs: they follow the demand pattern, without leakage"""


def two_dma_network() -> Network:
    """The benchmark network: one reservoir, a trunk main and two DMAs, each fed through a
    PRV. ``DMA-A`` is a flat grid of 16 junctions with its critical point at the far corner;
    ``DMA-B`` climbs 17 m away from its PRV and has two critical points (the highest node and
    the far end of a long branch). Pipes are the small, aged pipes of a village network, so
    that the pressure lost between the PRV and the critical point grows from almost nothing
    at night to over a bar at the morning and evening peaks."""

    def build() -> Any:
        import wntr

        wn = wntr.network.WaterNetworkModel()
        wn.options.time.duration = 0
        wn.add_reservoir("R1", base_head=150.0, coordinates=(0, 3000))
        wn.add_junction("T1", base_demand=0.0, elevation=80.0, coordinates=(0, 1500))
        wn.add_pipe("P-TRUNK", "R1", "T1", length=3000, diameter=0.25, roughness=130)
        # DMA-A: 4 x 4 grid, 220 m apart, gently rising to its far corner
        wn.add_junction("A-IN", base_demand=0.0, elevation=72.0, coordinates=(500, 1000))
        wn.add_pipe("P-A-IN", "T1", "A-IN", length=800, diameter=0.2, roughness=130)
        for i in range(4):
            for j in range(4):
                wn.add_junction(
                    f"A{i}{j}",
                    base_demand=0.23e-3,
                    elevation=66.0 + 0.5 * (i + j),
                    coordinates=(600 + 220 * j, 900 - 220 * i),
                )
        wn.add_valve("PRV-A", "A-IN", "A00", diameter=0.15, valve_type="PRV", initial_setting=40)
        _grid(wn, "A", 4, 4, spine=0.075, other=0.05, length=250, roughness=110)
        # DMA-B: 3 x 5 grid climbing away from its PRV, and a long branch off its far side
        wn.add_junction("B-IN", base_demand=0.0, elevation=70.0, coordinates=(-500, 1000))
        wn.add_pipe("P-B-IN", "T1", "B-IN", length=1200, diameter=0.2, roughness=130)
        for i in range(3):
            for j in range(5):
                wn.add_junction(
                    f"B{i}{j}",
                    base_demand=0.2e-3,
                    elevation=62.0 + 2.5 * j + 1.0 * i,
                    coordinates=(-600 - 220 * j, 900 - 220 * i),
                )
        wn.add_valve("PRV-B", "B-IN", "B00", diameter=0.15, valve_type="PRV", initial_setting=40)
        _grid(wn, "B", 3, 5, spine=0.075, other=0.05, length=250, roughness=110)
        wn.add_junction("BX1", base_demand=0.1e-3, elevation=66.0, coordinates=(-1500, 200))
        wn.add_junction("BX2", base_demand=0.1e-3, elevation=68.0, coordinates=(-1500, -100))
        wn.add_pipe("P-BX1", "B20", "BX1", length=450, diameter=0.04, roughness=110)
        wn.add_pipe("P-BX2", "BX1", "BX2", length=450, diameter=0.04, roughness=110)
        return wn

    a_nodes = tuple(f"A{i}{j}" for i in range(4) for j in range(4))
    b_nodes = (*(f"B{i}{j}" for i in range(3) for j in range(5)), "BX1", "BX2")
    return Network(
        "two-dma",
        build,
        (
            Dma("DMA-A", "PRV-A", "P-A-IN", ("A33",), a_nodes),
            Dma("DMA-B", "PRV-B", "P-B-IN", ("B24", "BX2"), b_nodes),
        ),
    )


def _grid(  # noqa: PLR0917 - the grid's shape
    wn: Any, p: str, rows: int, cols: int, spine: float, other: float, length: float,
    roughness: float,
) -> None:  # fmt: skip
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols:
                d = spine if i == 0 else other
                wn.add_pipe(f"P-{p}{i}{j}h", f"{p}{i}{j}", f"{p}{i}{j + 1}", length=length,
                            diameter=d, roughness=roughness)  # fmt: skip
            if i + 1 < rows:
                d = spine if j == 0 else other
                wn.add_pipe(f"P-{p}{i}{j}v", f"{p}{i}{j}", f"{p}{i + 1}{j}", length=length,
                            diameter=d, roughness=roughness)  # fmt: skip


def demand_pattern(h: Hydraulics, seed_offset: int) -> list[float]:
    """Multipliers of the base demand at every step: the village's day (interpolated between
    the hours), a factor per day and noise per step, the same for every run of a seed."""
    rng = np.random.default_rng(h.seed * 1000 + seed_offset)
    per_day = 86400 // h.step_s
    mean = sum(VILLAGE_DAILY_PATTERN) / len(VILLAGE_DAILY_PATTERN)
    hourly = [v / mean for v in VILLAGE_DAILY_PATTERN]
    out: list[float] = []
    for _d in range(h.days):
        day = 1.0 + rng.normal(0.0, h.day_to_day)
        for k in range(per_day):
            hh = k * h.step_s / 3600.0
            i = int(hh) % 24
            frac = hh - int(hh)
            # the hour's value at its middle, linear in between
            x = frac - 0.5
            if x >= 0:
                v = hourly[i] + (hourly[(i + 1) % 24] - hourly[i]) * x
            else:
                v = hourly[i] + (hourly[i] - hourly[(i - 1) % 24]) * x
            noise = math.exp(rng.normal(0.0, h.demand_noise) - h.demand_noise**2 / 2)
            out.append(max(0.0, v * day * noise))
    out.append(out[-1])
    return out


def burst_pattern(b: LeakSpec, h: Hydraulics) -> list[float]:
    """Multipliers (0..1) of a burst's full rate at every step (abrupt, or growing linearly
    over ``ramp_h`` hours)."""
    out = []
    for k in range(h.steps + 1):
        hours = k * h.step_s / 3600.0
        if hours < b.start_h:
            out.append(0.0)
        elif b.ramp_h <= 0:
            out.append(1.0)
        else:
            out.append(min(1.0, (hours - b.start_h) / b.ramp_h))
    return out


class SteppedNetwork:
    """EPANET opened through WNTR's toolkit binding and advanced one step at a time."""

    def __init__(
        self, net: Network, h: Hydraulics, workdir: Path, bursts: Sequence[LeakSpec] = ()
    ) -> None:
        import wntr
        from wntr.epanet.toolkit import ENepanet

        wn = net.build()
        opts = wn.options
        opts.time.duration = h.days * 86400
        opts.time.hydraulic_timestep = h.step_s
        opts.time.pattern_timestep = h.step_s
        opts.time.report_timestep = h.step_s
        opts.hydraulic.demand_model = "PDA"
        opts.hydraulic.required_pressure = h.required_m
        opts.hydraulic.minimum_pressure = h.minimum_m
        opts.hydraulic.emitter_exponent = h.n1
        self.n1 = h.n1
        self.coeff: dict[str, float] = {}
        """emitter coefficient of each leaking junction, m³/s per m^N1"""
        self.base: dict[str, float] = {}
        self.pattern_of: dict[str, list[float]] = {}
        groups = [(f"demand-{d.code}", d.nodes, d.leak_lps_at_30m) for d in net.dmas]
        if net.others:
            groups.append(("demand-others", net.others, 0.0))
        for k, (name, nodes, leak) in enumerate(groups):
            pat = demand_pattern(h, k)
            wn.add_pattern(name, pat)
            lps = h.leak_lps_at_30m if leak is None else leak
            for node in nodes:
                j = wn.get_node(node)
                self.base[node] = sum(d.base_value for d in j.demand_timeseries_list)
                for d in j.demand_timeseries_list:
                    d.pattern_name = name
                if lps > 0:
                    self.coeff[node] = lps / 1000.0 / REF_PRESSURE_M**h.n1
                    j.emitter_coefficient = self.coeff[node]
                self.pattern_of[node] = pat
        for i, b in enumerate(bursts):
            wn.add_pattern(f"burst-{i}", burst_pattern(b, h))
            wn.get_node(b.node).add_demand(b.rate_lps / 1000.0, f"burst-{i}")
        self.ends = {
            str(name): (str(v.start_node_name), str(v.end_node_name)) for name, v in wn.valves()
        }
        self.node_names: tuple[str, ...] = tuple(str(n) for n in wn.node_name_list)
        self.link_names: tuple[str, ...] = tuple(str(lk) for lk in wn.link_name_list)
        inp = workdir / f"{net.name}.inp"
        wntr.network.write_inpfile(wn, str(inp), units="LPS", version=2.2)
        self.en = ENepanet(version=2.2)
        self.en.ENopen(str(inp), str(workdir / f"{net.name}.rpt"), "")
        self.en.ENopenH()
        self.en.ENinitH(0)
        self._nodes: dict[str, int] = {}
        self._links: dict[str, int] = {}
        self.step_s = h.step_s
        self.t = 0

    def close(self) -> None:
        if self.t < 0:
            return
        self.t = -1
        self.en.ENcloseH()
        self.en.ENclose()

    def _n(self, node: str) -> int:
        if node not in self._nodes:
            self._nodes[node] = self.en.ENgetnodeindex(node)
        return self._nodes[node]

    def _l(self, link: str) -> int:
        if link not in self._links:
            self._links[link] = self.en.ENgetlinkindex(link)
        return self._links[link]

    def solve(self) -> int:
        """Solve the hydraulics at the current time; returns it (seconds)."""
        self.t = int(self.en.ENrunH())
        return self.t

    def advance(self) -> bool:
        """To the next step; False at the end."""
        return bool(self.en.ENnextH() > 0)

    def pressure_m(self, node: str) -> float:
        return float(self.en.ENgetnodevalue(self._n(node), EN_PRESSURE))

    def pressure_bar(self, node: str) -> float:
        return self.pressure_m(node) * M_HEAD_TO_BAR

    def flow_m3h(self, link: str) -> float:
        return float(self.en.ENgetlinkvalue(self._l(link), EN_FLOW)) * 3.6  # L/s -> m3/h

    def initial_setting_bar(self, link: str) -> float:
        """A valve's setting in the model file (for a PRV: its outlet pressure)."""
        return float(self.en.ENgetlinkvalue(self._l(link), EN_INITSETTING)) * M_HEAD_TO_BAR

    def set_prv_bar(self, link: str, bar: float) -> None:
        self.en.ENsetlinkvalue(self._l(link), EN_SETTING, bar / M_HEAD_TO_BAR)

    def leak_lps(self, node: str) -> float:
        """The emitter's outflow: ``C p^N1`` (what EPANET computes for it)."""
        c = self.coeff.get(node, 0.0)
        p = self.pressure_m(node)
        return 1000.0 * c * p**self.n1 if p > 0 and c > 0 else 0.0

    def requested_lps(self, node: str) -> float:
        pat = self.pattern_of[node]
        return 1000.0 * self.base[node] * pat[min(self.t // self.step_s, len(pat) - 1)]

    def delivered_lps(self, node: str) -> float:
        """What the customers at ``node`` got (its demand less its leakage)."""
        deficit = float(self.en.ENgetnodevalue(self._n(node), EN_DEMANDDEFICIT))
        return self.requested_lps(node) - max(0.0, deficit)


# ------------------------------------------------------------------------------ the devices


@dataclass
class DmaDevices:
    """The simulated field devices of one DMA and the controller of its PRV."""

    dma: Dma
    prv: SimulatedDevice
    sensors: dict[str, SimulatedDevice]
    meter: SimulatedDevice
    loop: Loop
    writes: int = 0

    @property
    def prv_id(self) -> str:
        return self.loop.device


def sensor_id(node: str) -> str:
    return f"pt-{node.lower()}"


def _poll(dev: SimulatedDevice, device_id: str, profile: Profile, ts_ms: int) -> list[Reading]:
    """The readings a gateway gets from ``dev``: its registers through the profile decoder."""
    out: list[Reading] = []
    for p in profile.points:
        if not p.publish or not p.numeric:
            continue
        regs = [dev.image[p.table][p.address + i] for i in range(p.count)]
        values = [bool(r) for r in regs] if p.table in ("coil", "discrete") else regs
        out.extend(
            Reading(device_id, v.point, ts_ms, v.value, v.quality) for v in decode_point(p, values)
        )
    return out


def _write(dev: SimulatedDevice, profile: Profile, point: str, value: float) -> float:
    """A checked write into the device's registers (as a Modbus write); the value read back."""
    w = plan_write(profile, point, value)
    for i, r in enumerate(w.registers):
        dev.image[w.point.table][w.point.address + i] = int(r)
    regs = [dev.image[w.point.table][w.point.address + i] for i in range(w.point.count)]
    got = engineering_value(w.point, regs)
    assert not isinstance(got, str)
    return float(got)


def prv_setting_bar(dev: SimulatedDevice, local_minute: int) -> float:
    """The outlet pressure the PRV controller device holds: its setpoint in fixed mode (1),
    its day or night setpoint in schedule mode (2)."""
    mode = int(float(dev.get_value("mode")))
    if mode == 2:
        day_start = int(float(dev.get_value("day_start_min")))
        night_start = int(float(dev.get_value("night_start_min")))
        if day_start < night_start:
            is_day = day_start <= local_minute < night_start
        else:
            is_day = not (night_start <= local_minute < day_start)
        return float(dev.get_value("setpoint_bar" if is_day else "night_setpoint_bar"))
    return float(dev.get_value("setpoint_bar"))


# ------------------------------------------------------------------------------ running


@dataclass
class DmaResult:
    """What one DMA saw in a run (volumes in m³, pressures in bar)."""

    code: str
    target_bar: float
    leakage_m3: float = 0.0
    requested_m3: float = 0.0
    delivered_m3: float = 0.0
    inflow_m3: float = 0.0
    steps: int = 0
    cp_ok_steps: int = 0
    writes: int = 0
    overshoot_bar: float = 0.0
    mean_setpoint_bar: float = 0.0
    min_cp_bar: float = math.inf
    drop_bar: list[float] = field(default_factory=list)
    """outlet minus lowest critical point at every step"""
    setpoints: list[float] = field(default_factory=list)
    cp_bar: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    strategy: str
    days: float
    dmas: dict[str, DmaResult]

    @property
    def leakage_m3_per_day(self) -> float:
        return sum(d.leakage_m3 for d in self.dmas.values()) / self.days

    @property
    def cp_compliance(self) -> float:
        """Share of the steps at which every critical point had its minimum pressure."""
        steps = next(iter(self.dmas.values())).steps
        ok = sum(
            all(d.cp_bar[k] >= d.target_bar - 1e-9 for d in self.dmas.values())
            for k in range(steps)
        )
        return ok / steps if steps else 0.0

    @property
    def demand_delivered_ratio(self) -> float:
        req = sum(d.requested_m3 for d in self.dmas.values())
        return sum(d.delivered_m3 for d in self.dmas.values()) / req if req else 1.0

    @property
    def setpoint_changes_per_day(self) -> float:
        """Writes per PRV per day."""
        return sum(d.writes for d in self.dmas.values()) / len(self.dmas) / self.days

    @property
    def overshoot_m(self) -> float:
        return max(d.overshoot_bar for d in self.dmas.values()) / M_HEAD_TO_BAR


def run(
    net: Network,
    h: Hydraulics,
    controls: Mapping[str, ControlConfig | None],
    *,
    strategy: str,
    fixed_bar: Mapping[str, float] | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> RunResult:
    """Simulate ``h.days`` with each DMA's PRV under its controller (``controls`` by DMA
    code; None: the PRV stays at ``fixed_bar`` with no controller)."""
    profiles = profiles or load_profiles(default_profiles_dir())
    prv_p, pt_p, dm_p = (
        profiles["prv_controller"],
        profiles["pressure_transmitter"],
        profiles["district_flow_meter"],
    )
    start = START.timestamp()
    tz = ZoneInfo(TZ)
    devices: list[DmaDevices] = []
    for dma in net.dmas:
        prv = SimulatedDevice(prv_p, 1, auto=False)
        prv.set_value("mode", 1)
        prv.set_value("setpoint_bar", (fixed_bar or {}).get(dma.code, 4.0))
        sensors = {n: SimulatedDevice(pt_p, 2 + i, auto=False) for i, n in enumerate(dma.critical)}
        meter = SimulatedDevice(dm_p, 10, auto=False)
        loop = Loop(f"{dma.code.lower()}-prv", prv_p, controls.get(dma.code))
        devices.append(DmaDevices(dma, prv, sensors, meter, loop))
    results = {d.dma.code: DmaResult(d.dma.code, d.dma.target_bar) for d in devices}
    next_decision: dict[str, float] = {d.dma.code: start for d in devices}
    with tempfile.TemporaryDirectory(prefix="suvnet-pm-") as tmp:
        sim = SteppedNetwork(net, h, Path(tmp))
        try:
            minute = 0
            for dd in devices:  # the settings of the first step
                sim.set_prv_bar(dd.dma.prv, prv_setting_bar(dd.prv, minute))
            while True:
                t = sim.solve()
                if t >= h.days * 86400:
                    break
                now = start + t
                ts_ms = int(now * 1000)
                minute = datetime.fromtimestamp(now, tz).hour * 60 + (
                    datetime.fromtimestamp(now, tz).minute
                )
                for dd in devices:
                    _account(sim, dd, results[dd.dma.code], h)
                    _control(
                        sim,
                        dd,
                        now=now,
                        ts_ms=ts_ms,
                        next_decision=next_decision,
                        profiles=(prv_p, pt_p, dm_p),
                    )
                    sim.set_prv_bar(dd.dma.prv, prv_setting_bar(dd.prv, minute))
                if not sim.advance():
                    break
        finally:
            sim.close()
    for dd in devices:
        r = results[dd.dma.code]
        r.writes = dd.writes
        r.mean_setpoint_bar = float(np.mean(r.setpoints)) if r.setpoints else 0.0
    return RunResult(strategy, h.days, results)


def _account(sim: SteppedNetwork, dd: DmaDevices, r: DmaResult, h: Hydraulics) -> None:
    dt = h.step_s
    dma = dd.dma
    r.steps += 1
    r.leakage_m3 += sum(sim.leak_lps(n) for n in dma.nodes) * dt / 1000.0
    r.requested_m3 += sum(sim.requested_lps(n) for n in dma.nodes) * dt / 1000.0
    r.delivered_m3 += sum(sim.delivered_lps(n) for n in dma.nodes) * dt / 1000.0
    r.inflow_m3 += sim.flow_m3h(dma.inflow) * dt / 3600.0
    cp = min(sim.pressure_bar(n) for n in dma.critical)
    r.cp_bar.append(cp)
    r.min_cp_bar = min(r.min_cp_bar, cp)
    if cp >= dma.target_bar:
        r.cp_ok_steps += 1
    outlet = sim.pressure_bar(sim.ends[dma.prv][1])
    r.drop_bar.append(outlet - cp)
    r.setpoints.append(float(dd.prv.get_value("setpoint_bar")))
    cfg = dd.loop.config
    if cfg is not None and cfg.critical_point is not None and cfg.mode == "critical_point":
        aim = cfg.critical_point.aim_bar + cfg.deadband_bar
        at_floor = float(dd.prv.get_value("setpoint_bar")) <= cfg.min_bar + cfg.resolution_bar
        if not at_floor and r.steps * dt > 6 * 3600:  # after the first settling
            r.overshoot_bar = max(r.overshoot_bar, cp - aim)


def _control(
    sim: SteppedNetwork,
    dd: DmaDevices,
    *,
    now: float,
    ts_ms: int,
    next_decision: dict[str, float],
    profiles: tuple[Profile, Profile, Profile],
) -> None:
    """Poll the DMA's devices, let the controller decide when due (or at once on an alarm),
    and carry out its write."""
    prv_p, pt_p, dm_p = profiles
    dma = dd.dma
    inlet_node = sim.ends[dma.prv][0]
    outlet_node = sim.ends[dma.prv][1]
    dd.prv.set_value("inlet_bar", max(0.0, sim.pressure_bar(inlet_node)))
    dd.prv.set_value("outlet_bar", max(0.0, sim.pressure_bar(outlet_node)))
    for node, dev in dd.sensors.items():
        dev.set_value("pressure_bar", max(-0.1, sim.pressure_bar(node)))
    dd.meter.set_value("flow_m3h", sim.flow_m3h(dma.inflow))
    loop = dd.loop
    alarm = False
    for r in _poll(dd.prv, dd.prv_id, prv_p, ts_ms):
        loop.observe(r)
    for node, dev in dd.sensors.items():
        for r in _poll(dev, sensor_id(node), pt_p, ts_ms):
            alarm |= loop.observe(r)
    for r in _poll(dd.meter, f"dm-{dma.code.lower()}", dm_p, ts_ms):
        loop.observe(r)
    due = now >= next_decision[dma.code]
    if not due and not alarm:
        return
    d = loop.step(now, link_up=True, device_ok=True, alarm=alarm and not due)
    if due:
        next_decision[dma.code] = now + loop.interval_s
    if d.write and d.setpoint is not None:
        if loop.needs_mode():
            assert loop.map.mode is not None
            assert loop.map.mode_value is not None
            _write(dd.prv, prv_p, loop.map.mode, loop.map.mode_value)
        got = _write(dd.prv, prv_p, loop.map.setpoint, d.setpoint)
        loop.written(d, got)
        dd.writes += 1


# ------------------------------------------------------------------------------ strategies


def signals_for(dma: Dma) -> list[dict[str, Any]]:
    return [{"device": sensor_id(n)} for n in dma.critical]


@dataclass(frozen=True)
class Tuning:
    """The settings of the compared strategies (docs/pressure-management.md, "Tuning")."""

    margin_bar: float = 0.2
    gain: float = 0.6
    deadband_bar: float = 0.1
    max_step_bar: float = 0.3
    max_rate_bar_per_min: float = 0.1
    interval_s: float = 300.0
    min_bar: float = 1.5
    max_bar: float = 6.0
    night: tuple[str, str] = ("23:00", "05:00")
    """the time profile's low band (local time)"""


def calibrate(net: Network, h: Hydraulics, tune: Tuning) -> tuple[dict[str, float], dict[str, Any]]:
    """What a careful engineer would set without closed-loop control, from a week of the
    PRVs wide open (at ``max_bar``) with a logger at every critical point: the fixed outlet
    that keeps the worst hour of the week at target + margin, and a day/night profile that
    does the same for each band. Returns (fixed setpoint, time profile) by DMA code."""
    none = dict.fromkeys([d.code for d in net.dmas])
    wide = run(net, h, none, strategy="open", fixed_bar={d.code: tune.max_bar for d in net.dmas})
    first = {d.code: _ceil(d.target_bar + tune.margin_bar + max(wide.dmas[d.code].drop_bar))
             for d in net.dmas}  # fmt: skip
    # the losses at that setting (less leakage than wide open): the setting it really needs
    wide = run(net, h, none, strategy="open", fixed_bar=first)
    fixed: dict[str, float] = {}
    profiles: dict[str, Any] = {}
    per_day = 86400 // h.step_s
    night_from, night_to = (int(x[:2]) * 60 + int(x[3:]) for x in tune.night)
    for dma in net.dmas:
        r = wide.dmas[dma.code]
        aim = dma.target_bar + tune.margin_bar
        fixed[dma.code] = _ceil(aim + max(r.drop_bar))
        night = [
            v
            for k, v in enumerate(r.drop_bar)
            if _in_band((k % per_day) * h.step_s // 60, night_from, night_to)
        ]
        day = [
            v
            for k, v in enumerate(r.drop_bar)
            if not _in_band((k % per_day) * h.step_s // 60, night_from, night_to)
        ]
        lo, hi = _ceil(aim + max(night)), _ceil(aim + max(day))
        a, b = tune.night
        profiles[dma.code] = [
            {"from": "00:00", "to": b, "setpoint_bar": lo},
            {"from": b, "to": a, "setpoint_bar": hi},
            {"from": a, "to": "24:00", "setpoint_bar": lo},
        ]
    return fixed, profiles


def _in_band(minute: int, start: int, end: int) -> bool:
    return start <= minute or minute < end if start > end else start <= minute < end


def _ceil(bar: float, step: float = 0.05) -> float:
    return round(math.ceil(bar / step - 1e-9) * step, 2)


def configs(
    net: Network, tune: Tuning, fixed: Mapping[str, float], profiles: Mapping[str, Any]
) -> dict[str, dict[str, ControlConfig]]:
    """The three strategies' controller configurations, by strategy and DMA."""
    base = {
        "min_bar": tune.min_bar,
        "max_bar": tune.max_bar,
        "deadband_bar": tune.deadband_bar,
        "max_step_bar": tune.max_step_bar,
        "max_rate_bar_per_min": tune.max_rate_bar_per_min,
        "interval_s": tune.interval_s,
        "timezone": TZ,
    }
    out: dict[str, dict[str, ControlConfig]] = {"fixed": {}, "time": {}, "cp": {}}
    for dma in net.dmas:
        out["fixed"][dma.code] = ControlConfig.model_validate(
            {**base, "mode": "fixed", "setpoint_bar": fixed[dma.code]}
        )
        out["time"][dma.code] = ControlConfig.model_validate(
            {**base, "mode": "time", "profile": profiles[dma.code],
             "safe_bar": fixed[dma.code]}
        )  # fmt: skip
        out["cp"][dma.code] = ControlConfig.model_validate(
            {
                **base,
                "mode": "critical_point",
                "safe_bar": fixed[dma.code],
                "critical_point": {
                    "sensors": signals_for(dma),
                    "target_bar": dma.target_bar,
                    "margin_bar": tune.margin_bar,
                    "gain": tune.gain,
                },
            }
        )
    return out


@dataclass(frozen=True)
class Comparison:
    fixed: RunResult
    time: RunResult
    cp: RunResult
    fixed_bar: dict[str, float]
    profiles: dict[str, Any]

    def figures(self) -> dict[str, float]:
        """The benchmark's figures (bench/pressure_management.py)."""
        f, t, c = self.fixed, self.time, self.cp
        return {
            "leakage_m3_per_day_fixed": round(f.leakage_m3_per_day, 2),
            "leakage_m3_per_day_time": round(t.leakage_m3_per_day, 2),
            "leakage_m3_per_day_cp": round(c.leakage_m3_per_day, 2),
            "leakage_reduction_cp": round(1 - c.leakage_m3_per_day / f.leakage_m3_per_day, 4),
            "cp_compliance": round(c.cp_compliance, 4),
            "setpoint_changes_per_day": round(c.setpoint_changes_per_day, 1),
            "overshoot_m": round(c.overshoot_m, 2),
            "demand_delivered_ratio": round(c.demand_delivered_ratio, 5),
        }


def compare(
    net: Network | None = None, h: Hydraulics | None = None, tune: Tuning | None = None
) -> Comparison:
    """Fixed outlet, time-modulated and critical-point control on the same demands."""
    net = net or two_dma_network()
    h = h or Hydraulics()
    tune = tune or Tuning()
    fixed, profiles = calibrate(net, h, tune)
    cfgs = configs(net, tune, fixed, profiles)
    runs = {
        name: run(net, h, dict(cfgs[name]), strategy=name, fixed_bar=fixed)
        for name in ("fixed", "time", "cp")
    }
    return Comparison(runs["fixed"], runs["time"], runs["cp"], fixed, profiles)


def describe(c: Comparison) -> list[str]:
    """A table of the three runs, for people."""
    lines = [
        (
            "strategy  leakage m3/day  vs fixed  CP >= min  lowest CP bar  changes/PRV/day  "
            "mean setpoint bar"
        ),
    ]
    base = c.fixed.leakage_m3_per_day
    for r in (c.fixed, c.time, c.cp):
        lowest = min(d.min_cp_bar for d in r.dmas.values())
        mean_sp = np.mean([d.mean_setpoint_bar for d in r.dmas.values()])
        saved = 1 - r.leakage_m3_per_day / base
        lines.append(
            f"{r.strategy:<8}  {r.leakage_m3_per_day:>14.2f}  {saved:>8.1%}"
            f"  {r.cp_compliance:>9.2%}  {lowest:>13.2f}  {r.setpoint_changes_per_day:>15.1f}"
            f"  {mean_sp:>17.2f}"
        )
    return lines


# ------------------------------------------------------------------------------ live (demo)


class LiveNetwork:
    """A network solved as a clock advances, each PRV at the setting its simulated controller
    device holds at that moment: what ``suvnet demo`` serves its Modbus devices from.

    It answers like :class:`simulator.hydraulic.HydraulicRun` (``pressure``, ``flow``,
    ``volume_m3``, ``valve_nodes``; times in seconds from hour 0, local midnight) and solves
    the steps up to the time asked for on the way. The PRV controller of the demo's gateway
    writes the PRV device's registers over Modbus; the next step uses them."""

    def __init__(
        self,
        net: Network,
        h: Hydraulics,
        workdir: Path,
        *,
        bursts: Sequence[LeakSpec] = (),
        prvs: Mapping[str, SimulatedDevice] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.net, self.h = net, h
        self.sim = SteppedNetwork(net, h, workdir, bursts)
        self.bursts = tuple(bursts)
        self.prvs: dict[str, SimulatedDevice] = dict(prvs or {})
        self.valve_nodes: dict[str, tuple[str, str]] = dict(self.sim.ends)
        self.step_s = h.step_s
        self.times: list[float] = []
        self.pressures: dict[str, list[float]] = {n: [] for n in self.sim.node_names}
        self.flows: dict[str, list[float]] = {lk: [] for lk in self.sim.link_names}
        self._volume: dict[str, list[tuple[float, float]]] = {lk: [] for lk in self.sim.link_names}
        self.leak_lps: dict[str, list[float]] = {d.code: [] for d in net.dmas}
        self.settings: dict[str, list[float]] = {}
        """the setting (bar) of every bound PRV at every step"""
        self.done = False

    def initial_setting_bar(self, link: str) -> float:
        """The setting ``link`` has in the model file."""
        return self.sim.initial_setting_bar(link)

    def bind(self, link: str, device: SimulatedDevice) -> None:
        """From the next step on, ``link`` takes its setting from ``device``'s registers."""
        self.prvs[link] = device

    @property
    def duration_s(self) -> float:
        return float(self.h.days * 86400)

    def close(self) -> None:
        self.done = True
        self.sim.close()

    def _step(self) -> None:
        t_next = len(self.times) * self.step_s
        minute = int(t_next % 86400 // 60)
        k = len(self.times)
        for link, dev in self.prvs.items():
            bar = prv_setting_bar(dev, minute)
            self.sim.set_prv_bar(link, bar)
            series = self.settings.setdefault(link, [])
            series.extend([bar] * (k + 1 - len(series)))
        t = self.sim.solve()
        self.times.append(float(t))
        for n, series in self.pressures.items():
            series.append(self.sim.pressure_bar(n))
        for lk, series in self.flows.items():
            q = self.sim.flow_m3h(lk)
            vols = self._volume[lk]
            if k == 0:
                vols.append((0.0, 0.0))
            else:
                f0, r0 = vols[-1]
                q0 = series[-1]
                dt_h = (t - self.times[k - 1]) / 3600.0
                vols.append((f0 + max(q0, 0.0) * dt_h, r0 + max(-q0, 0.0) * dt_h))
            series.append(q)
        for d in self.net.dmas:
            self.leak_lps[d.code].append(sum(self.sim.leak_lps(n) for n in d.nodes))
        if t >= self.duration_s or not self.sim.advance():
            self.done = True
            self.sim.close()

    def advance_to(self, t: float) -> None:
        """Solve every step up to ``t`` (seconds from hour 0)."""
        while not self.done and (not self.times or self.times[-1] + self.step_s <= t):
            self._step()

    def _k(self, t: float) -> int:
        self.advance_to(t)
        if not self.times:
            raise ValueError("the network has no solved step")
        return max(0, min(int(t // self.step_s), len(self.times) - 1))

    def pressure(self, node: str, t: float) -> float:
        return self.pressures[node][self._k(t)]

    def flow(self, link: str, t: float) -> float:
        return self.flows[link][self._k(t)]

    def volume_m3(self, link: str, t: float) -> tuple[float, float]:
        """Forward and reverse volume through ``link`` from hour 0 to ``t`` (m³)."""
        k = self._k(t)
        fwd, rev = self._volume[link][k]
        q = self.flows[link][k]
        dt_h = max(0.0, t - self.times[k]) / 3600.0
        return fwd + max(q, 0.0) * dt_h, rev + max(-q, 0.0) * dt_h

    def leakage_m3(self, dma: str, t0: float, t1: float) -> float:
        """Background leakage of ``dma`` between ``t0`` and ``t1`` (m³), step by step."""
        self.advance_to(t1)
        total = 0.0
        for k, t in enumerate(self.times):
            lo, hi = max(t, t0), min(t + self.step_s, t1)
            if hi > lo:
                total += self.leak_lps[dma][k] * (hi - lo) / 1000.0
        return total

    def steps_between(self, t0: float, t1: float) -> list[int]:
        self.advance_to(t1)
        return [k for k, t in enumerate(self.times) if t0 <= t < t1]

    def share_at_least(self, nodes: Sequence[str], bar: float, t0: float, t1: float) -> float:
        """Share of the steps between ``t0`` and ``t1`` at which every one of ``nodes`` had
        at least ``bar``."""
        ks = self.steps_between(t0, t1)
        if not ks or not nodes:
            return 1.0
        ok = sum(all(self.pressures[n][k] >= bar - 1e-9 for n in nodes) for k in ks)
        return ok / len(ks)
