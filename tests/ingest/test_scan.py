"""The compiled scanner (ingest.scan) against the Python paths of validation.

The scanner may give up on any message (the Python paths then decide), but when it answers,
its rows, bytes, buckets and last-seen times must be exactly what the Python fast path and the
full decoder give, value bits included.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.store import _group_marks, dirty_buckets, pack_rows
from ingest.validate import (
    Checked,
    DeviceInfo,
    Registry,
    ScannedRows,
    check_clean_telemetry,
    check_scanned_telemetry,
    check_telemetry,
    newest_per_device,
)
from suvnet.protocol import Quality, Reading, TelemetryBatch, Topics, encode_telemetry
from tests.ingest.conftest import NOW, SMALL_REGISTRY, WIN

T = Topics("suvnet")
# the decoder tests' registry and a device whose id uses every character an id may have
REG = Registry(
    gateways=SMALL_REGISTRY.gateways,
    devices={**SMALL_REGISTRY.devices, "prv-1.a_b": DeviceInfo(14, 1, 10.0)},
    points={**SMALL_REGISTRY.points, ("prv-1.a_b", "outlet_bar"): 105},
)
PAIRS = [("d1", "p"), ("d1", "q"), ("free", "p"), ("prv-1.a_b", "outlet_bar")]


def _bits(rows: Any) -> list[tuple[int, int, bytes | None, int]]:
    """Rows with each value as its 8 bytes, so that -0.0 and 0.0 differ."""
    return [(ts, pid, None if v is None else struct.pack(">d", v), q) for ts, pid, v, q in rows]


def _assert_same(scanned: Checked, other: Checked) -> None:
    assert _bits(scanned.rows) == _bits(other.rows)
    assert scanned.key == other.key
    assert scanned.sent_ms == other.sent_ms
    assert scanned.seen() == other.seen()
    assert scanned.dead == other.dead == []
    assert scanned.packed == pack_rows(list(other.rows))
    assert isinstance(scanned.buckets, np.ndarray)
    assert {(int(p), int(b)) for p, b in scanned.buckets} == set(dirty_buckets(list(other.rows)))


def _doc(rows: list[Any], **env: Any) -> dict[str, Any]:
    return {"v": 1, "gw": "g1", "boot": "B", "seq": 9, "sent": NOW, "r": rows} | env


_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(float),
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.decimals(-(10**6), 10**6, allow_nan=False, allow_infinity=False, places=3).map(float),
    st.sampled_from([0.0, -0.0, 0, 5e-324, 1e-05, 1e16, 1e22, 1e23, 0.1, 2.75, 9007199254740993]),
)
_row = st.tuples(
    st.sampled_from(PAIRS),
    st.integers(NOW - 3_600_000, NOW + 60_000),
    _values,
    st.sampled_from([0, 1, 2, 3, None]),
).map(lambda t: [*t[0], t[1], t[2]] + ([] if t[3] is None else [t[3]]))


def _encode(doc: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return orjson.dumps(doc)
    if style == 1:
        return json.dumps(doc).encode()
    if style == 2:
        return json.dumps(doc, indent=1).encode()
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode() + b"\r\n\t "


@settings(max_examples=600, deadline=None)
@given(st.lists(_row, max_size=8), st.integers(0, 3))
@example([["d1", "p", NOW, 0.30000000000000004, 0]], 0)
@example([["d1", "p", NOW, -0.0, 1], ["d1", "q", NOW, -0, 0]], 1)
def test_scanner_gives_what_the_python_paths_give(rows: list[Any], style: int) -> None:
    payload = _encode(_doc(rows), style)
    scanned = check_scanned_telemetry(payload, "g1", REG, NOW, WIN)
    clean = check_clean_telemetry(payload, "g1", REG, NOW, WIN)
    full = check_telemetry(T.telemetry("g1"), payload, T, REG, NOW, WIN, fast=False)
    # every message here is clean: all three must take it, with the same result
    assert clean is not None
    assert scanned is not None
    _assert_same(scanned, clean)
    _assert_same(scanned, full)


@settings(max_examples=400, deadline=None)
@given(st.lists(_row, min_size=1, max_size=4), st.data())
def test_scanner_gives_up_on_what_it_must_not_take(rows: list[Any], data: st.DataObject) -> None:
    """Spoil one spot of a clean message: the scanner either gives up or agrees."""
    payload = orjson.dumps(_doc(rows))
    spoilers = [
        b'"d1"',
        b'"d2"',
        b'"dx"',
        b'"d\\u0031"',
        b"null",
        b"true",
        b"NaN",
        b"1e400",
        b"-",
        b"01",
        b"1.",
        b"4",
        b"-1",
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b'"g1"',
        b'"goff"',
        b'"v"',
        b"2",
        b"",
        b" ",
        b"\xff",
    ]
    at = data.draw(st.integers(0, len(payload)))
    cut = data.draw(st.integers(0, 3))
    spoiled = payload[:at] + data.draw(st.sampled_from(spoilers)) + payload[at + cut :]
    scanned = check_scanned_telemetry(spoiled, "g1", REG, NOW, WIN)
    full = check_telemetry(T.telemetry("g1"), spoiled, T, REG, NOW, WIN, fast=False)
    if scanned is not None:
        _assert_same(scanned, full)


@pytest.mark.parametrize(
    ("what", "payload"),
    [
        ("a null value (comm-fail)", _doc([["d1", "p", NOW, None, 2]])),
        ("an unknown key", _doc([["d1", "p", NOW, 1.0, 0]]) | {"x": 1}),
        ("a boolean value", _doc([["d1", "p", NOW, True, 0]])),
        ("a device of another gateway", _doc([["d2", "p", NOW, 1.0, 0]])),
        ("an unknown point", _doc([["d1", "zz", NOW, 1.0, 0]])),
        ("a future timestamp", _doc([["d1", "p", NOW + 60_001, 1.0, 0]])),
        ("an old timestamp", _doc([["d1", "p", NOW - 3_600_001, 1.0, 0]])),
        ("a bad quality", _doc([["d1", "p", NOW, 1.0, 4]])),
        ("a float quality", _doc([["d1", "p", NOW, 1.0, 0.0]])),
        ("a float timestamp", _doc([["d1", "p", float(NOW), 1.0, 0]])),
        ("a reading of three fields", _doc([["d1", "p", NOW]])),
        ("a reading of six fields", _doc([["d1", "p", NOW, 1.0, 0, 0]])),
        ("the version as a boolean", _doc([], v=True)),
        ("another version", _doc([], v=2)),
        ("a negative sequence", _doc([], seq=-1)),
        ("another gateway in the payload", _doc([], gw="goff")),
        ("an empty boot id", _doc([], boot="")),
        ("a boot id of 65 characters", _doc([], boot="b" * 65)),
        ("readings as an object", _doc([]) | {"r": {"a": 1}}),
    ],
)
def test_scanner_leaves_these_to_the_python_paths(what: str, payload: dict[str, Any]) -> None:
    raw = orjson.dumps(payload)
    assert check_scanned_telemetry(raw, "g1", REG, NOW, WIN) is None, what
    # and the message still gets its full treatment (rows or dead letters with reasons)
    out = check_telemetry(T.telemetry("g1"), raw, T, REG, NOW, WIN)
    full = check_telemetry(T.telemetry("g1"), raw, T, REG, NOW, WIN, fast=False)
    assert _bits(out.rows) == _bits(full.rows)
    assert out.dead == full.dead


def test_a_repeated_key_and_trailing_bytes_are_left_alone() -> None:
    base = orjson.dumps(_doc([["d1", "p", NOW, 1.0, 0]]))
    assert check_scanned_telemetry(base, "g1", REG, NOW, WIN) is not None
    assert check_scanned_telemetry(base[:-1] + b',"seq":3}', "g1", REG, NOW, WIN) is None
    assert check_scanned_telemetry(base + b"x", "g1", REG, NOW, WIN) is None
    assert check_scanned_telemetry(base[:-1], "g1", REG, NOW, WIN) is None
    assert check_scanned_telemetry(base, "goff", REG, NOW, WIN) is None
    # an integer beyond 64 bits: only the full decoder's json module reads it, like this
    huge = json.dumps(_doc([["d1", "p", NOW, 123456789012345678901234567890, 0]])).encode()
    got = check_scanned_telemetry(huge, "g1", REG, NOW, WIN)
    assert got is not None
    _assert_same(got, check_telemetry(T.telemetry("g1"), huge, T, REG, NOW, WIN, fast=False))
    boot = orjson.dumps(_doc([], boot="\u00e9" * 64))  # 64 characters, 128 bytes
    got = check_scanned_telemetry(boot, "g1", REG, NOW, WIN)
    assert got is not None
    assert got.key is not None
    assert got.key.boot == "\u00e9" * 64


def test_the_edge_agents_own_batches_take_the_scanner() -> None:
    readings = tuple(
        Reading(dev, pt, NOW - i * 1000, v, Quality.GOOD if i % 3 else Quality.STALE)
        for i, ((dev, pt), v) in enumerate(
            zip(PAIRS * 25, [1.1 * k / 7 for k in range(100)], strict=True)
        )
    )
    payload = encode_telemetry(TelemetryBatch("g1", "boot-1", 7, NOW, readings))
    got = check_scanned_telemetry(payload, "g1", REG, NOW, WIN)
    assert got is not None
    assert isinstance(got.rows, ScannedRows)
    assert len(got.rows) == 100
    assert got.rows[3] == (NOW - 3000, 105, 1.1 * 3 / 7, 1)
    assert [r[2] for r in got.rows] == [r.value for r in readings]
    full = check_telemetry(T.telemetry("g1"), payload, T, REG, NOW, WIN, fast=False)
    _assert_same(got, full)
    assert all(math.isfinite(r[2] or 0) for r in got.rows)


def test_a_group_merges_scanned_and_python_buckets_and_last_seen() -> None:
    """The writer merges the scanner's arrays with the Python paths' sets and dicts."""
    msgs = [
        orjson.dumps(_doc([["d1", "p", NOW, 1.0, 0], ["d1", "q", NOW - 400_000, 2.0, 0]])),
        orjson.dumps(_doc([["d1", "p", NOW - 1000, 1.0, 0], ["free", "p", NOW - 5, 3.0, 1]])),
        # a null value: the Python fast path takes this one
        orjson.dumps(_doc([["free", "p", NOW - 2, None, 2], ["d1", "q", NOW - 3, 4.0, 0]])),
    ]
    items = [check_telemetry(T.telemetry("g1"), m, T, REG, NOW, WIN) for m in msgs]
    assert [isinstance(it.buckets, np.ndarray) for it in items] == [True, True, False]
    rows = [r for it in items for r in it.rows]
    marks = _group_marks(items)
    assert list(zip(*marks, strict=True)) == dirty_buckets(rows)
    pairs = [it.seen_pairs for it in items if it.seen_pairs is not None]
    merged = newest_per_device(pairs, items[2].device_seen)
    assert merged == {11: NOW, 13: NOW - 5}
    assert newest_per_device([]) == {}


def test_a_scanner_defect_falls_back_to_the_python_paths(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should the compiled scanner ever raise, the message still gets the Python result."""
    from ingest import scan

    def broken(*args: Any, **kwargs: Any) -> None:
        raise IndexError("defect")

    payload = orjson.dumps(_doc([["d1", "p", NOW, 1.5, 0]]))
    monkeypatch.setattr(scan, "read", broken)
    out = check_telemetry(T.telemetry("g1"), payload, T, REG, NOW, WIN)
    assert list(out.rows) == [(NOW, 101, 1.5, 0)]
    assert "compiled scanner failed" in caplog.text
