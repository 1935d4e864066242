"""Valve isolation and the renewal ranking on the back-office map, in headless Chromium
(Playwright driving /usr/bin/chromium) against the app on a real uvicorn, on the demo
village with its subscribers (tests/assets/village.py).

The alarm page's "Isolate" button on a burst alarm opens the map with that alarm's isolation:
the pipes without water and the valves drawn, the valves to close and the subscribers listed
(critical customers first); a pipe's card isolates that pipe; the renewal layer draws the
ranked pipes. In Uzbek (Latin and Cyrillic) and Russian, with no English word on the panels
and no refusal by the page's Content-Security-Policy. Screenshots go to $SUVNET_SCREENSHOTS
(else the test's tmp folder)."""

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
from api.i18n import gettext_for
from api.routes import alarms as alarm_routes
from api.security import Role
from api.web import staff_alarms
from assets import isolation_queries
from tests.api.conftest import PASSWORD, Clock, LiveServer, User, api_settings, insert_user
from tests.api.cspwatch import CspWatch
from tests.assets.conftest import NOW
from tests.assets.village import build_village
from tests.test_i18n_complete import ENGLISH

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def village(db_url: str) -> tuple[str, int, User]:
    """The village, a school flagged critical, and an open burst alarm on DMA-S."""
    numbers = build_village(db_url)
    with psycopg.connect(db_url) as conn:
        user = insert_user(conn, "iso_dispatcher", Role.DISPATCHER)
        acc = conn.execute(
            "SELECT id FROM accounts WHERE number = %s", (numbers["Qodirova Nigora"],)
        ).fetchone()
        assert acc is not None
        conn.execute(
            "INSERT INTO critical_customers (account_id, kind, note, updated_by, updated_at) "
            "VALUES (%s, 'home_dialysis', '', 'test', %s)",
            (acc[0], NOW),
        )
        zone = conn.execute("SELECT id FROM zones WHERE code = 'DMA-S'").fetchone()
        assert zone is not None
        rule = conn.execute(
            "INSERT INTO alarm_rules (code, name, kind, zone_id, priority) "
            "VALUES ('burst-s', '', 'burst', %s, 'urgent') RETURNING id",
            (zone[0],),
        ).fetchone()
        assert rule is not None
        alarm = conn.execute(
            "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, zone_id, state, "
            "raised_at, message) VALUES (%s, 'DMA-S', 'burst', 'urgent', 1, %s, 'unack', %s, '') "
            "RETURNING id",
            (rule[0], zone[0], NOW - timedelta(minutes=40)),
        ).fetchone()
        assert alarm is not None
        conn.commit()
    return db_url, int(alarm[0]), user


@pytest.fixture(scope="module")
def server(village: tuple[str, int, User]) -> Iterator[LiveServer]:
    isolation_queries.forget_graphs()
    app = create_app(api_settings(village[0]), clock=Clock(NOW))
    paths = {getattr(r, "path", "") for r in app.router.routes}
    if "/staff/alarms" not in paths:
        app.include_router(staff_alarms.router)
    if "/api/v1/alarms" not in paths:
        app.include_router(alarm_routes.router)
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


def staff_sign_in(page: Any, url: str, username: str, lang: str) -> None:
    """Sign in on the staff login page, in ``lang``, and wait for the staff area."""
    page.goto(f"{url}/staff/login?lang={lang}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/staff/"))


def english(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z]+", text) if w.lower() in ENGLISH}


@pytest.mark.parametrize("lang", ["uz", "uz_Cyrl", "ru"])
def test_isolate_from_the_alarm_and_on_the_map(
    server: LiveServer,
    village: tuple[str, int, User],
    browser: Any,
    lang: str,
    tmp_path: Path,
) -> None:
    _, alarm, user = village
    tr = gettext_for(lang)
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale="ru-RU")
    page = ctx.new_page()
    watch = CspWatch(page)
    staff_sign_in(page, server.url, user.username, lang)
    # the alarm page: the burst alarm has the button, in the page's language
    page.goto(f"{server.url}/staff/alarms?lang={lang}")
    button = page.locator(f'tr[data-alarm="{alarm}"] a.isolate')
    expect(button).to_have_text(tr.gettext("Isolate"))
    button.click()
    page.wait_for_url(re.compile(rf"/staff/map\?isolate_alarm={alarm}$"))
    m = page.locator("#map")
    expect(m).to_have_attribute("data-isolation", re.compile(r"^\d+:[1-9]\d*$"), timeout=15000)
    panel = page.locator("#map-isolation")
    expect(panel).to_contain_text(tr.gettext("Valves to close"))
    expect(panel).to_contain_text(tr.gettext("Subscribers without water"))
    rows = page.locator("#map-iso-accounts tbody tr")
    assert rows.count() >= 3  # the accounts of DMA-S
    # the critical customer comes first, with its kind in the page's language
    expect(rows.first).to_have_class(re.compile(r"\bcritical\b"))
    expect(rows.first).to_contain_text("Qodirova Nigora")
    expect(rows.first).to_contain_text(tr.gettext("home dialysis"))
    street = {"uz": "Bog'bon ko'chasi", "uz_Cyrl": "Боғбон кўчаси", "ru": "Bog'bon ko'chasi"}[lang]
    expect(rows.first).to_contain_text(f"{street}, 3")
    # drawn on the map: the pipes without water and the valves to close (SVG with classes)
    assert page.locator("path.map-iso-pipe").count() >= 1
    assert page.locator("path.map-iso-close").count() >= 1
    page.screenshot(path=str(shots(tmp_path) / f"isolation-alarm-{lang}.png"), full_page=True)
    text = panel.inner_text()
    # a pipe's card isolates that pipe: what the API answers for it, on the map
    want = page.request.get(f"{server.url}/api/v1/assets/isolation?pipe=P-122").json()
    assert want["close"] and want["counts"]["accounts"] >= 1
    page.evaluate("window.suvnetMap.openCard('P-122')")
    expect(m).to_have_attribute("data-card", "P-122", timeout=10000)
    page.locator("#map-card button.map-isolate").click()
    expect(m).to_have_attribute(
        "data-isolation", f"{len(want['close'])}:{want['counts']['accounts']}", timeout=15000
    )
    expect(page.locator("#map-isolation .map-iso-close li")).to_have_text(want["close"])
    names = page.locator("#map-iso-accounts tbody tr td:nth-child(2)").all_inner_texts()
    assert [n.split("\n")[0] for n in names] == [a["name"] for a in want["accounts"]]
    text += panel.inner_text()
    # the renewal ranking as a layer and a list, with the workbook's link
    page.locator("#map-renewal-box").check()
    expect(m).to_have_attribute("data-renewal", re.compile(r"^[1-9]\d*$"), timeout=15000)
    assert page.locator("path.map-renewal-pipe").count() >= 1
    renewal = page.locator("#map-renewal")
    expect(renewal.locator("li").first).to_contain_text(tr.gettext("Score"))
    href = renewal.locator("a.btn").get_attribute("href") or ""
    assert href.endswith(f"renewal.xlsx?lang={lang}")
    text += renewal.inner_text()
    page.screenshot(path=str(shots(tmp_path) / f"isolation-pipe-renewal-{lang}.png"))
    assert english(text) == set(), text
    watch.assert_clean(f"isolation map {lang}")
    ctx.close()
