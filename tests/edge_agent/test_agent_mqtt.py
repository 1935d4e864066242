"""The whole agent against real Mosquitto and real Modbus simulators, with the test playing
the office (ingest's ack, the dispatcher's commands)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.errors import OutboxError
from edge_agent.poller import RealClock
from edge_agent.profiles import Profile
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from suvnet.protocol import (
    Command,
    CommandResult,
    Reading,
    Topics,
    decode_command_result,
    decode_state,
    encode_command,
)
from tests.edge_agent.conftest import (
    PrivateBroker,
    free_port,
    running_office,
    wait_for,
    write_gateway,
)


class RecordingAgent(Agent):
    """The real agent, also keeping a list of every reading its pollers produced."""

    produced: list[Reading]

    def _sink(self, readings: Sequence[Reading]) -> None:
        if not hasattr(self, "produced"):
            self.produced = []
        self.produced.extend(readings)
        super()._sink(readings)


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name="agent")
    try:
        yield agent
    finally:
        stop.set()
        done, _ = await asyncio.wait([task], timeout=15)
        if not done:
            for t in asyncio.all_tasks():
                t.print_stack()
            task.cancel()
            raise AssertionError("the agent did not stop within 15 s")
        task.result()


async def tcp_sim(profiles: dict[str, Profile]) -> tuple[SimServer, int]:
    port = free_port()
    server = SimServer(
        [
            SimulatedDevice(profiles["prv_controller"], unit=1, seed=1),
            SimulatedDevice(profiles["ultrasonic_water_meter"], unit=2, seed=2),
        ],
        port=port,
        step_s=0.1,
    )
    await server.start()
    return server, port


def tcp_buses(port: int, poll_s: float = 0.1) -> list[dict[str, object]]:
    return [
        {
            "name": "tcp",
            "kind": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "timeout_s": 0.5,
            "devices": [
                {"id": "prv-1", "unit": 1, "profile": "prv_controller", "poll_s": poll_s},
                {"id": "m-1", "unit": 2, "profile": "ultrasonic_water_meter", "poll_s": poll_s},
            ],
        }
    ]


def mqtt_client(url: str) -> aiomqtt.Client:
    parts = urlsplit(url)
    return aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883)


async def test_readings_flow_and_leave_the_outbox_only_when_acked(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-e2e", mqtt_url, topic_root, tcp_buses(port))
    agent = RecordingAgent(load_config(cfg))
    try:
        async with running_office(mqtt_url, topic_root, "gw-e2e") as office, running(agent):
            office.acking = False
            await wait_for(lambda: len(office.batches) >= 3, 10, "three batches")
            # delivered to the broker (PUBACK) but not acknowledged: still in the outbox
            assert agent.outbox.unacked()[:3] == [0, 1, 2]
            office.acking = True
            await wait_for(lambda: len(office.batches) >= 8, 10, "more batches")
            await wait_for(lambda: len(agent.outbox.unacked()) <= 2, 10, "acks applied")
            await wait_for(lambda: len(office.states) >= 2, 5, "health updates")
        got = office.readings()
        assert {r.device for r in got} == {"prv-1", "m-1"}
        points = {r.point for r in got if r.device == "m-1"}
        assert {"volume_m3", "flow_m3h", "alarm_flags", "alarm_flags.leak"} <= points
        assert got == agent.produced[: len(got)]  # the same readings, in the same order
        health = [s for s in office.states if s.state == "online"][-1].health
        assert set(health) >= {"queue_depth", "dropped", "poll_success_rate", "devices"}
        assert health["devices"]["prv-1"]["online"] is True
        assert health["poll_success_rate"] == 1.0
    finally:
        await server.stop()
    # a clean stop leaves the retained state "offline"
    async with mqtt_client(mqtt_url) as c:
        await c.subscribe(Topics(root=topic_root).state("gw-e2e"), qos=1)
        async with asyncio.timeout(5):
            msg = await anext(aiter(c.messages))
        assert decode_state(bytes(msg.payload)).state == "offline"


class _StillWallClock(RealClock):
    """A wall clock that stands still (the demo's clock held at the end of its period, or a
    gateway's clock set back by NTP); the monotonic clock and the sleeps are real."""

    def __init__(self, at: float) -> None:
        self.at = at

    def time(self) -> float:
        return self.at


async def test_a_partial_batch_goes_out_when_the_wall_clock_stands_still(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    """A batch under ``max_readings`` waits ``max_latency_s`` (0.2 s here) to be sent. Its age
    was only the wall clock's: a clock that stood still, as the demo's does at the end of its
    period, left the last readings in the outbox for good (the demo's end-to-end test once
    found 30 there). One poll of each device, the next a minute later: every reading of it
    must reach the office."""
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-still", mqtt_url, topic_root, tcp_buses(port, poll_s=60))
    agent = RecordingAgent(load_config(cfg), clock=_StillWallClock(1_800_000_000.0))
    try:
        async with running_office(mqtt_url, topic_root, "gw-still") as office, running(agent):
            await wait_for(lambda: len(getattr(agent, "produced", ())) > 0, 10, "a poll")
            await wait_for(
                lambda: agent.queue_depth == 0 and not agent.polling, 10, "an empty outbox"
            )
        got = office.readings()
        assert {r.device for r in got} == {"prv-1", "m-1"}
        assert got == agent.produced  # every reading of the polls, in order
    finally:
        await server.stop()


async def test_the_agent_stops_even_when_a_publish_swallows_the_stop(
    tmp_path: Path,
    profiles: dict[str, Profile],
    mqtt_url: str,
    topic_root: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Python 3.11 aiomqtt's publish (``asyncio.wait_for`` inside) returns normally when the
    PUBACK lands in the same loop pass as the task's cancellation (bpo-42130): the stop is lost.
    Here one telemetry publish does exactly that when the agent is told to stop; the agent must
    stop all the same (CI once hung here for 15 s, then failed)."""
    real_publish = aiomqtt.Client.publish
    waiting = asyncio.Event()
    swallowed: list[str] = []

    async def publish(self: aiomqtt.Client, topic: str, payload: Any = None, **kw: Any) -> None:
        await real_publish(self, topic, payload, **kw)
        if topic.endswith("/telemetry") and not waiting.is_set():
            waiting.set()
            try:
                await asyncio.sleep(3600)  # the wait for the PUBACK; the stop arrives meanwhile
            except asyncio.CancelledError:
                swallowed.append(topic)  # ...and the cancellation is lost, as on 3.11

    monkeypatch.setattr(aiomqtt.Client, "publish", publish)
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-lost", mqtt_url, topic_root, tcp_buses(port))
    try:
        async with running(Agent(load_config(cfg))):
            await asyncio.wait_for(waiting.wait(), 10)
    finally:
        await server.stop()
    assert swallowed == [Topics(root=topic_root).telemetry("gw-lost")]


async def _command(client: aiomqtt.Client, topics: Topics, gw: str, cmd: Command) -> CommandResult:
    await client.publish(topics.command(gw), encode_command(cmd), qos=1)
    async with asyncio.timeout(10):
        async for msg in client.messages:
            res = decode_command_result(bytes(msg.payload))
            if res.id == cmd.id:
                return res
    raise AssertionError("no result")


async def test_setpoint_round_trip_and_refusals(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    prv = server.device(1)
    cfg = write_gateway(tmp_path, "gw-cmd", mqtt_url, topic_root, tcp_buses(port, poll_s=1))
    topics = Topics(root=topic_root)
    try:
        async with running(Agent(load_config(cfg))), mqtt_client(mqtt_url) as client:
            await client.subscribe(topics.command_result("gw-cmd"), qos=1)
            await asyncio.sleep(0.5)
            res = await _command(
                client, topics, "gw-cmd", Command("c-1", "prv-1", "write", "setpoint_bar", 3.45)
            )
            assert res.ok, res.reason
            assert res.readback == pytest.approx(3.45)
            assert prv.get_value("setpoint_bar") == pytest.approx(3.45)

            res = await _command(
                client, topics, "gw-cmd", Command("c-2", "prv-1", "write", "setpoint_bar", 9.5)
            )
            assert (res.ok, res.reason) == (False, "out_of_range: 9.5 > 8")
            assert prv.get_value("setpoint_bar") == pytest.approx(3.45)

            res = await _command(
                client, topics, "gw-cmd", Command("c-3", "prv-1", "write", "inlet_bar", 1.0)
            )
            assert res.reason == "read_only: inlet_bar cannot be written"

            sched = Command("c-4", "prv-1", "schedule", schedule=(("06:30", 3.2), ("23:00", 2.4)))
            res = await _command(client, topics, "gw-cmd", sched)
            assert res.ok, res.reason
            assert prv.get_value("day_start_min") == 390
            assert prv.get_value("night_setpoint_bar") == pytest.approx(2.4)

            res = await _command(
                client, topics, "gw-cmd", Command("c-5", "prv-1", "write", "remote_enable", False)
            )
            assert res.ok
            assert res.readback is False
            assert prv.get_value("remote_enable") is False

            # a malformed command is logged and ignored; the agent keeps answering
            await client.publish(topics.command("gw-cmd"), json.dumps({"v": 1}).encode(), qos=1)
            res = await _command(
                client, topics, "gw-cmd", Command("c-6", "nope", "write", "setpoint_bar", 3.0)
            )
            assert res.reason == "unknown_device: nope"
    finally:
        await server.stop()


async def test_broker_outage_every_reading_once_and_in_order(
    tmp_path: Path, profiles: dict[str, Profile], private_broker: PrivateBroker, topic_root: str
) -> None:
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(
        tmp_path, "gw-out", private_broker.url, topic_root, tcp_buses(port),
        batch={"max_readings": 50, "max_latency_s": 0.2, "resend_after_s": 2, "max_inflight": 32},
    )  # fmt: skip
    agent = RecordingAgent(load_config(cfg))
    try:
        async with running_office(private_broker.url, topic_root, "gw-out") as office:
            async with running(agent):
                await wait_for(lambda: len(office.batches) >= 3, 10, "batches before the outage")
                private_broker.stop()
                await wait_for(lambda: not agent.connected, 5, "the agent to notice")
                await asyncio.sleep(2.0)
                queued = agent.outbox.depth
                assert queued > 20  # polling went on into the outbox
                private_broker.start()
                await wait_for(lambda: agent.connected, 15, "reconnect")
                await asyncio.sleep(0.5)
                n_produced = len(agent.produced)
                # batches the office missed while it was reconnecting come again after
                # resend_after_s: wait until everything produced so far is there
                await wait_for(
                    lambda: office.readings()[:n_produced] == agent.produced[:n_produced],
                    40,
                    "the backlog to arrive",
                )
            got = office.readings()
        # every reading exactly once, in order (no duplicate, no gap, nothing reordered)
        assert got[:n_produced] == agent.produced[:n_produced]
        assert len({(r.device, r.point, r.ts_ms) for r in got}) == len(got)
        # the batches that carry those readings are numbered without a gap (batches made
        # after them may still be on their way, or waiting for a re-send, when the office
        # stops: their seqs may have holes)
        carrying, covered = [], 0
        for boot, seq in sorted(office.batches):
            if covered >= n_produced:
                break
            carrying.append(seq)
            covered += len(office.batches[boot, seq].readings)
        assert covered >= n_produced
        assert carrying == list(range(len(carrying)))
        assert office.conflicts == 0  # a re-sent batch is the same batch
    finally:
        await server.stop()


async def test_systemd_ready_and_watchdog(
    tmp_path: Path,
    profiles: dict[str, Profile],
    mqtt_url: str,
    topic_root: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pet every 0.1 s
    server, port = await tcp_sim(profiles)
    cfg = write_gateway(tmp_path, "gw-sd", mqtt_url, topic_root, tcp_buses(port))
    got: list[str] = []
    try:
        async with running(Agent(load_config(cfg))):
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(10):
                while got.count("WATCHDOG=1") < 3:
                    got.append((await loop.sock_recv(sock, 100)).decode())
    finally:
        sock.close()
        await server.stop()
    assert got[0] == "READY=1"


async def test_a_failing_task_is_restarted_and_logged(
    tmp_path: Path,
    profiles: dict[str, Profile],
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = write_gateway(tmp_path, "gw-sup", mqtt_url, topic_root, tcp_buses(free_port()))
    agent = Agent(load_config(cfg))
    calls: list[int] = []
    second_run = asyncio.Event()

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in one device loop")
        second_run.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(agent._supervise("poll:x", flaky))
    try:
        async with asyncio.timeout(10):
            await second_run.wait()
    finally:
        task.cancel()
        await asyncio.wait([task])
        agent.outbox.close()
    assert task.cancelled()  # a cancel goes through; it is never swallowed
    assert len(calls) == 2
    assert "task poll:x failed; restarting it" in caplog.text
    assert "a bug in one device loop" in caplog.text


async def test_readings_stay_buffered_when_the_outbox_cannot_write(
    tmp_path: Path, mqtt_url: str, topic_root: str
) -> None:
    cfg = write_gateway(tmp_path, "gw-disk", mqtt_url, topic_root, tcp_buses(free_port()))
    agent = Agent(load_config(cfg))
    readings = [Reading("d-1", "p", 1_000 + i, float(i)) for i in range(10)]
    agent._sink(readings)
    agent.outbox._db.close()  # the disk went away under it
    with pytest.raises(OutboxError, match="cannot write to the outbox"):
        await agent.flush()
    assert list(agent._pending) == readings  # nothing lost, order kept
