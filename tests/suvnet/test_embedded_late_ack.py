"""The embedded broker and a subscriber that acknowledges late (as ingest does while it
commits, or while it compiles its decoder on a first run): one warning line, no traceback,
and the subscriber has the message."""

from __future__ import annotations

import logging
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from suvnet.embedded import EmbeddedBroker, LateAckFilter


def test_a_late_puback_is_one_warning_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    port = int(url.rsplit(":", 1)[1])
    got: list[mqtt.MQTTMessage] = []
    arrived, subscribed = threading.Event(), threading.Event()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg)
        if len(got) > 1:
            c.ack(msg.mid, msg.qos)  # the first one is kept unacknowledged for a while
        arrived.set()

    def broker_said() -> list[logging.LogRecord]:
        return [
            r for r in caplog.records if r.name == "amqtt.broker" and "PUBACK" in r.getMessage()
        ]

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-acker", manual_ack=True)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="publisher")
    try:
        sub.on_message = on_message
        sub.on_subscribe = lambda *_a: subscribed.set()
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        sub.subscribe("late/#", qos=1)
        assert subscribed.wait(10)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        with caplog.at_level(logging.INFO, logger="amqtt"):
            pub.publish("late/x", b"first", qos=1).wait_for_publish(10)
            assert arrived.wait(10)
            time.sleep(6)  # amqtt gives up waiting for the PUBACK after 5 s
            sub.ack(got[0].mid, got[0].qos)  # late, but the message is here
            # the broker reports the failed delivery when it handles the next message
            pub.publish("late/y", b"second", qos=1).wait_for_publish(10)
            deadline = time.monotonic() + 10
            # wait for both: the broker's report and the second message's delivery
            while not (broker_said() and len(got) > 1) and time.monotonic() < deadline:
                time.sleep(0.1)
        late = broker_said()
        assert late, caplog.text
        assert all(r.exc_info is None and r.levelno == logging.WARNING for r in late)
        assert "acknowledged a delivery after more than 5 s" in late[0].getMessage()
        assert "Traceback" not in caplog.text
        assert [m.payload for m in got] == [b"first", b"second"]
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()
        broker.stop()
    assert not any(isinstance(f, LateAckFilter) for f in logging.getLogger("amqtt.broker").filters)


def _boom() -> None:
    raise RuntimeError("boom")


def test_other_broker_errors_keep_their_traceback() -> None:
    try:
        _boom()
    except RuntimeError:
        info = sys.exc_info()
    rec = logging.LogRecord("amqtt.broker", logging.ERROR, "x", 1, "failed", (), info)
    assert LateAckFilter().filter(rec)
    assert rec.exc_info is not None
    assert rec.levelno == logging.ERROR
