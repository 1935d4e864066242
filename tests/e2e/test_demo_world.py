"""The parts of ``suvnet demo`` below the subprocess: its time line, the values the simulated
devices serve, and the edge agent's poller driven by the demo clock over real Modbus TCP."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent.modbus import ModbusClient, TcpConnection
from edge_agent.poller import DevicePoller
from edge_agent.profiles import default_profiles_dir, load_profiles, with_poll_period
from simulator.demo_world import (
    LEAK_FLAG,
    TAMPER_FLAG,
    DemoClock,
    DeviceFeed,
    FedDevice,
    customer_feed,
    device_values,
    flag_windows,
    make_plan,
    meter_flags,
    period_of,
)
from simulator.hydraulic import simulate
from simulator.server import SimServer
from suvnet.protocol import Quality, Reading
from suvnet.site import load_site

SITE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "village-site.yaml"
NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_plan_puts_the_leak_a_week_before_the_end_and_hour_0_at_local_midnight() -> None:
    plan = make_plan(NOW, days=30, speed=14400)
    assert plan.end - plan.start == 30 * 86400
    assert plan.end - plan.leak_start == 7 * 86400
    local = datetime.fromtimestamp(plan.origin, ZoneInfo("Asia/Tashkent"))
    assert (local.hour, local.minute) == (0, 0)
    assert 0 <= plan.start - plan.origin < 86400
    assert plan.origin + plan.sim_days * 86400 >= plan.end
    assert plan.leak.start_h == pytest.approx((plan.leak_start - plan.origin) / 3600)
    assert plan.min_history_days == 7
    # 0.1 real seconds per poll at the most: 1440 simulated seconds at 14400x
    assert plan.poll_s["district_meter"] == 1440
    slow = make_plan(NOW, days=30, speed=60)
    assert slow.poll_s["pressure_sensor"] == 300 and slow.poll_s["customer_meter"] == 900
    short = make_plan(NOW, days=6, speed=14400)
    assert short.end - short.leak_start == 1.5 * 86400
    assert short.min_history_days == 2
    with pytest.raises(ValueError, match="at least 2 days"):
        make_plan(NOW, days=1, speed=10)


def test_billing_month_is_the_one_with_most_simulated_days() -> None:
    p = make_plan(NOW, days=30, speed=14400)  # 30 Oct .. 29 Nov
    assert period_of(p.start, p.end).date().isoformat() == "2026-11-01"
    early = make_plan(datetime(2026, 11, 3, tzinfo=UTC), days=30, speed=14400)
    assert period_of(early.start, early.end).date().isoformat() == "2026-10-01"


def test_devices_serve_the_hydraulic_run_and_the_leak_shows_in_the_inflow() -> None:
    site = load_site(SITE).spec
    plan = make_plan(NOW, days=4, speed=14400)
    run = simulate(SITE.parent / "village.inp", days=plan.sim_days, leak=plan.leak)
    devs = {d.code: d for g in site.gateways for d in g.devices}
    dm = DeviceFeed(devs["dm-south"], offsets={"forward_m3": 1000.0})
    before = plan.t(plan.leak_start) - 6 * 3600
    after = before + 24 * 3600  # the same hour of the day, with the leak
    q0 = device_values(dm, run, before)["flow_m3h"]
    q1 = device_values(dm, run, after)["flow_m3h"]
    assert q1 - q0 == pytest.approx(3.0 * 3.6, rel=0.05)  # 3 L/s = 10.8 m³/h
    v0 = device_values(dm, run, before)["forward_m3"]
    v1 = device_values(dm, run, after)["forward_m3"]
    assert v1 - v0 == pytest.approx(
        run.volume_m3("P-121", after)[0] - run.volume_m3("P-121", before)[0]
    )
    assert v0 > 1000.0
    prv = device_values(DeviceFeed(devs["prv-1-ctl"]), run, before)
    assert prv["inlet_bar"] > prv["outlet_bar"] > 0
    assert prv["outlet_bar"] == pytest.approx(run.pressure("S1", before))
    pt = device_values(DeviceFeed(devs["pt-s6"]), run, before)
    assert pt["pressure_bar"] == pytest.approx(run.pressure("S6", before))
    cm = customer_feed(devs["cm-000201"], plan.sim_days * 24, seed=7, leak_m3h=0.01)
    assert cm.register is not None and cm.hourly is not None
    r0 = device_values(cm, run, 0.0)["volume_m3"]
    r1 = device_values(cm, run, 10 * 3600.0)["volume_m3"]
    assert r1 - r0 == pytest.approx(float(cm.hourly[:10].sum()))
    assert min(cm.hourly) >= 0.01  # the leak never lets the meter stand still


async def test_the_poller_runs_on_the_demo_clock_over_modbus_tcp() -> None:
    """Readings carry simulated timestamps and the poll period is in simulated seconds."""
    site = load_site(SITE).spec
    dev = next(d for g in site.gateways for d in g.devices if d.code == "pt-s6")
    plan = make_plan(NOW, days=4, speed=3600)
    run = simulate(SITE.parent / "village.inp", days=plan.sim_days, leak=plan.leak)
    clock = DemoClock(plan.start, plan.end, speed=3600)
    profiles = load_profiles(default_profiles_dir())
    fed = FedDevice(profiles[dev.profile], 3, DeviceFeed(dev), run, plan, clock)
    port = _free_port()
    got: list[Reading] = []

    def sink(readings: Sequence[Reading]) -> None:
        got.extend(readings)

    async with SimServer([fed], port=port, step_s=0):
        conn = TcpConnection("127.0.0.1", port)
        profile = with_poll_period(profiles[dev.profile], 600.0)  # every 10 simulated minutes
        poller = DevicePoller("pt-s6", profile, ModbusClient(conn, 3, 2.0), sink, clock=clock)
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(2.0)  # two simulated hours
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await conn.close()
    press = [r for r in got if r.point == "pressure_bar" and r.quality is Quality.GOOD]
    assert 8 <= len(press) <= 14, len(press)  # 2 h / 10 min = 12 polls (+1 at the start)
    ts = [r.ts_ms / 1000 for r in press]
    assert plan.start <= ts[0] < plan.start + 600
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    assert all(500 <= g <= 800 for g in gaps), gaps
    for r in press:
        assert r.value == pytest.approx(run.pressure("S6", plan.t(r.ts_ms / 1000)), abs=0.02)


async def test_the_demo_clock_holds_at_the_end_and_its_sleep_waits_to_be_cancelled() -> None:
    start = NOW.timestamp()
    clock = DemoClock(start, start + 3600, speed=36000)  # the hour lasts 0.1 s
    t0 = clock.time()
    await clock.sleep(360)  # 0.01 real s
    assert clock.time() - t0 >= 360
    await asyncio.sleep(0.15)
    assert clock.finished and clock.time() == start + 3600
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clock.sleep(1), 0.3)


def test_the_demo_period_ends_at_now_and_the_clock_never_passes_it() -> None:
    """Readings are never stamped ahead of the real clock: the period ends at the ``now``
    the plan was made with, and the demo clock holds there however long it runs."""
    plan = make_plan(NOW, days=3, speed=14400)
    assert plan.end == NOW.timestamp()
    clock = DemoClock(plan.start, plan.end, speed=1e9)  # the whole period in microseconds
    time.sleep(0.01)
    assert clock.time() <= NOW.timestamp()
    assert clock.finished
    assert clock.now() == NOW


def test_meter_flags_served_by_the_demo_devices() -> None:
    site = load_site(SITE).spec
    devs = {d.code: d for g in site.gateways for d in g.devices}
    plan = make_plan(NOW, days=6, speed=14400)
    # the south district meter reports tampering for three hours in the middle of the period
    assert plan.tamper_device == "dm-south"
    assert plan.tamper_end - plan.tamper_start == 3 * 3600
    assert plan.start < plan.tamper_start < plan.end
    south = DeviceFeed(devs["dm-south"], flags=flag_windows(plan, "dm-south"))
    north = DeviceFeed(devs["dm-north"], flags=flag_windows(plan, "dm-north"))
    t = plan.t(plan.tamper_start)
    assert meter_flags(south, t - 1) == 0
    assert meter_flags(south, t) == meter_flags(south, t + 3 * 3600 - 1) == TAMPER_FLAG == 4
    assert meter_flags(south, t + 3 * 3600) == 0
    assert meter_flags(north, t) == 0
    # a household meter raises its own leak flag after 24 h without an hour of zero flow
    hours = plan.sim_days * 24
    toilet = customer_feed(devs["cm-000102"], hours, seed=7, leak_m3h=0.012)
    dry = customer_feed(devs["cm-000101"], hours, seed=7, leak_m3h=0.0)
    assert meter_flags(toilet, 23.9 * 3600) == 0  # not 24 hours yet
    assert meter_flags(toilet, 24 * 3600) == LEAK_FLAG == 1
    assert all(meter_flags(dry, h * 3600.0) == 0 for h in range(hours))  # asleep at 02:00
    assert min(dry.hourly[2::24]) == 0.0  # type: ignore[index]


# ---------------------------------------------------------------- pressure management


def test_the_village_network_knows_its_regulated_dma() -> None:
    from simulator.demo_world import village_network

    site = load_site(SITE)
    net, prvs = village_network(site, SITE.parent / "village.inp")
    assert [(p.device, p.valve, p.zone, p.sensors) for p in prvs] == [
        ("prv-1-ctl", "PRV-1", "DMA-S", ("S6",))
    ]
    (dma,) = net.dmas
    assert (dma.code, dma.prv, dma.inflow, dma.critical) == ("DMA-S", "PRV-1", "P-121", ("S6",))
    assert sorted(dma.nodes) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert dma.target_bar == 2.0  # DMA-S min_service_pressure_bar
    assert {"N1", "N6", "J-MAIN", "J-PRV-IN"} <= set(net.others)
    assert not set(net.others) & set(dma.nodes)


def test_the_live_network_follows_the_prv_device_and_leaks_only_where_managed(
    tmp_path: Path,
) -> None:
    from simulator.closed_loop import LiveNetwork
    from simulator.demo_world import demo_hydraulics, pressure_report, village_network
    from simulator.devices import SimulatedDevice

    site = load_site(SITE)
    plan = make_plan(NOW, days=2, speed=14400)
    net, prvs = village_network(site, SITE.parent / "village.inp")
    hyd = demo_hydraulics(plan)
    live = LiveNetwork(net, hyd, tmp_path / "h", bursts=[plan.leak])
    try:
        assert live.initial_setting_bar("PRV-1") == pytest.approx(40 * 0.0980665)
        prv = SimulatedDevice(load_profiles(default_profiles_dir())["prv_controller"], 1,
                              auto=False)  # fmt: skip
        prv.set_value("mode", 1)
        prv.set_value("setpoint_bar", 3.92)
        live.bind("PRV-1", prv)
        t = plan.t(plan.start)
        high = live.pressure("S6", t)
        assert live.pressure("S1", t) == pytest.approx(3.92, abs=0.01)
        prv.set_value("setpoint_bar", 3.0)  # the controller writes: the next step follows
        assert live.pressure("S6", t) == high  # this step was solved already
        later = t + 600
        assert live.pressure("S1", later) == pytest.approx(3.0, abs=0.01)
        assert high - live.pressure("S6", later) == pytest.approx(0.92, abs=0.05)
        # the district meter integrates the flow; only DMA-S leaks
        fwd, _ = live.volume_m3("P-121", later)
        assert fwd > 0
        assert live.leakage_m3("DMA-S", 0, later) > 0
        assert all(live.sim.coeff.get(n, 0) == 0 for n in net.others)
        # the comparison: the same days with the PRV held at 40 m leak more
        now = plan.start + 6 * 3600
        (rep,) = pressure_report(live, net, hyd, prvs, plan, now)
        assert rep.zone == "DMA-S" and rep.fixed_bar == pytest.approx(3.92)
        assert rep.leakage_cp < rep.leakage_fixed
        assert rep.setpoint_min == pytest.approx(3.0) and rep.setpoint_max == pytest.approx(3.92)
        assert rep.compliance_fixed == 1.0
    finally:
        live.close()
