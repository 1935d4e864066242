"""The agent killed with SIGKILL mid-stream and started again: nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

from edge_agent.profiles import Profile
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from tests.edge_agent.conftest import (
    agent_env,
    free_port,
    running_office,
    wait_for,
    write_gateway,
)


async def start_agent(cfg: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=err, env=agent_env(),
        )  # fmt: skip


def outbox_rows(path: Path) -> list[tuple[str, str, int, float | None, int]]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [
            (d, p, t, v, q)
            for d, p, t, v, q in db.execute(
                "SELECT device, point, ts_ms, value, quality FROM readings ORDER BY id"
            )
        ]


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    tmp_path: Path, profiles: dict[str, Profile], mqtt_url: str, topic_root: str
) -> None:
    port = free_port()
    sim = SimServer(
        [SimulatedDevice(profiles["district_flow_meter"], unit=1, seed=3)], port=port, step_s=0.05
    )
    await sim.start()
    buses = [
        {
            "name": "tcp",
            "kind": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "devices": [
                {"id": "fm-1", "unit": 1, "profile": "district_flow_meter", "poll_s": 0.05}
            ],
        }
    ]
    cfg = write_gateway(
        tmp_path, "gw-kill", mqtt_url, topic_root, buses, mqtt={
            "url": mqtt_url, "topic_root": topic_root, "keepalive_s": 5, "reconnect_max_s": 1
        },
    )  # fmt: skip
    box = tmp_path / "gw-kill-outbox.db"
    log = tmp_path / "agent.log"
    try:
        async with running_office(mqtt_url, topic_root, "gw-kill") as office:
            office.acking = False  # a backlog builds up, as on a bad 3G day
            proc = await start_agent(cfg, log)
            await wait_for(lambda: len(office.batches) >= 5, 20, "telemetry before the kill")
            office.acking = True
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGKILL)  # the power cut
            await proc.wait()
            at_kill = outbox_rows(box)
            assert at_kill, "the backlog should still be in the outbox"
            # the broker tells the office the gateway is gone (last will, retained)
            await wait_for(
                lambda: any(s.state == "offline" for s in office.states), 15, "the last will"
            )
            proc = await start_agent(cfg, log)
            try:
                await wait_for(
                    lambda: office.states[-1].state == "online", 15, "birth after restart"
                )

                # every reading of the backlog is delivered (the outbox itself is never quite
                # empty while the device is still polled every 50 ms)
                def backlog_delivered() -> bool:
                    sent = {
                        (r.device, r.point, r.ts_ms, r.value, int(r.quality))
                        for r in office.readings()
                    }
                    return all(row in sent for row in at_kill)

                await wait_for(backlog_delivered, 30, "the backlog to be delivered")
            finally:
                proc.send_signal(signal.SIGTERM)
                assert await proc.wait() == 0, log.read_text()
        delivered = {
            (r.device, r.point, r.ts_ms, r.value, int(r.quality)) for r in office.readings()
        }
        missing = [row for row in at_kill if row not in delivered]
        assert not missing, f"{len(missing)} readings lost, e.g. {missing[:3]}"
        seqs = sorted(seq for _, seq in office.batches)
        assert seqs == list(range(len(seqs)))  # no batch number skipped or reused
        boots = {boot for boot, _ in office.batches}
        assert len(boots) == 1  # the outbox kept its identity through the crash
        # a re-sent batch carries exactly the readings it had the first time
        assert office.conflicts == 0
    finally:
        await sim.stop()
