"""The simulated village of ``suvnet demo``: the demo clock, the hydraulic values the devices
serve, and the gateway configurations of the edge agents.

Pure where it can be: the plan (:func:`make_plan`) and the device values
(:func:`device_values`) are functions of their arguments; the clock is the only thing that
reads the real time.
"""

# wntr is imported where a network is built: it takes about a second to load (start-up time).
from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from edge_agent.profiles import Profile, default_profiles_dir, load_profiles
from simulator.closed_loop import Dma, Hydraulics, LiveNetwork, Network
from simulator.devices import SimulatedDevice
from simulator.hydraulic import CustomerConsumption, LeakSpec
from suvnet.prvcontrol import ControlConfig
from suvnet.site import DeviceSpec, GatewaySpec, SiteFile, SiteSpec, build_network

TZ = "Asia/Tashkent"
BASE_POLL_S = {"pressure_sensor": 300.0, "prv_controller": 300.0, "district_meter": 300.0}
"""Poll period per device kind in simulated seconds at low speeds (customer meters: 900)."""
MIN_REAL_POLL_S = 0.1
"""Never poll a device more often than this in real seconds (keeps the CPU load bounded)."""
LEAK_FLAG = 1 << 0
"""``alarm_flags.leak`` of the customer meters (the alarms' meter-flag convention)."""
TAMPER_FLAG = 1 << 2
"""``alarm_flags.tamper`` of the district and customer meters."""
TAMPER_HOURS = 3.0
"""How long the demo's district meter reports tampering (its housing is opened)."""
LEAK_LPS_AT_30M = 0.05
"""Background leakage of every junction of a regulated DMA at 30 m of pressure (L/s)."""
HYDRAULIC_STEP_S = 300
"""The demo's hydraulics are solved every 5 simulated minutes."""


class NetworkState(Protocol):
    """What the devices read: :class:`simulator.hydraulic.HydraulicRun` (precomputed) or
    :class:`simulator.closed_loop.LiveNetwork` (solved as the demo runs)."""

    @property
    def valve_nodes(self) -> Mapping[str, tuple[str, str]]: ...

    def pressure(self, node: str, t: float) -> float: ...

    def flow(self, link: str, t: float) -> float: ...

    def volume_m3(self, link: str, t: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class RegulatedPrv:
    """A PRV of the site with a controller: its device, valve, zone and critical points."""

    device: str
    gateway: str
    valve: str
    zone: str
    sensors: tuple[str, ...]
    """the nodes of its critical-point sensors"""
    control: ControlConfig
    profile: str = "prv_controller"


def regulated_prvs(
    site: SiteSpec, zone_of: Mapping[str, str | None] | None = None
) -> list[RegulatedPrv]:
    """The PRV controller devices of the site file that have a ``control:``. ``zone_of``:
    the zone of each network node, for a device that names its node and not its zone."""
    nodes = {d.code: d.node for g in site.gateways for d in g.devices}
    out = []
    for g in site.gateways:
        for d in g.devices:
            if d.control is None or not d.enabled or d.kind != "prv_controller":
                continue
            sensors = tuple(
                n for s in d.control.signals() if (n := nodes.get(s.device)) is not None
            )
            zone = device_zone(d, zone_of or {})
            valve = str(d.attrs.get("valve", ""))
            out.append(RegulatedPrv(d.code, g.code, valve, zone, sensors, d.control, d.profile))
    return out


def device_zone(d: DeviceSpec, zone_of: Mapping[str, str | None]) -> str:
    """A device's zone: its own, else its node's."""
    return d.zone or (zone_of.get(d.node) if d.node else None) or ""


def village_network(site: SiteFile, inp: Path) -> tuple[Network, list[RegulatedPrv]]:
    """The demo's network for the closed loop: the DMAs whose PRV is regulated get
    pressure-dependent background leakage; every junction follows the village's day."""
    import wntr

    model = build_network(site)
    zone_of = {n.code: n.zone for n in model.nodes} if model is not None else {}
    wn = wntr.network.WaterNetworkModel(str(inp))
    junctions = list(wn.junction_name_list)
    upstream = {str(v.start_node_name) for _, v in wn.valves()}  # a PRV's inlet chamber
    prvs = regulated_prvs(site.spec, zone_of)
    dmas = []
    for p in prvs:
        meters = [
            d.pipe
            for g in site.spec.gateways
            for d in g.devices
            if d.kind == "district_meter"
            and device_zone(d, zone_of) == p.zone
            and d.pipe
            and d.flow_sign == 1
        ]
        nodes = tuple(j for j in junctions if zone_of.get(j) == p.zone and j not in upstream)
        zone = next((z for z in site.spec.zones if z.code == p.zone), None)
        target = (zone.min_service_pressure_bar if zone else None) or 2.0
        dmas.append(
            Dma(p.zone, p.valve, meters[0] if meters else "", p.sensors, nodes, target,
                LEAK_LPS_AT_30M)
        )  # fmt: skip
    managed = {n for d in dmas for n in d.nodes}
    others = tuple(j for j in junctions if j not in managed)

    def build() -> Any:
        return wntr.network.WaterNetworkModel(str(inp))

    return Network("village", build, tuple(dmas), others), prvs


def demo_hydraulics(plan: DemoPlan) -> Hydraulics:
    """The demo's stepped hydraulics: the village's day without noise, every 5 minutes."""
    return Hydraulics(
        step_s=HYDRAULIC_STEP_S,
        days=plan.sim_days,
        demand_noise=0.0,
        day_to_day=0.0,
        leak_lps_at_30m=LEAK_LPS_AT_30M,
    )


@dataclass(frozen=True)
class PressureReport:
    """A regulated DMA over the demo's days: critical-point control against the same days
    with the PRV held at its fixed outlet."""

    zone: str
    device: str
    days: float
    target_bar: float
    fixed_bar: float
    leakage_cp: float
    """m³/day"""
    leakage_fixed: float
    compliance_cp: float
    compliance_fixed: float
    setpoint_min: float
    setpoint_max: float

    @property
    def saving(self) -> float:
        return 1.0 - self.leakage_cp / self.leakage_fixed if self.leakage_fixed > 0 else 0.0


def pressure_report(  # noqa: PLR0917 - what the comparison is made of
    live: LiveNetwork,
    net: Network,
    h: Hydraulics,
    regulated: Sequence[RegulatedPrv],
    plan: DemoPlan,
    now: float,
) -> list[PressureReport]:
    """Run the same days again with every regulated PRV at its fixed outlet (the setting of
    the model file) and compare each regulated DMA's leakage and critical points."""
    t0, t1 = plan.t(plan.start), plan.t(min(now, plan.end))
    if t1 <= t0:
        return []
    profiles = load_profiles(default_profiles_dir())
    fixed_devices = {}
    for p in regulated:
        dev = SimulatedDevice(profiles[p.profile], 1, auto=False)
        dev.set_value("mode", 1)
        dev.set_value("setpoint_bar", live.initial_setting_bar(p.valve))
        fixed_devices[p.valve] = dev
    with tempfile.TemporaryDirectory(prefix="suvnet-demo-fixed-") as tmp:
        fixed = LiveNetwork(net, h, Path(tmp), bursts=list(live.bursts), prvs=fixed_devices)
        try:
            fixed.advance_to(t1)
            days = (t1 - t0) / 86400
            out = []
            for p in regulated:
                dma = next(d for d in net.dmas if d.code == p.zone)
                ks = live.steps_between(t0, t1)
                settings = [live.settings.get(p.valve, [0.0])[k] for k in ks] or [0.0]
                out.append(
                    PressureReport(
                        zone=p.zone,
                        device=p.device,
                        days=days,
                        target_bar=dma.target_bar,
                        fixed_bar=float(fixed_devices[p.valve].get_value("setpoint_bar")),
                        leakage_cp=live.leakage_m3(p.zone, t0, t1) / days,
                        leakage_fixed=fixed.leakage_m3(p.zone, t0, t1) / days,
                        compliance_cp=live.share_at_least(dma.critical, dma.target_bar, t0, t1),
                        compliance_fixed=fixed.share_at_least(dma.critical, dma.target_bar, t0, t1),
                        setpoint_min=min(settings),
                        setpoint_max=max(settings),
                    )
                )
            return out
        finally:
            fixed.close()


def demo_control(cfg: ControlConfig, plan: DemoPlan) -> dict[str, Any]:
    """A controller configuration at the demo's pace: it decides once per poll of the PRV
    (simulated seconds) and counts a signal stale after three polls missed."""
    poll = plan.poll_s["prv_controller"]
    sensor_poll = plan.poll_s["pressure_sensor"]
    update = {
        "interval_s": min(3600.0, poll),
        "stale_after_s": min(86400.0, 3 * max(poll, sensor_poll)),
    }
    return cfg.model_copy(update=update).wire()


class DemoClock:
    """Simulated time: ``start + elapsed real time x speed``, held at ``end``.

    ``time()`` is the simulated wall clock (epoch seconds), ``monotonic()`` the simulated
    seconds since the clock started, and ``sleep(s)`` waits ``s / speed`` real seconds. Once
    the simulated end is reached, ``sleep`` never returns (cancel it): the pollers stop at the
    end of the simulated period while the rest of the agent keeps sending what it holds.
    """

    def __init__(self, start: float, end: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if end <= start:
            raise ValueError("end must be after start")
        self.start, self.end, self.speed = start, end, speed
        self._t0 = time.monotonic()

    def raw(self) -> float:
        return self.start + (time.monotonic() - self._t0) * self.speed

    def time(self) -> float:
        return min(self.raw(), self.end)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    @property
    def finished(self) -> bool:
        return self.raw() >= self.end

    @property
    def fraction(self) -> float:
        return min(1.0, (self.raw() - self.start) / (self.end - self.start))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
        if self.finished:
            await asyncio.Event().wait()  # the period is over: wait to be cancelled


@dataclass(frozen=True)
class DemoPlan:
    """When things happen in the demo (epoch seconds) and how often devices are polled."""

    start: float
    end: float
    origin: float  # local midnight on or before start: hour 0 of the hydraulic run
    sim_days: int  # days the hydraulic run covers (from origin)
    leak: LeakSpec
    leak_start: float
    poll_s: dict[str, float]  # simulated seconds per device kind
    min_history_days: int  # what the zone leak rules learn before they may alarm
    tamper_device: str = "dm-south"
    tamper_start: float = 0.0  # its meter reports tampering from here ...
    tamper_end: float = 0.0  # ... to here (epoch seconds)

    def t(self, epoch: float) -> float:
        """Seconds since the hydraulic run's hour 0."""
        return epoch - self.origin


def make_plan(
    now: datetime,
    *,
    days: int,
    speed: float,
    leak_node: str = "S4",
    leak_lps: float = 3.0,
    tamper_device: str = "dm-south",
    tz: str = TZ,
) -> DemoPlan:
    """The demo's time line: ``days`` days ending ``now`` (never later: readings are never
    stamped ahead of the real clock); a leak a week before the end (or a quarter of the
    period when that is shorter); ``tamper_device`` reports tampering for a few hours in the
    middle of the period."""
    if days < 2:
        raise ValueError("the demo needs at least 2 days (--days)")
    end = now.timestamp()
    start = end - days * 86400
    local = datetime.fromtimestamp(start, ZoneInfo(tz))
    origin = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    sim_days = math.ceil((end - origin) / 86400) + 1
    leak_days = min(7.0, max(1.0, days / 4))
    leak_start = end - leak_days * 86400
    history = int(max(2, min(7, days - leak_days - 2)))
    poll = {}
    for kind in ("pressure_sensor", "prv_controller", "district_meter", "customer_meter"):
        base = BASE_POLL_S.get(kind, 900.0)
        poll[kind] = float(min(86400.0, max(base, round(MIN_REAL_POLL_S * speed))))
    leak = LeakSpec(leak_node, (leak_start - origin) / 3600.0, leak_lps)
    tamper_start = start + 0.5 * (end - start)
    return DemoPlan(
        start,
        end,
        origin,
        sim_days,
        leak,
        leak_start,
        poll,
        history,
        tamper_device,
        tamper_start,
        tamper_start + TAMPER_HOURS * 3600,
    )


def flag_windows(plan: DemoPlan, device: str) -> tuple[tuple[float, float, int], ...]:
    """When ``device`` raises which meter flags in the demo: (from, to, bits), in seconds of
    the hydraulic run."""
    if device != plan.tamper_device:
        return ()
    return ((plan.t(plan.tamper_start), plan.t(plan.tamper_end), TAMPER_FLAG),)


@dataclass
class DeviceFeed:
    """What one simulated device serves: its site entry and where its values come from."""

    spec: DeviceSpec
    offsets: dict[str, float] = field(default_factory=dict)
    register: npt.NDArray[np.float64] | None = None  # customer meters: hourly register
    hourly: npt.NDArray[np.float64] | None = None  # customer meters: m³ per hour
    flags: tuple[tuple[float, float, int], ...] = ()  # (from, to, bits): see flag_windows


def customer_feed(spec: DeviceSpec, hours: int, seed: int, leak_m3h: float) -> DeviceFeed:
    """A household meter: synthetic daily use (and a leak on the customer's side, if any)."""
    rng = np.random.default_rng(seed)
    cons = CustomerConsumption(daily_m3=float(rng.uniform(0.25, 0.6)), seed=seed, leak_m3h=leak_m3h)
    hourly = cons.hourly(hours)
    start = float(np.round(rng.uniform(50, 900), 3))
    register = start + np.concatenate(([0.0], np.cumsum(hourly)))
    return DeviceFeed(spec, register=register, hourly=hourly)


def meter_flags(feed: DeviceFeed, t: float) -> int:
    """The flag register of a meter ``t`` seconds after the run's hour 0: the planned flags,
    and for a customer meter its own leak flag, set after 24 hours in which no hour was
    without flow (a running toilet)."""
    bits = 0
    for lo, hi, b in feed.flags:
        if lo <= t < hi:
            bits |= b
    if feed.hourly is not None:
        k = min(int(max(t, 0.0) // 3600), len(feed.hourly))  # full hours before t
        if k >= 24 and float(np.min(feed.hourly[k - 24 : k])) > 0.0:
            bits |= LEAK_FLAG
    return bits


def device_values(feed: DeviceFeed, run: NetworkState, t: float) -> dict[str, float]:
    """The engineering values ``feed``'s device shows ``t`` seconds after the run's hour 0."""
    spec = feed.spec
    if spec.kind == "pressure_sensor" and spec.node:
        return {"pressure_bar": max(0.0, run.pressure(spec.node, t))}
    if spec.kind == "district_meter" and spec.pipe:
        q = spec.flow_sign * run.flow(spec.pipe, t)
        fwd, rev = run.volume_m3(spec.pipe, t)
        if spec.flow_sign < 0:
            fwd, rev = rev, fwd
        return {
            "flow_m3h": q,
            "forward_m3": feed.offsets.get("forward_m3", 0.0) + fwd,
            "reverse_m3": feed.offsets.get("reverse_m3", 0.0) + rev,
            "alarm_flags": float(meter_flags(feed, t)),
        }
    if spec.kind == "prv_controller":
        valve = str(spec.attrs.get("valve", ""))
        inlet_node, outlet_node = run.valve_nodes.get(valve, (spec.node or "", spec.node or ""))
        inlet = max(0.0, run.pressure(inlet_node, t))
        outlet = max(0.0, run.pressure(outlet_node, t))
        pos = 100.0 * (1.0 - outlet / inlet) if inlet > 0.1 else 100.0
        return {
            "inlet_bar": inlet,
            "outlet_bar": outlet,
            "valve_position_pct": min(100.0, max(0.0, pos)),
        }
    if spec.kind == "customer_meter" and feed.register is not None and feed.hourly is not None:
        h = min(max(t / 3600.0, 0.0), float(len(feed.hourly)))
        k = min(int(h), len(feed.hourly) - 1)
        vol = float(np.interp(h, np.arange(len(feed.register)), feed.register))
        return {
            "volume_m3": vol,
            "flow_m3h": float(feed.hourly[k]) if t >= 0 else 0.0,
            "alarm_flags": float(meter_flags(feed, t)),
        }
    return {}


class FedDevice(SimulatedDevice):
    """A simulated device whose values come from the hydraulic run at the demo clock's time,
    refreshed on every Modbus request (so a reading is exactly what the network did then)."""

    def __init__(  # noqa: PLR0917 - the parts it is made of
        self,
        profile: Profile,
        unit: int,
        feed: DeviceFeed,
        run: NetworkState,
        plan: DemoPlan,
        clock: DemoClock,
    ) -> None:
        super().__init__(profile, unit, auto=False, seed=unit)
        self.feed, self.run, self.plan, self.clock = feed, run, plan, clock
        self.refresh()

    def refresh(self) -> None:
        for name, value in device_values(
            self.feed, self.run, self.plan.t(self.clock.time())
        ).items():
            if self.profile.point(name) is not None:
                self.set_value(name, value)

    async def action(  # noqa: PLR0917 - the signature pymodbus calls
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> int | None:
        if not set_values:
            self.refresh()
        return await super().action(
            function_code, start_address, address, count, current_registers, set_values
        )


def gateway_doc(
    gw: GatewaySpec,
    *,
    port: int,
    mqtt_url: str,
    topic_root: str,
    workdir: Path,
    plan: DemoPlan,
    profiles_dir: Path,
    controllers: Mapping[str, dict[str, Any]] | None = None,
    share: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``gateway.yaml`` of one demo gateway: its devices on a Modbus TCP simulator, the
    PRV controllers it runs and the values it shares with other gateways."""
    days = (plan.end - plan.start) / 86400
    extra: dict[str, Any] = {}
    if controllers:
        extra["controllers"] = dict(controllers)
    if share:
        extra["share"] = list(share)
    return {
        "gateway": gw.code,
        "profiles_dir": str(profiles_dir),
        "mqtt": {"url": mqtt_url, "topic_root": topic_root, "reconnect_max_s": 2.0},
        "outbox": {
            "path": str(workdir / f"{gw.code}-outbox.db"),
            "commit_interval_s": 0.05,
            "max_age_days": days + 5,
        },
        # ages are in simulated seconds: 1 s means "send what the last commit brought"
        "batch": {"max_readings": 2000, "max_latency_s": 1.0, "resend_after_s": 10.0},
        "health_interval_s": 5.0,
        "buses": [
            {
                "name": "sim",
                "kind": "tcp",
                "host": "127.0.0.1",
                "port": port,
                "timeout_s": 2.0,
                "devices": [
                    {
                        "id": d.code,
                        "unit": d.unit_id or 1,
                        "profile": d.profile,
                        "poll_s": plan.poll_s[d.kind],
                    }
                    for d in gw.devices
                    if d.enabled
                ],
            }
        ],
        **extra,
    }


def customer_meters(site: SiteSpec) -> list[tuple[GatewaySpec, DeviceSpec]]:
    return [(g, d) for g in site.gateways for d in g.devices if d.kind == "customer_meter"]


def period_of(start: float, end: float, tz: str = TZ) -> datetime:
    """First day (local) of the calendar month that overlaps [start, end) the most."""
    zone = ZoneInfo(tz)
    best, best_s = None, -1.0
    d = datetime.fromtimestamp(start, zone).replace(day=1, hour=0, minute=0, second=0)
    d = d.replace(microsecond=0)
    while d.timestamp() < end:
        nxt = (d + timedelta(days=32)).replace(day=1)
        overlap = min(end, nxt.timestamp()) - max(start, d.timestamp())
        if overlap > best_s:
            best, best_s = d, overlap
        d = nxt
    assert best is not None
    return best


def fmt_sim(ts: float, tz: str = TZ) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def all_devices(site: SiteSpec) -> Sequence[DeviceSpec]:
    return [d for g in site.gateways for d in g.devices]
