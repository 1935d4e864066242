"""The demo's last drain (simulator/demo.py ``Demo.drain``) with a real agent, real Modbus
simulators and real Mosquitto, but no ingest: nothing is acknowledged, and the drain says
what it waits for, gateway by gateway, then that readings were not delivered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.profiles import Profile
from simulator import demo as dm
from tests.edge_agent.conftest import wait_for, write_gateway
from tests.edge_agent.test_agent_mqtt import tcp_buses, tcp_sim


async def test_a_drain_that_waits_says_for_what(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-drain", mqtt_url, topic_root, tcp_buses(port))
    demo = dm.Demo(
        dm.Options(speed=17280, days=1, duration_s=None, exit_after=True, api=False, port=0,
                   leak_lps=0.0)
    )  # fmt: skip
    agent = Agent(load_config(cfg))
    demo.agents = [agent]
    demo.agent_tasks = [asyncio.create_task(agent.run(demo.agent_stop), name="agent")]
    try:
        # the agent polls and publishes; no ingest runs, so no batch is ever acknowledged
        await wait_for(
            lambda: agent.published_batches > 0 and agent.outbox.depth > 0, 10, "a batch sent"
        )
        with dm.console.capture() as out:
            await asyncio.wait_for(demo.drain(limit_s=2.5, say_every_s=1.0), 30)
    finally:
        await demo.stop_agents()
        await server.stop()
    text = " ".join(out.get().split())
    assert text.count("waiting ") >= 2, text  # said, and said again
    assert "for ingest to acknowledge the gateways' last readings (gw-drain: " in text, text
    assert "batches unacknowledged" in text and "MQTT link down" not in text, text
    assert "ingest stopped" in text, text  # this demo started no ingest
    assert "readings were not delivered in time" in text, text
    assert demo.agent_tasks == []  # and the agent stopped:
    assert [t for t in asyncio.all_tasks() if t.get_name() == "agent"] == []
