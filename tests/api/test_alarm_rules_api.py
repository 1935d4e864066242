"""Alarm rule endpoints: list, create/update, disable/enable, role checks and the audit log.
The rules they store are the ones the real alarm engine then evaluates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.security import Role
from tests.alarms.conftest import T0, Site, add_readings, make_site
from tests.api.conftest import User, bearer

WRITERS = {Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN}


@pytest.fixture(scope="module")
def site(db_url: str) -> Site:
    with psycopg.connect(db_url, autocommit=True) as db:
        return make_site(db, "rapi")


def _rule(**kw: Any) -> dict[str, Any]:
    return {
        "code": "PSrapi-low",
        "kind": "low",
        "point": "PSrapi/pressure",
        "unit": "bar",
        "limit": 2.0,
        "on_delay_s": 60,
        "priority": "high",
        **kw,
    }


def _audit(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as c:
        return c.execute(
            "SELECT action, entity_id, actor, after FROM audit_log WHERE entity = 'alarm_rule' "
            "ORDER BY id"
        ).fetchall()


async def test_create_update_list_disable_and_the_engine_uses_it(
    client: httpx.AsyncClient, users: dict[Role, User], site: Site, db_url: str
) -> None:
    tech = bearer(users[Role.TECHNICIAN])
    viewer = bearer(users[Role.VIEWER])
    r = await client.post("/api/v1/alarm-rules", json=_rule(), headers=tech)
    assert r.status_code == 200, r.text
    assert r.json() == {"rule": "PSrapi-low", "change": "created"}
    same = await client.post("/api/v1/alarm-rules", json=_rule(), headers=tech)
    assert same.json()["change"] == "unchanged"
    upd = await client.post("/api/v1/alarm-rules", json=_rule(limit=1.5), headers=tech)
    assert upd.json()["change"] == "updated"

    lst = (await client.get("/api/v1/alarm-rules", headers=viewer)).json()
    assert [x["code"] for x in lst["items"]] == ["PSrapi-low"]
    one = (await client.get("/api/v1/alarm-rules/PSrapi-low", headers=viewer)).json()
    assert (one["kind"], one["limit"], one["point"], one["priority"], one["enabled"]) == (
        "low",
        1.5,
        "PSrapi/pressure",
        "high",
        True,
    )
    assert (await client.get("/api/v1/alarm-rules/nope", headers=viewer)).status_code == 404

    # the real engine evaluates the stored rule: 1.2 bar for 30 min is below 1.5 bar
    from alarms.engine import run_pass

    with psycopg.connect(db_url, autocommit=True) as db:
        add_readings(
            db, site.pressure_point, [(T0 + timedelta(minutes=i), 1.2, 0) for i in range(30)]
        )
        run_pass(db, T0 + timedelta(minutes=31), start=T0 - timedelta(hours=1))
        row = db.execute(
            "SELECT a.priority FROM alarms a JOIN alarm_rules r ON r.id = a.rule_id "
            "WHERE r.code = 'PSrapi-low'"
        ).fetchone()
    assert row == ("high",)

    r = await client.post("/api/v1/alarm-rules/PSrapi-low/disable", headers=tech)
    assert r.status_code == 200 and r.json()["change"] == "updated"
    again = await client.post("/api/v1/alarm-rules/PSrapi-low/disable", headers=tech)
    assert again.json()["change"] == "unchanged"
    off = await client.get("/api/v1/alarm-rules", params={"enabled": "false"}, headers=viewer)
    assert [x["code"] for x in off.json()["items"]] == ["PSrapi-low"]
    from alarms.store import load_rules

    with psycopg.connect(db_url) as c:
        assert "PSrapi-low" not in [x.code for x in load_rules(c)]
    missing = await client.post("/api/v1/alarm-rules/nope/disable", headers=tech)
    assert missing.status_code == 404
    r = await client.post("/api/v1/alarm-rules/PSrapi-low/enable", headers=tech)
    assert r.json()["change"] == "updated"

    audit = _audit(db_url)
    assert [(a[0], a[1], a[2]) for a in audit] == [
        ("rule_created", "PSrapi-low", "u_technician"),
        ("rule_updated", "PSrapi-low", "u_technician"),
        ("rule_disable", "PSrapi-low", "u_technician"),
        ("rule_enable", "PSrapi-low", "u_technician"),
    ]
    assert audit[1][3]["limit"] == 1.5


async def test_bad_rules_are_refused_with_the_field(
    client: httpx.AsyncClient, users: dict[Role, User], site: Site, db_url: str
) -> None:
    admin = bearer(users[Role.ADMIN])
    before = _audit(db_url)
    cases = [
        (_rule(code="x1", limit=None), "needs a limit", "bad_limit"),
        (_rule(code="x2", point="PSrapi/nope"), "no point", "bad_point"),
        (_rule(code="x3", kind="mnf", point=None, zone="Znope"), "no zone", "bad_zone"),
        (_rule(code="x4", params={"windw_s": 5}), "bad params", "bad_params"),
    ]
    for body, words, code in cases:
        r = await client.post("/api/v1/alarm-rules", json=body, headers=admin)
        assert r.status_code == 422, r.text
        assert words in r.text and code in r.text, r.text
    r = await client.post("/api/v1/alarm-rules", json=_rule(code="x5", limt=1), headers=admin)
    assert r.status_code == 422
    with psycopg.connect(db_url) as c:
        n = c.execute("SELECT count(*) FROM alarm_rules WHERE code LIKE 'x%'").fetchone()
    assert n == (0,)
    assert _audit(db_url) == before


async def test_roles_on_rules(
    client: httpx.AsyncClient, users: dict[Role, User], site: Site, db_url: str
) -> None:
    for role, user in users.items():
        r = await client.get("/api/v1/alarm-rules", headers=bearer(user))
        assert (r.status_code == 403) == (role is Role.CUSTOMER), (role, r.status_code)
    for role, user in users.items():
        body = _rule(code=f"role-{role.value}")
        r = await client.post("/api/v1/alarm-rules", json=body, headers=bearer(user))
        assert r.status_code == (200 if role in WRITERS else 403), (role, r.text)
        r = await client.post(f"/api/v1/alarm-rules/{body['code']}/disable", headers=bearer(user))
        assert r.status_code == (200 if role in WRITERS else 403), (role, r.text)
    with psycopg.connect(db_url) as c:
        made = {
            str(x[0])
            for x in c.execute(
                "SELECT code FROM alarm_rules WHERE code LIKE 'role-%' AND NOT enabled"
            ).fetchall()
        }
    assert made == {f"role-{r.value}" for r in WRITERS}
    anon = await client.post("/api/v1/alarm-rules", json=_rule(code="anon"))
    assert anon.status_code == 401


async def test_operator_positions_then_a_rule_on_one(
    client: httpx.AsyncClient, users: dict[Role, User], site: Site, db_url: str
) -> None:
    disp = bearer(users[Role.DISPATCHER])
    viewer = bearer(users[Role.VIEWER])
    body = {"code": "south-desk", "name": "Southern villages"}
    r = await client.post("/api/v1/alarm-positions", json=body, headers=disp)
    assert r.status_code == 200, r.text
    assert r.json() == {"position": "south-desk", "change": "created"}
    same = await client.post("/api/v1/alarm-positions", json=body, headers=disp)
    assert same.json()["change"] == "unchanged"
    renamed = {**body, "name": "Southern desk"}
    upd = await client.post("/api/v1/alarm-positions", json=renamed, headers=disp)
    assert upd.json()["change"] == "updated"
    assert (
        await client.post("/api/v1/alarm-positions", json=body, headers=viewer)
    ).status_code == 403
    bad = await client.post("/api/v1/alarm-positions", json={"code": "no spaces"}, headers=disp)
    assert bad.status_code == 422
    # a rule can now be put on it, and the list counts it
    rule = _rule(code="PSrapi-low-south", position="south-desk")
    r = await client.post("/api/v1/alarm-rules", json=rule, headers=disp)
    assert r.status_code == 200, r.text
    lst = (await client.get("/api/v1/alarm-positions", headers=viewer)).json()
    got = {p["code"]: (p["name"], p["rules"]) for p in lst["items"]}
    assert got["south-desk"] == ("Southern desk", 1)
    assert "default" in got
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT action, entity_id FROM audit_log WHERE entity = 'alarm_position' ORDER BY id"
        ).fetchall()
    assert audit == [("position_created", "south-desk"), ("position_updated", "south-desk")]
