"""Valve isolation, planned outages and critical customers through the JSON API, on the demo
village with its subscribers (tests/assets/village.py), against real PostgreSQL.

The SMS gateway and the Telegram Bot API are small HTTP servers in the test (the real ones
are on the internet); everything else is real: the app, the database, the catalogs."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.security import Role
from assets import isolation_queries
from billing.config import get_billing_config
from tests.api.conftest import Clock, User, api_settings, bearer, insert_user
from tests.assets.conftest import NOW
from tests.assets.village import build_village
from tests.pdf_safety import check_pdf

ROLES = (Role.ADMIN, Role.VIEWER, Role.DISPATCHER, Role.TECHNICIAN, Role.BILLING_CLERK)


class Gateway:
    """An SMS gateway and a Telegram Bot API that record what they are sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.sent.append({"path": self.path, **body})
                fail = str(body.get("to", "")).endswith("09")
                self.send_response(500 if fail else 200)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def village(db_url: str) -> tuple[str, dict[str, str], dict[Role, User]]:
    numbers = build_village(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        users = {r: insert_user(conn, f"ops_{r.value}", r) for r in ROLES}
    return db_url, numbers, users


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway() as g:
        yield g


@pytest.fixture
async def client(
    village: tuple[str, dict[str, str], dict[Role, User]],
    gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("SUVNET_BILLING_SMS_GATEWAY_URL", gateway.url + "/sms")
    monkeypatch.setenv("SUVNET_BILLING_TELEGRAM_API_URL", gateway.url)
    monkeypatch.setenv("SUVNET_BILLING_TELEGRAM_BOT_TOKEN", "t0ken")
    monkeypatch.setenv("SUVNET_BILLING_UTILITY_NAME", "Yangiobod suv <ta'minoti>")
    monkeypatch.setenv("SUVNET_BILLING_UTILITY_PHONE", "+998712000000")
    get_billing_config.cache_clear()
    isolation_queries.forget_graphs()
    app = create_app(api_settings(village[0]), clock=Clock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    get_billing_config.cache_clear()


def h(village: tuple[str, dict[str, str], dict[Role, User]], role: Role) -> dict[str, str]:
    return bearer(village[2][role], Clock(NOW))


async def test_isolation_of_a_pipe_part_names_valves_and_subscribers(
    client: httpx.AsyncClient, village: tuple[str, dict[str, str], dict[Role, User]]
) -> None:
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"pipe": "P-122", "at": 0.5},
        headers=h(village, Role.VIEWER),
    )
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["close"] == ["V-122a", "V-123b"] and a["skipped"] == []
    assert {p["code"] for p in a["pipes"]} == {"P-122", "P-123"}
    assert [x["name"] for x in a["accounts"]] == ["Qodirova Nigora", "Ergashev Jasur"]
    assert a["counts"]["accounts"] == 2 and a["counts"]["addresses"] == 2
    roles = {
        f["properties"].get("valve"): f["properties"]["role"] for f in a["geojson"]["features"]
    }
    assert roles["V-122a"] == roles["V-123b"] == "close"
    # a place on the map: the same pipe part
    lon, lat = next((v["lon"], v["lat"]) for v in a["valves"] if v["code"] == "V-122a")
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"lon": lon - 0.0003, "lat": lat},
        headers=h(village, Role.VIEWER),
    )
    assert r.status_code == 200, r.text
    assert r.json()["target"]["pipe"] == "P-122" and r.json()["close"] == ["V-122a", "V-123b"]


async def test_the_seized_valve_is_passed_over_and_critical_customers_come_first(
    client: httpx.AsyncClient, village: tuple[str, dict[str, str], dict[Role, User]]
) -> None:
    _, numbers, _ = village
    school = numbers["5-son maktab"]
    r = await client.put(
        f"/api/v1/assets/critical-customers/{school}",
        json={"kind": "school", "note": "600 pupils"},
        headers=h(village, Role.VIEWER),
    )
    assert r.status_code == 403
    r = await client.put(
        f"/api/v1/assets/critical-customers/{school}",
        json={"kind": "school", "note": "600 pupils"},
        headers=h(village, Role.BILLING_CLERK),
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"pipe": "P-104", "at": 0.5},
        headers=h(village, Role.VIEWER),
    )
    a = r.json()
    # V-104a is seized (the demo marks it): the next ring takes its place, and only V-102b
    # must be closed: the rest of the north ring has no other way in for the water
    assert a["skipped"] == ["V-104a"]
    assert a["close"] == ["V-102b"] and a["not_needed"] == ["V-103a", "V-107a"]
    names = [x["name"] for x in a["accounts"]]
    assert names[0] == "5-son maktab" and a["accounts"][0]["critical"] == "school"
    assert set(names) == {
        "5-son maktab", "Karimov Anvar", "Yusupova Dilnoza", "Rahimov Bekzod", "Tosheva Malika",
        "Nazarov Sardor",
    }  # fmt: skip
    assert a["counts"]["critical"] == 1 and a["counts"]["legal"] == 1
    assert {"pt-n1", "pt-n4"} <= {s["code"] for s in a["sensors"]}
    # the crew finds V-102b seized too: the answer goes further out
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"pipe": "P-104", "at": 0.5, "unavailable": "V-102b"},
        headers=h(village, Role.VIEWER),
    )
    b = r.json()
    assert b["skipped"] == ["V-102b", "V-104a"] and "V-102a" in b["close"]
    listed = await client.get("/api/v1/assets/critical-customers", headers=h(village, Role.VIEWER))
    assert [c["number"] for c in listed.json()["items"]] == [school]


async def test_no_valve_can_isolate_says_so_and_offers_the_zone(
    client: httpx.AsyncClient, village: tuple[str, dict[str, str], dict[Role, User]]
) -> None:
    # the piece of the main between the reservoir and its first valve
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"pipe": "P-101", "at": 0.001},
        headers=h(village, Role.VIEWER),
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "no_isolating_valves"
    assert "cannot be isolated" in body["detail"] and "R1" in body["detail"]
    assert "close" not in body  # never an answer that looks like a success
    for params in ({"pipe": "P-999"}, {"lon": 60.0, "lat": 40.0}, {}, {"lon": 71.6}):
        r = await client.get(
            "/api/v1/assets/isolation", params=params, headers=h(village, Role.VIEWER)
        )
        assert r.status_code == 422, params
    r = await client.get(
        "/api/v1/assets/isolation", params={"pipe": "P-122", "unavailable": "bad code!"},
        headers=h(village, Role.VIEWER),
    )  # fmt: skip
    assert r.status_code == 422


async def test_an_alarm_of_a_zone_isolates_the_zone(
    client: httpx.AsyncClient, village: tuple[str, dict[str, str], dict[Role, User]]
) -> None:
    with psycopg.connect(village[0], autocommit=True) as conn:
        zone = conn.execute("SELECT id FROM zones WHERE code = 'DMA-S'").fetchone()
        assert zone is not None
        rule = conn.execute(
            "INSERT INTO alarm_rules (code, name, kind, zone_id) VALUES ('s-burst', 'S burst', "
            "'burst', %s) RETURNING id",
            (zone[0],),
        ).fetchone()
        assert rule is not None
        alarm = conn.execute(
            "INSERT INTO alarms (rule_id, kind, priority, position_id, zone_id, state, raised_at)"
            " VALUES (%s, 'burst', 'high', 1, %s, 'unack', %s) RETURNING id",
            (rule[0], zone[0], NOW - timedelta(hours=2)),
        ).fetchone()
        assert alarm is not None
    r = await client.get(
        "/api/v1/assets/isolation", params={"alarm": alarm[0]}, headers=h(village, Role.VIEWER)
    )
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["target"]["zone"] == "DMA-S" and a["target"]["alarm"] == alarm[0]
    assert "V-B1" in a["already_closed"]  # the DMA boundary valve, kept closed
    assert {"Qodirova Nigora", "Ergashev Jasur", "Sobirova Zuhra"} <= {
        x["name"] for x in a["accounts"]
    }
    # with the place of the burst, only its part of the zone
    r = await client.get(
        "/api/v1/assets/isolation",
        params={"alarm": alarm[0], "pipe": "P-124", "at": 0.5},
        headers=h(village, Role.VIEWER),
    )
    assert r.json()["close"] == ["V-124a", "V-126b"]
    r = await client.get(
        "/api/v1/assets/isolation", params={"alarm": 987654}, headers=h(village, Role.VIEWER)
    )
    assert r.status_code == 422 and "no alarm" in r.json()["detail"]


async def test_a_planned_outage_tells_each_subscriber_in_their_language(
    client: httpx.AsyncClient,
    village: tuple[str, dict[str, str], dict[Role, User]],
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    db_url, numbers, _ = village
    start = NOW + timedelta(days=2, hours=2)  # 2026-06-03 15:00 in Tashkent
    body = {
        "pipe": "P-104",
        "at": 0.5,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=4)).isoformat(),
        "reason": "replacing the valve V-104a <b>",
    }
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM outages").fetchone()
    # refused: a viewer; an end before the start; a start in the past (nothing written)
    r = await client.post("/api/v1/assets/outages", json=body, headers=h(village, Role.VIEWER))
    assert r.status_code == 403
    bad = {**body, "ends_at": (start - timedelta(hours=1)).isoformat()}
    r = await client.post("/api/v1/assets/outages", json=bad, headers=h(village, Role.DISPATCHER))
    assert r.status_code == 422 and r.json()["error"] == "end_before_start"
    past = {**body, "starts_at": (NOW - timedelta(hours=5)).isoformat()}
    r = await client.post("/api/v1/assets/outages", json=past, headers=h(village, Role.DISPATCHER))
    assert r.status_code == 422 and r.json()["error"] == "start_in_past"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM outages").fetchone() == before
    gateway.sent.clear()
    r = await client.post("/api/v1/assets/outages", json=body, headers=h(village, Role.DISPATCHER))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["valves"] == ["V-102b"] and out["accounts"] == 6
    sms = {m["to"]: m["text"] for m in gateway.sent if m["path"] == "/sms"}
    tg = [m for m in gateway.sent if m["path"].endswith("/sendMessage")]
    # Yusupova reads Russian, Tosheva English, the others Uzbek (the utility's default)
    assert "Воды не будет 03.06.2026 с 15:00 до 19:00" in sms["998901234502"]
    assert sms["998901234504"].startswith("Water will be off on 03.06.2026 from 15:00 to 19:00")
    assert "Mustaqillik ko'chasi, 12" in sms["998901234501"]
    assert "03.06.2026" in sms["998901234501"] and "suv" in sms["998901234501"].lower()
    assert "<b>" in sms["998901234501"]  # an SMS is plain text: shown as typed
    assert [m["chat_id"] for m in tg] == ["5551001"]
    det = (
        await client.get(f"/api/v1/assets/outages/{out['outage']}", headers=h(village, Role.VIEWER))
    ).json()
    assert det["accounts"] == 6 and det["critical"] >= 1
    assert det["account_list"][0]["critical"] == "school"
    counts = {(n["channel"], n["status"]): n["n"] for n in det["notices"]}
    # Rahimov and Nazarov have no phone: a letter each; the school a letter as well
    assert counts[("letter", "to_print")] == 3
    assert counts[("sms", "sent")] == 4 and counts[("telegram", "sent")] == 1
    pdf = await client.get(
        f"/api/v1/assets/outages/{out['outage']}/letters.pdf", headers=h(village, Role.VIEWER)
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = check_pdf(
        pdf.content,
        tmp_path,
        ["Yangiobod suv <ta'minoti>", "replacing the valve V-104a <b>", "Мустақиллик"],
        margin_pt=50,
        name="letters",
    )
    assert text.count("\f") >= 3  # a page per letter
    assert numbers["Rahimov Bekzod"]


async def test_valve_state_marks_a_valve_and_the_next_isolation_goes_round_it(
    client: httpx.AsyncClient, village: tuple[str, dict[str, str], dict[Role, User]]
) -> None:
    r = await client.post(
        "/api/v1/assets/V-124a/valve-state",
        json={"operable": False, "note": "spindle broken"},
        headers=h(village, Role.DISPATCHER),
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/assets/V-124a/valve-state",
        json={"operable": False, "note": "spindle broken"},
        headers=h(village, Role.TECHNICIAN),
    )
    assert r.status_code == 200, r.text
    a = (
        await client.get(
            "/api/v1/assets/isolation", params={"pipe": "P-124", "at": 0.5},
            headers=h(village, Role.VIEWER),
        )
    ).json()  # fmt: skip
    assert "V-124a" in a["skipped"] and "V-124a" not in a["close"]
    r = await client.post(
        "/api/v1/assets/V-124a/valve-state", json={"operable": True, "note": "repaired"},
        headers=h(village, Role.TECHNICIAN),
    )  # fmt: skip
    a = (
        await client.get(
            "/api/v1/assets/isolation", params={"pipe": "P-124", "at": 0.5},
            headers=h(village, Role.VIEWER),
        )
    ).json()  # fmt: skip
    assert a["close"] == ["V-124a", "V-126b"]
    r = await client.post(
        "/api/v1/assets/P-124/valve-state", json={"operable": False},
        headers=h(village, Role.TECHNICIAN),
    )  # fmt: skip
    assert r.status_code == 422
