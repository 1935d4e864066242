"""Registry, readings and device state endpoints against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import psycopg.types.json
import pytest

from api.security import Role
from tests.api.conftest import User, bearer

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry(db_url: str) -> dict[str, Any]:
    """Two zones, a small network, a gateway with a PRV controller and two sensors, one
    point with raw readings and rollups."""
    with psycopg.connect(db_url, autocommit=True) as c:
        z1 = c.execute(
            "INSERT INTO zones (code, name, kind, geometry) VALUES ('DMA-1', 'Markaz', 'dma', "
            '\'{"type":"Polygon","coordinates":[[[66.0,39.0],[66.1,39.0],[66.1,39.1],'
            "[66.0,39.0]]]}') RETURNING id"
        ).fetchone()
        z2 = c.execute(
            "INSERT INTO zones (code, name, kind) VALUES ('PZ-2', 'Tepa', 'pressure_zone') "
            "RETURNING id"
        ).fetchone()
        assert z1 and z2
        n1 = c.execute(
            "INSERT INTO nodes (code, kind, zone_id, x, y) VALUES "
            "('J1', 'junction', %s, 66.01, 39.01) RETURNING id",
            (z1[0],),
        ).fetchone()
        n2 = c.execute(
            "INSERT INTO nodes (code, kind, zone_id, x, y) VALUES "
            "('J2', 'junction', %s, 66.02, 39.02) RETURNING id",
            (z1[0],),
        ).fetchone()
        n3 = c.execute(
            "INSERT INTO nodes (code, kind, zone_id, x, y) VALUES "
            "('J3', 'junction', %s, 66.5, 39.5) RETURNING id",
            (z2[0],),
        ).fetchone()
        assert n1 and n2 and n3
        c.execute(
            "INSERT INTO pipes (code, from_node_id, to_node_id, diameter_mm, length_m) VALUES "
            "('P1', %s, %s, 110, 150), ('P2', %s, %s, 90, 80)",
            (n1[0], n2[0], n3[0], n3[0]),
        )
        gw = c.execute(
            "INSERT INTO gateways (code, name, zone_id) VALUES ('gw-a', 'Markaz', %s) RETURNING id",
            (z1[0],),
        ).fetchone()
        gw2 = c.execute(
            "INSERT INTO gateways (code, name, zone_id) VALUES ('gw-b', 'Tepa', %s) RETURNING id",
            (z2[0],),
        ).fetchone()
        assert gw and gw2
        c.execute(
            "INSERT INTO gateway_state (gateway_id, state, since) VALUES (%s, 'online', %s), "
            "(%s, 'offline', %s)",
            (gw[0], T0, gw2[0], T0),
        )
        devs = {}
        for code, kind, g in (
            ("prv-1", "prv_controller", gw[0]),
            ("ps-1", "pressure_sensor", gw[0]),
            ("ps-2", "pressure_sensor", gw2[0]),
        ):
            row = c.execute(
                "INSERT INTO devices (code, gateway_id, kind, profile, zone_id) "
                "VALUES (%s, %s, %s, 'generic', %s) RETURNING id",
                (code, g, kind, z1[0] if g == gw[0] else z2[0]),
            ).fetchone()
            assert row
            devs[code] = row[0]
        c.execute(
            "INSERT INTO device_state (device_id, state, since, last_error) VALUES "
            "(%s, 'offline', %s, 'timeout')",
            (devs["ps-2"], T0),
        )
        c.execute(
            "INSERT INTO device_state_history (device_id, ts, state, reason) VALUES "
            "(%s, %s, 'online', ''), (%s, %s, 'offline', 'timeout')",
            (devs["ps-2"], T0 - timedelta(hours=2), devs["ps-2"], T0),
        )
        pt = c.execute(
            "INSERT INTO points (device_id, name, unit, kind) VALUES (%s, 'pressure', 'bar', "
            "'analog') RETURNING id",
            (devs["ps-1"],),
        ).fetchone()
        c.execute(
            "INSERT INTO points (device_id, name, unit, kind) VALUES (%s, 'outlet_sp', 'bar', "
            "'setpoint')",
            (devs["prv-1"],),
        )
        assert pt
        c.execute("SELECT suvnet_ensure_readings_partitions(%s, %s)", (T0, T0 + timedelta(days=40)))
        # raw: one reading a minute for 2 hours, value = minute index
        c.execute(
            "INSERT INTO readings (ts, point_id, value, quality) "
            "SELECT %s + make_interval(mins => i), %s, i, 0 FROM generate_series(0, 119) i",
            (T0, pt[0]),
        )
        # hourly rollups for 30 days, avg = hour index
        c.execute(
            "INSERT INTO readings_1h (point_id, bucket, min, max, sum, count, last, last_ts) "
            "SELECT %s, %s + make_interval(hours => h), h, h, h * 60.0, 60, h, "
            "%s + make_interval(hours => h) FROM generate_series(0, 719) h",
            (pt[0], T0, T0),
        )
        c.execute(
            "INSERT INTO readings_1d (point_id, bucket, min, max, sum, count, last, last_ts) "
            "SELECT %s, %s + make_interval(days => d), d, d, d * 1440.0, 1440, d, "
            "%s + make_interval(days => d) FROM generate_series(0, 29) d",
            (pt[0], T0, T0),
        )
    return {"point": pt[0], "devices": devs}


async def get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params, headers=bearer(user))
    assert r.status_code == 200, r.text
    return r.json()


async def test_zones_filter_and_paging(
    client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any]
) -> None:
    v = users[Role.VIEWER]
    all_ = await get(client, v, "/api/v1/zones")
    assert [z["code"] for z in all_["items"]] == ["DMA-1", "PZ-2"]
    assert (await get(client, v, "/api/v1/zones", kind="pressure_zone"))["total"] == 1
    page2 = await get(client, v, "/api/v1/zones", limit=1, offset=1)
    assert page2["total"] == 2 and [z["code"] for z in page2["items"]] == ["PZ-2"]
    assert (await get(client, v, "/api/v1/zones", q="mark"))["items"][0]["code"] == "DMA-1"


async def test_network_geojson(
    client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any]
) -> None:
    v = users[Role.DISPATCHER]
    doc = await get(client, v, "/api/v1/network.geojson", zone="DMA-1")
    assert doc["type"] == "FeatureCollection"
    layers = sorted((f["properties"]["layer"], f["properties"]["code"]) for f in doc["features"])
    assert layers == [("node", "J1"), ("node", "J2"), ("pipe", "P1"), ("zone", "DMA-1")]
    pipe = next(f for f in doc["features"] if f["properties"]["code"] == "P1")
    assert pipe["geometry"] == {
        "type": "LineString",
        "coordinates": [[66.01, 39.01], [66.02, 39.02]],
    }
    only_nodes = await get(client, v, "/api/v1/network.geojson", layers="nodes")
    assert {f["properties"]["code"] for f in only_nodes["features"]} == {"J1", "J2", "J3"}
    r = await client.get("/api/v1/network.geojson", params={"zone": "nope"}, headers=bearer(v))
    assert r.status_code == 404


async def test_network_geojson_whole_network_from_the_registry(
    client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any], db_url: str
) -> None:
    """Without a filter the map comes from the same registry tables as with one (one
    implementation, on the API's pool): every node with coordinates and every link, also those
    that belong to no imported network; a pump is a layer of its own and draws its own line."""
    v = users[Role.VIEWER]
    doc = await get(client, v, "/api/v1/network.geojson")
    layers = sorted((f["properties"]["layer"], f["properties"]["code"]) for f in doc["features"])
    assert layers == [
        ("node", "J1"),
        ("node", "J2"),
        ("node", "J3"),
        ("pipe", "P1"),
        ("pipe", "P2"),
        ("zone", "DMA-1"),
    ]
    line = {"type": "LineString", "coordinates": [[66.01, 39.01], [66.015, 39.0], [66.02, 39.02]]}
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO pumps (code, from_node_id, to_node_id, kind, power_kw, geometry) "
            "SELECT 'U1', a.id, b.id, 'power', 7.5, %s FROM nodes a, nodes b "
            "WHERE a.code = 'J1' AND b.code = 'J2'",
            (psycopg.types.json.Jsonb(line),),
        )
    try:
        pumps = await get(client, v, "/api/v1/network.geojson", zone="DMA-1", layers="pumps")
        assert [(f["properties"], f["geometry"]) for f in pumps["features"]] == [
            (
                {"layer": "pump", "code": "U1", "kind": "power", "power_kw": 7.5, "status": "open"},
                line,
            )
        ]
        elsewhere = await get(client, v, "/api/v1/network.geojson", zone="PZ-2", layers="pumps")
        assert elsewhere["features"] == []
    finally:
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute("DELETE FROM pumps WHERE code = 'U1'")


async def test_gateways_and_devices_filters(
    client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any]
) -> None:
    v = users[Role.VIEWER]
    offline = await get(client, v, "/api/v1/gateways", state="offline")
    assert [g["code"] for g in offline["items"]] == ["gw-b"]
    devs = await get(client, v, "/api/v1/devices", gateway="gw-a")
    assert [d["code"] for d in devs["items"]] == ["prv-1", "ps-1"]
    assert all(d["state"] == "unknown" for d in devs["items"])
    assert (await get(client, v, "/api/v1/devices", kind="prv_controller"))["total"] == 1
    st = await get(client, v, "/api/v1/device-state", state="offline")
    assert [(d["device"], d["last_error"]) for d in st["items"]] == [("ps-2", "timeout")]
    hist = await get(client, v, "/api/v1/devices/ps-2/state-history")
    assert [h["state"] for h in hist["items"]] == ["offline", "online"]
    pts = await get(client, v, "/api/v1/points", device="prv-1")
    assert [(p["name"], p["kind"]) for p in pts["items"]] == [("outlet_sp", "setpoint")]
    r = await client.get("/api/v1/devices/nope", headers=bearer(v))
    assert r.status_code == 404


async def test_readings_raw_and_rollups(
    client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any]
) -> None:
    v = users[Role.VIEWER]
    pid = registry["point"]
    url = f"/api/v1/points/{pid}/readings"
    raw = await get(
        client, v, url, **{"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
    )
    assert raw["resolution"] == "raw"
    assert [r["value"] for r in raw["items"]] == [float(i) for i in range(60)]
    month = await get(
        client, v, url, **{"from": T0.isoformat(), "to": (T0 + timedelta(days=30)).isoformat()}
    )
    assert month["resolution"] == "1h"
    assert len(month["items"]) == 720
    assert month["items"][5]["avg"] == 5.0 and month["items"][5]["count"] == 60
    year = await get(
        client, v, url, **{"from": T0.isoformat(), "to": (T0 + timedelta(days=365)).isoformat()}
    )
    assert year["resolution"] == "1d" and len(year["items"]) == 30
    paged = await get(
        client,
        v,
        url,
        **{
            "from": T0.isoformat(),
            "to": (T0 + timedelta(days=30)).isoformat(),
            "limit": 10,
            "offset": 700,
        },
    )
    assert [r["avg"] for r in paged["items"]] == [float(h) for h in range(700, 710)]
    # bad ranges are clear 422s
    bad = await client.get(
        url, params={"from": T0.isoformat(), "to": T0.isoformat()}, headers=bearer(v)
    )
    assert bad.status_code == 422 and "later" in bad.json()["detail"]
    naive = await client.get(
        url,
        params={"from": "2026-10-01T00:00:00", "to": "2026-10-02T00:00:00"},
        headers=bearer(v),
    )
    assert naive.status_code == 422
    missing = await client.get(
        "/api/v1/points/999999/readings",
        params={"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()},
        headers=bearer(v),
    )
    assert missing.status_code == 404


async def test_gateway_write_is_audited(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User], registry: dict[str, Any]
) -> None:
    tech = bearer(users[Role.TECHNICIAN])
    r = await client.post(
        "/api/v1/gateways", json={"code": "gw-new", "name": "Yangi", "zone": "PZ-2"}, headers=tech
    )
    assert r.status_code == 201, r.text
    assert r.json()["zone"] == "PZ-2"
    bad_zone = await client.post(
        "/api/v1/gateways", json={"code": "gw-x", "zone": "NOPE"}, headers=tech
    )
    assert bad_zone.status_code == 422
    bad_code = await client.post("/api/v1/gateways", json={"code": "has space"}, headers=tech)
    assert bad_code.status_code == 422
    r = await client.patch("/api/v1/gateways/gw-new", json={"allowed": False}, headers=tech)
    assert r.json()["allowed"] is False
    r = await client.post(
        "/api/v1/devices",
        json={"code": "ps-9", "gateway": "gw-new", "kind": "pressure_sensor", "profile": "x"},
        headers=tech,
    )
    assert r.status_code == 201
    with psycopg.connect(db_url) as c:
        rows = c.execute(
            "SELECT action, entity, entity_id, before->>'allowed', after->>'allowed', actor "
            "FROM audit_log WHERE entity IN ('gateway', 'device') ORDER BY id"
        ).fetchall()
    assert rows == [
        ("create", "gateway", "gw-new", None, "true", "u_technician"),
        ("update", "gateway", "gw-new", "true", "false", "u_technician"),
        ("create", "device", "ps-9", None, None, "u_technician"),
    ]
