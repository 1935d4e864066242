"""Gateway commands: validate, publish over MQTT, wait for the result (I/O shell).

One short-lived MQTT connection per command: commands are rare and the connection never
holds state that a second API worker would need. The result topic is subscribed to before
the command is published, so a fast answer is never missed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from api.errors import UnavailableError
from suvnet.errors import ProtocolError
from suvnet.protocol import Command, CommandResult, Topics, decode_command_result, encode_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise UnavailableError(
            f"unsupported MQTT URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)"
        )
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        parts.hostname or "127.0.0.1",
        parts.port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )


def command_problem(op: str, point_kind: str | None, value: object, schedule: object) -> str | None:
    """Why a command is refused before it is sent (pure)."""
    if op == "write":
        if point_kind is None:
            return "the point does not exist on this device"
        if point_kind not in ("setpoint", "status"):
            return f"the point is a {point_kind} point; only setpoints and coils can be written"
        if value is None:
            return "a write needs a value"
        if isinstance(value, float) and not math.isfinite(value):
            return "the value must be a finite number"
        return None
    if op == "schedule":
        if not schedule:
            return "a schedule needs at least one [HH:MM, value] step"
        return None
    return "op must be 'write' or 'schedule'"


def new_command_id() -> str:
    return uuid.uuid4().hex


async def send_command(
    mqtt_url: str, topics: Topics, gateway: str, cmd: Command, timeout_s: float
) -> CommandResult | None:
    """Publish ``cmd`` (QoS 1) and wait for its result; None when none came in ``timeout_s``."""
    addr = parse_mqtt_url(mqtt_url)
    try:
        async with aiomqtt.Client(
            addr.host,
            addr.port,
            username=addr.username,
            password=addr.password,
            identifier=f"suvnet-api-{cmd.id[:12]}",
            tls_params=aiomqtt.TLSParameters() if addr.tls else None,
            timeout=10,
        ) as client:
            await client.subscribe(topics.command_result(gateway), qos=1)
            await client.publish(topics.command(gateway), encode_command(cmd), qos=1)
            log.info("command sent", extra={"gateway": gateway, "command": cmd.id})
            try:
                async with asyncio.timeout(timeout_s):
                    async for msg in client.messages:
                        payload: Any = msg.payload
                        if not isinstance(payload, bytes | bytearray):
                            continue
                        try:
                            res = decode_command_result(bytes(payload))
                        except ProtocolError as exc:
                            log.warning("undecodable command result: %s", exc)
                            continue
                        if res.id == cmd.id:
                            return res
            except TimeoutError:
                return None
    except aiomqtt.MqttError as exc:
        raise UnavailableError(f"the MQTT broker is not reachable: {exc}") from exc
    return None
