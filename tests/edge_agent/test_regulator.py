"""The PRV controller inside the real agent: real Modbus simulators, real Mosquitto, a toy
zone whose critical point follows the PRV's setpoint, and the office's commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.control import Reason
from edge_agent.errors import ProfileError
from edge_agent.profiles import Profile
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from suvnet.protocol import Command, Topics, decode_command_result, encode_command
from tests.edge_agent.conftest import (
    PrivateBroker,
    free_port,
    running_office,
    wait_for,
    write_gateway,
)
from tests.edge_agent.test_agent_mqtt import mqtt_client, running

DROP = 1.0
"""The toy zone: the critical point sits this many bar below the PRV's setpoint."""


def cp_control(sensor: dict[str, Any], **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "mode": "critical_point",
        "min_bar": 1.0,
        "max_bar": 6.0,
        "safe_bar": 4.0,
        "deadband_bar": 0.02,
        "max_step_bar": 0.3,
        "max_rate_bar_per_min": 10,
        "interval_s": 1.0,
        "stale_after_s": 3.0,
        "critical_point": {"sensors": [sensor], "target_bar": 2.0, "margin_bar": 0.2, "gain": 1},
    }
    doc.update(kw)
    return doc


def bus(port: int, devices: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    return [
        {
            "name": "tcp",
            "kind": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "timeout_s": 0.5,
            "devices": [{"id": d, "unit": u, "profile": p, "poll_s": 0.2} for d, u, p in devices],
        }
    ]


@contextlib.asynccontextmanager
async def toy_zone(
    prv: SimulatedDevice, sensor: SimulatedDevice, extra_drop: list[float]
) -> AsyncIterator[None]:
    """The sensor reads the PRV's setpoint minus DROP (and minus ``extra_drop[0]``)."""

    async def plant() -> None:
        while True:
            sp = float(prv.get_value("setpoint_bar"))
            sensor.set_value("pressure_bar", max(0.0, sp - DROP - extra_drop[0]))
            prv.set_value("outlet_bar", sp)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(plant(), name="toy-zone")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def reasons(agent: Any, device: str) -> list[int]:
    return [int(r.value) for r in agent.produced if r.device == device and r.point == "ctl_reason"]


class Recording(Agent):
    produced: list[Any]

    def _sink(self, readings: Any) -> None:
        if not hasattr(self, "produced"):
            self.produced = []
        self.produced.extend(readings)
        super()._sink(readings)


async def test_local_critical_point_loop_alarm_and_published_decisions(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    prv = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False)
    pt = SimulatedDevice(profiles["pressure_transmitter"], unit=2, auto=False)
    assert prv.get_value("mode") == 2  # the device starts in its own day/night mode
    port = free_port()
    server = SimServer([prv, pt], port=port, step_s=0)
    await server.start()
    cfg = write_gateway(
        tmp_path,
        "gw-ctl",
        mqtt_url,
        topic_root,
        bus(port, [("prv-1", 1, "prv_controller"), ("pt-1", 2, "pressure_transmitter")]),
        controllers={"prv-1": cp_control({"device": "pt-1"})},
    )
    agent = Recording(load_config(cfg))
    extra = [0.0]
    try:
        async with (
            running_office(mqtt_url, topic_root, "gw-ctl") as office,
            toy_zone(prv, pt, extra),
            running(agent),
        ):
            # from 3.0 bar (critical point 2.0) to critical point 2.2: setpoint 3.2
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.2) < 0.015, 15, "3.2 bar"
            )
            assert prv.get_value("mode") == 1  # put in fixed-setpoint mode first
            # a burst: the critical point falls below the alarm; the setpoint goes up at once
            before = len(reasons(agent, "prv-1"))
            extra[0] = 0.6
            await wait_for(
                lambda: Reason.LOW_ALARM in reasons(agent, "prv-1")[before:], 10, "alarm step"
            )
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.8) < 0.015, 15, "3.8 bar"
            )
            # the decisions reach the office as telemetry of the PRV
            await wait_for(
                lambda: (
                    {"ctl_setpoint_bar", "ctl_cp_bar", "ctl_reason", "ctl_auto"}
                    <= {r.point for r in office.readings() if r.device == "prv-1"}
                ),
                10,
                "ctl readings at the office",
            )
            # the sensor stops answering: stale, safe setpoint
            pt.silent = True
            # (the alarm steps may already have reached 4.0, the maximum: wait for the reason)
            await wait_for(lambda: Reason.CP_STALE in reasons(agent, "prv-1"), 15, "stale")
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 4.0) < 0.015, 15, "safe 4.0"
            )
            pt.silent = False
    finally:
        await server.stop()
    sent = [r for r in office.readings() if r.device == "prv-1" and r.point == "ctl_target_bar"]
    assert sent and all(r.value == pytest.approx(2.2) for r in sent)


async def test_a_critical_point_on_another_gateway_and_a_lost_link(
    tmp_path: Path, profiles: dict[str, Profile], private_broker: PrivateBroker
) -> None:
    """gw-a polls the sensor and shares it; gw-b regulates the PRV on it. When the broker
    dies, gw-b falls back to the safe setpoint; when it is back, the loop resumes."""
    root = "ctl2"
    prv = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False)
    pt = SimulatedDevice(profiles["pressure_transmitter"], unit=1, auto=False)
    port_a, port_b = free_port(), free_port()
    server_a = SimServer([pt], port=port_a, step_s=0)
    server_b = SimServer([prv], port=port_b, step_s=0)
    await server_a.start()
    await server_b.start()
    url = private_broker.url
    cfg_a = write_gateway(
        tmp_path, "gw-a", url, root, bus(port_a, [("pt-9", 1, "pressure_transmitter")]),
        share=[{"device": "pt-9", "points": ["pressure_bar"]}],
    )  # fmt: skip
    cfg_b = write_gateway(
        tmp_path, "gw-b", url, root, bus(port_b, [("prv-2", 1, "prv_controller")]),
        controllers={"prv-2": cp_control({"device": "pt-9", "source": "gw-a"})},
    )  # fmt: skip
    a, b = Recording(load_config(cfg_a)), Recording(load_config(cfg_b))
    extra = [0.0]
    try:
        async with toy_zone(prv, pt, extra), running(a), running(b):
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.2) < 0.015, 20, "3.2 bar"
            )
            private_broker.stop()
            await wait_for(lambda: not b.connected, 10, "gw-b offline")
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 4.0) < 0.015, 10, "safe 4.0"
            )
            assert Reason.LINK_LOST in reasons(b, "prv-2")
            private_broker.start()
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.2) < 0.015, 30, "resumed"
            )
    finally:
        await server_a.stop()
        await server_b.stop()


async def _send(url: str, root: str, gw: str, cmd: Command) -> Any:
    topics = Topics(root)
    async with mqtt_client(url) as client:
        await client.subscribe(topics.command_result(gw), qos=1)
        await client.publish(topics.command(gw), encode_command(cmd), qos=1)
        async with asyncio.timeout(10):
            async for msg in client.messages:
                res = decode_command_result(bytes(msg.payload))
                if res.id == cmd.id:
                    return res
    return None


async def test_control_commands_are_checked_kept_and_applied(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    prv = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False)
    port = free_port()
    server = SimServer([prv], port=port, step_s=0)
    await server.start()
    cfg = write_gateway(
        tmp_path, "gw-cmd", mqtt_url, topic_root, bus(port, [("prv-1", 1, "prv_controller")])
    )
    loaded = load_config(cfg)
    agent = Recording(loaded)
    fixed = {"mode": "fixed", "min_bar": 1.0, "max_bar": 6.0, "setpoint_bar": 3.55,
             "interval_s": 1.0, "max_step_bar": 1.0, "max_rate_bar_per_min": 10}  # fmt: skip
    try:
        async with running(agent):
            await wait_for(lambda: agent.connected, 10, "connected")
            # no configuration yet: the controller only watches (hand)
            await wait_for(lambda: Reason.HAND in reasons(agent, "prv-1"), 10, "hand")
            bad = {**fixed, "min_bar": 0.1}  # below the profile's range [0.5, 8.0]
            res = await _send(mqtt_url, topic_root, "gw-cmd", Command("c1", "prv-1", "control",
                                                                       control=bad))  # fmt: skip
            assert not res.ok
            assert res.reason.startswith("bad_control: min_bar: 0.1 bar is outside the device")
            res = await _send(mqtt_url, topic_root, "gw-cmd",
                              Command("c2", "pt-x", "control", control=fixed))  # fmt: skip
            assert res.reason == "unknown_device: pt-x"
            res = await _send(mqtt_url, topic_root, "gw-cmd",
                              Command("c3", "prv-1", "control", control=fixed))  # fmt: skip
            assert res.ok, res
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.55) < 0.015, 10, "3.55"
            )
            kept = json.loads(loaded.control_path.read_text())
            assert kept["controllers"]["prv-1"]["setpoint_bar"] == 3.55
        # a restart (no link needed) regulates as the office last said
        prv.set_value("setpoint_bar", 2.0)
        again = Recording(load_config(cfg))
        assert again.regulators["prv-1"].loop.config is not None
        async with running(again):
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.0) < 0.015, 10, "step 1"
            )
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.55) < 0.015, 10, "3.55"
            )
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("controllers", "field", "words"),
    [
        ({"pt-1": {"mode": "fixed", "min_bar": 1, "max_bar": 5, "setpoint_bar": 3}},
         "controllers.pt-1", "has no controller section"),
        ({"prv-9": {"mode": "fixed", "min_bar": 1, "max_bar": 5, "setpoint_bar": 3}},
         "controllers.prv-9", "not an enabled device"),
        ({"prv-1": {"mode": "fixed", "min_bar": 5, "max_bar": 1, "setpoint_bar": 3}},
         "controllers.prv-1.min_bar", "the limits cross"),
        ({"prv-1": {"mode": "fixed", "min_bar": 1, "max_bar": 9, "setpoint_bar": 3}},
         "controllers.prv-1.max_bar", "outside the device's setpoint range [0.5, 8]"),
        ({"prv-1": cp_control({"device": "pt-7"})},
         "controllers.prv-1.critical_point.sensors[0]", "not polled by this gateway"),
    ],
)  # fmt: skip
def test_gateway_yaml_controllers_are_checked(
    tmp_path: Path, controllers: dict[str, Any], field: str, words: str
) -> None:
    cfg = write_gateway(
        tmp_path, "gw-x", "mqtt://127.0.0.1:1", "x",
        bus(1, [("prv-1", 1, "prv_controller"), ("pt-1", 2, "pressure_transmitter")]),
        controllers=controllers,
    )  # fmt: skip
    with pytest.raises(ProfileError) as info:
        load_config(cfg)
    assert info.value.field == field
    assert words in info.value.message
    assert info.value.line is not None and info.value.line > 1


async def test_commands_set_up_a_remote_critical_point_while_running(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    """No configuration at the start: the office tells gw-a to share its sensor (share) and
    gw-b to regulate on it (control); gw-b subscribes to the value on the fly."""
    prv = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False)
    pt = SimulatedDevice(profiles["pressure_transmitter"], unit=1, auto=False)
    port_a, port_b = free_port(), free_port()
    server_a = SimServer([pt], port=port_a, step_s=0)
    server_b = SimServer([prv], port=port_b, step_s=0)
    await server_a.start()
    await server_b.start()
    cfg_a = write_gateway(tmp_path, "gw-ra", mqtt_url, topic_root,
                          bus(port_a, [("pt-9", 1, "pressure_transmitter")]))  # fmt: skip
    cfg_b = write_gateway(tmp_path, "gw-rb", mqtt_url, topic_root,
                          bus(port_b, [("prv-2", 1, "prv_controller")]))  # fmt: skip
    a, b = Recording(load_config(cfg_a)), Recording(load_config(cfg_b))
    try:
        async with toy_zone(prv, pt, [0.0]), running(a), running(b):
            await wait_for(lambda: a.connected and b.connected, 10, "both online")
            res = await _send(mqtt_url, topic_root, "gw-ra",
                              Command("s1", "pt-9", "share", points=("nope",)))  # fmt: skip
            assert res.reason == "unknown_point: nope"
            res = await _send(mqtt_url, topic_root, "gw-ra",
                              Command("s2", "pt-9", "share", points=("pressure_bar",)))  # fmt: skip
            assert res.ok, res
            control = cp_control({"device": "pt-9", "source": "gw-ra"})
            res = await _send(mqtt_url, topic_root, "gw-rb",
                              Command("c1", "prv-2", "control", control=control))  # fmt: skip
            assert res.ok, res
            assert b.value_topics() == {Topics(topic_root).value("gw-ra", "pt-9", "pressure_bar")}
            await wait_for(
                lambda: abs(float(prv.get_value("setpoint_bar")) - 3.2) < 0.015, 20, "3.2 bar"
            )
            assert Reason.CRITICAL_POINT in reasons(b, "prv-2")
    finally:
        await server_a.stop()
        await server_b.stop()
