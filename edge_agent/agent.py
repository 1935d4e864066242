"""The gateway daemon: pollers, the outbox writer and the MQTT link under one supervisor."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from pydantic import ValidationError

from edge_agent.aio import cancel_and_wait, wait_event, with_timeout
from edge_agent.commands import (
    control_problems,
    execute,
    plan_command,
    plan_control,
    plan_share,
)
from edge_agent.config import LoadedConfig, RtuBus, RtuTcpBus, TcpBus
from edge_agent.controlstore import ControlStore, ControlStoreError
from edge_agent.errors import CommandRefused
from edge_agent.modbus import (
    BusArbiter,
    Connection,
    ModbusClient,
    RtuTcpConnection,
    SerialConnection,
    TcpConnection,
    inter_frame_gap,
)
from edge_agent.outbox import Outbox
from edge_agent.poller import REAL_CLOCK, Clock, DevicePoller, clock_ms, wall_ms
from edge_agent.profiles import Profile, published_names, with_poll_period
from edge_agent.regulator import Loop, Regulator
from edge_agent.sdnotify import notify, watchdog_interval
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.errors import ProtocolError
from suvnet.protocol import (
    Command,
    CommandResult,
    GatewayState,
    PointValue,
    Reading,
    Topics,
    decode_ack,
    decode_command,
    decode_value,
    encode_command_result,
    encode_state,
    encode_telemetry,
    encode_value,
    points_hash,
)
from suvnet.prvcontrol import ControlConfig

log = logging.getLogger(__name__)

PENDING_MAX = 200_000
"""Readings held in memory before the outbox writer commits them; beyond: oldest dropped."""
COMMAND_QUEUE_MAX = 64
"""Commands waiting to be executed; beyond: refused with reason ``busy``."""


@dataclass
class Device:
    id: str
    profile: Profile
    client: ModbusClient
    poller: DevicePoller


class Agent:
    """Runs one gateway: see ``docs/gateway-install.md`` for the whole picture."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        rng: random.Random | None = None,
        clock: Clock = REAL_CLOCK,
        command_clock: Callable[[], int] = wall_ms,
    ) -> None:
        """``clock``: the time of readings, poll schedules and outbox ages (default: real).
        ``command_clock``: real time in ms, against which commands expire and results are
        stamped (the office's clock; a demo that compresses ``clock`` leaves this one real)."""
        self.loaded = loaded
        self.clock = clock
        self.command_clock = command_clock
        self.cfg = loaded.config
        self.rng = rng or random.Random()
        self.topics = Topics(root=self.cfg.mqtt.topic_root)
        self.outbox = Outbox(
            loaded.outbox_path,
            max_readings=self.cfg.outbox.max_readings,
            max_age_s=self.cfg.outbox.max_age_days * 86400,
        )
        self.devices: dict[str, Device] = {}
        self.connections: list[Connection | BusArbiter] = []
        self._pending: collections.deque[Reading] = collections.deque(maxlen=PENDING_MAX)
        self.pending_dropped = 0
        self._pending_event = asyncio.Event()
        self._outbox_event = asyncio.Event()
        self._commands: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE_MAX)
        self._inflight: dict[int, float] = {}
        self._results: collections.deque[CommandResult] = collections.deque(maxlen=256)
        self.connected = False
        self._stopping = False
        self.last_flush = time.monotonic()
        # when (on the agent's monotonic clock) the oldest reading not yet in a batch was seen:
        # a partial batch waits max_latency_s from then even if the wall clock stands still
        # or went back (a demo's clock held at its end; a gateway's clock set back by NTP)
        self._unbatched_since: float | None = None
        self.published_batches = 0
        self.regulators: dict[str, Regulator] = {}
        self._watch: dict[tuple[str, str], list[Regulator]] = {}
        self.shares: dict[str, set[str]] = {}
        self._share_pending: dict[tuple[str, str], PointValue] = {}
        self._share_event = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._value_topics: set[str] = set()
        self.store = ControlStore.open(loaded.control_path)
        self._build()
        self._build_control()

    # ----------------------------------------------------------------------------- wiring

    def _build(self) -> None:
        for bus in self.cfg.buses:
            shared: BusArbiter | None = None
            if isinstance(bus, RtuBus):
                conn: Connection = SerialConnection(
                    bus.port, bus.baudrate, bus.parity, bus.stopbits
                )
                gap = inter_frame_gap(bus.baudrate, bus.parity, bus.stopbits)
                shared = BusArbiter(conn, gap, bus.pause_s)
            elif isinstance(bus, RtuTcpBus):
                conn = RtuTcpConnection(bus.host, bus.port)
                gap = inter_frame_gap(bus.baudrate, bus.parity, bus.stopbits) if bus.baudrate else 0
                shared = BusArbiter(conn, gap, bus.pause_s)
            if shared is not None:
                self.connections.append(shared)
            for dev in bus.devices:
                if not dev.enabled:
                    continue
                target: Connection | BusArbiter
                if isinstance(bus, TcpBus):
                    target = TcpConnection(bus.host, bus.port)  # one connection per device
                    self.connections.append(target)
                else:
                    assert shared is not None
                    target = shared
                profile = self.loaded.profiles[dev.profile]
                if dev.poll_s is not None:
                    profile = with_poll_period(profile, dev.poll_s)
                client = ModbusClient(target, dev.unit, bus.timeout_s)
                poller = DevicePoller(
                    dev.id,
                    profile,
                    client,
                    self._sink,
                    offline_after=bus.offline_after,
                    retry_max_s=bus.retry_max_s,
                    start_offset_s=dev.start_offset_s,
                    jitter_s=dev.jitter_s,
                    rng=random.Random(self.rng.random()),
                    clock=self.clock,
                )
                self.devices[dev.id] = Device(dev.id, profile, client, poller)

    def _build_control(self) -> None:
        """A regulator for every device whose profile has a controller section, configured
        by ``gateway.yaml`` and, over it, by what the office sent (the control file)."""
        profiles = {d.id: d.profile for d in self.devices.values()}
        configs: dict[str, ControlConfig | None] = dict(self.cfg.controllers)
        for dev, wire in self.store.controllers.items():
            if dev not in profiles or profiles[dev].controller is None:
                log.warning("control file: %s is not a PRV of this gateway; ignored", dev)
                continue
            if wire is None:
                configs[dev] = None
                continue
            try:
                c = ControlConfig.model_validate(wire)
            except ValidationError as exc:
                log.error("control file: the configuration of %s is invalid (%s)", dev, exc)
                continue
            problems = control_problems(dev, c, profiles, polled=set(profiles))
            if problems:
                log.error("control file: %s: %s; gateway.yaml applies", dev, problems[0])
                continue
            configs[dev] = c
        for d in self.devices.values():
            if d.profile.controller is None:
                continue
            self.regulators[d.id] = Regulator(
                Loop(d.id, d.profile, configs.get(d.id)),
                client=d.client,
                health=d.poller.health,
                sink=self._sink,
                clock=self.clock,
                link_up=lambda: self.connected,
            )
        for sh in self.cfg.share:
            self.shares[sh.device] = set(sh.points)
        for dev, pts in self.store.share.items():
            if dev in profiles:
                self.shares[dev] = set(pts)
        self._index()

    def _index(self) -> None:
        watch: dict[tuple[str, str], list[Regulator]] = {}
        for reg in self.regulators.values():
            for key in reg.loop.local_keys():
                watch.setdefault(key, []).append(reg)
        self._watch = watch

    def value_topics(self) -> set[str]:
        """The value topics the regulators need (signals from other gateways, the office)."""
        out: set[str] = set()
        for reg in self.regulators.values():
            out |= {self.topics.value(*t) for t in reg.loop.remote_topics()}
        return out

    def _now_ms(self) -> int:
        """Now on the agent's clock (readings, outbox, batches); commands use real time."""
        return clock_ms(self.clock)

    def _sink(self, readings: Sequence[Reading]) -> None:
        overflow = len(self._pending) + len(readings) - PENDING_MAX
        if overflow > 0:
            self.pending_dropped += overflow
            log.warning("reading buffer full: dropping the %d oldest readings", overflow)
        self._pending.extend(readings)
        self._pending_event.set()
        if self._watch or self.shares:
            self._observe(readings)

    def _observe(self, readings: Sequence[Reading]) -> None:
        """Readings to the regulators that watch them and to the shared values."""
        for r in readings:
            for reg in self._watch.get((r.device, r.point), ()):
                reg.observe(r)
            if r.point in self.shares.get(r.device, ()):
                self._share_pending[(r.device, r.point)] = PointValue(
                    r.device, r.point, r.ts_ms, r.value, r.quality
                )
                self._share_event.set()

    # ----------------------------------------------------------------------------- health

    @property
    def queue_depth(self) -> int:
        """Readings the office has not acknowledged: in the outbox, or still to be written."""
        return self.outbox.depth + len(self._pending)

    @property
    def polling(self) -> bool:
        """A poll is under way: its readings are not in the outbox yet."""
        return any(d.poller.polling for d in self.devices.values())

    @property
    def batches_in_flight(self) -> int:
        """Batches sent and not yet acknowledged."""
        return len(self._inflight)

    def health(self) -> dict[str, Any]:
        polls = sum(d.poller.health.polls for d in self.devices.values())
        ok = sum(d.poller.health.ok for d in self.devices.values())
        return {
            "queue_depth": self.queue_depth,
            "dropped": self.outbox.dropped + self.pending_dropped,
            "poll_success_rate": None if polls == 0 else round(ok / polls, 4),
            "devices": {d.id: d.poller.health.as_dict() for d in self.devices.values()},
        }

    def announced_points(self) -> dict[str, tuple[str, ...]]:
        """Every device this gateway polls and the point ids it publishes for it (bit
        sub-points included): what the birth message announces to the office."""
        return {d.id: published_names(d.profile) for d in self.devices.values()}

    def state(self, state: str = "online", *, birth: bool = False) -> bytes:
        """The retained state message. A birth announces the devices and points (the office
        checks them against its registry); health updates carry only their hash."""
        online = state == "online"
        points = self.announced_points() if online else None
        return encode_state(
            GatewayState(
                self.cfg.gateway,
                "online" if online else "offline",
                self._now_ms(),
                self.outbox.boot,
                self.health() if online else {},
                points if birth else None,
                points_hash(points) if points is not None else None,
            )
        )

    # ----------------------------------------------------------------------------- tasks

    async def _supervise(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` for ever; when it dies, log it and start it again after a backoff."""
        backoff = Backoff(BackoffPolicy(base=1.0, cap=30.0), rng=self.rng)
        while True:
            started = time.monotonic()
            try:
                await fn()
                log.error("task %s returned; restarting it", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s failed; restarting it", name)
            if time.monotonic() - started > 60:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def flush(self) -> int:
        """Commit the buffered readings to the outbox."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        self._pending.clear()
        try:
            await asyncio.to_thread(self.outbox.add, batch, self._now_ms())
        except BaseException:
            # not written (disk full, cancelled mid-way): keep them for the next attempt
            self._pending.extendleft(reversed(batch))
            raise
        self.last_flush = time.monotonic()
        if self._unbatched_since is None:
            self._unbatched_since = self.clock.monotonic()
        self._outbox_event.set()
        return len(batch)

    async def _writer(self) -> None:
        interval = self.cfg.outbox.commit_interval_s
        while True:
            await self._pending_event.wait()
            self._pending_event.clear()
            await asyncio.sleep(interval)  # gather what arrives meanwhile into one commit
            await self.flush()

    async def _commands_loop(self) -> None:
        while True:
            cmd = await self._commands.get()
            result = await self.run_command(cmd)
            self._results.append(result)
            self._outbox_event.set()

    async def run_command(self, cmd: Command) -> CommandResult:
        if cmd.op in ("control", "share"):
            return await self._control_command(cmd)
        profiles = {d.id: d.profile for d in self.devices.values()}
        try:
            writes = plan_command(cmd, profiles, self.command_clock())
        except CommandRefused as exc:
            log.warning("command %s refused: %s", cmd.id, exc.reason)
            return CommandResult(cmd.id, False, self.command_clock(), exc.reason)
        dev = self.devices[cmd.device]
        result = await execute(cmd, writes, dev.client, self.command_clock)
        log.info("command %s on %s: %s", cmd.id, cmd.device, "done" if result.ok else result.reason)
        return result

    async def _control_command(self, cmd: Command) -> CommandResult:
        """A controller configuration or a value share: check, keep on disk, apply."""
        profiles = {d.id: d.profile for d in self.devices.values()}
        try:
            if cmd.op == "control":
                cfg = plan_control(cmd, profiles, self.command_clock())
                self.store.set_control(cmd.device, None if cfg is None else cfg.wire())
                self.regulators[cmd.device].reconfigure(cfg)
                self._index()
                what = "hand (no controller)" if cfg is None else f"mode {cfg.mode}"
            else:
                points = plan_share(cmd, profiles, self.command_clock())
                self.store.set_share(cmd.device, points)
                self.shares[cmd.device] = set(points)
                what = f"sharing {', '.join(points) or 'nothing'}"
        except CommandRefused as exc:
            log.warning("command %s refused: %s", cmd.id, exc.reason)
            return CommandResult(cmd.id, False, self.command_clock(), exc.reason)
        except ControlStoreError as exc:
            log.error("command %s: %s", cmd.id, exc)
            return CommandResult(cmd.id, False, self.command_clock(), f"store_failed: {exc}")
        log.info("command %s on %s: %s", cmd.id, cmd.device, what)
        await self._resubscribe()
        return CommandResult(cmd.id, True, self.command_clock())

    async def _resubscribe(self) -> None:
        """Follow the value topics the regulators need now (while connected)."""
        client = self._client
        if client is None:
            return
        want = self.value_topics()
        with contextlib.suppress(aiomqtt.MqttError):
            for t in sorted(want - self._value_topics):
                await client.subscribe(t, qos=1)
            for t in sorted(self._value_topics - want):
                await client.unsubscribe(t)
            self._value_topics = want

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        notify("READY=1")
        if interval is None:
            await asyncio.Event().wait()  # not run by systemd: nothing to pet
            return
        while True:
            await asyncio.sleep(interval)
            # only pet the watchdog while the writer keeps the outbox current
            if not self._pending or time.monotonic() - self.last_flush < 60:
                notify("WATCHDOG=1")

    # ----------------------------------------------------------------------------- MQTT

    def _mqtt_client(self) -> aiomqtt.Client:
        m = self.cfg.mqtt
        tls = None
        if m.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(m.ca_file) if m.ca_file else None,
                certfile=str(m.cert_file) if m.cert_file else None,
                keyfile=str(m.key_file) if m.key_file else None,
            )
        return aiomqtt.Client(
            m.host,
            m.port,
            username=m.user(),
            password=m.secret(),
            identifier=self.cfg.mqtt_client_id,
            will=aiomqtt.Will(
                self.topics.state(self.cfg.gateway), self.state("offline"), qos=1, retain=True
            ),
            clean_session=True,
            keepalive=m.keepalive_s,
            tls_params=tls,
            timeout=10,
        )

    async def _link(self) -> None:
        m = self.cfg.mqtt
        backoff = Backoff(BackoffPolicy(base=0.5, cap=m.reconnect_max_s), rng=self.rng)
        down_since: float | None = None
        while True:
            err: BaseException | None = None
            try:
                async with self._mqtt_client() as client:
                    self.connected = True
                    backoff.reset()
                    if down_since is not None:
                        log.warning(
                            "MQTT link up again after %.0f s", time.monotonic() - down_since
                        )
                    else:
                        log.info("MQTT link up (%s:%d)", m.host, m.port)
                    down_since = None
                    try:
                        await self._session(client)
                    except asyncio.CancelledError:
                        # a clean stop: say goodbye ourselves (the will is for crashes)
                        with contextlib.suppress(Exception):
                            await with_timeout(
                                client.publish(
                                    self.topics.state(self.cfg.gateway),
                                    self.state("offline"),
                                    qos=1,
                                    retain=True,
                                ),
                                2,
                            )
                        raise
            except* (aiomqtt.MqttError, OSError) as eg:
                err = eg.exceptions[0]
            self.connected = False
            if down_since is None:
                down_since = time.monotonic()
                log.warning("MQTT link down: %s; reconnecting with backoff", err)
            await asyncio.sleep(backoff.next_delay())

    def _raise_if_stopping(self) -> None:
        """End an MQTT session task once the agent is stopping, even if its cancel was lost.

        A publish can swallow the task's cancellation (see :mod:`edge_agent.aio`), and the
        session's ``TaskGroup`` cancels its tasks only once, so the session tasks check this
        after every publish and on every turn.
        """
        if self._stopping:
            raise asyncio.CancelledError

    async def _session(self, client: aiomqtt.Client) -> None:
        gw = self.cfg.gateway
        await client.subscribe(self.topics.ack(gw), qos=1)
        await client.subscribe(self.topics.command(gw), qos=1)
        self._value_topics = self.value_topics()
        for t in sorted(self._value_topics):
            await client.subscribe(t, qos=1)
        await client.publish(self.topics.state(gw), self.state(birth=True), qos=1, retain=True)
        self._inflight.clear()  # after a reconnect every unacknowledged batch goes again
        self._client = client
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client), name="mqtt-receive")
                tg.create_task(self._send(client), name="mqtt-send")
                tg.create_task(self._health_loop(client), name="mqtt-health")
                tg.create_task(self._share_loop(client), name="mqtt-share")
        finally:
            self._client = None

    async def _receive(self, client: aiomqtt.Client) -> None:
        gw = self.cfg.gateway
        ack_topic, cmd_topic = self.topics.ack(gw), self.topics.command(gw)
        async for msg in client.messages:
            self._raise_if_stopping()
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            topic = str(msg.topic)
            try:
                if topic == ack_topic:
                    ack = decode_ack(payload)
                    gone = await asyncio.to_thread(self.outbox.ack, ack.boot, ack.ranges)
                    for lo, hi in ack.ranges:
                        for s in [s for s in self._inflight if lo <= s <= hi]:
                            del self._inflight[s]
                    if gone:
                        self._outbox_event.set()
                elif "/value/" in topic:
                    source, _, _ = self.topics.parse_value(topic)
                    value = decode_value(payload)
                    for reg in self.regulators.values():
                        reg.observe_value(source, value)
                elif topic == cmd_topic:
                    cmd = decode_command(payload)
                    try:
                        self._commands.put_nowait(cmd)
                    except asyncio.QueueFull:
                        self._results.append(
                            CommandResult(cmd.id, False, self.command_clock(), "busy")
                        )
                        self._outbox_event.set()
            except ProtocolError as exc:
                log.warning("ignored a bad message on %s: %s", topic, exc)

    async def _send(self, client: aiomqtt.Client) -> None:
        b = self.cfg.batch
        gw = self.cfg.gateway
        tele = self.topics.telemetry(gw)
        while True:
            self._raise_if_stopping()
            while self._results:
                res = self._results[0]
                await client.publish(
                    self.topics.command_result(gw), encode_command_result(res), qos=1
                )
                self._raise_if_stopping()
                self._results.popleft()
            self._outbox_event.clear()
            unacked = await asyncio.to_thread(self.outbox.unacked)
            now = time.monotonic()
            live = {s for s, t in self._inflight.items() if now - t < b.resend_after_s}
            sent = False
            for seq in unacked:
                if len(live) >= b.max_inflight:
                    break
                if seq in live:
                    continue
                batch = await asyncio.to_thread(self.outbox.batch, gw, seq, self._now_ms())
                await client.publish(tele, encode_telemetry(batch), qos=1)
                self._raise_if_stopping()
                self._inflight[seq] = time.monotonic()
                live.add(seq)
                self.published_batches += 1
                sent = True
            if sent:
                continue
            if len(live) < b.max_inflight and self.outbox.unbatched > 0:
                oldest = await asyncio.to_thread(self.outbox.oldest_unbatched_ms)
                age = 0.0 if oldest is None else (self._now_ms() - oldest) / 1000
                # the readings' own time says how old they are (after a restart: long
                # waiting); the monotonic clock that they have waited in this process
                if self._unbatched_since is None:
                    self._unbatched_since = self.clock.monotonic()
                age = max(age, self.clock.monotonic() - self._unbatched_since)
                if self.outbox.unbatched >= b.max_readings or age >= b.max_latency_s:
                    await asyncio.to_thread(self.outbox.form_batch, b.max_readings, self._now_ms())
                    if self.outbox.unbatched == 0:
                        self._unbatched_since = None
                    continue
                timeout = max(0.01, b.max_latency_s - age)
            else:
                timeout = b.max_latency_s
            if self._inflight:
                timeout = min(timeout, b.resend_after_s)
            await wait_event(self._outbox_event, timeout)

    async def _share_loop(self, client: aiomqtt.Client) -> None:
        """Publish the latest value of each shared point (retained) as it is polled."""
        while True:
            self._raise_if_stopping()
            await self._share_event.wait()
            self._share_event.clear()
            while self._share_pending:
                (dev, point), value = next(iter(self._share_pending.items()))
                await client.publish(
                    self.topics.value(self.cfg.gateway, dev, point),
                    encode_value(value),
                    qos=1,
                    retain=True,
                )
                self._raise_if_stopping()
                if self._share_pending.get((dev, point)) is value:
                    del self._share_pending[(dev, point)]

    async def _health_loop(self, client: aiomqtt.Client) -> None:
        while True:
            self._raise_if_stopping()
            await asyncio.sleep(self.cfg.health_interval_s)
            await client.publish(
                self.topics.state(self.cfg.gateway), self.state(), qos=1, retain=True
            )

    # ----------------------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or the task is cancelled); then flush and close."""
        stop = stop or asyncio.Event()
        self._stopping = False
        log.info(
            "gateway %s starting: %d devices on %d buses, outbox %s (boot %s, %d queued)",
            self.cfg.gateway, len(self.devices), len(self.cfg.buses),
            self.outbox.path, self.outbox.boot, self.outbox.depth,
        )  # fmt: skip
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(
                        self._supervise(f"poll:{d.id}", d.poller.run), name=f"poll:{d.id}"
                    )
                    for d in self.devices.values()
                ]
                tasks += [
                    tg.create_task(
                        self._supervise(f"control:{dev}", reg.run), name=f"control:{dev}"
                    )
                    for dev, reg in self.regulators.items()
                ]
                for name, fn in (
                    ("outbox-writer", self._writer),
                    ("mqtt-link", self._link),
                    ("commands", self._commands_loop),
                    ("watchdog", self._watchdog),
                ):
                    tasks.append(tg.create_task(self._supervise(name, fn), name=name))
                try:
                    await stop.wait()
                finally:
                    log.info("gateway %s stopping", self.cfg.gateway)
                    self._stopping = True
                    await cancel_and_wait(tasks)
        finally:
            with contextlib.suppress(Exception):
                await self.flush()
            for c in self.connections:
                with contextlib.suppress(Exception):
                    await c.close()
            self.outbox.close()
