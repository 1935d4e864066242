"""Gateway commands over the real Mosquitto broker.

The gateway side is a small responder that speaks the wire protocol (suvnet.protocol): it
receives the command on ``{root}/v1/{gw}/cmd`` and answers on ``.../cmd/result``, like the
edge agent does after its Modbus write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import psycopg
import pytest

from api.commands import parse_mqtt_url
from api.security import Role
from suvnet.protocol import CommandResult, Topics, decode_command, encode_command_result
from tests.api.conftest import User, bearer


@pytest.fixture(scope="module")
def prv(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        gw = c.execute("INSERT INTO gateways (code) VALUES ('gw-prv') RETURNING id").fetchone()
        assert gw
        dev = c.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) "
            "VALUES ('prv-7', %s, 'prv_controller', 'prv') RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev
        c.execute(
            "INSERT INTO points (device_id, name, kind) VALUES (%s, 'outlet_sp', 'setpoint'), "
            "(%s, 'outlet_p', 'analog')",
            (dev[0], dev[0]),
        )


@contextlib.asynccontextmanager
async def gateway(mqtt_url: str, topic_root: str, behaviour: str) -> AsyncIterator[list[Any]]:
    """A gateway on the broker: 'ok' writes and reads back, 'refuse' refuses, 'silent'."""
    addr = parse_mqtt_url(mqtt_url)
    topics = Topics(root=topic_root)
    seen: list[Any] = []
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client(addr.host, addr.port) as client:
            await client.subscribe(topics.command("gw-prv"), qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                cmd = decode_command(msg.payload)
                seen.append(cmd)
                if behaviour == "silent":
                    continue
                res = (
                    CommandResult(cmd.id, True, cmd.ts_ms + 5, readback=cmd.value)
                    if behaviour == "ok"
                    else CommandResult(cmd.id, False, cmd.ts_ms + 5, reason="out_of_range")
                )
                # an unrelated result first: the API must wait for its own id
                await client.publish(
                    topics.command_result("gw-prv"),
                    encode_command_result(CommandResult("other", True, 1)),
                    qos=1,
                )
                await client.publish(
                    topics.command_result("gw-prv"), encode_command_result(res), qos=1
                )

    task = asyncio.create_task(run(), name="test-gateway")
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/api/v1/gateways/gw-prv/commands", json=body, headers=bearer(user), timeout=30
    )


async def test_setpoint_ok(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    prv: None,
    mqtt_url: str,
    topic_root: str,
    db_url: str,
) -> None:
    async with gateway(mqtt_url, topic_root, "ok") as seen:
        r = await send(
            client,
            users[Role.DISPATCHER],
            {"device": "prv-7", "op": "write", "point": "outlet_sp", "value": 2.8},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["readback"] == 2.8
    assert len(seen) == 1 and seen[0].point == "outlet_sp" and seen[0].value == 2.8
    assert seen[0].id == body["id"]
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT status, readback FROM gateway_commands WHERE id = %s", (body["id"],)
        ).fetchone()
        audit = c.execute(
            "SELECT actor, after->>'value' FROM audit_log WHERE action = 'command' "
            "AND after->>'id' = %s",
            (body["id"],),
        ).fetchone()
    assert row == ("ok", 2.8)
    assert audit == ("u_dispatcher", "2.8")


async def test_refused_and_schedule(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    prv: None,
    mqtt_url: str,
    topic_root: str,
) -> None:
    async with gateway(mqtt_url, topic_root, "refuse") as seen:
        r = await send(
            client,
            users[Role.TECHNICIAN],
            {"device": "prv-7", "op": "schedule", "schedule": [["06:00", 3.0], ["22:00", 2.0]]},
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refused" and r.json()["reason"] == "out_of_range"
    assert seen[0].schedule == (("06:00", 3.0), ("22:00", 2.0))


async def test_timeout_is_504_and_logged(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    prv: None,
    mqtt_url: str,
    topic_root: str,
) -> None:
    async with gateway(mqtt_url, topic_root, "silent") as seen:
        r = await send(
            client,
            users[Role.ADMIN],
            {"device": "prv-7", "op": "write", "point": "outlet_sp", "value": 3, "timeout_s": 0.5},
        )
    assert r.status_code == 504
    assert "did not answer" in r.json()["detail"]
    assert len(seen) == 1
    hist = await client.get(
        "/api/v1/gateways/gw-prv/commands",
        params={"status": "timeout"},
        headers=bearer(users[Role.VIEWER]),
    )
    assert hist.json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (
            {"device": "prv-7", "op": "write", "point": "outlet_p", "value": 1},
            422,
            "only setpoints",
        ),
        ({"device": "prv-7", "op": "write", "point": "nope", "value": 1}, 422, "does not exist"),
        ({"device": "prv-7", "op": "write", "point": "outlet_sp"}, 422, "needs a value"),
        ({"device": "ghost", "op": "write", "point": "outlet_sp", "value": 1}, 404, "no device"),
        ({"device": "prv-7", "op": "schedule", "schedule": [["25:00", 1]]}, 422, "HH:MM"),
    ],
)
async def test_bad_commands_are_refused_before_sending(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    prv: None,
    body: dict[str, Any],
    status: int,
    text: str,
) -> None:
    r = await send(client, users[Role.ADMIN], body)
    assert r.status_code == status, r.text
    assert text in r.text
