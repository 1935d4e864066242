"""Device profiles: the register map of a device model, validated into frozen typed objects.

A profile is a YAML file in ``firmware_configs/`` (format: docs/device-profiles.md). Loading
checks every field; a bad profile raises :class:`~suvnet.errors.FileFormatError` naming the
file, the line and the field.

The model lives in the core because both sides read it: the gateway (``edge_agent``) polls
and decodes by it, and the office registers the points it publishes
(:func:`published_points`), so that every reading a gateway sends has a registered point
(``suvnet site apply``; docs/site.md). Pure: pydantic and PyYAML only, no database, no
Modbus.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from suvnet.errors import FileFormatError
from suvnet.protocol import valid_id
from suvnet.yamlmodel import compose, line_of, load_model

Table = Literal["coil", "discrete", "holding", "input"]
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "string", "bitfield",
]  # fmt: skip
Order = Literal["big", "little"]
Access = Literal["read", "read-write"]
PointKind = Literal["analog", "counter", "status", "setpoint", "bitfield"]
DeviceKind = Literal["pressure_sensor", "prv_controller", "district_meter", "customer_meter"]

FIXED_WIDTH: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
    "int64": 4, "uint64": 4, "float64": 4,
}  # fmt: skip
BIT_TABLES = ("coil", "discrete")
MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000

_STRICT = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Point(BaseModel):
    """One value of a device: where it lives, how it is encoded and how it may be used."""

    model_config = _STRICT

    name: str = Field(description="point id sent with every reading (e.g. outlet_bar)")
    table: Table
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: DataType
    length: int | None = Field(None, ge=1, le=125, description="registers (string, bitfield)")
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    kind: PointKind = "analog"
    access: Access = "read"
    range: tuple[float, float] | None = Field(None, description="allowed write range")
    valid: tuple[float, float] | None = Field(
        None, description="plausible values; outside: quality out-of-range"
    )
    poll_s: float = Field(10.0, gt=0, le=86400)
    rollover: float | None = Field(None, gt=0, description="counter wraps to 0 at this value")
    bits: dict[str, int] = Field(default_factory=dict, description="bitfield: name -> bit")
    publish: bool = True
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not valid_id(v) or "." in v:
            raise ValueError(f"{v!r} is not a valid point name (1-64 of A-Z a-z 0-9 _ -, no dots)")
        return v

    @field_validator("range", "valid")
    @classmethod
    def _range_ok(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"range [{v[0]}, {v[1]}]: the first number must be <= the second")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        t = self.type
        if self.table in BIT_TABLES and t != "bool":
            raise ValueError(f"a {self.table} holds single bits: type must be bool, not {t}")
        if t in ("string", "bitfield"):
            if t == "string" and self.length is None:
                raise ValueError("a string needs length (number of registers)")
            if t == "bitfield" and (self.length or 1) > 4:
                raise ValueError("a bitfield spans 1 to 4 registers")
        elif self.length is not None:
            raise ValueError(f"length is only for string and bitfield, not {t}")
        if t == "bitfield":
            if not self.bits:
                raise ValueError("a bitfield needs bits: {name: bit number}")
            width = 16 * (self.length or 1)
            for bname, bit in self.bits.items():
                if not valid_id(bname) or "." in bname:
                    raise ValueError(f"bit name {bname!r} is not valid")
                if not valid_id(bit_point(self.name, bname)):
                    raise ValueError(
                        f"the point id {bit_point(self.name, bname)!r} of bit {bname} is "
                        "longer than 64 characters: shorten the point or the bit name"
                    )
                if not 0 <= bit < width:
                    raise ValueError(f"bit {bname} = {bit} is outside 0..{width - 1}")
        elif self.bits:
            raise ValueError("bits are only for type bitfield")
        if self.access == "read-write":
            if self.table not in ("coil", "holding"):
                raise ValueError(f"{self.table} registers cannot be written: use access read")
            if t not in ("bool", "string", "bitfield") and self.range is None:
                raise ValueError("a read-write number needs range: [min, max]")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.address + self.count > 65536:
            raise ValueError("the point runs past address 65535")
        return self

    @property
    def count(self) -> int:
        """Registers (or bits, in coil/discrete tables) the point occupies."""
        if self.type in FIXED_WIDTH:
            return FIXED_WIDTH[self.type]
        return self.length or 1

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def numeric(self) -> bool:
        return self.type != "string"

    @property
    def writable(self) -> bool:
        return self.access == "read-write"


class ScheduleSlot(BaseModel):
    model_config = _STRICT
    start: str = Field(description="point holding the slot's start, minutes after midnight")
    setpoint: str = Field(description="point holding the slot's setpoint")


class Schedule(BaseModel):
    """A time-modulated setpoint schedule (e.g. day and night pressure of a PRV)."""

    model_config = _STRICT
    slots: tuple[ScheduleSlot, ...] = Field(min_length=1)


class ControllerMap(BaseModel):
    """Which points the gateway's PRV controller uses (docs/pressure-management.md).

    A profile with a ``controller:`` section is regulated by the edge agent: it writes
    ``setpoint``, reads ``outlet`` and ``inlet``, writes ``mode_value`` to ``mode`` before
    its first setpoint (the device's own fixed-setpoint mode) and watches ``enable`` (false:
    the device is on local hand control). Every device of such a profile also publishes the
    controller's decisions (:data:`CONTROLLER_POINTS`)."""

    model_config = _STRICT
    setpoint: str = Field(description="the writable outlet setpoint point (bar)")
    outlet: str | None = None
    inlet: str | None = None
    mode: str | None = Field(None, description="a point selecting the device's own mode")
    mode_value: float | None = Field(None, description="the mode that obeys the setpoint")
    enable: str | None = Field(None, description="a bool point: false = local hand control")

    @model_validator(mode="after")
    def _mode_pair(self) -> ControllerMap:
        if (self.mode is None) != (self.mode_value is None):
            raise ValueError("give mode and mode_value together")
        return self


class Profile(BaseModel):
    """The register map of one device model."""

    model_config = _STRICT

    profile: str
    description: str = ""
    device_kind: DeviceKind
    byte_order: Order = "big"
    word_order: Order = "big"
    poll_s: float = Field(10.0, gt=0, le=86400)
    max_registers_per_read: int = Field(MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_bits_per_read: int = Field(MAX_READ_BITS, ge=1, le=MAX_READ_BITS)
    max_gap: int = Field(8, ge=0, le=124, description="unused registers a merged read may span")
    points: tuple[Point, ...] = Field(min_length=1)
    schedule: Schedule | None = None
    controller: ControllerMap | None = None

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any) -> Any:
        """Points take byte_order, word_order and poll_s from the profile unless they set them."""
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            return data
        out = dict(data)
        points = []
        for raw in data["points"]:
            p = raw
            if isinstance(raw, dict):
                p = dict(raw)
                for key in ("byte_order", "word_order", "poll_s"):
                    if key in data and key not in p:
                        p[key] = data[key]
            points.append(p)
        out["points"] = points
        return out

    @field_validator("profile")
    @classmethod
    def _profile_name(cls, v: str) -> str:
        if not valid_id(v):
            raise ValueError(f"{v!r} is not a valid profile name")
        return v

    @model_validator(mode="after")
    def _check(self) -> Profile:
        names: set[str] = set()
        for p in self.points:
            if p.name in names:
                raise ValueError(f"point name {p.name!r} is used twice")
            names.add(p.name)
        by_table: dict[str, list[Point]] = {}
        for p in self.points:
            by_table.setdefault(p.table, []).append(p)
        for table, pts in by_table.items():
            pts.sort(key=lambda q: q.address)
            for a, b in itertools.pairwise(pts):
                if b.address < a.end:
                    raise ValueError(
                        f"points {a.name} and {b.name} overlap in the {table} table "
                        f"({a.name} ends at {a.end - 1}, {b.name} starts at {b.address})"
                    )
            limit = self.max_bits_per_read if table in BIT_TABLES else self.max_registers_per_read
            for p in pts:
                if p.count > limit:
                    raise ValueError(f"point {p.name} is longer than one read ({limit})")
        if self.schedule is not None:
            by_name = {p.name: p for p in self.points}
            for slot in self.schedule.slots:
                for ref in (slot.start, slot.setpoint):
                    pt = by_name.get(ref)
                    if pt is None:
                        raise ValueError(f"schedule refers to unknown point {ref!r}")
                    if not pt.writable:
                        raise ValueError(f"schedule point {ref!r} must be read-write")
        if self.controller is not None:
            self._check_controller(self.controller, {p.name: p for p in self.points})
        return self

    @staticmethod
    def _check_controller(c: ControllerMap, by_name: dict[str, Point]) -> None:
        sp = by_name.get(c.setpoint)
        if sp is None or not sp.writable or sp.range is None or not sp.numeric:
            raise ValueError(
                f"controller.setpoint {c.setpoint!r} must be a read-write number with a range"
            )
        for key in ("outlet", "inlet", "mode", "enable"):
            ref = getattr(c, key)
            if ref is None:
                continue
            pt = by_name.get(ref)
            if pt is None or not pt.publish or not pt.numeric:
                raise ValueError(f"controller.{key} {ref!r} is not a published point")
            if key == "mode" and not pt.writable:
                raise ValueError(f"controller.mode {ref!r} must be read-write")
        if c.mode is not None:
            mode_pt = by_name[c.mode]
            assert c.mode_value is not None
            if (
                mode_pt.range is not None
                and not mode_pt.range[0] <= c.mode_value <= mode_pt.range[1]
            ):
                raise ValueError(
                    f"controller.mode_value {c.mode_value:g} is outside {c.mode}'s range"
                )
        for name in CONTROLLER_POINT_NAMES:
            if name in by_name:
                raise ValueError(f"point {name!r} is the controller's: rename the device's point")

    @property
    def setpoint_range(self) -> tuple[float, float] | None:
        """The write range of the controller's setpoint point (None: no controller)."""
        if self.controller is None:
            return None
        sp = self.point(self.controller.setpoint)
        return None if sp is None else sp.range

    def point(self, name: str) -> Point | None:
        for p in self.points:
            if p.name == name:
                return p
        return None


def _fmt(v: float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{v:g}"


def write_problem(point: Point, value: float | bool) -> str | None:
    """Why ``value`` cannot be written to ``point``, as ``reason: detail`` (the reason a
    gateway answers a refused command with), or None. The office checks commands with it
    before they are sent; the gateway checks them again before it writes."""
    if not point.writable:
        return f"read_only: {point.name} cannot be written"
    if point.type == "bool":
        if not isinstance(value, bool) and value not in (0, 1):
            return f"bad_value: {point.name} takes true or false"
        return None
    if isinstance(value, bool):
        return f"bad_value: {point.name} takes a number"
    if not math.isfinite(value):
        return f"bad_value: {point.name} takes a finite number"
    if point.range is not None:
        lo, hi = point.range
        if value < lo:
            return f"out_of_range: {_fmt(value)} < {_fmt(lo)}"
        if value > hi:
            return f"out_of_range: {_fmt(value)} > {_fmt(hi)}"
    return None


def command_problem(
    profile: Profile,
    op: str,
    point: str | None,
    value: float | bool | None,
    schedule: Sequence[tuple[str, float]] = (),
) -> str | None:
    """Why a ``write`` or ``schedule`` command cannot be carried out on a device of
    ``profile`` (unknown or read-only point, a value outside the point's ``range``, a
    schedule that does not fit the profile's slots), or None."""
    if op == "write":
        pt = profile.point(point or "")
        if pt is None:
            return f"unknown_point: {point}"
        return None if value is None else write_problem(pt, value)
    if op != "schedule":
        return None
    if profile.schedule is None:
        return f"no_schedule: {profile.profile} has no setpoint schedule"
    slots = profile.schedule.slots
    if len(schedule) != len(slots):
        return f"bad_schedule: {profile.profile} takes exactly {len(slots)} entries"
    if len({t for t, _ in schedule}) != len(schedule):
        return "bad_schedule: two entries start at the same time"
    for slot, (_, v) in zip(slots, sorted(schedule), strict=True):
        pt = profile.point(slot.setpoint)
        if pt is not None and (problem := write_problem(pt, float(v))) is not None:
            return problem
    return None


def with_poll_period(profile: Profile, poll_s: float) -> Profile:
    """A copy of ``profile`` whose points are all polled every ``poll_s`` seconds."""
    points = tuple(p.model_copy(update={"poll_s": poll_s}) for p in profile.points)
    return profile.model_copy(update={"points": points, "poll_s": poll_s})


def bit_point(point: str, bit: str) -> str:
    """The point id of one named bit of a bitfield: ``alarm_flags.leak``."""
    return f"{point}.{bit}"


@dataclass(frozen=True, slots=True)
class PublishedPoint:
    """One point id a device of a profile sends readings for, with what the registry keeps."""

    name: str
    unit: str
    kind: PointKind
    poll_s: float
    bit_of: str | None = None
    """For a bit sub-point: the bitfield it is a bit of (its kind is ``status``, 0 or 1)."""


CONTROL_INTERVAL_S = 300.0
"""How often the gateway's PRV controller decides (and publishes its decision) by default."""

CONTROLLER_POINTS: tuple[PublishedPoint, ...] = (
    PublishedPoint("ctl_setpoint_bar", "bar", "setpoint", CONTROL_INTERVAL_S),
    PublishedPoint("ctl_target_bar", "bar", "setpoint", CONTROL_INTERVAL_S),
    PublishedPoint("ctl_cp_bar", "bar", "analog", CONTROL_INTERVAL_S),
    PublishedPoint("ctl_reason", "", "status", CONTROL_INTERVAL_S),
    PublishedPoint("ctl_mode", "", "status", CONTROL_INTERVAL_S),
    PublishedPoint("ctl_auto", "", "status", CONTROL_INTERVAL_S),
)
"""What the gateway's PRV controller publishes for a device whose profile has a
``controller:`` section, at each decision: the setpoint it holds, its target (the setpoint
asked for; in critical-point mode the pressure held at the critical point), the lowest fresh
critical-point pressure, the reason code, the mode code and 1/0 for auto/hand
(docs/pressure-management.md lists the codes)."""
CONTROLLER_POINT_NAMES = frozenset(p.name for p in CONTROLLER_POINTS)


def published_points(profile: Profile) -> tuple[PublishedPoint, ...]:
    """Every point id the gateway sends readings for, in profile order: each published
    number, and for a bitfield its raw value plus one 0/1 point per named bit
    (``alarm_flags``, ``alarm_flags.leak``, ...), then, for a profile with a ``controller:``
    section, the controller's points (:data:`CONTROLLER_POINTS`). Strings and
    ``publish: false`` points send nothing."""
    out: list[PublishedPoint] = []
    for p in profile.points:
        if not p.publish or not p.numeric:
            continue
        out.append(PublishedPoint(p.name, p.unit, p.kind, p.poll_s))
        out.extend(
            PublishedPoint(bit_point(p.name, b), "", "status", p.poll_s, p.name) for b in p.bits
        )
    if profile.controller is not None:
        out.extend(CONTROLLER_POINTS)
    return tuple(out)


def published_names(profile: Profile) -> tuple[str, ...]:
    """The point ids of :func:`published_points`."""
    return tuple(p.name for p in published_points(profile))


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; its ``profile`` name must equal the file name."""
    prof = load_model(path, Profile)
    if prof.profile != path.stem:
        _, node = compose(path)
        raise FileFormatError(
            str(path),
            line_of(node, ["profile"]),
            "profile",
            f"the profile is named {prof.profile!r} but the file is {path.name}: "
            f"name the file {prof.profile}.yaml",
        )
    return prof


def load_profiles(folder: Path) -> dict[str, Profile]:
    """Every ``*.yaml`` profile directly in ``folder``, by name."""
    if not folder.is_dir():
        raise FileFormatError(str(folder), None, None, "the profiles folder does not exist")
    return {p.stem: load_profile(p) for p in sorted(folder.glob("*.yaml"))}


def default_profiles_dir() -> Path:
    """``firmware_configs/`` of a source checkout (next to this package)."""
    return Path(__file__).resolve().parent.parent / "firmware_configs"
