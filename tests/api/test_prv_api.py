"""PRV control over the JSON API, on the example village (site file applied) and, for the
commands, the real edge agent on Mosquitto with simulated Modbus devices: read, refuse bad
configurations with 422 before anything is stored or sent, role checks, audit, and
configurations that reach the gateway as commands with a result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.routes import prv as prv_routes
from api.security import Role
from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.control import Reason
from edge_agent.profiles import load_profiles
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from suvnet.prvcontrol import ControlConfig
from suvnet.site import apply_site, load_site
from tests.api.conftest import NOW, Clock, User, api_settings, bearer
from tests.edge_agent.conftest import PROFILES_DIR, free_port, wait_for, write_gateway
from tests.edge_agent.test_agent_mqtt import running

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "village-site.yaml"
URL = "/api/v1/prv/prv-1-ctl"


@pytest.fixture(scope="module")
def village(db_url: str, users: dict[Role, User]) -> None:
    """The example site applied; a few readings of PRV-1 and its critical point pt-s6."""
    with psycopg.connect(db_url) as conn:
        apply_site(conn, load_site(EXAMPLE))
        conn.commit()
        for device, point, value in (
            ("prv-1-ctl", "ctl_cp_bar", 2.21),
            ("prv-1-ctl", "ctl_reason", float(Reason.HOLD)),
            ("prv-1-ctl", "setpoint_bar", 3.5),
            ("pt-s6", "pressure_bar", 2.21),
        ):
            conn.execute(
                "INSERT INTO readings (point_id, ts, value, quality) SELECT p.id, %s, %s, 0 "
                "FROM points p JOIN devices d ON d.id = p.device_id "
                "WHERE d.code = %s AND p.name = %s",
                (NOW - timedelta(minutes=2), value, device, point),
            )
        conn.commit()


@pytest.fixture
def app(db_url: str, mqtt_url: str, topic_root: str, clock: Clock) -> FastAPI:
    """The app with the PRV routes (api/app.py lists them once the lead adds them)."""
    app = create_app(api_settings(db_url, mqtt_url, topic_root), clock=clock)
    if not any(getattr(r, "path", "").startswith("/api/v1/prv") for r in app.routes):
        app.include_router(prv_routes.router)
    app.state.suvnet.command_timeout_s = 5.0
    return app


def _one(db_url: str, sql: str, *args: Any) -> Any:
    with psycopg.connect(db_url) as c:
        row = c.execute(sql, args).fetchone()
    return None if row is None else row[0]


def _stored(db_url: str) -> Any:
    return _one(
        db_url,
        "SELECT c.config FROM prv_controls c JOIN devices d ON d.id = c.device_id "
        "WHERE d.code = 'prv-1-ctl'",
    )


async def test_read_the_list_and_one_prv(
    client: httpx.AsyncClient, users: dict[Role, User], village: None
) -> None:
    r = await client.get("/api/v1/prv", headers=bearer(users[Role.CASHIER]))
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert item["device"] == "prv-1-ctl" and item["zone"] == "DMA-S"
    assert item["mode"] == "critical_point" and item["source"] == "site"
    r = await client.get(URL, headers=bearer(users[Role.DISPATCHER]))
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["gateway"] == "gw-south" and v["device_range_bar"] == [0.5, 8.0]
    assert v["control"]["critical_point"]["target_bar"] == 2.0
    assert v["live"]["critical_point_bar"]["value"] == 2.21
    assert v["live"]["critical_point_bar"]["age_s"] == 120
    assert v["live"]["setpoint_bar"]["value"] == 3.5
    assert v["sensors"] == [
        {"device": "pt-s6", "point": "pressure_bar", "source": None,
         "reading": v["sensors"][0]["reading"]},
    ]  # fmt: skip
    assert v["sensors"][0]["reading"]["value"] == 2.21
    assert v["sent"]["status"] is None
    r = await client.get(URL, headers=bearer(users[Role.CUSTOMER]))
    assert r.status_code == 403
    r = await client.get("/api/v1/prv/nope", headers=bearer(users[Role.ADMIN]))
    assert r.status_code == 404


FIXED = {"mode": "fixed", "min_bar": 2.0, "max_bar": 4.5, "setpoint_bar": 3.3}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**FIXED, "min_bar": 4.0, "max_bar": 3.0}, "min_bar: the limits cross"),
        ({**FIXED, "max_bar": 9.0},
         "max_bar: 9 bar is outside the device's setpoint range [0.5, 8]"),
        ({**FIXED, "setpoint_bar": 999999}, "setpoint_bar: 999999 bar is outside the limits"),
        ({**FIXED, "mode": "time", "profile": [
            {"from": "00:00", "to": "06:00", "setpoint_bar": 2.5},
            {"from": "07:00", "to": "24:00", "setpoint_bar": 3.0}]},
         "profile[1].from: leaves mon 06:00-07:00 without a setpoint"),
        ({**FIXED, "mode": "critical_point", "safe_bar": 3.9, "critical_point": {
            "sensors": [{"device": "pt-n4"}], "target_bar": 2.0}},
         ("critical_point.sensors[0].device: pt-n4 is in zone DMA-N but the PRV prv-1-ctl is "
         "in DMA-S")),
        ({**FIXED, "colour": "blue"}, "colour: Extra inputs are not permitted"),
        ([1, 2], "valid dictionary"),
    ],
)  # fmt: skip
async def test_a_bad_configuration_is_422_and_nothing_is_stored_or_sent(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,
    db_url: str,
    body: Any,
    words: str,
) -> None:
    before = _stored(db_url)
    sent = _one(db_url, "SELECT count(*) FROM gateway_commands")
    r = await client.put(f"{URL}/control", json=body, headers=bearer(users[Role.TECHNICIAN]))
    assert r.status_code == 422, r.text
    assert words in str(r.json()["detail"])
    assert _stored(db_url) == before
    assert _one(db_url, "SELECT count(*) FROM gateway_commands") == sent


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.CASHIER, Role.BILLING_CLERK])
async def test_only_the_registry_writers_configure(
    client: httpx.AsyncClient, users: dict[Role, User], village: None, role: Role
) -> None:
    r = await client.put(f"{URL}/control", json=FIXED, headers=bearer(users[role]))
    assert r.status_code == 403


async def test_only_the_command_senders_switch_and_send(
    client: httpx.AsyncClient, users: dict[Role, User], village: None
) -> None:
    for path, body in (("auto", {"auto": False}), ("push", None)):
        r = await client.post(f"{URL}/{path}", json=body, headers=bearer(users[Role.CASHIER]))
        assert r.status_code == 403, path


@pytest.fixture
async def gateway(
    tmp_path: Path, mqtt_url: str, topic_root: str, clock: Clock, village: None
) -> AsyncIterator[tuple[Agent, SimulatedDevice]]:
    """gw-south's real agent polling prv-1-ctl and pt-s6 on a Modbus simulator."""
    profiles = load_profiles(PROFILES_DIR)
    prv = SimulatedDevice(profiles["prv_controller"], unit=2, auto=False)
    pt = SimulatedDevice(profiles["pressure_transmitter"], unit=3, auto=False)
    pt.set_value("pressure_bar", 2.3)
    port = free_port()
    server = SimServer([prv, pt], port=port, step_s=0)
    await server.start()
    buses = [{"name": "tcp", "kind": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5,
              "devices": [{"id": "prv-1-ctl", "unit": 2, "profile": "prv_controller",
                           "poll_s": 0.2},
                          {"id": "pt-s6", "unit": 3, "profile": "pressure_transmitter",
                           "poll_s": 0.2}]}]  # fmt: skip
    cfg = write_gateway(tmp_path, "gw-south", mqtt_url, topic_root, buses)
    # the gateway judges a command's expiry on the office's clock (the tests' fixed one)
    agent = Agent(load_config(cfg), command_clock=lambda: int(clock.now.timestamp() * 1000))
    try:
        async with running(agent):
            await wait_for(lambda: agent.connected, 10, "the agent online")
            await asyncio.sleep(0.3)
            yield agent, prv
    finally:
        await server.stop()


async def test_configurations_reach_the_gateway_as_commands_with_a_result(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    db_url: str,
    gateway: tuple[Agent, SimulatedDevice],
) -> None:
    agent, prv = gateway

    def running_config() -> ControlConfig | None:
        return agent.regulators["prv-1-ctl"].loop.config

    assert running_config() is None  # its gateway.yaml says nothing: hand
    # the site file's configuration, sent by a dispatcher
    r = await client.post(f"{URL}/push", headers=bearer(users[Role.DISPATCHER]), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok" and r.json()["op"] == "control"
    cfg = running_config()
    assert cfg is not None and cfg.mode == "critical_point"
    assert _one(db_url, "SELECT sent_status FROM prv_controls") == "ok"
    # a fixed setpoint set by a technician: stored, audited, sent and carried out
    body = {**FIXED, "interval_s": 1, "max_step_bar": 2, "max_rate_bar_per_min": 10}
    tech = bearer(users[Role.TECHNICIAN])
    r = await client.put(f"{URL}/control", json=body, headers=tech, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["push"]["status"] == "ok", r.json()
    await wait_for(lambda: abs(float(prv.get_value("setpoint_bar")) - 3.3) < 0.015, 10, "3.3")
    assert _one(db_url, "SELECT source FROM prv_controls") == "api"
    assert _one(db_url, "SELECT sent_config = config FROM prv_controls") is True
    audit = _one(
        db_url,
        "SELECT after->>'setpoint_bar' FROM audit_log WHERE action = 'prv_control' "
        "AND entity_id = 'prv-1-ctl' AND actor = 'u_technician'",
    )
    assert audit == "3.3"
    # hand: the controller only watches from now on
    r = await client.post(
        f"{URL}/auto", json={"auto": False}, headers=bearer(users[Role.DISPATCHER]), timeout=30
    )
    assert r.status_code == 200 and r.json()["push"]["status"] == "ok", r.text
    cfg = running_config()
    assert cfg is not None and cfg.auto is False
    # a configuration the gateway cannot run comes back refused, with its reason
    bad = {**FIXED, "mode": "critical_point", "safe_bar": 3.9,
           "critical_point": {"sensors": [{"device": "dm-south", "point": "flow_m3h"}],
                              "target_bar": 2.0}}  # fmt: skip
    r = await client.put(f"{URL}/control", json=bad, headers=tech, timeout=30)
    assert r.status_code == 200, r.text
    push = r.json()["push"]
    assert push["status"] == "refused"
    assert "dm-south is not polled by this gateway" in push["reason"]
    assert _one(db_url, "SELECT sent_status FROM prv_controls") == "refused"
    cfg = running_config()
    assert cfg is not None and cfg.mode == "fixed"  # the last good one stays
    results = _one(
        db_url,
        "SELECT array_agg(status ORDER BY sent_at, status) FROM gateway_commands "
        "WHERE op = 'control'",
    )
    assert sorted(results) == ["ok", "ok", "ok", "refused"]
