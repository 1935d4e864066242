"""The office's relay of critical-point values (docs/pressure-management.md, docs/protocol.md).

A PRV's controller may read a sensor that its own gateway does not poll. When another
gateway polls it, that gateway shares the value itself (``share`` command, value topics).
When the value only reaches the office (a logger that reports by SMS or by another route,
or a gateway that is not allowed to talk to other gateways), the office relays it: every
``interval_s`` this loop reads the newest stored reading of each point a controller wants
from ``suvnet-office`` and publishes it, retained, on
``{root}/v1/suvnet-office/value/{device}/{point}``. The gateway judges its age by its
timestamp, so a relay that stops is seen as a stale signal, never as a fresh one.

Run it with ``suvnet prv relay`` (one process is enough; a second one publishes the same
retained values).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import psycopg
from pydantic import ValidationError

from suvnet.protocol import PointValue, Quality, Topics, encode_value
from suvnet.prvcontrol import OFFICE_SOURCE, ControlConfig

log = logging.getLogger(__name__)

LATEST = """
SELECT d.code, p.name, lr.ts, lr.value, lr.quality
FROM devices d
JOIN points p ON p.device_id = d.id
JOIN LATERAL (
    SELECT r.ts, r.value, r.quality FROM readings r
    WHERE r.point_id = p.id ORDER BY r.ts DESC LIMIT 1
) lr ON true
WHERE (d.code, p.name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


def wanted(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Every (device, point) a stored controller configuration reads through the office."""
    out: set[tuple[str, str]] = set()
    for (config,) in conn.execute("SELECT config FROM prv_controls").fetchall():
        try:
            cfg = ControlConfig.model_validate(config)
        except ValidationError:
            continue
        out |= {s.key for s in cfg.remote_signals() if s.source == OFFICE_SOURCE}
    return sorted(out)


def latest(conn: psycopg.Connection[Any], keys: Sequence[tuple[str, str]]) -> list[PointValue]:
    """The newest stored reading of each point."""
    if not keys:
        return []
    rows = conn.execute(LATEST, ([d for d, _ in keys], [p for _, p in keys])).fetchall()
    return [
        PointValue(
            str(dev),
            str(point),
            int(ts.timestamp() * 1000),
            None if value is None else float(value),
            Quality(int(q)),
        )
        for dev, point, ts, value, q in rows
    ]


@dataclass
class Relay:
    """Publishes what changed since its last pass (the retained message keeps the rest)."""

    topics: Topics
    sent: dict[tuple[str, str], int] = field(default_factory=dict)

    async def once(self, conn: psycopg.Connection[Any], client: aiomqtt.Client) -> int:
        """One pass: returns how many values were published."""
        n = 0
        for v in latest(conn, wanted(conn)):
            key = (v.device, v.point)
            if self.sent.get(key) == v.ts_ms:
                continue
            await client.publish(
                self.topics.value(OFFICE_SOURCE, v.device, v.point),
                encode_value(v),
                qos=1,
                retain=True,
            )
            self.sent[key] = v.ts_ms
            n += 1
        return n


def mqtt_client(url: str, client_id: str) -> aiomqtt.Client:
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        identifier=client_id,
        tls_params=aiomqtt.TLSParameters() if tls else None,
        timeout=10,
    )


async def run(
    db_url: str,
    mqtt_url: str,
    topics: Topics,
    *,
    interval_s: float = 30.0,
    once: bool = False,
    stop: asyncio.Event | None = None,
) -> int:
    """Relay until ``stop`` is set (or one pass with ``once``); returns the values sent."""
    stop = stop or asyncio.Event()
    relay = Relay(topics)
    total = 0
    async with mqtt_client(mqtt_url, f"suvnet-prv-relay-{id(relay) % 100000}") as client:
        while True:
            with psycopg.connect(db_url, autocommit=True) as conn:
                n = await relay.once(conn, client)
            total += n
            if n:
                log.info("relayed %d value(s)", n)
            if once:
                return total
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                continue
            return total
