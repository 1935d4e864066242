"""Simulated devices: values in engineering units, plausible motion, the CLI serving Modbus."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from typer.testing import CliRunner

from edge_agent.modbus import ModbusClient, TcpConnection
from edge_agent.profiles import Profile, default_profiles_dir, load_profiles
from simulator.cli import app
from simulator.devices import SimulatedDevice


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles(default_profiles_dir())


def test_set_and_get_in_engineering_units(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["district_flow_meter"], auto=False)
    dev.set_value("forward_m3", 123456.789)
    dev.set_value("flow_m3h", -3.5)
    assert dev.get_value("forward_m3") == pytest.approx(123456.789)
    assert dev.get_value("flow_m3h") == pytest.approx(-3.5)
    # float64 with the low word first: the first register holds the least significant word
    assert dev.image["holding"][3] == 0x40FE  # high word of 123456.789 comes last
    with pytest.raises(KeyError, match="no point"):
        dev.set_value("nope", 1.0)


def test_meter_counts_up_and_wraps(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["ultrasonic_water_meter"], seed=1)
    dev.set_value("volume_m3", 99999.990)
    dev.set_value("flow_m3h", 1.8)
    dev.rng.seed(7)
    for _ in range(60):
        dev.step(1.0)
    vol = float(dev.get_value("volume_m3"))
    assert vol < 1.0  # passed 100000 m3 and started again from 0
    assert dev.get_value("alarm_flags") == 0


def test_prv_follows_its_setpoint(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["prv_controller"], seed=2)
    dev.set_value("mode", 1)  # fixed setpoint
    dev.set_value("setpoint_bar", 2.5)
    for _ in range(20):
        dev.step(1.0, now=12 * 3600)
    assert float(dev.get_value("outlet_bar")) == pytest.approx(2.5, abs=0.2)
    assert float(dev.get_value("inlet_bar")) > float(dev.get_value("outlet_bar"))
    dev.set_value("mode", 2)  # night setpoint at 23:30
    for _ in range(5):
        dev.step(1.0, now=23.5 * 3600)
    assert float(dev.get_value("outlet_bar")) == pytest.approx(2.2, abs=0.2)


def test_fed_values_stay_when_auto_is_off(profiles: dict[str, Profile]) -> None:
    dev = SimulatedDevice(profiles["pressure_transmitter"], auto=False)
    dev.set_value("pressure_bar", 4.2)
    dev.step(10.0)
    assert dev.get_value("pressure_bar") == pytest.approx(4.2, abs=0.001)


def test_cli_lists_profiles() -> None:
    res = CliRunner().invoke(app, ["profiles"])
    assert res.exit_code == 0, res.output
    assert "prv_controller" in res.output
    assert "setpoint_bar" in res.output
    bad = CliRunner().invoke(app, ["serve", "--profile", "toaster"])
    assert bad.exit_code == 2
    assert "unknown profile 'toaster'" in bad.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_serves_modbus_tcp() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from simulator.cli import app; app()", "serve",
        "--profile", "pressure_transmitter:4", "--port", str(port), "--step", "0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        conn = TcpConnection("127.0.0.1", port)
        client = ModbusClient(conn, 4, 1.0)
        regs: list[int] | list[bool] = []
        for _ in range(100):
            try:
                regs = await client.read("input", 0, 1)
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert regs, "the simulator did not answer"
        bar = int(regs[0]) * 0.000625 - 2.5
        assert 2.0 < bar < 4.5  # the built-in 3.2 bar +- 0.4 wave
        await conn.close()
    finally:
        proc.terminate()
        await proc.wait()
        assert proc.stdout is not None
        out = (await proc.stdout.read()).decode()
    assert "serving 1 simulated device(s)" in out
