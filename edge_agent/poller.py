"""Polling one device: the pure schedule and health bookkeeping, and the async loop around it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.decode import decode_point
from edge_agent.errors import ModbusError, ModbusExceptionResponse
from edge_agent.modbus import ModbusClient
from edge_agent.plan import Read, ReadPlanner
from edge_agent.profiles import Point, Profile, bit_point
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.protocol import Quality, Reading

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Reading]], None]


# ------------------------------------------------------------------------------------ pure core


@dataclass
class PollSchedule:
    """When each point is due. Pure: the caller passes ``now`` (monotonic seconds)."""

    points: tuple[Point, ...]
    start: float
    next_due: dict[str, float] = field(default_factory=dict)
    overruns: int = 0

    def __post_init__(self) -> None:
        for p in self.points:
            self.next_due.setdefault(p.name, self.start)

    def due(self, now: float) -> list[Point]:
        return [p for p in self.points if self.next_due[p.name] <= now + 1e-6]

    def next_time(self) -> float:
        return min(self.next_due.values())

    def done(self, points: Sequence[Point], now: float) -> None:
        """Mark ``points`` polled at ``now``; a point whose next slot already passed counts
        one overrun and skips the missed slots."""
        overrun = False
        for p in points:
            nxt = self.next_due[p.name] + p.poll_s
            if nxt <= now:
                overrun = True
                missed = int((now - nxt) // p.poll_s) + 1
                nxt += missed * p.poll_s
            self.next_due[p.name] = nxt
        if overrun:
            self.overruns += 1

    def delay_all(self, until: float) -> None:
        for name, t in self.next_due.items():
            self.next_due[name] = max(t, until)


@dataclass
class DeviceHealth:
    """Health figures of one device, reported in the gateway state message."""

    device: str
    offline_after: int
    online: bool = True
    polls: int = 0
    ok: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_ok_ms: int | None = None
    overruns: int = 0
    split_reads: int = 0

    @property
    def success_rate(self) -> float | None:
        return None if self.polls == 0 else self.ok / self.polls

    def success(self, now_ms: int) -> bool:
        """Record a good poll; True when this brings the device back online."""
        self.polls += 1
        self.ok += 1
        self.consecutive_failures = 0
        self.last_ok_ms = now_ms
        came_back = not self.online
        self.online = True
        return came_back

    def failure(self, error: str) -> bool:
        """Record a failed poll; True when this takes the device offline."""
        self.polls += 1
        self.consecutive_failures += 1
        self.last_error = error
        if self.online and self.consecutive_failures >= self.offline_after:
            self.online = False
            return True
        return False

    def as_dict(self) -> dict[str, Any]:
        rate = self.success_rate
        return {
            "online": self.online,
            "success_rate": None if rate is None else round(rate, 4),
            "polls": self.polls,
            "last_error": self.last_error,
            "last_ok_ms": self.last_ok_ms,
            "overruns": self.overruns,
            "split_reads": self.split_reads,
        }


def comm_fail(device: str, points: Sequence[Point], ts_ms: int) -> list[Reading]:
    """Readings that say "no answer": quality comm-fail and no value."""
    out = []
    for p in points:
        if not p.publish or not p.numeric:
            continue
        out.append(Reading(device, p.name, ts_ms, None, Quality.COMM_FAIL))
        out.extend(
            Reading(device, bit_point(p.name, b), ts_ms, None, Quality.COMM_FAIL) for b in p.bits
        )
    return out


def to_readings(
    device: str, read: Read, values: Sequence[int] | Sequence[bool], ts_ms: int
) -> list[Reading]:
    out: list[Reading] = []
    for p in read.points:
        if not p.publish:
            continue
        out.extend(
            Reading(device, v.point, ts_ms, v.value, v.quality)
            for v in decode_point(p, read.slice(values, p))
        )
    return out


# ------------------------------------------------------------------------------------ I/O shell


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    """Where the agent takes "now" from: reading timestamps and poll scheduling.

    The default is the real clock. A demo that compresses time passes its own (simulated
    seconds, and ``sleep`` waits the matching shorter real time).
    """

    def time(self) -> float:
        """Seconds since the epoch (the timestamps of readings)."""
        ...

    def monotonic(self) -> float:
        """A clock that never goes back, in the same seconds as ``sleep`` (poll schedules)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock."""
        ...


class RealClock:
    """The real clock: wall time, the event loop's monotonic time, ``asyncio.sleep``."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_CLOCK = RealClock()


def clock_ms(clock: Clock) -> int:
    """``clock``'s wall time in integer milliseconds."""
    if clock is REAL_CLOCK:
        return wall_ms()
    return int(clock.time() * 1000)


class DevicePoller:
    """Polls one device for ever: reads the due points, decodes them, hands them to ``sink``.

    After ``offline_after`` consecutive failures the device is reported offline; its readings
    then carry quality comm-fail and it is retried with capped exponential backoff until it
    answers again.
    """

    def __init__(
        self,
        device: str,
        profile: Profile,
        client: ModbusClient,
        sink: Sink,
        *,
        offline_after: int = 3,
        retry_max_s: float = 60.0,
        start_offset_s: float = 0.0,
        jitter_s: float = 0.0,
        rng: random.Random | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.device = device
        self.clock = clock
        self.profile = profile
        self.client = client
        self.sink = sink
        self.planner = ReadPlanner(profile)
        self.health = DeviceHealth(device, offline_after)
        self.rng = rng or random.Random()
        self.start_offset_s = start_offset_s
        self.jitter_s = jitter_s
        self.backoff = Backoff(
            BackoffPolicy(base=min(1.0, retry_max_s), cap=retry_max_s), rng=self.rng
        )
        self.polled_points = tuple(p for p in profile.points if p.publish and p.numeric)
        self.readings_out = 0
        self.requests = 0
        # True from the moment a poll is due until its readings are handed to ``sink``: a
        # drain that waits for an empty outbox must also wait for a poll under way
        self.polling = False

    async def poll(self, points: Sequence[Point]) -> list[Reading]:
        """One poll cycle of ``points``. Raises :class:`ModbusError` when the device fails."""
        out: list[Reading] = []
        stack = list(reversed(self.planner.plan(points)))
        while stack:
            read = stack.pop()
            try:
                self.requests += 1
                values = await self.client.read(read.table, read.address, read.count)
            except ModbusExceptionResponse as exc:
                if not exc.rejects_request:
                    raise
                halves = self.planner.split(read)
                if halves is None:
                    # the device refuses this very point: say so, keep reading the others
                    self.health.last_error = f"{read.points[0].name}: {exc}"
                    out.extend(comm_fail(self.device, read.points, clock_ms(self.clock)))
                    continue
                self.health.split_reads += 1
                log.info(
                    "%s refused a read of %d registers at %s %d; splitting it (remembered)",
                    self.device, read.count, read.table, read.address,
                )  # fmt: skip
                stack.extend(reversed(halves))
                continue
            out.extend(to_readings(self.device, read, values, clock_ms(self.clock)))
        return out

    async def run(self) -> None:
        clock = self.clock
        start = clock.monotonic() + self.start_offset_s + self.rng.uniform(0, self.jitter_s)
        sched = PollSchedule(self.polled_points, start)
        while True:
            wait = sched.next_time() - clock.monotonic()
            if self.jitter_s:
                wait += self.rng.uniform(0, self.jitter_s)
            if wait > 0:
                self.polling = False
                await clock.sleep(wait)
            self.polling = True
            now = clock.monotonic()
            due = sched.due(now)
            if not self.health.online:
                due = list(self.polled_points)  # a returning device is read in full
            try:
                readings = await self.poll(due)
            except ModbusError as exc:
                ts = clock_ms(self.clock)
                self.sink(comm_fail(self.device, due, ts))
                went_offline = self.health.failure(str(exc))
                if went_offline:
                    log.warning(
                        "device %s offline after %d failed polls: %s",
                        self.device, self.health.consecutive_failures, exc,
                    )  # fmt: skip
                if not self.health.online:
                    sched.done(due, clock.monotonic())
                    sched.delay_all(clock.monotonic() + self.backoff.next_delay())
                    continue
            else:
                if self.health.success(clock_ms(self.clock)):
                    log.warning("device %s back online", self.device)
                self.backoff.reset()
                self.readings_out += len(readings)
                self.sink(readings)
            before = sched.overruns
            sched.done(due, clock.monotonic())
            self.health.overruns = sched.overruns
            if sched.overruns > before:
                log.debug("device %s: poll overran its period", self.device)
