"""Alarm endpoints: an alarm raised by the real alarm engine, then handled through the API."""

from __future__ import annotations

from datetime import timedelta

import httpx
import psycopg
import pytest

from api.security import Role
from tests.alarms.conftest import T0, add_readings, add_rule, make_site
from tests.api.conftest import User, bearer


@pytest.fixture(scope="module")
def alarm_id(db_url: str) -> int:
    from alarms.engine import run_pass

    with psycopg.connect(db_url, autocommit=True) as db:
        site = make_site(db, "api1")
        add_rule(
            db,
            "low-api1",
            "low",
            point_id=site.pressure_point,
            limit_value=2.0,
            on_delay_s=60,
            unit="bar",
            priority="high",
        )
        # pressure falls to 1 bar and stays there: the alarm is active and unacknowledged
        add_readings(
            db,
            site.pressure_point,
            [(T0 + timedelta(minutes=i), 3.0 if i < 5 else 1.0, 0) for i in range(30)],
        )
        run_pass(db, T0 + timedelta(minutes=31), start=T0 - timedelta(hours=1))
        row = db.execute("SELECT id FROM alarms WHERE closed_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


async def test_list_ack_shelve_unshelve(
    client: httpx.AsyncClient, users: dict[Role, User], alarm_id: int, db_url: str
) -> None:
    disp = bearer(users[Role.DISPATCHER])
    viewer = bearer(users[Role.VIEWER])
    lst = (await client.get("/api/v1/alarms", params={"priority": "high"}, headers=viewer)).json()
    assert [a["id"] for a in lst["items"]] == [alarm_id]
    assert lst["items"][0]["state"] == "unack" and lst["items"][0]["rule"] == "low-api1"
    assert (await client.get("/api/v1/alarms", params={"priority": "low"}, headers=viewer)).json()[
        "total"
    ] == 0
    r = await client.post(
        f"/api/v1/alarms/{alarm_id}/ack", json={"comment": "crew sent"}, headers=disp
    )
    assert r.status_code == 200, r.text
    assert r.json()["to_state"] == "ack"
    again = await client.post(f"/api/v1/alarms/{alarm_id}/ack", json={}, headers=disp)
    assert again.status_code == 409
    no_reason = await client.post(
        f"/api/v1/alarms/{alarm_id}/shelve", json={"minutes": 30}, headers=disp
    )
    assert no_reason.status_code == 422
    r = await client.post(
        f"/api/v1/alarms/{alarm_id}/shelve",
        json={"comment": "pipe repair", "minutes": 30},
        headers=disp,
    )
    assert r.status_code == 200, r.text
    assert r.json()["to_state"] == "shelved"
    r = await client.post(f"/api/v1/alarms/{alarm_id}/unshelve", headers=disp)
    assert r.status_code == 200, r.text
    # shelving ends the occurrence; the condition is still there, so unshelving opens a new one
    ev = (await client.get(f"/api/v1/alarms/{alarm_id}/events", headers=viewer)).json()
    assert [e["event"] for e in ev["items"]] == ["shelve", "ack", "activate"]
    assert ev["items"][1]["user_name"] == "u_dispatcher"
    assert ev["items"][1]["comment"] == "crew sent"
    closed = (await client.get(f"/api/v1/alarms/{alarm_id}", headers=viewer)).json()
    assert closed["closed_at"] is not None and closed["acked_by"] == "u_dispatcher"
    now_open = (await client.get("/api/v1/alarms", headers=viewer)).json()
    assert [a["id"] for a in now_open["items"]] != [alarm_id] and now_open["total"] == 1
    with_closed = (
        await client.get("/api/v1/alarms", params={"open_only": "false"}, headers=viewer)
    ).json()
    assert with_closed["total"] == 2
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT action, entity_id, after->>'to_state' FROM audit_log WHERE entity = 'alarm' "
            "ORDER BY id"
        ).fetchall()
    assert [a[:2] for a in audit] == [
        ("ack", str(alarm_id)),
        ("shelve", str(alarm_id)),
        ("unshelve", str(alarm_id)),
    ]
    assert audit[0][2] == "ack" and audit[1][2] == "shelved"
    missing = await client.post("/api/v1/alarms/999999/ack", json={}, headers=disp)
    assert missing.status_code == 404


async def test_roles_on_alarm_actions(
    client: httpx.AsyncClient, users: dict[Role, User], alarm_id: int
) -> None:
    for role, user in users.items():
        r = await client.get("/api/v1/alarms", headers=bearer(user))
        assert (r.status_code == 403) == (role is Role.CUSTOMER), (role, r.status_code)
    for role in (Role.VIEWER, Role.CASHIER, Role.LAWYER, Role.CUSTOMER):
        r = await client.post(
            f"/api/v1/alarms/{alarm_id}/ack", json={}, headers=bearer(users[role])
        )
        assert r.status_code == 403
