"""Work orders: the checks (pure tables), the water lost (pure), and the JSON API against
real PostgreSQL: roles, refusals that write nothing, the journal and the audit, valves
operated, photos, and a repair that closes the leak alarm that started it (the alarm's
journal shows the work order), with the water lost from the zone's flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import shapely

from alarms.engine import run_pass
from alarms.store import load_rules
from api.app import create_app
from api.security import Role
from assets import isolation_queries
from assets.model import Asset
from assets.store import save_assets
from assets.work_orders import close_problems, number, problems, water_lost
from tests.alarms.test_leak_rule import DAYS, LEAK_LPS, START, _dma
from tests.api.conftest import Clock, User, api_settings, bearer, insert_user
from tests.assets.conftest import actor

T = datetime(2026, 6, 1, 8, tzinfo=UTC)
ROLES = (Role.ADMIN, Role.VIEWER, Role.DISPATCHER, Role.TECHNICIAN)


def base(**kw: Any) -> dict[str, Any]:
    return {"kind": "repair", "reported_at": T, "materials": [], "cost_tiyin": 0, **kw}


@pytest.mark.parametrize(
    ("fields", "codes"),
    [
        (base(), []),
        (base(started_at=T, ended_at=T + timedelta(hours=3)), []),
        (base(started_at=T, ended_at=T - timedelta(minutes=1)), ["end_before_start"]),
        (base(ended_at=T), ["end_before_start"]),
        (base(kind="inspection", failure="break"), ["bad_failure"]),
        (base(failure="rust"), ["bad_failure"]),
        (base(kind="painting"), ["bad_kind"]),
        (base(cost_tiyin=-1), ["bad_cost"]),
        (base(cost_tiyin=12.5), ["bad_cost"]),
        (base(reported_at=datetime(2026, 6, 1)), ["bad_time"]),
        (base(reported_at=None), ["bad_time"]),
        (base(lon=71.6), ["bad_place"]),
        (base(materials=[{"item": "clamp", "quantity": 0}]), ["bad_materials"]),
        (base(materials=[{"item": "clamp", "quantity": 1, "price": 5}]), ["bad_materials"]),
        (base(materials="clamp"), ["bad_materials"]),
        (base(crew="x" * 201), ["bad_text"]),
    ],
)
def test_the_checks(fields: dict[str, Any], codes: list[str]) -> None:
    assert [c for _, c, _ in problems(fields)] == codes


def test_closing_needs_the_dates_and_a_repair_its_failure() -> None:
    now = T + timedelta(days=1)
    open_ = base(status="open")
    assert {c for _, c, _ in close_problems(open_, now)} == {
        "start_required", "end_required", "failure_required",
    }  # fmt: skip
    done = base(status="open", failure="break", started_at=T, ended_at=T + timedelta(hours=2))
    assert close_problems(done, now) == []
    assert [
        c for _, c, _ in close_problems({**done, "ended_at": now + timedelta(hours=1)}, now)
    ] == ["end_in_future"]
    assert [c for _, c, _ in close_problems({**done, "status": "closed"}, now)] == ["not_open"]


def hourly(
    days: int, level: float, *, extra: float = 0.0, from_h: int = 10**9
) -> dict[datetime, float]:
    """An hourly flow: ``level`` m³/h with a daily shape, ``extra`` added from hour ``from_h``."""
    out = {}
    for h in range(days * 24):
        ts = T + timedelta(hours=h)
        shape = 1.0 + 0.5 * (8 <= ts.hour <= 20)
        out[ts] = level * shape + (extra if h >= from_h else 0.0)
    return out


def test_water_lost_from_the_zone_flow() -> None:
    flow = hourly(12, 10.0, extra=5.4, from_h=9 * 24)  # a 1.5 L/s leak from day 9
    start = T + timedelta(days=9)
    lost = water_lost(flow, start=start, end=start + timedelta(hours=30))
    assert lost.method == "zone_flow" and lost.m3 == pytest.approx(5.4 * 30, rel=0.01)
    half = water_lost(flow, start=start + timedelta(minutes=30), end=start + timedelta(hours=2))
    assert half.m3 == pytest.approx(5.4 * 1.5, rel=0.01)  # parts of hours count by their part
    # no flow: the alarm's estimate; nothing at all: unknown, never a made-up zero
    none = water_lost({}, start=start, end=start + timedelta(hours=10), leak_lps=2.0)
    assert (none.method, none.m3) == ("alarm_estimate", 72.0)
    unknown = water_lost({}, start=start, end=start + timedelta(hours=10))
    assert (unknown.method, unknown.m3) == ("unknown", None)
    # a zone using less than its usual loses nothing
    assert water_lost(hourly(12, 10.0, extra=-3.0, from_h=0), start=start,
                      end=start + timedelta(hours=5)).m3 == 0.0  # fmt: skip


# ---------------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def leaky(db_url: str) -> tuple[str, dict[Role, User], int, int]:
    """A DMA with a leak found by its leak rule (as in tests/alarms/test_leak_rule.py), a
    pipe, a valve and an abandoned pipe in it, and the staff."""
    with psycopg.connect(db_url, autocommit=True) as db:
        dma = _dma(db, "RL", leak=True)
        now = START + timedelta(days=DAYS)
        run_pass(db, now, start=START, rules=[r for r in load_rules(db) if r.id == dma["rule"]])
        alarm = db.execute(
            "SELECT id FROM alarms WHERE rule_id = %s AND closed_at IS NULL", (dma["rule"],)
        ).fetchone()
        assert alarm is not None, "the leak rule found no leak"
        mnf_rule = db.execute(
            "INSERT INTO alarm_rules (code, kind, zone_id) VALUES ('RL-mnf', 'mnf', %s) "
            "RETURNING id",
            (dma["zone"],),
        ).fetchone()
        assert mnf_rule is not None
        mnf = db.execute(
            "INSERT INTO alarms (rule_id, kind, priority, position_id, zone_id, state, raised_at) "
            "VALUES (%s, 'mnf', 'high', 1, %s, 'unack', %s) RETURNING id",
            (mnf_rule[0], dma["zone"], now - timedelta(days=2)),
        ).fetchone()
        assert mnf is not None
        users = {r: insert_user(db, f"wo_{r.value}", r) for r in ROLES}
    with psycopg.connect(db_url) as conn:
        line = shapely.LineString([(71.60, 40.46), (71.601, 40.46)])
        save_assets(
            conn,
            [
                Asset("RL-P1", "pipe", line, zone="RL", material="steel", diameter_mm=110.0),
                Asset("RL-V1", "valve", shapely.Point(71.6002, 40.46), zone="RL"),
                Asset("RL-OLD", "pipe", line, zone="RL", status="abandoned"),
            ],
            actor(),
        )
        conn.commit()
    return db_url, users, int(alarm[0]), int(mnf[0])


CLOCK = Clock(START + timedelta(days=DAYS, hours=1))


@pytest.fixture
async def client(leaky: tuple[str, dict[Role, User], int, int]) -> AsyncIterator[httpx.AsyncClient]:
    isolation_queries.forget_graphs()
    app = create_app(api_settings(leaky[0]), clock=CLOCK)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def h(leaky: tuple[str, dict[Role, User], int, int], role: Role) -> dict[str, str]:
    return bearer(leaky[1][role], CLOCK)


def count(db_url: str, sql: str = "SELECT count(*) FROM work_orders") -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


async def test_refusals_write_nothing(
    client: httpx.AsyncClient, leaky: tuple[str, dict[Role, User], int, int]
) -> None:
    db_url = leaky[0]
    n0, e0 = count(db_url), count(db_url, "SELECT count(*) FROM work_order_events")
    a0 = count(db_url, "SELECT count(*) FROM audit_log WHERE entity = 'work_order'")
    cases = [
        ({"asset": "RL-OLD", "kind": "repair"}, 422, "asset_abandoned"),
        (
            {
                "asset": "RL-P1",
                "kind": "repair",
                "started_at": "2026-06-29T10:00:00+05:00",
                "ended_at": "2026-06-29T09:00:00+05:00",
            },
            422,
            "end_before_start",
        ),
        ({"asset": "RL-P1", "kind": "repair", "alarm_id": 99999}, 422, "no_alarm"),
        ({"asset": "NOPE", "kind": "repair"}, 404, "not_found"),
        ({"asset": "RL-P1", "kind": "inspection", "failure": "break"}, 422, "bad_failure"),
        ({"asset": "RL-P1", "kind": "repair", "cost_tiyin": -5}, 422, "invalid"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/v1/work-orders", json=body, headers=h(leaky, Role.DISPATCHER))
        assert (r.status_code, r.json().get("error")) == (status, code), (body, r.text)
    r = await client.post(
        "/api/v1/work-orders",
        json={"asset": "RL-P1", "kind": "repair"},
        headers=h(leaky, Role.VIEWER),
    )
    assert r.status_code == 403
    assert count(db_url) == n0
    assert count(db_url, "SELECT count(*) FROM work_order_events") == e0
    assert count(db_url, "SELECT count(*) FROM audit_log WHERE entity = 'work_order'") == a0


async def test_a_repair_from_a_leak_alarm_to_its_close(
    client: httpx.AsyncClient, leaky: tuple[str, dict[Role, User], int, int]
) -> None:
    db_url, _, alarm_id, _ = leaky
    with psycopg.connect(db_url) as conn:
        raised = conn.execute("SELECT raised_at FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    assert raised is not None
    body = {
        "asset": "RL-P1",
        "kind": "repair",
        "alarm_id": alarm_id,
        "reported_at": (raised[0] + timedelta(hours=1)).isoformat(),
        "crew": "Brigada 1",
        "description": "burst under the road",
    }
    r = await client.post("/api/v1/work-orders", json=body, headers=h(leaky, Role.DISPATCHER))
    assert r.status_code == 201, r.text
    wo = r.json()
    wid = wo["id"]
    assert wo["number"] == number(wid) and wo["status"] == "open" and wo["version"] == 1
    # the dispatcher creates, the technical department edits
    r = await client.patch(
        f"/api/v1/work-orders/{wid}",
        json={"version": 1, "crew": "x"},
        headers=h(leaky, Role.DISPATCHER),
    )
    assert r.status_code == 403
    started = CLOCK.now - timedelta(hours=30)
    r = await client.patch(
        f"/api/v1/work-orders/{wid}",
        json={
            "version": 1,
            "started_at": started.isoformat(),
            "materials": [{"item": "repair clamp DN110", "quantity": 1, "unit": "pcs"}],
            "cost_tiyin": 215_000_000,
        },
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    r = await client.patch(
        f"/api/v1/work-orders/{wid}",
        json={"version": 1, "crew": "late"},
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 409  # made on version 1, it is at 2 now
    # the valves operated; one found seized is marked so in the register
    for valve, action in (("RL-V1", "found_inoperable"), ("RL-V1", "opened")):
        r = await client.post(
            f"/api/v1/work-orders/{wid}/valves",
            json={"valve": valve, "action": action, "note": "spindle turns freely"},
            headers=h(leaky, Role.TECHNICIAN),
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/work-orders/{wid}/valves", json={"valve": "RL-P1", "action": "closed"},
        headers=h(leaky, Role.TECHNICIAN),
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == "not_a_valve"
    card = (await client.get("/api/v1/assets/RL-V1", headers=h(leaky, Role.VIEWER))).json()
    assert card["attrs"]["operable"] is False and number(wid) in card["attrs"]["operable_note"]
    # a photo, kept with the asset's documents
    r = await client.post(
        f"/api/v1/work-orders/{wid}/photos",
        files={"file": ("pit.png", b"\x89PNG\r\n\x1a\n0000", "image/png")},
        data={"note": "the pit"},
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    # closing without the failure kind is refused; then closed
    r = await client.post(
        f"/api/v1/work-orders/{wid}/close",
        json={"ended_at": (CLOCK.now - timedelta(hours=2)).isoformat()},
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 422 and r.json()["error"] == "failure_required"
    ended = CLOCK.now - timedelta(hours=2)
    r = await client.post(
        f"/api/v1/work-orders/{wid}/close",
        json={"ended_at": ended.isoformat(), "failure": "break"},
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "closed" and done["alarm_link"].startswith("repaired")
    # the water lost: the leak's 1.5 L/s over the zone's usual flow, from the alarm to the end
    hours = (ended - raised[0]).total_seconds() / 3600
    assert done["water_lost_note"] == "zone_flow"
    assert done["water_lost_m3"] == pytest.approx(LEAK_LPS * 3.6 * hours, rel=0.3)
    # the alarm is repaired and its journal names the work order
    with psycopg.connect(db_url) as conn:
        closed = conn.execute("SELECT closed_at FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
        journal = conn.execute(
            "SELECT comment FROM alarm_events WHERE alarm_id = %s AND comment IS NOT NULL",
            (alarm_id,),
        ).fetchall()
        leak = conn.execute(
            "SELECT close_reason, closed_by, close_comment FROM leak_events WHERE alarm_id = %s",
            (alarm_id,),
        ).fetchone()
        audits = conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'work_order' AND entity_id = %s "
            "ORDER BY id",
            (number(wid),),
        ).fetchall()
    assert closed is not None and closed[0] is not None
    assert any(number(wid) in c for (c,) in journal), journal
    assert leak is not None and leak[0] == "repaired" and leak[1] == "wo_technician"
    assert number(wid) in leak[2]
    assert [a for (a,) in audits] == ["create", "change", "valve", "valve", "attach", "close"]
    got = (await client.get(f"/api/v1/work-orders/{wid}", headers=h(leaky, Role.VIEWER))).json()
    assert [v["action"] for v in got["valves"]] == ["found_inoperable", "opened"]
    assert [d["id"] for d in got["documents"]] == [doc]
    assert [e["action"] for e in got["events"]] == [
        "create", "change", "valve", "valve", "photo", "close", "alarm",
    ]  # fmt: skip
    listed = (
        await client.get(
            "/api/v1/work-orders", params={"alarm": alarm_id}, headers=h(leaky, Role.VIEWER)
        )
    ).json()
    assert [w["id"] for w in listed["items"]] == [wid]
    # closed is closed: a second close and a cancel are refused
    r = await client.post(
        f"/api/v1/work-orders/{wid}/close", json={}, headers=h(leaky, Role.TECHNICIAN)
    )
    assert r.status_code == 422 and r.json()["error"] == "not_open"


async def test_a_repair_of_another_alarm_kind_says_what_the_alarm_answered(
    client: httpx.AsyncClient, leaky: tuple[str, dict[Role, User], int, int]
) -> None:
    mnf = leaky[3]
    r = await client.post(
        "/api/v1/work-orders",
        json={"asset": "RL-P1", "kind": "repair", "alarm_id": mnf, "failure": "joint_leak",
              "started_at": (CLOCK.now - timedelta(hours=5)).isoformat()},
        headers=h(leaky, Role.TECHNICIAN),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    r = await client.post(
        f"/api/v1/work-orders/{wid}/close",
        json={"ended_at": (CLOCK.now - timedelta(hours=1)).isoformat()},
        headers=h(leaky, Role.TECHNICIAN),
    )
    assert r.status_code == 200, r.text
    link = r.json()["alarm_link"]
    assert "not_a_leak_rule" in link or link.startswith("noted")


async def test_cancel_needs_a_reason(
    client: httpx.AsyncClient, leaky: tuple[str, dict[Role, User], int, int]
) -> None:
    r = await client.post(
        "/api/v1/work-orders", json={"asset": "RL-P1", "kind": "flushing"},
        headers=h(leaky, Role.DISPATCHER),
    )  # fmt: skip
    wid = r.json()["id"]
    r = await client.post(f"/api/v1/work-orders/{wid}/cancel", json={"reason": ""},
                          headers=h(leaky, Role.TECHNICIAN))  # fmt: skip
    assert r.status_code == 422
    r = await client.post(f"/api/v1/work-orders/{wid}/cancel", json={"reason": "duplicate"},
                          headers=h(leaky, Role.TECHNICIAN))  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
