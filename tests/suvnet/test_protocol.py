from __future__ import annotations

import json

import pytest

from suvnet import protocol as p
from suvnet.errors import ProtocolError


def _batch(**kw: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "gw": "gw-1",
        "boot": "b1",
        "seq": 7,
        "sent": 1000,
        "r": [["dev-1", "pressure", 1000, 2.5, 0]],
    }
    doc.update(kw)
    return json.dumps(doc).encode()


def test_telemetry_round_trip() -> None:
    batch = p.TelemetryBatch(
        "gw-1",
        "boot-a",
        3,
        1_700_000_000_000,
        (
            p.Reading("prv-1", "outlet_bar", 1_700_000_000_000, 2.75),
            p.Reading("prv-1", "inlet_bar", 1_700_000_000_000, None, p.Quality.COMM_FAIL),
            p.Reading("m-1", "volume_m3", 1_700_000_001_000, 12.0, p.Quality.STALE),
        ),
    )
    decoded = p.decode_telemetry(p.encode_telemetry(batch))
    assert decoded.batch == batch
    assert decoded.rejected == ()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1,2]", "bad_shape"),
        (_batch(v=2), "bad_version"),
        (_batch(gw=5), "bad_field"),
        (_batch(gw="bad gw"), "bad_field"),
        (_batch(seq=-1), "bad_field"),
        (_batch(seq=True), "bad_field"),
        (_batch(sent="now"), "bad_field"),
        (_batch(r={"a": 1}), "bad_field"),
        (b"{" + b" " * p.MAX_PAYLOAD_BYTES + b"}", "too_large"),
    ],
)
def test_bad_envelopes_raise_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        p.decode_telemetry(payload)
    assert exc.value.reason == reason


def test_bad_single_readings_are_rejected_not_the_batch() -> None:
    rows = [
        ["d", "pt", 1, 1.0, 0],  # good
        ["d", "pt", 2, "x", 0],  # wrong type
        ["d", "pt", 3, None, 0],  # good quality needs a value
        ["d", "pt", 4, None, 2],  # comm-fail without value: fine
        ["d", "pt", 5, 1.0, 9],  # unknown quality
        ["d", "pt", 6.5, 1.0, 0],  # float timestamp
        ["bad id", "pt", 7, 1.0, 0],  # bad device id
        ["d"],  # shape
        ["d", "pt", 8, True],  # bool is accepted as 1.0, quality defaults to good
    ]
    # NaN is not valid JSON for our encoder, but a third-party publisher can send it
    raw = _batch(r=rows)[:-2] + b',["d","pt",9,NaN,0],["d","pt",10,Infinity,0]]}'
    decoded = p.decode_telemetry(raw)
    assert [r.ts_ms for r in decoded.batch.readings] == [1, 4, 8]
    assert decoded.batch.readings[2].value == 1.0
    assert [(r.index, r.reason) for r in decoded.rejected] == [
        (1, "bad_value_type"),
        (2, "missing_value"),
        (4, "bad_quality"),
        (5, "bad_timestamp"),
        (6, "bad_device_id"),
        (7, "bad_reading_shape"),
        (9, "non_finite_value"),
        (10, "non_finite_value"),
    ]


def test_encoder_refuses_nan() -> None:
    batch = p.TelemetryBatch("g", "b", 0, 0, (p.Reading("d", "p", 0, float("nan")),))
    with pytest.raises(ValueError, match="JSON compliant"):
        p.encode_telemetry(batch)


def test_topics() -> None:
    t = p.Topics("suvnet")
    assert t.telemetry("gw-1") == "suvnet/v1/gw-1/telemetry"
    assert t.telemetry_shared() == "$share/ingest/suvnet/v1/+/telemetry"
    assert t.parse("suvnet/v1/gw-1/cmd/result") == ("gw-1", "cmd/result")
    assert t.parse(t.ack("g")) == ("g", "ack")
    with pytest.raises(ProtocolError):
        t.parse("other/v1/gw-1/telemetry")
    with pytest.raises(ProtocolError):
        t.parse("suvnet/v1/gw-1/nonsense")
    with pytest.raises(ValueError, match="gateway"):
        t.state("a/b")


def test_state_ack_command_round_trips() -> None:
    st = p.GatewayState("gw-1", "online", 5, "boot", {"queue_depth": 3})
    assert p.decode_state(p.encode_state(st)) == st
    ack = p.Ack("boot", p.compress_ranges([5, 1, 2, 3, 9, 10]))
    assert ack.ranges == ((1, 3), (5, 5), (9, 10))
    assert p.decode_ack(p.encode_ack(ack)) == ack
    assert ack.contains(2) and not ack.contains(4)
    cmd = p.Command("req-1", "prv-1", "write", "setpoint_bar", 3.2, (), 10, 20)
    assert p.decode_command(p.encode_command(cmd)) == cmd
    sched = p.Command("req-2", "prv-1", "schedule", schedule=(("06:00", 3.5), ("23:00", 2.0)))
    assert p.decode_command(p.encode_command(sched)) == sched
    res = p.CommandResult("req-1", False, 11, "out_of_range")
    assert p.decode_command_result(p.encode_command_result(res)) == res


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 1, "id": "x", "device": "d", "op": "explode"},
        {"v": 1, "id": "x", "device": "d", "op": "write", "point": "p", "value": "high"},
        {"v": 1, "id": "x", "device": "d", "op": "schedule", "schedule": [["25:00", 1]]},
        {"v": 1, "id": "", "device": "d", "op": "write", "point": "p", "value": 1},
        {"v": 1, "id": "x", "device": "d", "op": "control"},
        {"v": 1, "id": "x", "device": "d", "op": "control", "control": [1, 2]},
        {"v": 1, "id": "x", "device": "d", "op": "share"},
        {"v": 1, "id": "x", "device": "d", "op": "share", "points": ["a b"]},
    ],
)
def test_bad_commands(doc: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        p.decode_command(json.dumps(doc).encode())


def test_bad_ack_range() -> None:
    with pytest.raises(ProtocolError):
        p.decode_ack(b'{"v":1,"boot":"b","ranges":[[5,1]]}')


def test_birth_announces_devices_and_points() -> None:
    points = {"pt-1": ("pressure_bar", "converter_status", "converter_status.open_loop")}
    birth = p.GatewayState("gw-1", "online", 5, "boot", {}, points, p.points_hash(points))
    doc = json.loads(p.encode_state(birth))
    assert doc["points"] == {
        "pt-1": ["pressure_bar", "converter_status", "converter_status.open_loop"]
    }
    assert p.decode_state(p.encode_state(birth)) == birth
    # a health update carries the hash alone
    health = p.GatewayState("gw-1", "online", 6, "boot", {"queue_depth": 0}, None, "abc")
    assert "points" not in json.loads(p.encode_state(health))
    assert p.decode_state(p.encode_state(health)) == health


def test_points_hash_ignores_order_and_repeats() -> None:
    a = p.points_hash({"d1": ["x", "y"], "d2": ["z"]})
    assert a == p.points_hash({"d2": ["z"], "d1": ["y", "x", "x"]})
    assert a != p.points_hash({"d1": ["x"], "d2": ["z"]})
    assert a != p.points_hash({"d1": ["x", "y"], "d3": ["z"]})
    assert len(a) == 16


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"points": ["pt-1"]}, "must be an object"),
        ({"points": {"bad id": ["p"]}}, "invalid device id"),
        ({"points": {"pt-1": "pressure_bar"}}, "list of point ids"),
        ({"points": {"pt-1": ["ok", "not ok"]}}, "list of point ids"),
        ({"points": {"pt-1": [7]}}, "list of point ids"),
        ({"points_hash": 12}, "points_hash"),
        ({"points_hash": "x" * 65}, "points_hash"),
    ],
)
def test_bad_announcements_are_refused(extra: dict[str, object], words: str) -> None:
    doc: dict[str, object] = {"v": 1, "gw": "gw-1", "state": "online", "ts": 5, **extra}
    with pytest.raises(ProtocolError) as info:
        p.decode_state(json.dumps(doc).encode())
    assert info.value.reason == "bad_field"
    assert words in info.value.detail


def test_control_and_share_commands_round_trip() -> None:
    ctl = p.Command("c-1", "prv-1", "control", control={"mode": "fixed", "setpoint_bar": 3.1})
    assert p.decode_command(p.encode_command(ctl)) == ctl
    off = p.Command("c-2", "prv-1", "control", control=None)
    assert json.loads(p.encode_command(off))["control"] is None
    assert p.decode_command(p.encode_command(off)) == off
    share = p.Command("c-3", "pt-9", "share", points=("pressure_bar",), expires_ms=99)
    assert p.decode_command(p.encode_command(share)) == share


def test_value_topics_and_payloads() -> None:
    t = p.Topics("sv")
    topic = t.value("gw-north", "pt-n7", "pressure_bar")
    assert topic == "sv/v1/gw-north/value/pt-n7/pressure_bar"
    assert t.parse_value(topic) == ("gw-north", "pt-n7", "pressure_bar")
    assert t.parse_value(t.value("suvnet-office", "pt-1", "alarm_flags.leak"))[2] == (
        "alarm_flags.leak"
    )
    for bad in ("sv/v1/gw/value/pt", "sv/v1/gw/telemetry", "xx/v1/gw/value/a/b",
                "sv/v1/gw/value/a/b/c"):  # fmt: skip
        with pytest.raises(ProtocolError):
            t.parse_value(bad)
    v = p.PointValue("pt-n7", "pressure_bar", 1_764_400_000_000, 2.41)
    assert p.decode_value(p.encode_value(v)) == v
    gone = p.PointValue("pt-n7", "pressure_bar", 5, None, p.Quality.COMM_FAIL)
    assert p.decode_value(p.encode_value(gone)) == gone


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 1, "device": "d", "point": "p", "ts": 1, "value": None, "q": 0},
        {"v": 1, "device": "d", "point": "p", "ts": 1, "value": "2.4"},
        {"v": 1, "device": "d", "point": "p", "ts": 1, "value": True},
        {"v": 1, "device": "d", "point": "p", "ts": "now", "value": 1},
        {"v": 1, "device": "d", "point": "p", "ts": 1, "value": 1, "q": 7},
        {"v": 2, "device": "d", "point": "p", "ts": 1, "value": 1},
    ],
)
def test_bad_values(doc: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        p.decode_value(json.dumps(doc).encode())
