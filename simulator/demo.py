"""``suvnet demo``: the whole pipeline on a simulated village, with time compressed.

Site and network -> hydraulic simulation (daily demand, an injected leak) -> Modbus device
simulators -> edge agents -> MQTT -> ingest -> PostgreSQL -> alarms; then a billing run, the
customer cabinet and the API. See docs/demo.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assets.demo import seed_register
from suvnet.errors import SuvnetError

log = logging.getLogger(__name__)

# Imports inside the commands are for start-up time: `suvnet` loads every sub-command's app
# at start, so what only one command needs (wntr, numba, the API, the broker...) is loaded by
# that command.
console = Console()

DEMO_DB = "suvnet_demo"
QUIET_LOGGERS = (
    "ingest", "edge_agent", "alarms", "billing", "api", "uvicorn", "suvnet", "amqtt", "pymodbus",
)  # fmt: skip
SITE_REL = Path("deploy") / "examples" / "village-site.yaml"

app = typer.Typer(
    help="Run the whole suvnet pipeline on a simulated village network (see docs/demo.md).",
    invoke_without_command=True,
)


class DemoError(SuvnetError):
    """The demo could not be set up or run."""


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if m is None:
        raise typer.BadParameter(f"{text!r} is not a duration such as 60s, 5m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def find_site_file() -> Path:
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (base / SITE_REL).is_file():
            return base / SITE_REL
    raise DemoError(f"cannot find {SITE_REL} (run the demo from the suvnet checkout)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(
                f"port {port} is in use (is another demo or `suvnet api run` running?); "
                "choose another with --port, or --no-api"
            ) from exc


@dataclass(frozen=True)
class Options:
    speed: float
    days: int
    duration_s: float | None
    exit_after: bool
    api: bool
    port: int
    leak_lps: float


@app.callback(invoke_without_command=True)
def demo(  # noqa: PLR0917 - typer options
    ctx: typer.Context,
    speed: Annotated[
        float,
        typer.Option(
            help="simulated seconds per real second (14400: 4 hours a second, a month in "
            "3 minutes)",
            min=1,
        ),
    ] = 14400,
    days: Annotated[
        int, typer.Option(help="days of history to simulate, ending now", min=2, max=60)
    ] = 30,
    duration: Annotated[
        str | None,
        typer.Option(
            help="stop after this much real time (60s, 5m); default: simulate the whole "
            "period, then keep the API up until Ctrl-C"
        ),
    ] = None,
    exit_: Annotated[
        bool,
        typer.Option("--exit", help="exit when the simulated period is done (no API afterwards)"),
    ] = False,
    api: Annotated[bool, typer.Option("--api/--no-api", help="serve the API and cabinet")] = True,
    port: Annotated[int, typer.Option(help="port of the API and cabinet", min=1)] = 8000,
    leak: Annotated[float, typer.Option(help="the injected leak in litres per second")] = 3.0,
) -> None:
    """Simulate the village of Yangiobod: a month of telemetry in a few minutes, a leak that
    is alarmed, a billing run, and the customer cabinet.

    Uses SUVNET_DATABASE_URL and SUVNET_MQTT_URL when set; otherwise the embedded
    PostgreSQL (a fresh database 'suvnet_demo' each run) and an in-process MQTT broker.
    """
    if ctx.invoked_subcommand is not None:
        return
    opts = Options(
        speed=speed,
        days=days,
        duration_s=None if duration is None else parse_duration(duration),
        exit_after=exit_,
        api=api,
        port=port,
        leak_lps=leak,
    )
    asyncio.run(Demo(opts).main())


class Demo:
    """One demo run: set up, simulate, finish (alarms, billing), serve, stop."""

    def __init__(self, opts: Options) -> None:
        from suvnet.settings import get_settings

        self.opts = opts
        self.settings = get_settings()
        self.stop = asyncio.Event()
        self.broker: Any = None
        self.servers: list[Any] = []
        self.agents: list[Any] = []
        self.agent_tasks: list[asyncio.Task[None]] = []
        self.agent_stop = asyncio.Event()
        self.ingest: Any = None
        self.alarm_stop = threading.Event()
        self.alarm_thread: threading.Thread | None = None
        self.uvicorn: Any = None
        self.api_thread: threading.Thread | None = None
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.notes: list[str] = []
        self.live: Any = None
        self.pressure: list[Any] = []

    # ------------------------------------------------------------------------ set-up

    def database(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        import psycopg

        from suvnet.embedded import embedded_postgres_url

        with console.status("starting the embedded PostgreSQL"):
            admin = embedded_postgres_url(self.settings.home, "postgres")
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
        parts = urlsplit(admin)
        return urlunsplit(parts._replace(path=f"/{DEMO_DB}"))

    def deadline_passed(self) -> bool:
        d = self.opts.duration_s
        return d is not None and time.monotonic() - self.started >= d

    async def main(self) -> None:
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # the services log every state change; the demo shows its own progress instead
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger("amqtt").setLevel(logging.ERROR)  # "messages not broadcasted"
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            await self.run()
        finally:
            await self.shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def run(self) -> None:
        import psycopg
        import yaml

        from edge_agent.config import load_config
        from edge_agent.profiles import default_profiles_dir, load_profiles
        from simulator import demo_office as office
        from simulator import demo_world as world
        from simulator.closed_loop import LiveNetwork
        from simulator.server import SimServer
        from suvnet.migrate import migrate
        from suvnet.network_cli import print_changes
        from suvnet.site import apply_site_file, load_site

        opts, s = self.opts, self.settings
        if opts.api:
            check_port(opts.port)
        console.print(
            f"[bold]suvnet demo[/bold]: {opts.days} days of the village of Yangiobod at "
            f"{opts.speed:g}x (about {opts.days * 86400 / opts.speed / 60:.1f} minutes)"
        )
        # the telemetry decoder is compiled (numba) while the rest is set up: on a first run
        # this takes seconds, and ingest must not hold the broker's deliveries meanwhile
        warm = asyncio.create_task(asyncio.to_thread(_warm_up_ingest), name="warm-up")
        url = await asyncio.to_thread(self.database)
        console.print(f"database: {'configured' if s.database_url else 'embedded'} {_safe(url)}")
        workdir = s.home / "demo"
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("*-outbox.db*"):
            old.unlink()

        with psycopg.connect(url, autocommit=True) as conn:
            done = migrate(conn, timescaledb=s.timescaledb, postgis=s.postgis)
            console.print(f"schema: {len(done)} migration(s) applied")
            row = conn.execute(
                "SELECT count(*) FROM alarm_rule_state st JOIN alarm_rules r ON r.id = st.rule_id "
                "WHERE r.code LIKE 'DMA-%%' AND st.watermark IS NOT NULL"
            ).fetchone()
            if row is not None and row[0]:
                console.print(
                    "[yellow]this database already ran a demo: the live alarm rules have seen "
                    "later data and may stay quiet (the leak is then found by a replay at the "
                    "end); an empty database gives the full picture[/yellow]"
                )
        site_file = find_site_file()
        changes = await asyncio.to_thread(apply_site_file, url, site_file)
        print_changes(changes, title=f"site {site_file.name}")
        loaded = load_site(site_file)
        site = loaded.spec

        plan = world.make_plan(datetime.now(UTC), days=opts.days, speed=opts.speed)
        plan = _with_leak(plan, opts.leak_lps)
        inp = site_file.parent / (site.network.inp if site.network and site.network.inp else "")
        net, regulated = world.village_network(loaded, inp)
        hyd = world.demo_hydraulics(plan)
        run = self.live = LiveNetwork(net, hyd, workdir / "hydraulics", bursts=[plan.leak])
        managed = ", ".join(f"{p.zone} ({p.valve} on {p.device})" for p in regulated) or "none"
        console.print(
            f"hydraulics: EPANET solved every {hyd.step_s // 60} simulated minutes while the "
            f"demo runs, pressure-dependent demand; leak of {plan.leak.rate_lps:g} L/s at "
            f"{plan.leak.node} (DMA-S) from {world.fmt_sim(plan.leak_start)}"
        )
        console.print(
            f"pressure management: critical-point control by the gateway in {managed}; "
            f"background leakage follows the pressure (N1 = {hyd.n1:g})"
        )
        console.print(
            f"meter flags: {plan.tamper_device} reports tampering from "
            f"{world.fmt_sim(plan.tamper_start)} to {world.fmt_sim(plan.tamper_end)}; a "
            "household meter with a running toilet raises its own leak flag"
        )
        hours = plan.sim_days * 24
        feeds: dict[str, world.DeviceFeed] = {}
        for i, d in enumerate(world.all_devices(site)):
            if d.kind == "customer_meter":
                leak_m3h = 0.012 if i % 3 == 1 else 0.0  # one household has a running toilet
                feeds[d.code] = world.customer_feed(d, hours, seed=100 + i, leak_m3h=leak_m3h)
            else:
                feeds[d.code] = world.DeviceFeed(
                    d,
                    offsets={"forward_m3": 10_000.0 * (i + 1), "reverse_m3": 12.5},
                    flags=world.flag_windows(plan, d.code),
                )

        with psycopg.connect(url, autocommit=True) as conn:
            office.set_poll_periods(conn, site, plan)
            unmetered = await asyncio.to_thread(office.unmetered_use, conn, inp)
            n_rules = office.load_rules(conn, site, plan, workdir, unmetered)
        with psycopg.connect(url) as conn:
            accounts = office.seed_accounts(conn, site, plan, feeds)
            conn.commit()
            # the asset register of the village: water and sewer assets, a few surveyed in a
            # local coordinate system, a service connection per household (docs/assets.md)
            register = seed_register(conn, now=datetime.fromtimestamp(plan.start, UTC))
            conn.commit()
        await office.ensure_logins(url, accounts.customer_number)
        console.print(
            f"office: {n_rules} alarm rules; {accounts.metered} metered and "
            f"{accounts.unmetered} unmetered households"
        )
        console.print(
            f"asset register: {register.water} water and {register.sewer} sewer assets, "
            f"{register.service_connections} service connections, {register.local_crs} "
            f"surveyed in a local coordinate system; the network check found "
            f"{register.findings} problem(s) (see /staff/map)"
        )
        dmas = [z.code for z in site.zones if z.kind == "dma"]
        console.print(
            "water balance: the rest of the village has no meter and draws "
            + ", ".join(f"{unmetered.get(z, 0.0):.1f} m³/day in {z}" for z in dmas)
            + " (the network model's demand)"
        )

        mqtt_url: str
        if s.mqtt_url is None:
            from suvnet.embedded import EmbeddedBroker

            self.broker = EmbeddedBroker()
            mqtt_url = await asyncio.to_thread(self.broker.start)
            console.print(f"MQTT: embedded broker on {mqtt_url}")
        else:
            mqtt_url = s.mqtt_url
            console.print(f"MQTT: {_safe(mqtt_url)} (topic root {s.topic_root})")

        grafana = workdir / "grafana"
        self.build_dashboards(url, grafana)
        if opts.api:
            self.start_api(url)

        if not warm.done():
            with console.status("compiling the telemetry decoder (numba, first run only)"):
                await asyncio.wait([warm])
        await warm  # its error, if any
        clock = world.DemoClock(plan.start, plan.end, opts.speed)
        self.start_ingest(
            url, mqtt_url, clock, embedded=s.mqtt_url is None, min_poll_s=min(plan.poll_s.values())
        )
        self.start_alarms(url, clock)
        profiles_dir = default_profiles_dir()
        profiles = load_profiles(profiles_dir)
        with psycopg.connect(url, autocommit=True) as conn:
            controllers, shares = office.gateway_controls(conn, plan)
        for g in site.gateways:
            devices = [
                world.FedDevice(
                    profiles[d.profile], d.unit_id or 1, feeds[d.code], run, plan, clock
                )
                for d in g.devices
                if d.enabled
            ]
            for dev in devices:
                for p in regulated:
                    if dev.feed.spec.code == p.device:
                        # the PRV device starts at the outlet pressure the valve had: its
                        # controller moves it from there, and the hydraulics follow it
                        dev.set_value("mode", 1)
                        dev.set_value("setpoint_bar", self.live.initial_setting_bar(p.valve))
                        self.live.bind(p.valve, dev)
            port = free_port()
            server = SimServer(devices, port=port, step_s=0)
            await server.start()
            self.servers.append(server)
            doc = world.gateway_doc(
                g,
                port=port,
                mqtt_url=mqtt_url,
                topic_root=s.topic_root,
                workdir=workdir,
                plan=plan,
                profiles_dir=profiles_dir,
                controllers=controllers.get(g.code),
                share=shares.get(g.code, ()),
            )
            cfg_path = workdir / f"{g.code}.yaml"
            cfg_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            self.agents.append(load_config(cfg_path))
        self.start_agents(clock)

        await self.simulate(clock, plan)
        if self.stop.is_set():
            return
        await self.drain()
        with console.status("pressure management: the fixed-outlet run of the same days"):
            self.pressure = await asyncio.to_thread(
                world.pressure_report, self.live, net, hyd, regulated, plan, clock.time()
            )
        await self.finish(url, plan, accounts.customer_number, grafana)
        if opts.exit_after or not opts.api:
            return
        if opts.duration_s is None:
            console.print("the API keeps running; press Ctrl-C to stop")
            await self.stop.wait()
        else:
            rest = opts.duration_s - (time.monotonic() - self.started)
            if rest > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), rest)

    # ------------------------------------------------------------------------ services

    def build_dashboards(self, url: str, out: Path) -> None:
        try:
            from dashboards.boards import all_dashboards
            from dashboards.provisioning import DatasourceConfig, build
        except ModuleNotFoundError:
            console.print("dashboards: the dashboards package is not installed; skipped")
            return
        from dashboards.errors import DashboardsError

        try:
            ds = DatasourceConfig.from_url(url, timescaledb=False)
        except DashboardsError:
            # the embedded PostgreSQL listens on a Unix socket only: Grafana gets the
            # database and user, and its host from ${SUVNET_GRAFANA_DB_HOST}
            parts = urlsplit(url)
            ds = DatasourceConfig(
                database=parts.path.lstrip("/") or DEMO_DB,
                user=parts.username or "postgres",
                password=None,
                timescaledb=False,
            )
            self.notes.append(
                "Grafana: the embedded PostgreSQL has no TCP port; set SUVNET_GRAFANA_DB_HOST "
                "for Grafana, or run the demo with SUVNET_DATABASE_URL"
            )
        build(out, all_dashboards(), ds)

    def start_api(self, url: str) -> None:
        import uvicorn

        from api.app import create_app

        app = create_app(self.settings, db_url=url)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.opts.port, log_config=None, access_log=False
        )
        self.uvicorn = uvicorn.Server(config)
        self.api_thread = threading.Thread(target=self.uvicorn.run, name="demo-api", daemon=True)
        self.api_thread.start()

    def start_ingest(
        self, url: str, mqtt_url: str, clock: Any, *, embedded: bool, min_poll_s: float
    ) -> None:
        from ingest.config import IngestConfig
        from ingest.service import IngestWorker

        cfg = IngestConfig(
            client_id=f"suvnet-demo-ingest-{os.getpid()}",
            shared_subscription=not embedded,
            mqtt_protocol="3.1.1" if embedded else "5",
            session_expiry_s=0,
            max_age_s=(self.opts.days + 3) * 86400.0,
            metrics_port=0,
            maintenance_interval_s=1.0,
            registry_refresh_s=5.0,
            # last-seen times are written every 0.25 real s, i.e. hours of simulated time:
            # judge freshness over enough poll periods to cover that
            state_flush_s=0.25,
            offline_factor=max(3.0, 0.5 * self.opts.speed / min_poll_s),
        )
        self.ingest = IngestWorker(
            url, mqtt_url, cfg, topic_root=self.settings.topic_root, clock=clock.time
        )
        self.ingest.start()
        if not self.ingest.wait_ready(30):
            raise DemoError("ingest did not connect to the broker and the database in 30 s")

    def start_alarms(self, url: str, clock: Any) -> None:
        from alarms.notify import AlarmSettings
        from alarms.worker import run_worker

        cfg = AlarmSettings(poll_s=0.5)

        def body() -> None:
            try:
                run_worker(url, cfg, stop=self.alarm_stop, clock=clock.now)
            except Exception:
                log.exception("the demo's alarm worker failed")

        self.alarm_thread = threading.Thread(target=body, name="demo-alarms", daemon=True)
        self.alarm_thread.start()

    def start_agents(self, clock: Any) -> None:
        from edge_agent.agent import Agent

        agents = [Agent(cfg, clock=clock) for cfg in self.agents]
        self.agents = agents
        self.agent_tasks = [
            asyncio.create_task(a.run(self.agent_stop), name=f"agent:{a.cfg.gateway}")
            for a in agents
        ]

    # ------------------------------------------------------------------------ running

    async def simulate(self, clock: Any, plan: Any) -> None:
        from simulator.demo_world import fmt_sim

        total = plan.end - plan.start
        with Progress(
            TextColumn("[bold]simulating[/bold] {task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as prog:
            task = prog.add_task(fmt_sim(plan.start), total=total)
            while not (clock.finished or self.stop.is_set() or self.deadline_passed()):
                for t in self.agent_tasks:
                    if t.done() and t.exception() is not None:
                        raise DemoError(f"an edge agent failed: {t.exception()}")
                now = clock.time()
                readings = sum(a.outbox.depth for a in self.agents)
                prog.update(
                    task,
                    completed=now - plan.start,
                    description=f"{fmt_sim(now)} (Tashkent)  outbox {readings}",
                )
                await asyncio.sleep(0.25)
            prog.update(task, completed=clock.time() - plan.start)
        if self.deadline_passed() and not clock.finished:
            console.print("--duration reached before the end of the simulated period")

    async def drain(self, limit_s: float = 120.0, say_every_s: float = 10.0) -> None:
        """Let the agents send what they hold, then stop them. The wait ends when every
        gateway's outbox is empty and none is in the middle of a poll (the pollers stop at the
        end of the simulated period, but a poll that began just before it still hands its
        readings on: ending at that moment would leave them in the outbox). The limit is
        generous: on a busy machine the last batches wait for their acknowledgement for many
        seconds (30 s left readings behind). A wait longer than ``say_every_s`` says what it
        waits for, and again each time."""
        start = time.monotonic()
        end, said = start + limit_s, start
        while time.monotonic() < end and not self.stop.is_set():
            if all(a.queue_depth == 0 and not a.polling for a in self.agents):
                break
            if time.monotonic() - said >= say_every_s:
                # a slow drain says what it waits for, gateway by gateway
                said = time.monotonic()
                waiting = "; ".join(
                    f"{a.cfg.gateway}: {a.queue_depth} readings, "
                    f"{a.batches_in_flight} batches unacknowledged"
                    + (", a poll under way" if a.polling else "")
                    + ("" if a.connected else ", MQTT link down")
                    for a in self.agents
                )
                console.print(
                    f"waiting {said - start:.0f} s for ingest to acknowledge the gateways' "
                    f"last readings ({waiting}; {self.ingest_state()})"
                )
            await asyncio.sleep(0.2)
        left = sum(a.outbox.depth for a in self.agents)
        if left:
            console.print(f"[yellow]{left} readings were not delivered in time[/yellow]")
        await self.stop_agents()

    def ingest_state(self) -> str:
        """Ingest's own counters, for a drain that waits: is it connected, and does it write?"""
        if self.ingest is None:
            return "ingest stopped"
        total: dict[str, float] = {}  # each sample name over all its labels
        for metric in self.ingest.metrics.registry.collect():
            for smp in metric.samples:
                total[smp.name] = total.get(smp.name, 0.0) + smp.value

        def up(name: str) -> str:
            return "up" if total.get(name) else "down"

        return (
            f"ingest: {total.get('suvnet_ingest_messages_total', 0):.0f} messages, "
            f"{total.get('suvnet_ingest_commits_total', 0):.0f} commits, "
            f"{total.get('suvnet_ingest_queue_depth', 0):.0f} queued, "
            f"broker {up('suvnet_ingest_mqtt_up')}, database {up('suvnet_ingest_db_up')}"
        )

    async def stop_agents(self) -> None:
        self.agent_stop.set()
        if self.agent_tasks:
            await asyncio.wait(self.agent_tasks, timeout=20)
        self.agent_tasks = []
        for server in self.servers:
            await server.stop()
        self.servers = []

    async def finish(self, url: str, plan: Any, account_no: str, grafana: Path) -> None:
        """Last alarm pass over the whole period, the billing run, and where to look."""
        import psycopg

        from simulator import demo_office as office
        from simulator.demo_world import period_of

        self.alarm_stop.set()
        if self.alarm_thread is not None:
            await asyncio.to_thread(self.alarm_thread.join, 30)
        end = datetime.fromtimestamp(plan.end, UTC)
        with console.status("alarms: evaluating the whole period"):
            await asyncio.to_thread(self.final_alarms, url, plan, end)
        period = period_of(plan.start, plan.end).date()
        with console.status(f"billing run for {period:%Y-%m}"):
            billed = await asyncio.to_thread(self.bill, url, period)
        with psycopg.connect(url, autocommit=True) as conn:
            summ = office.summary(conn, account_no, period)
        t = Table(title="suvnet demo: what happened", show_header=False)
        t.add_row("readings stored", f"{summ.readings:,}")
        dead = ", ".join(f"{n:,} {reason}" for reason, n in summ.dead_letters.items())
        t.add_row(
            "dead letters",
            f"[red]{dead}[/red] (suvnet ingest dead-letters shows them)" if dead else "none",
        )
        t.add_row(
            "leak alarms", "\n".join(summ.leak_alarms) if summ.leak_alarms else "[red]none[/red]"
        )
        t.add_row(
            "meter flag alarms",
            "\n".join(summ.flag_alarms) if summ.flag_alarms else "[red]none[/red]",
        )
        t.add_row(
            f"billing {period:%Y-%m}",
            f"{summ.invoices} invoices, {office.so_m(summ.invoiced_tiyin)} ({billed})",
        )
        t.add_row("customer balance", f"{account_no}: {office.so_m(summ.balance_tiyin)} to pay")
        console.print(t)
        for rep in self.pressure:
            console.print(self.pressure_table(rep))
        w = Table(title="where to look", show_header=False)
        base = f"http://127.0.0.1:{self.opts.port}"
        if self.opts.api and not self.opts.exit_after:
            w.add_row("API docs", f"{base}/api/docs")
            w.add_row(
                "customer cabinet",
                f"{base}/cabinet/login  account {account_no}, password {office.CUSTOMER_PASSWORD}",
            )
            w.add_row(
                "back office",
                f"{base}/staff/login  user {office.ADMIN_USER}, password {office.ADMIN_PASSWORD}",
            )
        w.add_row("Grafana provisioning", str(grafana))
        # the demo may use its own database: name it, so the commands see the demo's data
        w.add_row("alarm list", f"SUVNET_DATABASE_URL='{_safe(url)}' suvnet alarms list --all")
        console.print(w)
        for note in self.notes:
            console.print(f"note: {note}")

    def pressure_table(self, rep: Any) -> Table:
        """A regulated DMA's leakage under critical-point control against the fixed outlet."""
        t = Table(title=f"pressure management: {rep.zone} ({rep.days:.1f} days)", show_header=True)
        t.add_column("")
        t.add_column("critical-point control", justify="right")
        t.add_column(f"fixed outlet {rep.fixed_bar:.2f} bar", justify="right")
        t.add_row(
            "leakage m³/day",
            f"{rep.leakage_cp:.1f}",
            f"{rep.leakage_fixed:.1f}",
        )
        t.add_row(
            f"critical point ≥ {rep.target_bar:g} bar",
            f"{rep.compliance_cp:.1%}",
            f"{rep.compliance_fixed:.1%}",
        )
        t.add_row("PRV outlet setpoint (bar)", f"{rep.setpoint_min:.2f}-{rep.setpoint_max:.2f}",
                  f"{rep.fixed_bar:.2f}")  # fmt: skip
        writes = sum(
            r.writes
            for a in self.agents
            for dev, r in getattr(a, "regulators", {}).items()
            if dev == rep.device
        )
        t.add_row("setpoint changes", f"{writes}", "0")
        t.caption = (
            f"{rep.zone}: {rep.saving:.0%} less leakage than with the fixed outlet, over the "
            "same days (same demand, same leak); docs/pressure-management.md"
        )
        console.print(
            f"{rep.zone} leakage: {rep.leakage_cp:.1f} m³/day under critical-point control, "
            f"{rep.leakage_fixed:.1f} m³/day with the fixed outlet of {rep.fixed_bar:.2f} bar "
            f"({-rep.saving:+.1%})"
        )
        return t

    def final_alarms(self, url: str, plan: Any, end: datetime) -> None:
        from alarms.actions import replay
        from alarms.notify import AlarmSettings
        from alarms.worker import work_once
        from suvnet.db import connect

        with connect(url, autocommit=True) as conn:
            work_once(conn, AlarmSettings(), end)
            row = conn.execute(
                "SELECT count(*) FROM alarms a JOIN zones z ON z.id = a.zone_id "
                "WHERE a.kind IN ('leak', 'mnf', 'water_balance', 'burst') AND z.code = 'DMA-S' "
                "AND a.created_at >= %s",  # raised by this demo, not an earlier one
                (self.started_at,),
            ).fetchone()
            if row is None or row[0] == 0:
                # the live worker saw too little (e.g. a short --duration): run the leak
                # analytics over the stored history on demand
                replay(
                    conn,
                    datetime.fromtimestamp(plan.start, UTC) - timedelta(hours=1),
                    end,
                    now=end,
                    user="demo",
                    note="suvnet demo: leak analytics over the simulated period",
                )

    def bill(self, url: str, period: Any) -> str:
        from billing.config import load_billing_config
        from billing.run import run_billing
        from suvnet.db import connect

        with connect(url) as conn:
            res = run_billing(conn, period, load_billing_config(), now=datetime.now(UTC))
        return f"run {res.state}"

    # ------------------------------------------------------------------------ stopping

    async def shutdown(self) -> None:
        """Stop everything that was started, in the order data flows (each step bounded)."""
        with console.status("stopping"):
            t0 = time.monotonic()
            with contextlib.suppress(Exception):
                await self.stop_agents()
            log.debug("agents stopped after %.1f s", time.monotonic() - t0)
            self.alarm_stop.set()
            if self.uvicorn is not None:
                self.uvicorn.should_exit = True
            if self.alarm_thread is not None:
                await asyncio.to_thread(self.alarm_thread.join, 30)
            log.debug("alarm worker stopped after %.1f s", time.monotonic() - t0)
            if self.ingest is not None:
                await asyncio.to_thread(self.ingest.stop)
                self.ingest = None
            log.debug("ingest stopped after %.1f s", time.monotonic() - t0)
            if self.uvicorn is not None:
                if self.api_thread is not None:
                    await asyncio.to_thread(self.api_thread.join, 15)
                self.uvicorn = None
            log.debug("API stopped after %.1f s", time.monotonic() - t0)
            if self.broker is not None:
                await asyncio.to_thread(self.broker.stop)
                self.broker = None
            if self.live is not None:
                self.live.close()
                self.live = None
            log.debug("broker stopped after %.1f s", time.monotonic() - t0)
        console.print("demo stopped")


def _warm_up_ingest() -> None:
    """Compile ingest's telemetry scanner (numba caches it on disk for the next run)."""
    from ingest.validate import warm_up_scanner

    warm_up_scanner()


def _with_leak(plan: Any, lps: float) -> Any:
    from dataclasses import replace

    return replace(plan, leak=replace(plan.leak, rate_lps=lps))


def _safe(url: str) -> str:
    """A URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
