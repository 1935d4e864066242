"""The demo's last drain (simulator/demo.py ``Demo.drain``) with a real agent, real Modbus
simulators and real Mosquitto. Without ingest nothing is acknowledged, and the drain says
what it waits for, gateway by gateway, then that readings were not delivered. With an office
that acknowledges, a poll still under way when the outbox is empty is waited for."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.profiles import Profile
from simulator import demo as dm
from tests.edge_agent.conftest import running_office, wait_for, write_gateway
from tests.edge_agent.test_agent_mqtt import tcp_buses, tcp_sim


def _demo() -> dm.Demo:
    return dm.Demo(
        dm.Options(speed=17280, days=1, duration_s=None, exit_after=True, api=False, port=0,
                   leak_lps=0.0)
    )  # fmt: skip


async def test_a_drain_that_waits_says_for_what(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-drain", mqtt_url, topic_root, tcp_buses(port))
    demo = _demo()
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


async def test_a_drain_waits_for_a_poll_under_way_when_the_outbox_is_empty(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    """The demo's pollers stop at the end of the simulated period, but a poll that began just
    before it hands its readings on later. A drain that ended on the empty outbox alone could
    stop the agent in that moment and leave them in the outbox."""
    server, port = await tcp_sim(profiles)
    # one poll at the start, the next a minute later: the drain sees only the first
    cfg = write_gateway(tmp_path, "gw-poll", mqtt_url, topic_root, tcp_buses(port, poll_s=60))
    for unit in (1, 2):
        server.device(unit).silent = True  # the first polls wait for an answer
    demo = _demo()
    agent = Agent(load_config(cfg))
    demo.agents = [agent]
    async with running_office(mqtt_url, topic_root, "gw-poll") as office:
        demo.agent_tasks = [asyncio.create_task(agent.run(demo.agent_stop), name="agent")]
        try:
            await wait_for(lambda: agent.polling, 10, "a poll under way")
            assert agent.queue_depth == 0  # nothing polled yet: the outbox is empty
            drain = asyncio.create_task(demo.drain(limit_s=20, say_every_s=30))
            await asyncio.sleep(0.2)
            assert not drain.done(), "the drain ended while a poll was under way"
            for unit in (1, 2):
                server.device(unit).silent = False  # the devices answer (or time out)
            with dm.console.capture() as out:
                await asyncio.wait_for(drain, 30)
        finally:
            await demo.stop_agents()
            await server.stop()
    assert "not delivered" not in out.get(), out.get()
    got = {r.device for r in office.readings()}
    assert got == {"prv-1", "m-1"}, got  # the polls under way were sent and acknowledged
    assert agent.outbox.depth == 0
