"""The birth message announces every device the gateway polls and the point ids it publishes,
so the office can check them against its registry (docs/protocol.md); health updates carry
only the hash of that announcement. Against real Mosquitto and real Modbus simulators."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import load_config
from edge_agent.profiles import Profile, published_names
from suvnet.protocol import points_hash
from tests.edge_agent.conftest import running_office, wait_for, write_gateway
from tests.edge_agent.test_agent_mqtt import RecordingAgent, running, tcp_buses, tcp_sim


async def test_birth_announces_what_the_gateway_publishes(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    buses = tcp_buses(port)
    buses[0]["devices"].append(  # type: ignore[attr-defined]
        {"id": "m-off", "unit": 3, "profile": "ultrasonic_water_meter", "enabled": False}
    )
    cfg = write_gateway(tmp_path, "gw-birth", mqtt_url, topic_root, buses)
    agent = RecordingAgent(load_config(cfg))
    try:
        async with running_office(mqtt_url, topic_root, "gw-birth") as office, running(agent):
            await wait_for(lambda: len(office.batches) >= 3, 10, "telemetry")
            await wait_for(lambda: len(office.states) >= 3, 10, "health updates")
    finally:
        await server.stop()
    birth, *health = [s for s in office.states if s.state == "online"]
    expected = {
        "prv-1": published_names(profiles["prv_controller"]),
        "m-1": published_names(profiles["ultrasonic_water_meter"]),
    }  # a disabled device is not polled, so not announced
    assert birth.points == expected
    assert "alarm_flags.tamper" in expected["m-1"]
    assert birth.points_hash == points_hash(expected)
    # every reading the gateway sent is for an announced point
    sent = {(r.device, r.point) for r in office.readings()}
    assert sent <= {(d, p) for d, names in expected.items() for p in names}
    assert ("m-1", "alarm_flags.leak") in sent
    # health updates: the hash, not the list
    assert health
    assert all(h.points is None and h.points_hash == birth.points_hash for h in health)
