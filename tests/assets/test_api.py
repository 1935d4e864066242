"""The register's JSON API and pages, in-process, in both spatial modes: the map by bounding
box, the asset card with its history, optimistic locking (409), documents, the map page's
policy and words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import shapely

from api.app import create_app
from api.routes import assets as asset_routes
from api.security import Role
from api.web import staff_map
from api.web.common import PAGE_CSP
from assets.model import Asset
from assets.store import save_assets
from tests.api.conftest import PASSWORD, Clock, User, api_settings, bearer, insert_user
from tests.assets.conftest import NOW, actor


def grid(n: int, lon0: float = 71.60, lat0: float = 40.46) -> list[Asset]:
    """n x n pipes of 50 m on a grid, diameters growing with the index."""
    step = 0.0006
    out = []
    for i in range(n):
        for j in range(n):
            x, y = lon0 + i * step, lat0 + j * step
            out.append(
                Asset(
                    f"G{i}-{j}",
                    "pipe",
                    shapely.LineString([(x, y), (x + step, y)]),
                    diameter_mm=float(50 + i * n + j),
                    material="PE100",
                    install_year=2000 + j,
                )
            )
    return out


@pytest.fixture(scope="module")
def api_db(any_db_url: str) -> tuple[str, dict[Role, User]]:
    with psycopg.connect(any_db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM assets")
        conn.execute("DELETE FROM api_users WHERE username LIKE 'ua_%'")
        users = {r: insert_user(conn, f"ua_{r.value}", r) for r in (Role.ADMIN, Role.VIEWER)}
    with psycopg.connect(any_db_url) as conn:
        save_assets(
            conn, [*grid(10), Asset("V-1", "valve", shapely.Point(71.6001, 40.4601))], actor()
        )
        conn.commit()
    return any_db_url, users


@pytest.fixture
async def client(api_db: tuple[str, dict[Role, User]]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings(api_db[0]), clock=Clock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def user(api_db: tuple[str, dict[Role, User]], role: Role) -> dict[str, str]:
    return bearer(api_db[1][role])


async def test_map_by_bounding_box(
    client: httpx.AsyncClient, api_db: tuple[str, dict[Role, User]]
) -> None:
    h = user(api_db, Role.VIEWER)
    # a box around the first column of the grid only
    r = await client.get(
        "/api/v1/assets/map", params={"bbox": "71.5995,40.4595,71.6003,40.468"}, headers=h
    )
    assert r.status_code == 200, r.text
    fc = r.json()
    codes = {f["id"] for f in fc["features"]}
    assert codes == {f"G0-{j}" for j in range(10)} | {"V-1"}
    assert fc["truncated"] is False
    pipe = next(f for f in fc["features"] if f["id"] == "G0-3")
    assert pipe["geometry"]["type"] == "LineString"
    assert pipe["properties"]["diameter_mm"] == 53 and pipe["properties"]["install_year"] == 2003
    # the widest first, at most `limit`, and it says so
    r = await client.get(
        "/api/v1/assets/map",
        params={"bbox": "71.5,40.4,71.7,40.5", "limit": 5, "layers": "water"},
        headers=h,
    )
    fc = r.json()
    assert [f["id"] for f in fc["features"]] == ["G9-9", "G9-8", "G9-7", "G9-6", "G9-5"]
    assert fc["truncated"] is True
    # nothing outside, bad boxes refused
    r = await client.get("/api/v1/assets/map", params={"bbox": "60,30,60.1,30.1"}, headers=h)
    assert r.json()["features"] == []
    for bad in ("1,2,3", "71.7,40.4,71.5,40.5", "a,b,c,d"):
        r = await client.get("/api/v1/assets/map", params={"bbox": bad}, headers=h)
        assert r.status_code == 422, bad
    r = await client.get(
        "/api/v1/assets/map", params={"bbox": "71.5,40.4,71.7,40.5", "layers": "gas"}, headers=h
    )
    assert r.status_code == 422 and "unknown layer" in r.text
    assert (await client.get("/api/v1/assets/map", params={"bbox": "1,1,2,2"})).status_code == 401


async def test_card_change_conflict_and_history(
    client: httpx.AsyncClient, api_db: tuple[str, dict[Role, User]]
) -> None:
    admin, viewer = user(api_db, Role.ADMIN), user(api_db, Role.VIEWER)
    card = (await client.get("/api/v1/assets/G1-1", headers=viewer)).json()
    v = card["version"]
    assert card["geometry"]["type"] == "LineString" and card["history"][0]["op"] == "insert"
    r = await client.patch(
        "/api/v1/assets/G1-1", json={"version": v, "material": "steel"}, headers=viewer
    )
    assert r.status_code == 403
    r = await client.patch(
        "/api/v1/assets/G1-1", json={"version": v, "material": "steel"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == v + 1
    # a second editor who read the same version gets a conflict; the first change stays
    r = await client.patch(
        "/api/v1/assets/G1-1", json={"version": v, "diameter_mm": 400}, headers=admin
    )
    assert r.status_code == 409 and f"since version {v}" in r.json()["detail"]
    card = (await client.get("/api/v1/assets/G1-1", headers=viewer)).json()
    assert card["material"] == "steel" and card["diameter_mm"] == 61
    top = card["history"][0]
    assert (top["changed_by"], top["source"], top["changes"]) == (
        "ua_admin",
        "api",
        {"material": ["PE100", "steel"]},
    )
    # bad values are refused with the field named
    r = await client.patch(
        "/api/v1/assets/G1-1", json={"version": v + 1, "status": "broken"}, headers=admin
    )
    assert r.status_code == 422 and "field 'status'" in r.json()["detail"]
    r = await client.patch("/api/v1/assets/NOPE", json={"version": 1}, headers=admin)
    assert r.status_code == 404


async def test_documents(client: httpx.AsyncClient, api_db: tuple[str, dict[Role, User]]) -> None:
    admin = user(api_db, Role.ADMIN)
    r = await client.post(
        "/api/v1/assets/V-1/documents",
        headers=admin,
        files={"file": ("valve <1>.jpg", b"\xff\xd8jpeg", "image/jpeg")},
        data={"note": "after repair"},
    )
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    card = (await client.get("/api/v1/assets/V-1", headers=admin)).json()
    assert card["documents"][0]["kind"] == "photo"
    assert card["documents"][0]["filename"] == "valve <1>.jpg"
    r = await client.get(f"/api/v1/assets/documents/{doc}", headers=admin)
    assert r.content == b"\xff\xd8jpeg"
    assert r.headers["content-disposition"] == 'attachment; filename="valve__1_.jpg"'
    assert "sandbox" in r.headers["content-security-policy"]


async def login(client: httpx.AsyncClient, username: str) -> None:
    page = await client.get("/staff/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = await client.post(
        "/staff/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert r.status_code == 303, r.text


async def test_map_and_card_pages(
    client: httpx.AsyncClient, api_db: tuple[str, dict[Role, User]]
) -> None:
    from tests.api.inline_markup import inline_code

    await login(client, "ua_viewer")
    r = await client.get("/staff/map?lang=ru")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == PAGE_CSP
    assert inline_code(r.text) == []
    assert "Карта сети" in r.text and "leaflet.js" in r.text and "map.js" in r.text
    assert "//unpkg" not in r.text and "cdn" not in r.text.lower()
    r = await client.get("/staff/assets/G1-1")
    assert r.status_code == 200 and inline_code(r.text) == []
    assert "G1-1" in r.text and "История" in r.text


def test_map_csp_allows_only_the_configured_tiles() -> None:
    from assets.settings import MapSettings

    assert staff_map.map_csp(None) == PAGE_CSP
    s = MapSettings(map_tile_url="https://{s}.tiles.office.lan/{z}/{x}/{y}.png")
    csp = staff_map.map_csp(s.tile_origin)
    assert "img-src 'self' data: https://*.tiles.office.lan;" in csp
    assert "script-src 'self';" in csp
    with pytest.raises(ValueError, match=r"\{z\}"):
        MapSettings(map_tile_url="https://tiles.office.lan/tile.png")


@pytest.mark.parametrize("unused", [None])
def test_layout_rules_hold(unused: Any) -> None:
    """The new modules keep api/'s rules: no SQL in the route or the page."""
    import ast
    from pathlib import Path

    from tests.api.test_layout import SQL

    for p in (Path(asset_routes.__file__), Path(staff_map.__file__)):
        consts = [
            n.value
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        assert not [c for c in consts if SQL.search(c)], p
