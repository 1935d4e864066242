"""Commands from the office: validate against the profile (pure), then write and read back."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edge_agent.decode import encode_point, engineering_value
from edge_agent.errors import CommandRefused, ModbusError
from edge_agent.modbus import ModbusClient
from edge_agent.profiles import Point, Profile
from suvnet.protocol import Command, CommandResult


@dataclass(frozen=True)
class Write:
    point: Point
    value: float | bool
    registers: tuple[int, ...] | tuple[bool, ...]


def _fmt(v: float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{v:g}"


def _check_value(point: Point, value: float | bool) -> Write:
    if not point.writable:
        raise CommandRefused(f"read_only: {point.name} cannot be written")
    if point.type == "bool":
        if not isinstance(value, bool) and value not in (0, 1):
            raise CommandRefused(f"bad_value: {point.name} takes true or false")
        value = bool(value)
    else:
        if isinstance(value, bool):
            raise CommandRefused(f"bad_value: {point.name} takes a number")
        if not math.isfinite(value):
            raise CommandRefused(f"bad_value: {point.name} takes a finite number")
        if point.range is not None:
            lo, hi = point.range
            if value < lo:
                raise CommandRefused(f"out_of_range: {_fmt(value)} < {_fmt(lo)}")
            if value > hi:
                raise CommandRefused(f"out_of_range: {_fmt(value)} > {_fmt(hi)}")
    try:
        regs = encode_point(point, value)
    except ValueError as exc:
        raise CommandRefused(f"bad_value: {exc}") from exc
    return Write(point, value, tuple(regs))


def plan_command(cmd: Command, profiles: Mapping[str, Profile], now_ms: int) -> list[Write]:
    """The writes a command asks for, or :class:`CommandRefused` with the reason. Pure."""
    if cmd.expires_ms is not None and now_ms > cmd.expires_ms:
        raise CommandRefused("expired")
    profile = profiles.get(cmd.device)
    if profile is None:
        raise CommandRefused(f"unknown_device: {cmd.device}")
    if cmd.op == "write":
        if cmd.point is None or cmd.value is None:
            raise CommandRefused("bad_command: a write needs point and value")
        point = profile.point(cmd.point)
        if point is None:
            raise CommandRefused(f"unknown_point: {cmd.point}")
        return [_check_value(point, cmd.value)]
    if profile.schedule is None:
        raise CommandRefused(f"no_schedule: {profile.profile} has no setpoint schedule")
    slots = profile.schedule.slots
    entries = sorted(cmd.schedule)
    if len(entries) != len(slots):
        raise CommandRefused(f"bad_schedule: {profile.profile} takes exactly {len(slots)} entries")
    if len({t for t, _ in entries}) != len(entries):
        raise CommandRefused("bad_schedule: two entries start at the same time")
    writes: list[Write] = []
    for slot, (hhmm, value) in zip(slots, entries, strict=True):
        hh, mm = hhmm.split(":")
        start = profile.point(slot.start)
        setpoint = profile.point(slot.setpoint)
        assert start is not None  # checked when the profile was loaded
        assert setpoint is not None
        writes.append(_check_value(start, float(int(hh) * 60 + int(mm))))
        writes.append(_check_value(setpoint, float(value)))
    return writes


def _same(point: Point, wrote: float | bool, read: float | bool | str) -> bool:
    if isinstance(wrote, bool) or isinstance(read, bool | str):
        return bool(read) == bool(wrote) if not isinstance(read, str) else False
    tol = abs(point.scale) / 2 + 1e-9 if not point.type.startswith("float") else 1e-4
    return abs(float(read) - float(wrote)) <= max(tol, 1e-6 * abs(float(wrote)))


async def execute(
    cmd: Command, writes: Sequence[Write], client: ModbusClient, now: Callable[[], int]
) -> CommandResult:
    """Write, read back and compare; the result carries the value read back."""
    readback: float | bool | None = None
    try:
        for w in writes:
            await client.write(w.point.table, w.point.address, list(w.registers))
        for w in writes:
            regs = await client.read(w.point.table, w.point.address, w.point.count)
            got = engineering_value(w.point, regs)
            if not _same(w.point, w.value, got):
                return CommandResult(
                    cmd.id, False, now(),
                    f"readback_mismatch: wrote {_fmt(w.value)} to {w.point.name}, read {got}",
                    None if isinstance(got, str) else got,
                )  # fmt: skip
            if cmd.op == "write" and not isinstance(got, str):
                readback = got
    except ModbusError as exc:
        return CommandResult(cmd.id, False, now(), f"write_failed: {exc}")
    return CommandResult(cmd.id, True, now(), None, readback)
