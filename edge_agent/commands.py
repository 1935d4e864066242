"""Commands from the office: validate against the profile (pure), then write and read back.

``write`` and ``schedule`` become register writes (:func:`plan_command`, :func:`execute`);
``control`` and ``share`` change what the gateway's PRV controllers do and which values it
shares with other gateways (:func:`plan_control`, :func:`plan_share`; the agent applies
them and keeps them on disk).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from edge_agent.decode import encode_point, engineering_value
from edge_agent.errors import CommandRefused, ModbusError
from edge_agent.modbus import ModbusClient
from edge_agent.profiles import Point, Profile, published_names
from suvnet.profiles import write_problem
from suvnet.protocol import Command, CommandResult
from suvnet.prvcontrol import ControlConfig, Problem, config_problems


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
    problem = write_problem(point, value)
    if problem is not None:
        raise CommandRefused(problem)
    if point.type == "bool":
        value = bool(value)
    try:
        regs = encode_point(point, value)
    except ValueError as exc:
        raise CommandRefused(f"bad_value: {exc}") from exc
    return Write(point, value, tuple(regs))


def plan_write(profile: Profile, point_name: str, value: float | bool) -> Write:
    """One checked write of ``point_name`` (the PRV controller's setpoints use it too)."""
    point = profile.point(point_name)
    if point is None:
        raise CommandRefused(f"unknown_point: {point_name}")
    return _check_value(point, value)


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
        return [plan_write(profile, cmd.point, cmd.value)]
    if cmd.op != "schedule":
        raise CommandRefused(f"bad_command: {cmd.op} is not a register write")
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


class ReadbackMismatch(CommandRefused):
    """The device holds another value than the one written."""

    def __init__(self, write: Write, got: float | bool | str) -> None:
        super().__init__(
            f"readback_mismatch: wrote {_fmt(write.value)} to {write.point.name}, read {got}"
        )
        self.got = None if isinstance(got, str) else got


async def write_points(client: ModbusClient, writes: Sequence[Write]) -> float | bool | None:
    """Write, then read every point back; returns the last value read. Raises
    :class:`ReadbackMismatch` or :class:`ModbusError`."""
    got: float | bool | str | None = None
    for w in writes:
        await client.write(w.point.table, w.point.address, list(w.registers))
    for w in writes:
        regs = await client.read(w.point.table, w.point.address, w.point.count)
        got = engineering_value(w.point, regs)
        if not _same(w.point, w.value, got):
            raise ReadbackMismatch(w, got)
    return None if isinstance(got, str) else got


async def execute(
    cmd: Command, writes: Sequence[Write], client: ModbusClient, now: Callable[[], int]
) -> CommandResult:
    """Write, read back and compare; the result carries the value read back."""
    try:
        got = await write_points(client, writes)
    except ReadbackMismatch as exc:
        return CommandResult(cmd.id, False, now(), exc.reason, exc.got)
    except ModbusError as exc:
        return CommandResult(cmd.id, False, now(), f"write_failed: {exc}")
    return CommandResult(cmd.id, True, now(), None, got if cmd.op == "write" else None)


def _expired(cmd: Command, now_ms: int) -> None:
    if cmd.expires_ms is not None and now_ms > cmd.expires_ms:
        raise CommandRefused("expired")


def control_problems(
    device: str,
    cfg: ControlConfig,
    profiles: Mapping[str, Profile],
    polled: Collection[str] | None = None,
) -> list[Problem]:
    """Why ``cfg`` cannot regulate ``device`` here: the configuration's own problems against
    the device's setpoint range, and (with ``polled``, this gateway's devices) a signal
    without a ``source`` whose device this gateway does not poll."""
    profile = profiles[device]
    out = config_problems(cfg, profile.setpoint_range)
    if polled is not None:
        for i, sig in enumerate(cfg.signals()):
            where: tuple[str | int, ...] = (
                ("flow", "inflow") if cfg.mode == "flow" else ("critical_point", "sensors", i)
            )
            if sig.source is None and sig.device not in polled:
                out.append(
                    Problem(
                        where,
                        f"device {sig.device} is not polled by this gateway: name the gateway "
                        "that polls it (source)",
                    )
                )
            elif sig.source is None and sig.point not in published_names(profiles[sig.device]):
                out.append(Problem(where, f"{sig.device} publishes no point {sig.point}"))
    return out


def plan_control(
    cmd: Command, profiles: Mapping[str, Profile], now_ms: int
) -> ControlConfig | None:
    """The controller configuration a ``control`` command sets (None: stop regulating), or
    :class:`CommandRefused`. Pure."""
    _expired(cmd, now_ms)
    profile = profiles.get(cmd.device)
    if profile is None:
        raise CommandRefused(f"unknown_device: {cmd.device}")
    if profile.controller is None:
        raise CommandRefused(f"no_controller: {profile.profile} has no controller section")
    if cmd.control is None:
        return None
    try:
        cfg = ControlConfig.model_validate(cmd.control)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise CommandRefused(f"bad_control: {where}: {err['msg']}") from exc
    problems = control_problems(cmd.device, cfg, profiles, polled=set(profiles))
    if problems:
        raise CommandRefused(f"bad_control: {problems[0]}")
    return cfg


def plan_share(cmd: Command, profiles: Mapping[str, Profile], now_ms: int) -> tuple[str, ...]:
    """The points of ``cmd.device`` a ``share`` command asks to publish on value topics."""
    _expired(cmd, now_ms)
    profile = profiles.get(cmd.device)
    if profile is None:
        raise CommandRefused(f"unknown_device: {cmd.device}")
    names = set(published_names(profile))
    for p in cmd.points:
        if p not in names:
            raise CommandRefused(f"unknown_point: {p}")
    return tuple(dict.fromkeys(cmd.points))
