"""Benchmark of the edge agent's Modbus polling.

* Modbus TCP: N simulated devices (pymodbus servers in a separate process), one connection per
  device, every device polled as fast as it answers for a fixed time. Reports requests/s,
  readings/s and the agent's CPU time per poll of 100 devices. Baseline, in the same process:
  pymodbus' own AsyncModbusTcpClient reading the same registers in the same way.
* Modbus RTU: five devices on one emulated RS-485 line (simulator.line.PacedLine: ptys paced
  at the baud rate; the line and devices run in their own process at raised priority when
  allowed, since they stand for hardware), polled through the bus arbiter. Reports achieved
  requests/s against the theoretical maximum for the baud rate: frame bytes x character time
  + two 3.5-character gaps (the wire-time bound; the JSON figure). The line timestamps every
  frame, so the bench also prints where the time goes per request (wire, silences, the
  simulated device's turnaround, the agent's turnaround) and, for reference only, the
  efficiency against wire time + the device's measured turnaround.

Run: python bench/edge_poll.py [--quick]. The last line is JSON with tcp_requests_per_s,
readings_per_s, rtu_efficiency_19200, rtu_efficiency_115200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from edge_agent.modbus import (
    BusArbiter,
    ModbusClient,
    SerialConnection,
    TcpConnection,
    char_time,
    inter_frame_gap,
)
from edge_agent.poller import DevicePoller
from edge_agent.profiles import default_profiles_dir, load_profiles, with_poll_period
from suvnet.protocol import Reading

PROFILE = "district_flow_meter"  # one read of 10 holding registers per poll, 3 readings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_cmd(units: int, extra: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-c", "from simulator.cli import app; app()", "serve", "--step", "0"]
    for u in range(1, units + 1):
        cmd += ["--profile", f"{PROFILE}:{u}"]
    return cmd + list(extra)


@contextlib.asynccontextmanager
async def tcp_server(units: int) -> AsyncIterator[int]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        _serve_cmd(units, ["--port", str(port)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            await asyncio.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


LINE_SERVER = """
import asyncio, contextlib, json, os, sys, threading
# the emulated line and devices stand for hardware: let them not wait for a busy CPU
# (real-time priority when allowed, else a raised nice level, else as it comes)
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    prio = "real-time (SCHED_FIFO)"
except (OSError, AttributeError):
    prio = "normal"
    with contextlib.suppress(OSError):
        os.nice(-15)
        prio = "nice -15"
sys.setswitchinterval(0.0002)  # the relay threads must not wait 5 ms for the GIL
from simulator.line import PacedLine
from simulator.server import SimServer
from simulator.devices import SimulatedDevice
from edge_agent.profiles import load_profiles, default_profiles_dir
baud, units = int(sys.argv[1]), int(sys.argv[2])
line = PacedLine(baud)
line.start()
prof = load_profiles(default_profiles_dir())[sys.argv[3]]

def commands():  # "reset" / "stats" on stdin: the turnarounds the line measured
    for cmd in sys.stdin:
        if cmd.strip() == "reset":
            line.reset_turnaround()
        print(json.dumps({**line.turnaround_ms(), "priority": prio}), flush=True)

async def main():
    async with SimServer([SimulatedDevice(prof, u, auto=False) for u in range(1, units + 1)],
                         serial_port=line.device_port, baudrate=baud, step_s=0):
        print(line.master_port, flush=True)
        threading.Thread(target=commands, daemon=True).start()
        await asyncio.Event().wait()
asyncio.run(main())
"""


def _line_stats(proc: subprocess.Popen[str], command: str) -> dict[str, Any]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


async def poll_for(pollers: list[DevicePoller], seconds: float) -> float:
    tasks = [asyncio.create_task(p.run(), name=f"poll:{p.device}") for p in pollers]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    return seconds


async def bench_tcp(devices: int, seconds: float, rounds: int = 2) -> dict[str, float]:
    """Agent and baseline take turns (``rounds`` each), so a busy machine hurts both alike."""
    from pymodbus.client import AsyncModbusTcpClient

    prof = with_poll_period(load_profiles(default_profiles_dir())[PROFILE], 0.0001)
    units = range(1, devices + 1)
    async with tcp_server(devices) as port:
        readings = 0

        def sink(rs: Sequence[Reading]) -> None:
            nonlocal readings
            readings += len(rs)

        conns = [TcpConnection("127.0.0.1", port) for _ in units]
        pollers = [
            DevicePoller(f"fm-{u}", prof, ModbusClient(c, u, 2.0), sink)
            for u, c in zip(units, conns, strict=True)
        ]
        clients = [AsyncModbusTcpClient("127.0.0.1", port=port) for _ in units]
        for client in clients:
            await client.connect()
        # warm up (connect), then measure
        await asyncio.gather(*(p.poll(prof.points) for p in pollers))
        for p in pollers:
            p.requests, readings = 0, 0
        wall = cpu = base_wall = 0.0
        base_count = 0

        async def loop(c: AsyncModbusTcpClient, unit: int, stop: float) -> None:
            nonlocal base_count
            while time.perf_counter() < stop:
                await c.read_holding_registers(0, count=10, device_id=unit)
                base_count += 1

        for _ in range(rounds):
            cpu0, t0 = time.process_time(), time.perf_counter()
            await poll_for(pollers, seconds / rounds)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - cpu0
            # baseline: pymodbus' own client, same reads, same process, same server
            b0 = time.perf_counter()
            stop = b0 + seconds / rounds
            await asyncio.gather(*(loop(c, u, stop) for u, c in zip(units, clients, strict=True)))
            base_wall += time.perf_counter() - b0
        requests = sum(p.requests for p in pollers)
        failures = sum(p.health.polls - p.health.ok for p in pollers)
        for conn in conns:
            await conn.close()
        for client in clients:
            client.close()
    polls_of_100 = requests / 100  # one request per device poll with this profile
    return {
        "requests_per_s": requests / wall,
        "readings_per_s": readings / wall,
        "cpu_ms_per_100_device_polls": 1000 * cpu / max(polls_of_100, 1e-9),
        "failures": failures,
        "baseline_requests_per_s": base_count / base_wall,
    }


async def bench_rtu(baud: int, seconds: float, units: int = 5) -> dict[str, Any]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, "-c", LINE_SERVER, str(baud), str(units), PROFILE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        master = proc.stdout.readline().strip()
        prof = with_poll_period(load_profiles(default_profiles_dir())[PROFILE], 0.0001)
        gap = inter_frame_gap(baud)
        arbiter = BusArbiter(SerialConnection(master, baud, "N", 1), gap)
        pollers = [
            DevicePoller(f"fm-{u}", prof, ModbusClient(arbiter, u, 1.0), lambda r: None)
            for u in range(1, units + 1)
        ]
        await pollers[0].poll(prof.points)  # warm up
        arbiter.stats.requests, arbiter.stats.busy_s = 0, 0.0
        _line_stats(proc, "reset")
        t0 = time.perf_counter()
        await poll_for(pollers, seconds)
        wall = time.perf_counter() - t0
        line = _line_stats(proc, "stats")
        achieved = arbiter.stats.requests / wall
        exchange_ms = 1000 * arbiter.stats.busy_s / max(arbiter.stats.requests, 1)
        failures = sum(p.health.polls - p.health.ok for p in pollers)
        await arbiter.close()
    finally:
        proc.terminate()
        proc.wait(10)
    req_bytes, resp_bytes = 8, 5 + 2 * 10  # read 10 registers: request and response frames
    # the wire-time bound: both frames on the wire and the two 3.5-character silences (the
    # slave's end-of-request detection, the master's silence before its next request)
    cycle = (req_bytes + resp_bytes) * char_time(baud) + 2 * gap
    theoretical = 1 / cycle
    device_s = line["device_ms"] / 1000
    with_device = 1 / (cycle + device_s)  # printed only, never the JSON figure
    return {
        "requests_per_s": achieved,
        "theoretical_per_s": theoretical,
        "efficiency": achieved / theoretical,
        "with_device_per_s": with_device,
        "efficiency_with_device": achieved / with_device,
        "failures": failures,
        "exchange_ms": exchange_ms,
        "theoretical_exchange_ms": 1000 * (cycle - gap),
        "request_wire_ms": 1000 * req_bytes * char_time(baud),
        "answer_wire_ms": 1000 * resp_bytes * char_time(baud),
        "gap_ms": 1000 * gap,
        "device_ms": line["device_ms"],
        "agent_ms": line["master_ms"],
        "line_priority": line["priority"],
    }


async def main_async(quick: bool, devices: int | None) -> dict[str, float]:
    n = devices or (20 if quick else 100)
    seconds = 3.0 if quick else 10.0
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (figures drop under load)")
    print(f"Modbus TCP: {n} simulated devices, {seconds:g} s ...", flush=True)
    tcp = await bench_tcp(n, seconds)
    print(
        f"  agent:    {tcp['requests_per_s']:8.0f} requests/s  {tcp['readings_per_s']:8.0f} "
        f"readings/s  CPU {tcp['cpu_ms_per_100_device_polls']:.1f} ms per 100 device polls "
        f"({tcp['failures']:.0f} failed polls)"
    )
    print(
        f"  baseline: {tcp['baseline_requests_per_s']:8.0f} requests/s (pymodbus client)  "
        f"ratio {tcp['requests_per_s'] / tcp['baseline_requests_per_s']:.2f}x"
    )
    out: dict[str, float] = {
        "tcp_requests_per_s": round(tcp["requests_per_s"], 1),
        "readings_per_s": round(tcp["readings_per_s"], 1),
    }
    for baud in (19200, 115200):
        print(f"Modbus RTU at {baud} baud (paced pty line, 5 units), {seconds:g} s ...", flush=True)
        rtu = await bench_rtu(baud, seconds)
        print(
            f"  achieved {rtu['requests_per_s']:6.1f} requests/s, theoretical maximum "
            f"{rtu['theoretical_per_s']:6.1f}: efficiency {rtu['efficiency']:.2f} "
            f"({rtu['failures']:.0f} failed polls); request to answer {rtu['exchange_ms']:.2f} ms "
            f"(line time {rtu['theoretical_exchange_ms']:.2f} ms)"
        )
        print(
            f"  where the time goes per request (means, ms): request on the wire "
            f"{rtu['request_wire_ms']:.2f} + end-of-request silence {rtu['gap_ms']:.2f} + device "
            f"turnaround {rtu['device_ms']:.2f} + answer on the wire {rtu['answer_wire_ms']:.2f} "
            f"+ agent turnaround {rtu['agent_ms']:.2f} (of which {rtu['gap_ms']:.2f} is the "
            f"silence it must keep); emulated line at {rtu['line_priority']} priority"
        )
        print(
            f"  for reference only: against wire time + the simulated device's measured "
            f"turnaround ({rtu['with_device_per_s']:.1f} requests/s) the efficiency is "
            f"{rtu['efficiency_with_device']:.2f}; the JSON figure uses the wire-time bound"
        )
        out[f"rtu_efficiency_{baud}"] = round(rtu["efficiency"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (well under a minute)")
    ap.add_argument("--devices", type=int, default=None, help="simulated TCP devices")
    args = ap.parse_args()
    result = asyncio.run(main_async(args.quick, args.devices))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
