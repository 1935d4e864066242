"""Leak scenarios on the example networks that ship with WNTR, for the leak benchmark.

A scenario is one EPANET run (WNTR's EpanetSimulator, demand-driven) of an example network
(default Net3) partitioned into district metered areas (DMAs):

* **DMAs**: junctions are split into ``n_dmas`` areas around seeds that lie far apart (hop
  distance on the pipe graph). Tanks and reservoirs belong to no DMA: they are sources.
* **Inflow meters** sit on every link that crosses a DMA boundary (or connects a tank or
  reservoir); their sign per DMA says whether positive link flow enters it.
* **Customer meters** sit at every junction with a demand and report a cumulative register
  (m³) every hour, with a per-meter under-registration of 0-4 %.
* **Demand noise**: every junction gets its own pattern: the network's pattern × a daily factor
  shared by the DMA (σ 3 %) × an hourly factor per junction (σ 10 %).
* **Leaks** (0.5-10 L/s) are extra demands at a random junction from a random time: *abrupt*
  (full size at once) or *incipient* (growing linearly to full size over 2-5 days).
* **Sensor noise and missing data**: flow meters ±0.5 % and ±0.05 L/s, 1 % of readings
  missing and, for some meters, an outage of 2-6 hours; customer meters lose 2 % of readings.

Everything is drawn from one seed, so a scenario can be re-made exactly.
"""

# wntr is imported where the hydraulics run: it takes about a second to load (start-up time).
from __future__ import annotations

import csv
import glob
import json
import os
import tempfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from suvnet.textsafe import csv_text

STEP_S = 900  # hydraulic and report step (15 min)
CUSTOMER_STEP_S = 3600


def example_network(name: str = "Net3") -> Path:
    """Path of an example .inp file shipped inside the wntr package."""
    import wntr

    root = os.path.dirname(wntr.__file__)
    hits = sorted(glob.glob(os.path.join(root, "**", f"{name}.inp"), recursive=True))
    if not hits:
        raise FileNotFoundError(f"wntr ships no example network called {name}")
    return Path(hits[0])


@dataclass(frozen=True)
class Leak:
    dma: str
    node: str
    start_s: float  # seconds after the scenario start
    peak_lps: float
    kind: Literal["abrupt", "incipient"]
    ramp_s: float = 0.0

    def rate_lps(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.kind == "abrupt" or self.ramp_s <= 0:
            return np.where(t >= self.start_s, self.peak_lps, 0.0)
        frac = np.clip((t - self.start_s) / self.ramp_s, 0.0, 1.0)
        return np.where(t >= self.start_s, self.peak_lps * frac, 0.0)

    def time_reaching(self, lps: float) -> float:
        """Seconds after the scenario start when the leak first reaches ``lps`` L/s."""
        if self.kind == "abrupt" or self.ramp_s <= 0 or lps >= self.peak_lps:
            return self.start_s if lps <= self.peak_lps else float("inf")
        return self.start_s + self.ramp_s * lps / self.peak_lps


@dataclass(frozen=True)
class InflowMeter:
    code: str
    link: str
    zone_signs: dict[str, int]


@dataclass(frozen=True)
class CustomerMeter:
    code: str
    node: str
    dma: str
    bias: float  # under-registration (0.02 = reads 2 % low)


@dataclass
class Scenario:
    name: str
    network: str
    start: datetime
    days: int
    dmas: dict[str, list[str]]
    meters: list[InflowMeter]
    customers: list[CustomerMeter]
    leaks: list[Leak]
    times_s: npt.NDArray[np.float64] = field(repr=False)  # 15-min grid
    meter_lps: npt.NDArray[np.float64] = field(repr=False)  # (meters, times), NaN = missing
    customer_times_s: npt.NDArray[np.float64] = field(repr=False)
    customer_m3: npt.NDArray[np.float64] = field(repr=False)  # (customers, hours) registers

    def dma_inflow_lps(self, dma: str) -> npt.NDArray[np.float64]:
        """Signed net inflow of a DMA from the (noisy) meter readings."""
        tot = np.zeros(self.times_s.size)
        for i, m in enumerate(self.meters):
            s = m.zone_signs.get(dma)
            if s:
                tot = tot + s * self.meter_lps[i]
        return tot


def partition(
    graph_adj: dict[str, set[str]], junctions: list[str], n: int, rng: np.random.Generator
) -> dict[str, list[str]]:
    """Split junctions into ``n`` areas around far-apart seeds (multi-source BFS)."""

    def bfs(sources: list[str]) -> dict[str, tuple[int, str]]:
        dist: dict[str, tuple[int, str]] = {s: (0, s) for s in sources}
        q = deque(sources)
        while q:
            u = q.popleft()
            for v in graph_adj.get(u, ()):
                if v in jset and v not in dist:
                    dist[v] = (dist[u][0] + 1, dist[u][1])
                    q.append(v)
        return dist

    jset = set(junctions)
    seeds = [junctions[int(rng.integers(len(junctions)))]]
    while len(seeds) < n:
        d = bfs(seeds)
        far = max(junctions, key=lambda j: d.get(j, (10**6, ""))[0] if j in d else -1)
        seeds.append(far)
    d = bfs(seeds)
    out: dict[str, list[str]] = {f"DMA{i + 1}": [] for i in range(n)}
    for j in junctions:
        seed = d[j][1] if j in d else seeds[0]
        out[f"DMA{seeds.index(seed) + 1}"].append(j)
    return out


def generate(
    seed: int,
    *,
    network: str = "Net3",
    n_dmas: int = 3,
    days: int = 35,
    warmup_days: int = 14,
    leak: bool = True,
    start: datetime = datetime(2025, 5, 31, 19, 0, tzinfo=UTC),  # 00:00 in Tashkent
    workdir: str | None = None,
) -> Scenario:
    """Make one scenario (see the module docs). Leaks start after ``warmup_days``."""
    import wntr

    rng = np.random.default_rng(seed)
    wn = wntr.network.WaterNetworkModel(str(example_network(network)))
    adj: dict[str, set[str]] = {}
    for _, link in wn.links():
        a, b = link.start_node_name, link.end_node_name
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    junctions = sorted(wn.junction_name_list)
    dmas = partition(adj, junctions, n_dmas, rng)
    zone_of = {j: z for z, js in dmas.items() for j in js}
    meters: list[InflowMeter] = []
    for name, link in sorted(wn.links()):
        za, zb = zone_of.get(link.start_node_name), zone_of.get(link.end_node_name)
        if za == zb:
            continue
        signs: dict[str, int] = {}
        if zb is not None:
            signs[zb] = 1
        if za is not None:
            signs[za] = -1
        meters.append(InflowMeter(f"FM-{name}", name, signs))

    # ---------------------------------------------------------------- demands with noise
    n_steps = days * 86400 // STEP_S
    opts = wn.options.time
    pat_step = int(opts.pattern_timestep)
    default_pat = wn.options.hydraulic.pattern
    day_factor = {z: 1.0 + rng.normal(0.0, 0.03, days) for z in dmas}
    t_grid = np.arange(n_steps, dtype=np.float64) * STEP_S
    hours = (t_grid // 3600).astype(np.int64)
    customers: list[CustomerMeter] = []
    for j in junctions:
        node = wn.get_node(j)
        ts = node.demand_timeseries_list[0]
        if ts.base_value <= 0:
            continue
        pname = ts.pattern_name or default_pat
        base = (
            np.asarray(wn.get_pattern(pname).multipliers, dtype=np.float64)
            if pname and pname in wn.pattern_name_list
            else np.ones(1)
        )
        idx = (t_grid // pat_step).astype(np.int64) % base.size
        hourly = 1.0 + rng.normal(0.0, 0.10, hours.max() + 1)
        mult = base[idx] * day_factor[zone_of[j]][t_grid.astype(np.int64) // 86400] * hourly[hours]
        pn = f"dn_{j}"
        wn.add_pattern(pn, np.clip(mult, 0.0, None).tolist())
        ts.pattern_name = pn
        customers.append(CustomerMeter(f"CM-{j}", j, zone_of[j], float(rng.uniform(0, 0.04))))

    leaks: list[Leak] = []
    if leak:
        dma = sorted(dmas)[int(rng.integers(len(dmas)))]
        node = dmas[dma][int(rng.integers(len(dmas[dma])))]
        peak = float(np.round(rng.uniform(0.5, 10.0), 2))
        kind: Literal["abrupt", "incipient"] = "abrupt" if rng.random() < 0.6 else "incipient"
        t0 = float(rng.uniform((warmup_days + 1) * 86400, (days - 3) * 86400))
        ramp = float(rng.uniform(2, 5) * 86400) if kind == "incipient" else 0.0
        lk = Leak(dma, node, t0, peak, kind, ramp)
        leaks.append(lk)
        wn.add_pattern("leak_0", (lk.rate_lps(t_grid) / lk.peak_lps).tolist())
        wn.get_node(node).add_demand(lk.peak_lps / 1000.0, "leak_0")

    opts.pattern_timestep = STEP_S
    opts.hydraulic_timestep = STEP_S
    opts.report_timestep = STEP_S
    opts.duration = (n_steps - 1) * STEP_S
    opts.quality_timestep = 0
    wn.options.quality.parameter = "NONE"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(tmp, "sim"))
    flow = res.link["flowrate"]
    flow = flow[flow.index.isin(t_grid)].reindex(t_grid)
    demand = res.node["demand"]
    demand = demand[demand.index.isin(t_grid)].reindex(t_grid)

    # ---------------------------------------------------------------- sensors
    meter_lps = np.empty((len(meters), n_steps))
    for i, m in enumerate(meters):
        q = flow[m.link].to_numpy(dtype=np.float64) * 1000.0
        q = q * (1 + rng.normal(0, 0.005, n_steps)) + rng.normal(0, 0.05, n_steps)
        q[rng.random(n_steps) < 0.01] = np.nan
        if rng.random() < 0.3:
            a = int(rng.integers(0, n_steps - 24))
            q[a : a + int(rng.integers(8, 25))] = np.nan
        meter_lps[i] = q
    n_hours = days * 24 + 1
    ct = np.arange(n_hours, dtype=np.float64) * CUSTOMER_STEP_S
    cust_m3 = np.empty((len(customers), n_hours))
    for i, c in enumerate(customers):
        d = np.nan_to_num(demand[c.node].to_numpy(dtype=np.float64))  # m3/s, includes no leak
        if leaks and leaks[0].node == c.node:
            d = d - leaks[0].rate_lps(t_grid) / 1000.0  # the leak is not customer use
        vol = np.concatenate([[0.0], np.cumsum(np.clip(d, 0, None) * STEP_S)])
        reg_t = np.arange(n_steps + 1) * float(STEP_S)
        reg = 1000.0 * float(rng.uniform(0, 1)) + np.interp(ct, reg_t, vol) * (1 - c.bias)
        reg = np.round(reg, 3)
        reg[rng.random(n_hours) < 0.02] = np.nan
        cust_m3[i] = reg
    return Scenario(
        f"{network}-s{seed}", network, start, days, dmas, meters, customers, leaks,
        t_grid, meter_lps, ct, cust_m3,
    )  # fmt: skip


def write_registry_sql(sc: Scenario) -> list[tuple[str, tuple[object, ...]]]:
    """SQL statements (with parameters) that register the scenario's zones, meters and points."""

    dev_sql = (
        "INSERT INTO devices (code, kind, profile, zone_id, flow_sign, attrs) "
        "SELECT %s, %s, 'bench', id, %s, %s FROM zones WHERE code = %s"
    )
    point_sql = (
        "INSERT INTO points (device_id, name, unit, kind, poll_period_s) "
        "SELECT id, %s, %s, %s, %s FROM devices WHERE code = %s"
    )
    out: list[tuple[str, tuple[object, ...]]] = [
        ("INSERT INTO zones (code, name) VALUES (%s, %s)", (z, f"{sc.name} {z}"))
        for z in sorted(sc.dmas)
    ]
    for m in sc.meters:
        first = next(iter(m.zone_signs))
        attrs = {"link": m.link}
        out.append(
            (dev_sql, (m.code, "district_meter", m.zone_signs[first], json.dumps(attrs), first))
        )
        # a boundary meter counts for both zones: {"<zone id>": sign}
        zs_sql = (
            "UPDATE devices SET attrs = attrs || jsonb_build_object('zone_signs', "
            "coalesce(attrs->'zone_signs', '{}') || jsonb_build_object("
            "(SELECT id::text FROM zones WHERE code = %s), %s::int)) WHERE code = %s"
        )
        out.extend((zs_sql, (z, sign, m.code)) for z, sign in m.zone_signs.items())
        out.append((point_sql, ("flow", "L/s", "analog", 900, m.code)))
    for c in sc.customers:
        out.append((dev_sql, (c.code, "customer_meter", 1, "{}", c.dma)))
        out.append((point_sql, ("volume", "m3", "counter", 3600, c.code)))
    return out


def write_csv(sc: Scenario, path: Path) -> int:
    """Write the readings as a ``suvnet readings import`` CSV (ts, device, point, value)."""
    t0 = sc.start.timestamp()
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "device", "point", "value"])
        # device codes through csv_text like every CSV suvnet writes (the import undoes it)
        for i, m in enumerate(sc.meters):
            code = csv_text(m.code)
            for t, v in zip(sc.times_s, sc.meter_lps[i], strict=True):
                if np.isfinite(v):
                    w.writerow([int((t0 + t) * 1000), code, "flow", f"{v:.4f}"])
                    n += 1
        for i, c in enumerate(sc.customers):
            code = csv_text(c.code)
            for t, v in zip(sc.customer_times_s, sc.customer_m3[i], strict=True):
                if np.isfinite(v):
                    w.writerow([int((t0 + t) * 1000), code, "volume", f"{v:.3f}"])
                    n += 1
    return n


def at(sc: Scenario, seconds: float) -> datetime:
    return sc.start + timedelta(seconds=seconds)
