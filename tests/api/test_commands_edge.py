"""End to end: a PRV setpoint sent through the API reaches a Modbus device.

API -> Mosquitto -> the real edge agent -> Modbus TCP write on the simulated PRV controller
(pymodbus) -> read back -> result over MQTT -> API answer.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from api.security import Role
from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.profiles import load_profiles
from tests.api.conftest import Clock, User, bearer
from tests.edge_agent.conftest import PROFILES_DIR, write_gateway
from tests.edge_agent.test_agent_mqtt import running, tcp_buses, tcp_sim


@pytest.fixture(scope="module")
def registry(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        gw = c.execute("INSERT INTO gateways (code) VALUES ('gw-api') RETURNING id").fetchone()
        assert gw
        dev = c.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile, unit_id) "
            "VALUES ('prv-1', %s, 'prv_controller', 'prv_controller', 1) RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev
        c.execute(
            "INSERT INTO points (device_id, name, unit, kind) VALUES "
            "(%s, 'setpoint_bar', 'bar', 'setpoint')",
            (dev[0],),
        )


async def test_setpoint_reaches_the_modbus_device(
    tmp_path: Path,
    client: httpx.AsyncClient,
    users: dict[Role, User],
    registry: None,
    mqtt_url: str,
    topic_root: str,
    clock: Clock,
) -> None:
    import asyncio

    server, port = await tcp_sim(load_profiles(PROFILES_DIR))
    prv = server.device(1)
    cfg = write_gateway(tmp_path, "gw-api", mqtt_url, topic_root, tcp_buses(port, poll_s=1))
    try:
        # the gateway judges a command's expiry on the office's clock (here the tests' fixed one)
        office_ms = lambda: int(clock.now.timestamp() * 1000)  # noqa: E731
        async with running(Agent(load_config(cfg), command_clock=office_ms)):
            await asyncio.sleep(0.5)
            url = "/api/v1/gateways/gw-api/commands"
            disp = bearer(users[Role.DISPATCHER])
            r = await client.post(
                url,
                headers=disp,
                timeout=30,
                json={"device": "prv-1", "op": "write", "point": "setpoint_bar", "value": 3.45},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ok"
            assert r.json()["readback"] == pytest.approx(3.45)
            assert prv.get_value("setpoint_bar") == pytest.approx(3.45)
            # outside the device's range: the office refuses it before anything is sent
            r = await client.post(
                url,
                headers=disp,
                timeout=30,
                json={"device": "prv-1", "op": "write", "point": "setpoint_bar", "value": 9.5},
            )
            assert r.status_code == 422
            assert "out_of_range: 9.5 > 8" in r.json()["detail"]
            assert prv.get_value("setpoint_bar") == pytest.approx(3.45)
    finally:
        await server.stop()
