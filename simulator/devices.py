"""One simulated Modbus device: its register image, plausible values and a feeding API."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from typing import Any

from edge_agent.decode import encode_point, engineering_value
from edge_agent.profiles import BIT_TABLES, Point, Profile

FC_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"}
FC_TABLE.update(dict.fromkeys((3, 6, 16, 22, 23), "holding"))
EXC_ILLEGAL_ADDRESS = 2
EXC_ILLEGAL_VALUE = 3


class SimulatedDevice:
    """The registers of one device, laid out as its profile says.

    * ``set_value(point, value)`` / ``get_value(point)`` in engineering units (bar, m3, ...);
      a hydraulic simulation can drive the device through them (set ``auto=False`` so that the
      built-in behaviour leaves the values alone).
    * ``step(dt)`` moves the values plausibly (pressures wander, meters count up and wrap).
    * Fault injection: ``silent`` (no answers), ``max_read`` (refuse reads longer than that
      many registers with exception 2, like devices with small buffers).
    """

    def __init__(
        self,
        profile: Profile,
        unit: int = 1,
        *,
        auto: bool = True,
        seed: int | None = None,
        max_read: int | None = None,
    ) -> None:
        self.profile = profile
        self.unit = unit
        self.auto = auto
        self.max_read = max_read
        self.rng = random.Random(seed)
        self.image: dict[str, dict[int, int]] = {
            t: {} for t in ("coil", "discrete", "holding", "input")
        }
        self.requests = 0
        self.refused = 0
        self.writes: list[tuple[str, int, list[int]]] = []
        self._silent = False
        self._speak = asyncio.Event()
        self._speak.set()
        self._t = 0.0
        self._totals: dict[str, float] = {}
        for p in profile.points:
            for i in range(p.count):
                self.image[p.table][p.address + i] = 0
        self._initial_values()

    # ----------------------------------------------------------------------------- values

    def point(self, name: str) -> Point:
        p = self.profile.point(name)
        if p is None:
            raise KeyError(f"{self.profile.profile} has no point {name!r}")
        return p

    def set_value(self, name: str, value: float | bool | str) -> None:
        """Make ``name`` read ``value`` (engineering units). Counters wrap at ``rollover``."""
        p = self.point(name)
        if (
            p.rollover is not None
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            value = math.fmod(float(value), p.rollover)
        if p.kind == "counter" and isinstance(value, int | float):
            self._totals[name] = float(value)
        regs = encode_point(p, value)
        for i, r in enumerate(regs):
            self.image[p.table][p.address + i] = int(r)

    def get_value(self, name: str) -> float | bool | str:
        p = self.point(name)
        regs = [self.image[p.table][p.address + i] for i in range(p.count)]
        if p.table in BIT_TABLES:
            return engineering_value(p, [bool(r) for r in regs])
        return engineering_value(p, regs)

    def values(self) -> dict[str, Any]:
        return {p.name: self.get_value(p.name) for p in self.profile.points}

    @property
    def silent(self) -> bool:
        return self._silent

    @silent.setter
    def silent(self, on: bool) -> None:
        self._silent = on
        if on:
            self._speak.clear()
        else:
            self._speak.set()

    def _has(self, name: str) -> bool:
        return self.profile.point(name) is not None

    def _initial_values(self) -> None:
        kind = self.profile.device_kind
        start = {
            "pressure_bar": 3.2, "converter_status": 0,
            "inlet_bar": 5.6, "outlet_bar": 3.0, "valve_position_pct": 42.0, "mode": 2,
            "setpoint_bar": 3.0, "night_setpoint_bar": 2.2, "day_start_min": 360,
            "night_start_min": 1380, "remote_enable": True,
            "volume_m3": self.rng.uniform(10, 900),
            "flow_m3h": 22.0 if kind == "district_meter" else 0.0,
            "reverse_volume_m3": 0.0, "alarm_flags": 0,
            "forward_m3": self.rng.uniform(1e4, 1e5), "reverse_m3": 12.5,
        }  # fmt: skip
        for p in self.profile.points:
            if p.name in start:
                self.set_value(p.name, start[p.name])

    def _noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    def _count(self, name: str, delta: float) -> None:
        if self._has(name):
            total = self._totals.get(name, float(self.get_value(name))) + delta
            self.set_value(name, total)

    def step(self, dt: float, now: float | None = None) -> None:
        """Advance the built-in behaviour by ``dt`` seconds (``now``: wall clock, for the
        PRV's day/night schedule). Does nothing when ``auto`` is off."""
        if not self.auto:
            return
        self._t += dt
        t = self._t
        wall = time.time() if now is None else now
        kind = self.profile.device_kind
        if kind == "pressure_sensor":
            bar = 3.2 + 0.4 * math.sin(2 * math.pi * t / 600) + self._noise(0.02)
            self.set_value("pressure_bar", max(0.0, bar))
        elif kind == "prv_controller":
            minute = int(wall // 60) % 1440
            day_start = float(self.get_value("day_start_min"))
            night_start = float(self.get_value("night_start_min"))
            is_day = (
                day_start <= minute < night_start
                if day_start < night_start
                else not (night_start <= minute < day_start)
            )
            mode = int(float(self.get_value("mode")))
            target = float(
                self.get_value("setpoint_bar" if is_day or mode == 1 else "night_setpoint_bar")
            )
            inlet = 5.6 + 0.3 * math.sin(2 * math.pi * t / 900) + self._noise(0.02)
            outlet = (
                min(inlet - 0.1, target + self._noise(0.03))
                if mode
                else float(self.get_value("outlet_bar"))
            )
            self.set_value("inlet_bar", inlet)
            self.set_value("outlet_bar", max(0.0, outlet))
            pos = 100 * (1 - outlet / max(inlet, 0.1)) + self._noise(0.5)
            self.set_value("valve_position_pct", min(100.0, max(0.0, pos)))
        elif kind == "customer_meter":
            flow = float(self.get_value("flow_m3h"))
            flow = min(2.5, max(0.0, flow + self._noise(0.05)))
            if self.rng.random() < 0.05:
                flow = 0.0  # taps close
            self.set_value("flow_m3h", flow)
            self._count("volume_m3", flow * dt / 3600)
        elif kind == "district_meter":
            flow = 22 + 6 * math.sin(2 * math.pi * t / 3600) + self._noise(0.3)
            self.set_value("flow_m3h", flow)
            self._count("forward_m3", max(0.0, flow) * dt / 3600)

    # ----------------------------------------------------------------------------- Modbus side

    async def action(  # noqa: PLR0917 - the signature pymodbus calls
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> int | None:
        """pymodbus ``SimDevice.action``: sync the served block from the image, apply writes.

        Returns a Modbus exception code to refuse the request, None to answer it.
        """
        if self._silent:
            await self._speak.wait()
            return 6  # device busy: the asker gave up long ago anyway
        self.requests += 1
        table = FC_TABLE.get(function_code)
        if table is None:
            return 1
        if set_values is None and self.max_read is not None and count > self.max_read:
            self.refused += 1
            return EXC_ILLEGAL_ADDRESS
        bits = table in BIT_TABLES
        if set_values:
            err = self._apply_write(table, address, list(set_values))
            if err is not None:
                return err
        self._sync_block(table, start_address, current_registers, bits)
        return None

    def _apply_write(self, table: str, address: int, values: Sequence[int | bool]) -> int | None:
        img = self.image[table]
        if any(address + i not in img for i in range(len(values))):
            return EXC_ILLEGAL_ADDRESS
        before = {address + i: img[address + i] for i in range(len(values))}
        for i, v in enumerate(values):
            img[address + i] = int(v)
        # a real controller refuses a setpoint outside its range
        for p in self.profile.points:
            if (
                p.table == table
                and p.range is not None
                and p.address < address + len(values)
                and address < p.end
            ):
                val = self.get_value(p.name)
                if isinstance(val, float) and not p.range[0] <= val <= p.range[1]:
                    img.update(before)
                    return EXC_ILLEGAL_VALUE
        self.writes.append((table, address, [int(v) for v in values]))
        return None

    def _sync_block(self, table: str, start: int, regs: list[int], bits: bool) -> None:
        img = self.image[table]
        if bits:
            for r in range(len(regs)):
                word = 0
                for i in range(16):
                    if img.get((start + r) * 16 + i, 0):
                        word |= 1 << i
                regs[r] = word
        else:
            for r in range(len(regs)):
                a = start + r
                if a in img:
                    regs[r] = img[a]
