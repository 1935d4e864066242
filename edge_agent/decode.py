"""Pure register decoding and encoding: registers in, values out (and back).

Conventions (the usual Modbus meaning):

* ``byte_order`` is the order of the two bytes inside one 16-bit register; ``big`` (high byte
  first) is the Modbus standard.
* ``word_order`` is the order of the registers of a 32/64-bit value; ``big`` means the first
  register holds the most significant word ("ABCD"). ``little`` word order is "CDAB".
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.profiles import Order, Point, bit_point
from suvnet.protocol import Quality

_STRUCT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f",
    "int64": ">q", "uint64": ">Q", "float64": ">d",
}  # fmt: skip


def registers_to_bytes(regs: Sequence[int], byte_order: Order, word_order: Order) -> bytes:
    """Registers as one big-endian byte string (most significant byte first)."""
    words = list(regs) if word_order == "big" else list(reversed(regs))
    out = bytearray()
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register value {w} is not 16-bit")
        hi, lo = w >> 8, w & 0xFF
        out += bytes((hi, lo)) if byte_order == "big" else bytes((lo, hi))
    return bytes(out)


def bytes_to_registers(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    """Inverse of :func:`registers_to_bytes`."""
    if len(data) % 2:
        raise ValueError("an odd number of bytes does not fill whole registers")
    words = []
    for i in range(0, len(data), 2):
        a, b = data[i], data[i + 1]
        words.append((a << 8 | b) if byte_order == "big" else (b << 8 | a))
    return words if word_order == "big" else list(reversed(words))


def _string_bytes(regs: Sequence[int], byte_order: Order) -> bytes:
    # text runs register by register; word_order does not apply to strings
    out = bytearray()
    for w in regs:
        out += bytes((w >> 8, w & 0xFF)) if byte_order == "big" else bytes((w & 0xFF, w >> 8))
    return bytes(out)


def raw_value(point: Point, regs: Sequence[int] | Sequence[bool]) -> int | float | bool | str:
    """The unscaled value of ``point`` from its registers (or bits, for coil/discrete)."""
    if len(regs) != point.count:
        raise ValueError(f"{point.name}: expected {point.count} registers, got {len(regs)}")
    t = point.type
    if t == "bool":
        return bool(regs[0])
    ints = [int(r) for r in regs]
    if t == "string":
        return _string_bytes(ints, point.byte_order).rstrip(b"\x00 ").decode("latin-1").rstrip()
    data = registers_to_bytes(ints, point.byte_order, point.word_order)
    if t == "bitfield":
        return int.from_bytes(data, "big")
    value: int | float = struct.unpack(_STRUCT[t], data)[0]
    return value


@dataclass(frozen=True, slots=True)
class Value:
    """A decoded value ready to be sent: ``point`` may be ``name`` or ``name.bit``."""

    point: str
    value: float | None
    quality: Quality


def decode_point(point: Point, regs: Sequence[int] | Sequence[bool]) -> list[Value]:
    """Decode ``point`` into the values sent as readings.

    Numbers are scaled (``raw * scale + offset``). A non-finite float becomes quality
    out-of-range with no value; a value outside ``valid`` keeps its value with quality
    out-of-range. A bitfield gives its raw integer plus one 0/1 value per named bit
    (``alarm_flags.leak``). Strings give no readings (see :func:`raw_value`).
    """
    raw = raw_value(point, regs)
    if isinstance(raw, str):
        return []
    if isinstance(raw, bool):
        return [Value(point.name, 1.0 if raw else 0.0, Quality.GOOD)]
    if point.type == "bitfield":
        bits = int(raw)
        out = [Value(point.name, float(bits), Quality.GOOD)]
        out.extend(
            Value(bit_point(point.name, bname), float(bits >> bit & 1), Quality.GOOD)
            for bname, bit in point.bits.items()
        )
        return out
    fval = float(raw) * point.scale + point.offset
    if not math.isfinite(fval):
        return [Value(point.name, None, Quality.OUT_OF_RANGE)]
    quality = Quality.GOOD
    if point.valid is not None and not point.valid[0] <= fval <= point.valid[1]:
        quality = Quality.OUT_OF_RANGE
    return [Value(point.name, fval, quality)]


def engineering_value(point: Point, regs: Sequence[int] | Sequence[bool]) -> float | bool | str:
    """The scaled value of ``point`` (what a command read-back reports)."""
    raw = raw_value(point, regs)
    if isinstance(raw, bool | str) or point.type == "bitfield":
        return raw
    return float(raw) * point.scale + point.offset


def encode_point(point: Point, value: float | bool | str) -> list[int] | list[bool]:
    """Registers (or bits) that make ``point`` read ``value``: the inverse of decoding.

    Raises :class:`ValueError` when the value does not fit the point's type.
    """
    t = point.type
    if t == "bool":
        if isinstance(value, str):
            raise ValueError(f"{point.name} takes true/false, not text")
        b = bool(value)
        return [b] if point.table in ("coil", "discrete") else [1 if b else 0]
    if t == "string":
        if not isinstance(value, str):
            raise ValueError(f"{point.name} takes text")
        data = value.encode("latin-1")
        width = 2 * point.count
        if len(data) > width:
            raise ValueError(f"{point.name} holds at most {width} characters")
        data = data.ljust(width, b"\x00")
        regs = []
        for i in range(0, width, 2):
            a, b2 = data[i], data[i + 1]
            regs.append((a << 8 | b2) if point.byte_order == "big" else (b2 << 8 | a))
        return regs
    if isinstance(value, str):
        raise ValueError(f"{point.name} takes a number")  # noqa: TRY004 - a value problem
    if t == "bitfield":
        raw_int = int(value)
        width = 16 * point.count
        if not 0 <= raw_int < 1 << width:
            raise ValueError(f"{point.name}: {raw_int} does not fit {width} bits")
        data = raw_int.to_bytes(2 * point.count, "big")
        return bytes_to_registers(data, point.byte_order, point.word_order)
    exact_int = isinstance(value, int) and point.scale == 1 and point.offset == 0
    raw = (float(value) - point.offset) / point.scale
    fmt = _STRUCT[t]
    if t.startswith("float"):
        data = struct.pack(fmt, raw)
    else:
        rounded = int(value) if exact_int else round(raw)
        try:
            data = struct.pack(fmt, rounded)
        except struct.error as exc:
            raise ValueError(f"{point.name}: {value} does not fit {t}") from exc
    return bytes_to_registers(data, point.byte_order, point.word_order)
