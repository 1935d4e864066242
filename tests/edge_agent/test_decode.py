"""Table tests of the pure decoder: byte vectors in, values out, for every type and order."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge_agent.decode import (
    bytes_to_registers,
    decode_point,
    encode_point,
    engineering_value,
    raw_value,
    registers_to_bytes,
)
from edge_agent.profiles import Point
from suvnet.protocol import Quality


def pt(type_: str, **kw: Any) -> Point:
    table = kw.pop("table", "coil" if type_ == "bool" and kw.pop("bit", False) else "holding")
    return Point(name="p", table=table, address=0, type=type_, **kw)


def regs(hexstr: str) -> list[int]:
    """Wire bytes (as hex) to registers, the way a Modbus response carries them."""
    data = bytes.fromhex(hexstr)
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


# (type, byte_order, word_order, wire bytes as hex, expected raw value)
TABLE: list[tuple[str, str, str, str, object]] = [
    ("int16", "big", "big", "FFFE", -2),
    ("int16", "little", "big", "FEFF", -2),
    ("uint16", "big", "big", "FFFE", 65534),
    ("uint16", "little", "big", "3412", 0x1234),
    ("int32", "big", "big", "FFFFFFFE", -2),
    ("int32", "big", "little", "FFFEFFFF", -2),
    ("int32", "little", "big", "FFFFFEFF", -2),
    ("int32", "little", "little", "FEFFFFFF", -2),
    ("uint32", "big", "big", "12345678", 0x12345678),
    ("uint32", "big", "little", "56781234", 0x12345678),  # CDAB
    ("uint32", "little", "big", "34127856", 0x12345678),  # BADC
    ("uint32", "little", "little", "78563412", 0x12345678),  # DCBA
    ("int64", "big", "big", "FFFFFFFFFFFFFFFE", -2),
    ("int64", "big", "little", "FFFEFFFFFFFFFFFF", -2),
    ("uint64", "big", "big", "0102030405060708", 0x0102030405060708),
    ("uint64", "big", "little", "0708050603040102", 0x0102030405060708),
    ("uint64", "little", "big", "0201040306050807", 0x0102030405060708),
    ("uint64", "little", "little", "0807060504030201", 0x0102030405060708),
    ("float32", "big", "big", "40490FDB", 3.1415927410125732),
    ("float32", "big", "little", "0FDB4049", 3.1415927410125732),
    ("float32", "little", "big", "4940DB0F", 3.1415927410125732),
    ("float32", "little", "little", "DB0F4940", 3.1415927410125732),
    ("float64", "big", "big", "400921FB54442D18", math.pi),
    ("float64", "big", "little", "2D18544421FB4009", math.pi),
    ("float64", "little", "big", "0940FB214454182D", math.pi),
    ("float64", "little", "little", "182D4454FB210940", math.pi),
    ("bitfield", "big", "big", "0013", 0x13),
    ("bitfield", "little", "big", "1300", 0x13),
]


@pytest.mark.parametrize(("type_", "bo", "wo", "wire", "expected"), TABLE)
def test_raw_value_table(type_: str, bo: str, wo: str, wire: str, expected: object) -> None:
    extra: dict[str, Any] = {"bits": {"a": 0}} if type_ == "bitfield" else {}
    p = pt(type_, byte_order=bo, word_order=wo, **extra)
    assert raw_value(p, regs(wire)) == expected


@pytest.mark.parametrize(("type_", "bo", "wo", "wire", "expected"), TABLE)
def test_encode_is_the_inverse(type_: str, bo: str, wo: str, wire: str, expected: object) -> None:
    extra: dict[str, Any] = {"bits": {"a": 0}} if type_ == "bitfield" else {}
    p = pt(type_, byte_order=bo, word_order=wo, **extra)
    assert encode_point(p, expected) == regs(wire)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bo", "wo", "hexregs"),
    [("big", "big", "1234 5678"), ("little", "little", "7856 3412")],
)
def test_bytes_registers_round_trip(bo: str, wo: str, hexregs: str) -> None:
    words = [int(h, 16) for h in hexregs.split()]
    data = registers_to_bytes(words, bo, wo)  # type: ignore[arg-type]
    assert data == bytes.fromhex("12345678")
    assert bytes_to_registers(data, bo, wo) == words  # type: ignore[arg-type]


def test_string_both_byte_orders() -> None:
    assert raw_value(pt("string", length=3), regs("41424344 4500")) == "ABCDE"
    assert raw_value(pt("string", length=3, byte_order="little"), regs("42414443 0045")) == "ABCDE"
    assert encode_point(pt("string", length=3), "ABCDE") == regs("41424344 4500".replace(" ", ""))
    with pytest.raises(ValueError, match="at most 6"):
        encode_point(pt("string", length=3), "TOO LONG")
    assert decode_point(pt("string", length=3), regs("414243444500")) == []


def test_scale_offset_and_4_20_ma() -> None:
    p = pt("uint16", table="input", scale=0.000625, offset=-2.5, valid=(-0.125, 10.5))
    assert decode_point(p, [4000])[0].value == pytest.approx(0.0)
    assert decode_point(p, [20000])[0].value == pytest.approx(10.0)
    assert decode_point(p, [12000])[0].quality is Quality.GOOD
    broken_loop = decode_point(p, [0])[0]  # 0 mA: the wire is cut
    assert broken_loop.value == pytest.approx(-2.5)
    assert broken_loop.quality is Quality.OUT_OF_RANGE
    assert encode_point(p, 5.0) == [12000]


def test_non_finite_float_is_out_of_range_without_value() -> None:
    v = decode_point(pt("float32"), regs("7FC00000"))[0]
    assert v.value is None
    assert v.quality is Quality.OUT_OF_RANGE


def test_bitfield_gives_raw_and_named_bits() -> None:
    bits = {"leak": 0, "burst": 1, "tamper": 2, "dry_pipe": 3, "low_battery": 4}
    p = Point(name="alarm_flags", table="input", address=6, type="bitfield", bits=bits)
    out = {v.point: v.value for v in decode_point(p, [0b10101])}
    assert out == {
        "alarm_flags": 21.0,
        "alarm_flags.leak": 1.0,
        "alarm_flags.burst": 0.0,
        "alarm_flags.tamper": 1.0,
        "alarm_flags.dry_pipe": 0.0,
        "alarm_flags.low_battery": 1.0,
    }


def test_bool_in_coil_and_register() -> None:
    coil = Point(name="c", table="coil", address=0, type="bool")
    assert decode_point(coil, [True])[0].value == 1.0
    assert encode_point(coil, False) == [False]
    reg = pt("bool")
    assert raw_value(reg, [7]) is True
    assert encode_point(reg, True) == [1]


def test_engineering_value_and_integer_overflow() -> None:
    p = pt("uint16", scale=0.01)
    assert engineering_value(p, [350]) == pytest.approx(3.5)
    assert encode_point(p, 3.5) == [350]
    with pytest.raises(ValueError, match="does not fit"):
        encode_point(p, 700.0)
    with pytest.raises(ValueError, match="expected 2 registers"):
        raw_value(pt("float32"), [1])
