"""The office's side of PRV control: the relay of critical-point values through the office
(real PostgreSQL and Mosquitto) and the flow curve learned from the stored history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import Result

from suvnet import prv_relay
from suvnet.protocol import PointValue, Topics, decode_value
from suvnet.prv_cli import app as prv_app
from suvnet.prv_learn import hourly_samples, learn
from suvnet.site import apply_site, load_site
from tests.suvnet.conftest import EXAMPLES

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _village(url: str) -> None:
    with psycopg.connect(url) as conn:
        apply_site(conn, load_site(EXAMPLES / "village-site.yaml"))
        conn.commit()


def _reading(url: str, device: str, point: str, ts: datetime, value: float) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO readings (point_id, ts, value, quality) SELECT p.id, %s, %s, 0 "
            "FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.code = %s AND p.name = %s",
            (ts, value, device, point),
        )
        conn.commit()


async def _retained(mqtt_url: str, topic: str) -> PointValue:
    host, _, port = mqtt_url.removeprefix("mqtt://").partition(":")
    async with aiomqtt.Client(host, int(port or 1883)) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                return decode_value(msg.payload)
    raise AssertionError("no retained value")


async def test_the_office_relays_what_a_controller_reads_through_it(
    fresh_db_url: str, mqtt_url: str, topic_root: str
) -> None:
    _village(fresh_db_url)
    topics = Topics(topic_root)
    # nothing is read through the office yet: nothing to relay
    assert await prv_relay.run(fresh_db_url, mqtt_url, topics, once=True) == 0
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            "UPDATE prv_controls SET config = jsonb_set(config, '{critical_point,sensors}', %s)",
            (Jsonb([{"device": "pt-s6", "point": "pressure_bar", "source": "suvnet-office"}]),),
        )
        conn.commit()
        assert prv_relay.wanted(conn) == [("pt-s6", "pressure_bar")]
    _reading(fresh_db_url, "pt-s6", "pressure_bar", T0, 2.44)
    _reading(fresh_db_url, "pt-s6", "pressure_bar", T0 - timedelta(minutes=5), 2.1)  # older
    relay = prv_relay.Relay(topics)
    async with prv_relay.mqtt_client(mqtt_url, "suvnet-test-relay") as client:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            assert await relay.once(conn, client) == 1
            assert await relay.once(conn, client) == 0  # unchanged: not sent again
    got = await _retained(mqtt_url, topics.value("suvnet-office", "pt-s6", "pressure_bar"))
    assert got == PointValue("pt-s6", "pressure_bar", int(T0.timestamp() * 1000), 2.44)
    _reading(fresh_db_url, "pt-s6", "pressure_bar", T0 + timedelta(minutes=1), 2.38)
    async with prv_relay.mqtt_client(mqtt_url, "suvnet-test-relay") as client:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            assert await relay.once(conn, client) == 1
    got = await _retained(mqtt_url, topics.value("suvnet-office", "pt-s6", "pressure_bar"))
    assert got.value == 2.38


def _hourly(conn: psycopg.Connection[Any], device: str, point: str, rows: list[Any]) -> None:
    pid = conn.execute(
        "SELECT p.id FROM points p JOIN devices d ON d.id = p.device_id "
        "WHERE d.code = %s AND p.name = %s",
        (device, point),
    ).fetchone()
    assert pid is not None
    conn.cursor().executemany(
        "INSERT INTO readings_1h (point_id, bucket, min, max, sum, count, last, last_ts) "
        "VALUES (%s, %s, %s, %s, %s, 60, %s, %s)",
        [(pid[0], b, low, mean, mean * 60, mean, b) for b, mean, low in rows],
    )


def test_a_flow_curve_is_learned_from_the_history(
    fresh_db_url: str, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three days of hours: the critical point loses 0.4 bar of height and 0.003 q^1.852 of
    friction below the outlet; an hour without the sensor is left out."""
    _village(fresh_db_url)
    outlet, flow, cp = [], [], []
    for h in range(72):
        b = T0 + timedelta(hours=h)
        q = 5.0 + 25.0 * (h % 24) / 23
        out = 3.6
        loss = 0.4 + 0.003 * q**1.852
        outlet.append((b, out, out))
        flow.append((b, q, q))
        if h != 30:
            cp.append((b, out - loss + 0.05, out - loss))  # the lowest is what counts
    with psycopg.connect(fresh_db_url) as conn:
        _hourly(conn, "prv-1-ctl", "outlet_bar", outlet)
        _hourly(conn, "dm-south", "flow_m3h", flow)
        _hourly(conn, "pt-s6", "pressure_bar", cp)
        conn.commit()
        samples = hourly_samples(
            conn, outlet=("prv-1-ctl", "outlet_bar"), inflow=("dm-south", "flow_m3h"),
            sensors=[("pt-s6", "pressure_bar")], since=T0, until=T0 + timedelta(days=3),
        )  # fmt: skip
        assert len(samples) == 71
        curve, fit = learn(
            conn, outlet=("prv-1-ctl", "outlet_bar"), inflow=("dm-south", "flow_m3h"),
            sensors=[("pt-s6", "pressure_bar")], since=T0, until=T0 + timedelta(days=3),
            aim_bar=2.2, min_bar=2.0, max_bar=4.5,
        )  # fmt: skip
    assert fit.static_bar == pytest.approx(0.4, abs=1e-6)
    assert fit.k == pytest.approx(0.003, rel=1e-6)
    assert curve[0] == (0.0, 2.6)
    # the command prints the curve for the site file, as of SUVNET_NOW
    monkeypatch.setenv("SUVNET_NOW", (T0 + timedelta(days=3)).isoformat())
    res = run_cli(
        prv_app, fresh_db_url, "learn-curve", "prv-1-ctl", "--meter", "dm-south",
        "--sensor", "pt-s6", "--target", "2.2", "--min-bar", "2", "--max-bar", "4.5",
        "--days", "3",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "71 hours" in res.output
    assert f"curve: [[0, 2.6], [{curve[1][0]:g}, {curve[1][1]:g}]" in res.output
    # one day that holds the hour without the sensor: 23 usable hours are too few
    monkeypatch.setenv("SUVNET_NOW", (T0 + timedelta(hours=48 + 6)).isoformat())
    res = run_cli(prv_app, fresh_db_url, "learn-curve", "prv-1-ctl", "--meter", "dm-south",
                  "--sensor", "pt-s6", "--target", "2.2", "--days", "1")  # fmt: skip
    assert res.exit_code != 0
    assert "at least 24 are needed" in str(res.exception) or "at least 24" in res.output
