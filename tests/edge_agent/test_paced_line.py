"""The agent on an emulated RS-485 line paced at 115,200 baud (simulator.line.PacedLine):
exact-length reads, exception answers, and the 3.5-character silence, checked by the line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_agent.errors import ModbusExceptionResponse
from edge_agent.modbus import BusArbiter, ModbusClient, SerialConnection, inter_frame_gap
from edge_agent.profiles import Profile
from simulator.devices import SimulatedDevice
from simulator.line import PacedLine
from simulator.server import SimServer

BAUD = 115200


@pytest.fixture
def line() -> Iterator[PacedLine]:
    paced = PacedLine(BAUD)
    paced.start()
    yield paced
    paced.stop()


async def test_agent_keeps_the_silence_and_reads_whole_answers(
    profiles: dict[str, Profile], line: PacedLine
) -> None:
    devices = [SimulatedDevice(profiles["district_flow_meter"], unit=u, auto=False) for u in (1, 2)]
    devices[0].set_value("forward_m3", 1234.0)
    gap = inter_frame_gap(BAUD)
    async with SimServer(devices, serial_port=line.device_port, baudrate=BAUD, step_s=0):
        arbiter = BusArbiter(SerialConnection(line.master_port, BAUD), gap)
        try:
            clients = [ModbusClient(arbiter, u, 1.0) for u in (1, 2)]
            first = await clients[0].read("holding", 0, 10)
            for i in range(20):
                assert len(await clients[i % 2].read("holding", 0, 10)) == 10
            assert await clients[0].read("holding", 0, 10) == first
            # an exception answer (5 bytes) is shorter than the expected 25: read all the same
            with pytest.raises(ModbusExceptionResponse):
                await clients[1].read("holding", 900, 10)
            assert len(await clients[1].read("holding", 0, 10)) == 10  # the line is still in step
        finally:
            await arbiter.close()
    stats = line.turnaround_ms()
    assert stats["device_n"] >= 20
    assert stats["master_n"] >= 20
    # the line saw the requests start t3.5 after the previous answer ended. The line emulator
    # timestamps bytes in its own process, so on a busy machine a single interval can look
    # shorter than it was on the agent's side: the mean must keep the gap, and no interval may
    # come near the ~0.1-0.3 ms that an agent keeping no gap at all shows.
    assert stats["master_ms"] >= 1000 * gap
    assert stats["master_min_ms"] >= 0.5 * 1000 * gap
    assert 0 < stats["device_min_ms"] <= stats["device_ms"]
