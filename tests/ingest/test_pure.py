"""Pure core: validation of messages and the online/offline decisions (no I/O)."""

from __future__ import annotations

import json

import pytest

from ingest.config import load_ingest_config
from ingest.service import parse_mqtt_url
from ingest.state import decide_gateway_message, decide_seen, fresh
from ingest.validate import (
    DeviceInfo,
    GatewayInfo,
    Registry,
    Window,
    check_state,
    check_telemetry,
)
from suvnet.errors import ConfigError, SuvnetError
from suvnet.protocol import GatewayState, Topics

NOW = 1_750_000_000_000
T = Topics("suvnet")
REG = Registry(
    gateways={
        "g1": GatewayInfo(1, True, 10.0),
        "g2": GatewayInfo(2, True, 10.0),
        "goff": GatewayInfo(3, False, 10.0),
    },
    devices={
        "d1": DeviceInfo(11, 1, 10.0),
        "d2": DeviceInfo(12, 2, 10.0),
        "free": DeviceInfo(13, None, 10.0),
    },
    points={("d1", "p"): 101, ("d2", "p"): 102, ("free", "p"): 103},
)
WIN = Window(max_age_s=3600, max_future_s=60)


def _batch(gw: str, rows: list[list[object]], seq: int = 5) -> bytes:
    return json.dumps({"v": 1, "gw": gw, "boot": "B", "seq": seq, "sent": NOW, "r": rows}).encode()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["d1", "p", NOW, 1.0, 0], None),
        (["free", "p", NOW, 1.0, 0], None),
        (["d1", "p", NOW - 3_600_000, 1.0, 0], None),
        (["d1", "p", NOW - 3_600_001, 1.0, 0], "ts_too_old"),
        (["d1", "p", NOW + 60_000, 1.0, 0], None),
        (["d1", "p", NOW + 60_001, 1.0, 0], "ts_in_future"),
        (["dx", "p", NOW, 1.0, 0], "unknown_device"),
        (["d1", "q", NOW, 1.0, 0], "unknown_point"),
        (["d2", "p", NOW, 1.0, 0], "device_not_on_gateway"),
        (["d1", "p", NOW, "1.0", 0], "bad_value_type"),
        (["d1", "p", NOW, 1.0, 4], "bad_quality"),
        (["d1", "p", float(NOW), 1.0, 0], "bad_timestamp"),
        (["d1", "p", NOW, None, 0], "missing_value"),
        (["d1", "p", NOW, None, 2], None),
        (["d1", "p"], "bad_reading_shape"),
    ],
)
def test_reading_checks(row: list[object], reason: str | None) -> None:
    c = check_telemetry(T.telemetry("g1"), _batch("g1", [row]), T, REG, NOW, WIN)
    assert c.key is not None
    assert (c.key.gateway_id, c.key.boot, c.key.seq) == (1, "B", 5)
    if reason is None:
        assert len(c.rows) == 1
        assert c.dead == []
    else:
        assert c.rows == []
        assert [d.reason for d in c.dead] == [reason]
        assert c.dead[0].gateway == "g1"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("suvnet/v1/g1/telemetry", b"{", "bad_json"),
        ("suvnet/v1/g1/telemetry", b"\xff\xfe", "bad_json"),
        ("suvnet/v1/g1/telemetry", b"[]", "bad_shape"),
        ("suvnet/v1/g1/telemetry", b'{"v":3}', "bad_version"),
        (
            "suvnet/v1/g1/telemetry",
            b'{"v":1,"gw":"g1","boot":"B","seq":-1,"sent":1,"r":[]}',
            "bad_field",
        ),
        (
            "suvnet/v1/g1/telemetry",
            b'{"v":1,"gw":"g1","boot":"B","seq":true,"sent":1,"r":[]}',
            "bad_field",
        ),
        ("suvnet/v1/gz/telemetry", _batch("gz", []), "unknown_gateway"),
        ("suvnet/v1/goff/telemetry", _batch("goff", []), "gateway_not_allowed"),
        ("suvnet/v1/g2/telemetry", _batch("g1", []), "gateway_mismatch"),
        ("other/v1/g1/telemetry", _batch("g1", []), "bad_topic"),
        ("suvnet/v1/g1/telemetry", b" " * 1_048_577, "too_large"),
    ],
)
def test_whole_message_rejects(topic: str, payload: bytes, reason: str) -> None:
    c = check_telemetry(topic, payload, T, REG, NOW, WIN)
    assert c.key is None
    assert c.rows == []
    assert [d.reason for d in c.dead] == [reason]
    assert c.dead[0].payload == payload[:1_048_576]


def test_device_seen_ignores_comm_fail() -> None:
    rows = [["d1", "p", NOW - 5000, 1.0, 0], ["d1", "p", NOW - 1000, None, 2]]
    c = check_telemetry(T.telemetry("g1"), _batch("g1", rows), T, REG, NOW, WIN)
    assert c.seen() == {11: NOW - 5000}
    assert len(c.rows) == 2


def test_state_messages() -> None:
    birth = json.dumps({"v": 1, "gw": "g1", "state": "online", "ts": NOW, "boot": "B"}).encode()
    c = check_state(T.state("g1"), birth, T, REG)
    assert c.state is not None
    assert (c.state.state, c.state_gateway_id) == ("online", 1)
    assert check_state(T.state("g1"), b"", T, REG).dead == []
    assert [d.reason for d in check_state(T.state("gz"), birth, T, REG).dead] == [
        "gateway_mismatch"
    ]
    assert [d.reason for d in check_state(T.state("g1"), b"{}", T, REG).dead] == ["bad_version"]


def test_gateway_message_decisions() -> None:
    on = GatewayState("g1", "online", NOW + 5000)
    off = GatewayState("g1", "offline", NOW - 999_999)
    ch = decide_gateway_message(None, on, NOW)
    assert (ch.state, ch.ts_ms, ch.transition, ch.reason) == ("online", NOW, True, "birth")
    assert decide_gateway_message("online", on, NOW).transition is False
    ch = decide_gateway_message("online", off, NOW)
    # a last will carries the time it was set: the receive time is used
    assert (ch.state, ch.ts_ms, ch.transition) == ("offline", NOW, True)


def test_freshness_decisions() -> None:
    assert fresh(NOW - 30_000, 10, 3, NOW)
    assert not fresh(NOW - 30_001, 10, 3, NOW)
    ups = decide_seen(
        {1: "online", 2: "offline"},
        {1: NOW, 2: NOW - 1000, 3: NOW - 100_000, 4: NOW + 50_000},
        {1: 10.0, 2: 10.0, 3: 10.0},
        factor=3,
        default_period_s=60,
        now_ms=NOW,
    )
    assert [(u.id, u.goes_online, u.last_seen_ms) for u in ups] == [
        (1, False, NOW),
        (2, True, NOW - 1000),
        (3, False, NOW - 100_000),
        (4, True, NOW),  # a future timestamp counts as now
    ]


def test_config_and_url_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="batch_max_rows"):
        load_ingest_config(batch_max_rows=0)
    with pytest.raises(ConfigError, match="group"):
        load_ingest_config(group="a/b")
    with pytest.raises(SuvnetError, match="mqtt://"):
        parse_mqtt_url("http://x")
    b = parse_mqtt_url("mqtts://u%40x:p@broker:8884")
    assert (b.host, b.port, b.tls, b.username, b.password) == ("broker", 8884, True, "u@x", "p")


def test_pack_rows_byte_vectors() -> None:
    from ingest.store import pack_rows

    # 2000-01-01T00:00:00.001Z = 1000 us after PostgreSQL's epoch; point 7; 1.5; good
    assert pack_rows([(946_684_800_001, 7, 1.5, 0)]) == bytes.fromhex(
        "00040000000800000000000003e8000000080000000000000007000000083ff8000000000000000000020000"
    )
    # a missing value is a NULL field (length -1), quality comm-fail
    assert pack_rows([(946_684_800_000, 1, None, 2)]) == bytes.fromhex(
        "0004000000080000000000000000000000080000000000000001ffffffff000000020002"
    )


def test_the_lean_mqtt_path_is_available_and_its_loss_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest.service import IngestWorker, _IngestClient
    from tests.ingest.conftest import make_config

    worker = IngestWorker("postgresql://127.0.0.1/x", "mqtt://127.0.0.1:1883", make_config())
    client = worker._make_client()
    # the installed paho has what the lean path reads (pyproject pins the major version)
    assert client.lean_path_available()
    assert "fast MQTT path" not in caplog.text
    del client._in_packet
    assert not client.lean_path_available()
    monkeypatch.setattr(_IngestClient, "lean_path_available", lambda self: False)
    worker._make_client()
    assert "lacks what ingest's fast MQTT path reads" in caplog.text
