"""The PRV controller in the agent: the bookkeeping around :func:`edge_agent.control.decide`
(:class:`Loop`, no I/O) and the task that runs it next to the Modbus device
(:class:`Regulator`).

The loop sees every reading this gateway polls (its own PRV's setpoint, local switch and
mode; local critical-point sensors and inflow meters) and the values of other gateways or the
office that arrive on value topics. Every ``interval_s`` it decides; a critical-point reading
below the low-pressure alarm makes it decide at once. It writes through the device's Modbus
client (the device's mode first, then the setpoint, each read back), and publishes each
decision as readings of the PRV device (``ctl_*``, :data:`suvnet.profiles.CONTROLLER_POINTS`)
through the outbox like any other telemetry. It needs no office and no broker: a lost link
only matters for signals that come over MQTT (they fall back to the safe setpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge_agent.commands import ReadbackMismatch, plan_write, write_points
from edge_agent.control import (
    MODE_CODES,
    Decision,
    Inputs,
    Reason,
    Sample,
    State,
    decide,
    wants_alarm_step,
)
from edge_agent.errors import CommandRefused, ModbusError
from edge_agent.modbus import ModbusClient
from edge_agent.poller import Clock, DeviceHealth, clock_ms
from edge_agent.profiles import Profile
from suvnet.profiles import CONTROL_INTERVAL_S, ControllerMap
from suvnet.protocol import PointValue, Quality, Reading
from suvnet.prvcontrol import ControlConfig

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class Loop:
    """One PRV's controller: what it has seen, its memory and what it publishes. No I/O:
    the agent and the hydraulic simulation feed it readings and carry out its writes."""

    device: str
    profile: Profile
    config: ControlConfig | None = None
    state: State = field(default_factory=State)
    setpoint: float | None = None
    """the device's setpoint as last read or written"""
    remote_enable: bool | None = None
    mode: float | None = None
    """the device's own mode point as last read (None: not read yet)"""
    last: Decision | None = None

    def __post_init__(self) -> None:
        if self.profile.controller is None:
            raise ValueError(f"profile {self.profile.profile} has no controller section")
        self.map: ControllerMap = self.profile.controller
        self._samples: dict[Key, Sample] = {}
        self._by_source: dict[tuple[str, str, str], Key] = {}
        self.configure(self.config)

    # ------------------------------------------------------------------------ configuration

    def configure(self, config: ControlConfig | None) -> None:
        """Run ``config`` from now on (None: hand, no configuration). The memory of the last
        change stays (the rate limit goes on); samples of signals no longer used are dropped."""
        self.config = config
        keep = {s.key for s in config.signals()} if config is not None else set()
        self._samples = {k: v for k, v in self._samples.items() if k in keep}
        self._by_source = {
            (s.source, s.device, s.point): s.key
            for s in (config.signals() if config is not None else ())
            if s.source is not None
        }

    @property
    def interval_s(self) -> float:
        return self.config.interval_s if self.config is not None else CONTROL_INTERVAL_S

    def local_keys(self) -> set[Key]:
        """``(device, point)`` of every reading of this gateway the loop wants to see."""
        own = {self.map.setpoint, self.map.enable, self.map.mode} - {None}
        keys = {(self.device, p) for p in own if p is not None}
        if self.config is not None:
            keys |= {s.key for s in self.config.signals() if s.source is None}
        return keys

    def remote_topics(self) -> set[tuple[str, str, str]]:
        """``(source, device, point)`` of every value it needs from elsewhere."""
        return set(self._by_source)

    def _cp_keys(self) -> list[Key]:
        cfg = self.config
        if cfg is None or cfg.critical_point is None or cfg.mode != "critical_point":
            return []
        return [s.key for s in cfg.critical_point.sensors]

    # ------------------------------------------------------------------------ observing

    def observe(self, r: Reading) -> bool:
        """A reading polled by this gateway. True when it calls for an alarm step now."""
        good = r.quality is Quality.GOOD and r.value is not None
        if r.device == self.device:
            if r.point == self.map.setpoint and good:
                self.setpoint = r.value
            elif r.point == self.map.enable and good:
                self.remote_enable = bool(r.value)
            elif r.point == self.map.mode and good:
                self.mode = r.value
        cfg = self.config
        if cfg is None:
            return False
        key = (r.device, r.point)
        if any(s.source is None and s.key == key for s in cfg.signals()):
            return self._sample(key, r.value, r.ts_ms, good)
        return False

    def observe_value(self, source: str, v: PointValue) -> bool:
        """A value that came on a value topic from ``source``."""
        key = self._by_source.get((source, v.device, v.point))
        if key is None:
            return False
        good = v.quality is Quality.GOOD and v.value is not None
        return self._sample(key, v.value, v.ts_ms, good)

    def _sample(self, key: Key, value: float | None, ts_ms: int, good: bool) -> bool:
        old = self._samples.get(key)
        ts = ts_ms / 1000.0
        if old is not None and old.ts > ts:
            return False  # an older value (a retained message after a fresh one)
        self._samples[key] = Sample(value, ts, good)
        return good and key in self._cp_keys() and wants_alarm_step(self.config, value)

    # ------------------------------------------------------------------------ deciding

    def inputs(self, now: float, *, link_up: bool, device_ok: bool) -> Inputs:
        cfg = self.config
        cp: tuple[Sample | None, ...] = ()
        inflow = None
        if cfg is not None and cfg.critical_point is not None:
            cp = tuple(self._samples.get(s.key) for s in cfg.critical_point.sensors)
        if cfg is not None and cfg.flow is not None:
            inflow = self._samples.get(cfg.flow.inflow.key)
        return Inputs(now, self.setpoint, device_ok, self.remote_enable, cp, inflow, link_up)

    def step(self, now: float, *, link_up: bool, device_ok: bool, alarm: bool = False) -> Decision:
        """One decision. A write is only remembered once :meth:`written` confirms it."""
        d = decide(
            self.config,
            self.state,
            self.inputs(now, link_up=link_up, device_ok=device_ok),
            alarm=alarm,
        )
        self.last = d
        if not d.write:
            self.state = d.state
        return d

    def needs_mode(self) -> bool:
        """True when the device's own mode must be set before a setpoint is written."""
        return self.map.mode is not None and self.mode != self.map.mode_value

    def written(self, d: Decision, readback: float | None) -> None:
        """The device now holds ``readback`` (the setpoint the decision wrote)."""
        self.state = d.state
        self.setpoint = readback if readback is not None else d.setpoint
        if self.map.mode is not None:
            self.mode = self.map.mode_value

    def failed(self, d: Decision) -> None:
        """The write of ``d`` failed: nothing changed on the device."""
        self.last = Decision(self.setpoint, False, d.target, Reason.PRV_OFFLINE, d.cp_min, d.state)

    def readings(self, d: Decision, ts_ms: int) -> list[Reading]:
        """The decision as readings of the PRV device (``ctl_*``)."""
        dev = self.device
        cfg = self.config

        def r(point: str, value: float | None) -> Reading:
            if value is None:
                return Reading(dev, point, ts_ms, None, Quality.COMM_FAIL)
            return Reading(dev, point, ts_ms, float(value))

        out = [
            r("ctl_setpoint_bar", d.setpoint),
            r("ctl_target_bar", d.target),
            r("ctl_reason", float(d.reason)),
            r("ctl_mode", float(MODE_CODES[cfg.mode if cfg is not None else None])),
            r("ctl_auto", 1.0 if cfg is not None and cfg.auto else 0.0),
        ]
        if d.cp_min is not None:
            out.insert(2, r("ctl_cp_bar", d.cp_min))
        return out


class Regulator:
    """Runs one :class:`Loop` against its device for ever (a task the agent supervises)."""

    def __init__(
        self,
        loop: Loop,
        *,
        client: ModbusClient,
        health: DeviceHealth,
        sink: Callable[[Sequence[Reading]], None],
        clock: Clock,
        link_up: Callable[[], bool],
    ) -> None:
        self.loop = loop
        self.client = client
        self.health = health
        self.sink = sink
        self.clock = clock
        self.link_up = link_up
        self.alarm = asyncio.Event()
        self.wake = asyncio.Event()
        self.writes = 0
        self._reason: Reason | None = None

    def observe(self, r: Reading) -> None:
        unknown = self.loop.setpoint is None
        if self.loop.observe(r):
            self.alarm.set()
        if unknown and self.loop.setpoint is not None:
            self.wake.set()  # the device's setpoint is known: the first decision can come

    def observe_value(self, source: str, v: PointValue) -> None:
        if self.loop.observe_value(source, v):
            self.alarm.set()

    def reconfigure(self, config: ControlConfig | None) -> None:
        self.loop.configure(config)
        self.wake.set()  # decide under the new configuration now

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` of the agent's clock, or less when woken; True for an alarm."""
        if self.alarm.is_set() or self.wake.is_set():
            alarm = self.alarm.is_set()
            self.alarm.clear()
            self.wake.clear()
            return alarm
        tasks = [
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(self.alarm.wait()),
            asyncio.ensure_future(self.wake.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        alarm = self.alarm.is_set()
        self.alarm.clear()
        self.wake.clear()
        return alarm

    async def run(self) -> None:
        loop = self.loop
        alarm = False
        if loop.setpoint is None:  # the first decision once the device's setpoint is read
            alarm = await self._wait(loop.interval_s)
        while True:
            await self.decide_once(alarm=alarm)
            alarm = await self._wait(loop.interval_s)

    async def decide_once(self, *, alarm: bool = False) -> Decision:
        loop = self.loop
        now = self.clock.time()
        d = loop.step(now, link_up=self.link_up(), device_ok=self.health.online, alarm=alarm)
        if d.write and d.setpoint is not None:
            d = await self._write(d)
        if d.reason != self._reason:
            log.info(
                "PRV %s: %s (setpoint %s)",
                loop.device,
                d.reason.label,
                "unknown" if d.setpoint is None else f"{d.setpoint:g} bar",
            )
            self._reason = d.reason
        if d.write or not alarm:
            self.sink(loop.readings(d, clock_ms(self.clock)))
        return d

    async def _write(self, d: Decision) -> Decision:
        loop = self.loop
        assert d.setpoint is not None
        try:
            writes = []
            if loop.needs_mode():
                assert loop.map.mode is not None
                assert loop.map.mode_value is not None
                writes.append(plan_write(loop.profile, loop.map.mode, loop.map.mode_value))
            writes.append(plan_write(loop.profile, loop.map.setpoint, d.setpoint))
            got = await write_points(self.client, writes)
        except (ModbusError, ReadbackMismatch, CommandRefused) as exc:
            log.warning("PRV %s: setpoint %g bar not written: %s", loop.device, d.setpoint, exc)
            loop.failed(d)
            assert loop.last is not None
            return loop.last
        loop.written(d, None if isinstance(got, bool) else got)
        self.writes += 1
        return d
