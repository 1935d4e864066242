"""Polling real pymodbus servers: over TCP, over RTU on a socat pty pair, and with mbpoll."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Sequence

import pytest

from edge_agent.errors import ModbusExceptionResponse
from edge_agent.modbus import (
    BusArbiter,
    ModbusClient,
    RtuTcpConnection,
    SerialConnection,
    TcpConnection,
)
from edge_agent.poller import DevicePoller
from edge_agent.profiles import Profile, with_poll_period
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from suvnet.protocol import Quality, Reading
from tests.edge_agent.conftest import PtyPair, free_port, wait_for


@contextlib.asynccontextmanager
async def serving(devices: Sequence[SimulatedDevice], **kw: object) -> AsyncIterator[SimServer]:
    server = SimServer(devices, step_s=0, **kw)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def polling(poller: DevicePoller) -> AsyncIterator[None]:
    task = asyncio.create_task(poller.run(), name=f"poll:{poller.device}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def latest(readings: Sequence[Reading]) -> dict[str, Reading]:
    return {r.point: r for r in readings}


async def test_tcp_poll_decodes_what_the_device_holds(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["prv_controller"], unit=3, auto=False)
    dev.set_value("inlet_bar", 5.25)
    dev.set_value("outlet_bar", 2.75)
    dev.set_value("setpoint_bar", 3.1)
    port = free_port()
    async with serving([dev], port=port):
        conn = TcpConnection("127.0.0.1", port)
        poller = DevicePoller("prv-1", dev.profile, ModbusClient(conn, 3, 1.0), lambda r: None)
        got = latest(await poller.poll(dev.profile.points))
        await conn.close()
    assert got["inlet_bar"].value == pytest.approx(5.25)
    assert got["outlet_bar"].value == pytest.approx(2.75)
    assert got["setpoint_bar"].value == pytest.approx(3.1)
    assert got["remote_enable"].value == 1.0
    assert all(r.quality is Quality.GOOD and r.device == "prv-1" for r in got.values())
    assert poller.requests == 3  # coils, holding 0-4, input 0-4: three reads for nine points


async def test_merged_read_rejected_is_split_and_remembered(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False, max_read=2)
    dev.set_value("valve_position_pct", 37.5)
    dev.set_value("night_start_min", 1320)
    port = free_port()
    async with serving([dev], port=port):
        conn = TcpConnection("127.0.0.1", port)
        client = ModbusClient(conn, 1, 1.0)
        with pytest.raises(ModbusExceptionResponse) as exc:
            await client.read("holding", 0, 5)
        assert exc.value.code == 2
        poller = DevicePoller("prv-1", dev.profile, client, lambda r: None)
        first = latest(await poller.poll(dev.profile.points))
        refused_first = dev.refused
        second = latest(await poller.poll(dev.profile.points))
        await conn.close()
    for got in (first, second):
        assert got["valve_position_pct"].value == pytest.approx(37.5)
        assert got["night_start_min"].value == 1320
        assert all(r.quality is Quality.GOOD for r in got.values()), got
    assert poller.health.split_reads >= 2
    assert refused_first >= 3  # the test's own read and the merged reads of the first poll
    assert dev.refused == refused_first  # the second poll used the remembered cuts


async def test_device_goes_offline_and_comes_back(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["pressure_transmitter"], unit=1, auto=False)
    dev.set_value("pressure_bar", 3.5)
    out: list[Reading] = []
    port = free_port()
    async with serving([dev], port=port):
        conn = TcpConnection("127.0.0.1", port)
        poller = DevicePoller(
            "p-1",
            with_poll_period(dev.profile, 0.05),
            ModbusClient(conn, 1, 0.2),
            out.extend,
            offline_after=2,
            retry_max_s=0.3,
        )
        async with polling(poller):
            await wait_for(lambda: len(out) >= 4, 5, "first readings")
            dev.silent = True
            await wait_for(lambda: not poller.health.online, 5, "device offline")
            n_fail = len(out)
            await wait_for(lambda: len(out) > n_fail + 2, 5, "comm-fail readings while offline")
            dev.set_value("pressure_bar", 4.0)
            dev.silent = False
            await wait_for(lambda: poller.health.online, 5, "device back online")
            await wait_for(lambda: out[-1].quality is Quality.GOOD, 5, "fresh readings")
        await conn.close()
    fails = [r for r in out if r.quality is Quality.COMM_FAIL]
    assert fails
    assert all(r.value is None for r in fails)  # never a stale value sent as fresh
    first_fail = out.index(fails[0])
    assert all(r.value == pytest.approx(3.5) for r in out[:first_fail] if r.point == "pressure_bar")
    after = [r for r in out[out.index(fails[-1]) + 1 :] if r.point == "pressure_bar"]
    assert after
    assert all(r.value == pytest.approx(4.0) and r.quality is Quality.GOOD for r in after)
    assert poller.health.last_error is not None
    assert "no answer" in poller.health.last_error


async def test_ten_units_on_one_rtu_line(profiles: dict[str, Profile], pty_pair: PtyPair) -> None:
    devices = [
        SimulatedDevice(profiles["pressure_transmitter"], unit=u, auto=False) for u in range(1, 11)
    ]
    for d in devices:
        d.set_value("pressure_bar", d.unit * 0.5)
    async with serving(devices, serial_port=pty_pair.device, baudrate=115200):
        arbiter = BusArbiter(SerialConnection(pty_pair.agent, 115200), gap=0.00175)
        outs: dict[int, list[Reading]] = {d.unit: [] for d in devices}
        pollers = [
            DevicePoller(
                f"p-{d.unit}",
                with_poll_period(d.profile, 0.05),
                ModbusClient(arbiter, d.unit, 0.5),
                outs[d.unit].extend,
            )
            for d in devices
        ]
        async with contextlib.AsyncExitStack() as stack:
            for p in pollers:
                await stack.enter_async_context(polling(p))
            await wait_for(
                lambda: all(len(o) >= 15 for o in outs.values()), 20, "readings from all ten units"
            )
        await arbiter.close()
    for d, p in zip(devices, pollers, strict=True):
        values = [r.value for r in outs[d.unit] if r.point == "pressure_bar"]
        assert values
        assert all(v == pytest.approx(d.unit * 0.5) for v in values), (d.unit, values[:5])
        assert p.health.polls == p.health.ok  # no timeout, no CRC error, no answer mix-up
        assert p.health.last_error is None
    assert 10 <= arbiter.stats.requests <= sum(p.requests for p in pollers)


async def test_rtu_setpoint_write_and_read_back(
    profiles: dict[str, Profile], pty_pair: PtyPair
) -> None:
    dev = SimulatedDevice(profiles["prv_controller"], unit=7, auto=False)
    async with serving([dev], serial_port=pty_pair.device, baudrate=19200):
        arbiter = BusArbiter(SerialConnection(pty_pair.agent, 19200), gap=0.002)
        client = ModbusClient(arbiter, 7, 1.0)
        await client.write("holding", 1, [415])
        assert await client.read("holding", 1, 1) == [415]
        await client.write("coil", 0, [False])
        assert await client.read("coil", 0, 1) == [False]
        await arbiter.close()
    assert dev.get_value("setpoint_bar") == pytest.approx(4.15)
    assert dev.get_value("remote_enable") is False


async def test_rtu_over_tcp_line(profiles: dict[str, Profile]) -> None:
    devices = [
        SimulatedDevice(profiles["ultrasonic_water_meter"], unit=u, auto=False) for u in (1, 2)
    ]
    devices[0].set_value("volume_m3", 12.5)
    devices[1].set_value("volume_m3", 99.25)
    port = free_port()
    async with serving(devices, port=port, rtu_over_tcp=True):
        arbiter = BusArbiter(RtuTcpConnection("127.0.0.1", port), gap=0.002)
        got = {}
        for d in devices:
            poller = DevicePoller(
                f"m-{d.unit}", d.profile, ModbusClient(arbiter, d.unit, 1.0), print
            )
            got[d.unit] = latest(await poller.poll(d.profile.points))
        await arbiter.close()
    assert got[1]["volume_m3"].value == pytest.approx(12.5)
    assert got[2]["volume_m3"].value == pytest.approx(99.25)


def _mbpoll_values(text: str) -> dict[int, int]:
    return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", text, re.M)}


async def _mbpoll(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll is not installed")
async def test_mbpoll_reads_and_writes_the_simulator(
    profiles: dict[str, Profile], pty_pair: PtyPair
) -> None:
    prv = SimulatedDevice(profiles["prv_controller"], unit=1, auto=False)
    prv.set_value("setpoint_bar", 3.3)
    port = free_port()
    async with serving([prv], port=port):
        # mbpoll counts references from 1: -r 1 is protocol address 0
        out = await _mbpoll("-m", "tcp", "-p", str(port), "-a", "1", "-t", "4", "-r", "1",
                            "-c", "5", "-1", "127.0.0.1")  # fmt: skip
        assert _mbpoll_values(out) == {1: 2, 2: 330, 3: 220, 4: 360, 5: 1380}
        await _mbpoll("-m", "tcp", "-p", str(port), "-a", "1", "-t", "4", "-r", "2",
                      "127.0.0.1", "275")  # fmt: skip
        assert prv.get_value("setpoint_bar") == pytest.approx(2.75)
        out = await _mbpoll("-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:float", "-B",
                            "-r", "1", "-c", "2", "-1", "127.0.0.1")  # fmt: skip
        assert "5.6" in out
    meter = SimulatedDevice(profiles["ultrasonic_water_meter"], unit=5, auto=False)
    meter.set_value("volume_m3", 123.456)
    meter.set_value("alarm_flags", 0b01001)
    async with serving([meter], serial_port=pty_pair.device, baudrate=19200):
        out = await _mbpoll("-m", "rtu", "-b", "19200", "-P", "none", "-a", "5", "-t", "3",
                            "-r", "1", "-c", "7", "-1", pty_pair.agent)  # fmt: skip
    regs = _mbpoll_values(out)
    assert regs[1] << 16 | regs[2] == 123456  # litres, high word first
    assert regs[7] == 0b01001
