"""The API refuses a setpoint outside the device's range before anything is published: the
write range of the point in the device's profile (as the site apply stored it, else the
shipped file) is checked like the gateway checks it, and 999999 bar never reaches the
broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.commands import parse_mqtt_url
from api.security import Role
from suvnet.profiles import default_profiles_dir, load_profiles, published_names
from suvnet.protocol import CommandResult, Topics, decode_command, encode_command_result
from tests.api.conftest import User, bearer


@pytest.fixture(scope="module")
def registry(db_url: str) -> None:
    """gw-rng with prv-r1 (profile stored by a site apply, its setpoint range narrowed to
    1-5 bar) and prv-r2 (no stored profile: the shipped prv_controller, 0.5-8 bar)."""
    prof = load_profiles(default_profiles_dir())["prv_controller"]
    body = prof.model_dump(mode="json")
    for p in body["points"]:
        if p["name"] == "setpoint_bar":
            p["range"] = [1.0, 5.0]
    with psycopg.connect(db_url, autocommit=True) as c:
        gw = c.execute("INSERT INTO gateways (code) VALUES ('gw-rng') RETURNING id").fetchone()
        assert gw
        c.execute(
            "INSERT INTO device_profiles (name, body) VALUES ('prv_narrow', %s)", (Jsonb(body),)
        )
        for code, profile in (("prv-r1", "prv_narrow"), ("prv-r2", "prv_controller")):
            dev = c.execute(
                "INSERT INTO devices (code, gateway_id, kind, profile) "
                "VALUES (%s, %s, 'prv_controller', %s) RETURNING id",
                (code, gw[0], profile),
            ).fetchone()
            assert dev
            for name in published_names(prof):
                kind = "setpoint" if name.endswith("_bar") and "set" in name else "status"
                c.execute(
                    "INSERT INTO points (device_id, name, kind) VALUES (%s, %s, %s)",
                    (dev[0], name, kind),
                )


@contextlib.asynccontextmanager
async def listening(mqtt_url: str, topic_root: str) -> AsyncIterator[list[Any]]:
    """Everything published on gw-rng's command topic; a command is answered ok."""
    addr = parse_mqtt_url(mqtt_url)
    topics = Topics(root=topic_root)
    seen: list[Any] = []
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client(addr.host, addr.port) as client:
            await client.subscribe(topics.command("gw-rng"), qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                cmd = decode_command(msg.payload)
                seen.append(cmd)
                res = CommandResult(cmd.id, True, cmd.ts_ms + 5, readback=cmd.value)
                await client.publish(
                    topics.command_result("gw-rng"), encode_command_result(res), qos=1
                )

    task = asyncio.create_task(run(), name="test-listener")
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _commands(db_url: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT count(*) FROM gateway_commands gc JOIN gateways g ON g.id = gc.gateway_id "
            "WHERE g.code = 'gw-rng'"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"device": "prv-r2", "op": "write", "point": "setpoint_bar", "value": 999999},
         "out_of_range: 999999 > 8"),
        ({"device": "prv-r2", "op": "write", "point": "setpoint_bar", "value": 0.2},
         "out_of_range: 0.2 < 0.5"),
        ({"device": "prv-r1", "op": "write", "point": "setpoint_bar", "value": 6.0},
         "out_of_range: 6 > 5"),  # the stored profile's range, not the shipped one
        ({"device": "prv-r2", "op": "schedule", "schedule": [["06:00", 3.5], ["23:00", 9.0]]},
         "out_of_range: 9 > 8"),
        ({"device": "prv-r2", "op": "schedule", "schedule": [["06:00", 3.5]]},
         "bad_schedule: prv_controller takes exactly 2 entries"),
    ],
)  # fmt: skip
async def test_out_of_range_is_refused_before_anything_is_published(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    registry: None,
    mqtt_url: str,
    topic_root: str,
    db_url: str,
    body: dict[str, Any],
    words: str,
) -> None:
    before = _commands(db_url)
    async with listening(mqtt_url, topic_root) as seen:
        r = await client.post(
            "/api/v1/gateways/gw-rng/commands",
            json=body,
            headers=bearer(users[Role.DISPATCHER]),
            timeout=30,
        )
        await asyncio.sleep(0.3)  # what was published would have arrived by now
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert seen == []
    assert _commands(db_url) == before


async def test_a_setpoint_in_range_still_goes_out(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    registry: None,
    mqtt_url: str,
    topic_root: str,
) -> None:
    async with listening(mqtt_url, topic_root) as seen:
        r = await client.post(
            "/api/v1/gateways/gw-rng/commands",
            json={"device": "prv-r1", "op": "write", "point": "setpoint_bar", "value": 4.5},
            headers=bearer(users[Role.DISPATCHER]),
            timeout=30,
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    assert [c.value for c in seen] == [4.5]
