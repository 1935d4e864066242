"""The network map in headless Chromium (Playwright driving /usr/bin/chromium) against the
app on a real uvicorn, on the demo village's register: the layers load by bounding box, the
zone with the open leak alarm is drawn as an alarm, a sensor shows its latest value, search
opens an asset's card with its history, and the policy refuses nothing. Screenshots at
desktop and phone widths are written to $SUVNET_SCREENSHOTS (else the test's tmp folder)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from api.app import create_app
from api.security import Role
from assets.demo import seed_register
from suvnet.site import apply_site_file
from tests.api.conftest import PASSWORD, Clock, LiveServer, api_settings, insert_user
from tests.api.cspwatch import CspWatch
from tests.assets.conftest import NOW
from tests.assets.test_checks import SITE

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZES = {"desktop": (1366, 820), "phone": (390, 844)}


@pytest.fixture(scope="module")
def village(db_url: str) -> str:
    """The demo village: site file, register, a reading and an open leak alarm on DMA-N."""
    apply_site_file(db_url, SITE)
    with psycopg.connect(db_url) as conn:
        seed_register(conn, now=NOW)
        insert_user(conn, "map_viewer", Role.VIEWER)
        zone = conn.execute("SELECT id FROM zones WHERE code = 'DMA-N'").fetchone()
        assert zone is not None
        rule = conn.execute(
            "INSERT INTO alarm_rules (code, name, kind, zone_id, priority) "
            "VALUES ('leak-n', 'DMA-N night flow', 'mnf', %s, 'high') RETURNING id",
            (zone[0],),
        ).fetchone()
        assert rule is not None
        conn.execute(
            "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, zone_id, state, "
            "raised_at, message) VALUES (%s, 'DMA-N', 'mnf', 'high', 1, %s, 'unack', %s, "
            "'night flow 2.4 m3/h above the usual')",
            (rule[0], zone[0], NOW - timedelta(hours=3)),
        )
        point = conn.execute(
            "SELECT p.id FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.kind = 'pressure_sensor' AND p.kind = 'analog' ORDER BY d.code, p.name "
            "LIMIT 1"
        ).fetchone()
        if point is not None:
            conn.execute(
                "INSERT INTO readings (ts, point_id, value, quality) VALUES (%s, %s, 3.21, 0)",
                (NOW - timedelta(minutes=5), point[0]),
            )
        conn.commit()
    return db_url


@pytest.fixture(scope="module")
def server(village: str) -> Iterator[LiveServer]:
    app = create_app(api_settings(village), clock=Clock(NOW))
    with LiveServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SUVNET_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_map_in_chromium(server: LiveServer, browser: Any, size: str, tmp_path: Path) -> None:
    w, h = SIZES[size]
    ctx = browser.new_context(viewport={"width": w, "height": h}, locale="ru-RU")
    page = ctx.new_page()
    watch = CspWatch(page)
    page.goto(f"{server.url}/staff/login?lang=ru")
    page.fill("#username", "map_viewer")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server.url}/staff/map")
    m = page.locator("#map")
    expect(m).to_have_attribute("data-loaded", re.compile(r"^[1-9]\d*$"), timeout=15000)
    expect(m).to_have_attribute("data-zones", re.compile(r"^[1-9]"), timeout=15000)
    expect(m).to_have_attribute("data-alarms", "1", timeout=15000)
    # the zone with the open leak alarm is drawn as an alarm (SVG path with its class)
    expect(page.locator("path.map-zone-alarm")).to_have_count(1)
    expect(page.locator("path.map-alarm-zone")).to_have_count(1)
    loaded = int(m.get_attribute("data-loaded") or 0)
    assert loaded >= 60  # water, sewer and the works of the village
    assert "показано" in page.locator("#map-status").inner_text()
    sensors = int(m.get_attribute("data-sensors") or 0)
    assert sensors >= 1
    # the sensors carry their latest value (shown in their tooltip)
    latest = page.request.get(f"{server.url}/api/v1/assets/map/sensors").json()
    values = [v["value"] for f in latest["features"] for v in f["properties"]["latest"]]
    assert 3.21 in values
    page.locator("path.map-sensor").first.hover(force=True)
    page.screenshot(path=str(shots(tmp_path) / f"map-{size}.png"), full_page=True)
    # search an asset and open its card: fields and history
    page.fill("#map-q", "P-101")
    page.click("#map-search button[type=submit]")
    page.locator("#map-found button").first.click()
    expect(m).to_have_attribute("data-card", "P-101", timeout=10000)
    card = page.locator("#map-card")
    expect(card).to_contain_text("История")
    expect(card.locator(".map-history li").first).to_contain_text("condition_grade")
    page.locator("#map-style").select_option("age")
    page.screenshot(path=str(shots(tmp_path) / f"map-{size}-card.png"), full_page=True)
    page.goto(f"{server.url}/staff/assets/P-101")
    expect(page.locator("#asset-history tbody tr")).to_have_count(2)
    page.screenshot(path=str(shots(tmp_path) / f"asset-card-{size}.png"), full_page=True)
    watch.assert_clean(f"map {size}")
    ctx.close()
