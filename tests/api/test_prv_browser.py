"""The PRV pages in headless Chromium (the policy enforced) against the app on a real uvicorn:
nothing is refused by the Content-Security-Policy, no script error, the style sheet lays them
out, and the hand/auto switch (a plain form, no script) works."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.security import Role
from tests.api.conftest import NOW, PASSWORD, Clock, LiveServer, User, api_settings
from tests.api.cspwatch import CspWatch
from tests.api.test_csp_browser import CHROMIUM, browser, open_page  # noqa: F401 - fixture
from tests.api.test_prv_api import village  # noqa: F401 - the module's site fixture
from tests.api.test_prv_pages import with_prv_pages

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def server(
    db_url: str,
    users: dict[Role, User],
    village: None,  # noqa: F811
) -> Iterator[LiveServer]:
    app = with_prv_pages(create_app(api_settings(db_url, "mqtt://127.0.0.1:1"), clock=Clock(NOW)))
    with LiveServer(app) as srv:
        yield srv


def test_the_prv_pages_run_clean_and_switch_to_hand(
    browser: Any,  # noqa: F811
    server: LiveServer,
    users: dict[Role, User],
    db_url: str,
) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    open_page(page, server.url + "/staff/login?lang=en")
    page.fill("#username", users[Role.ADMIN].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/staff/$"))
    open_page(page, server.url + "/staff/prv")
    page.click("#prvs a[href='/staff/prv/prv-1-ctl']")
    page.wait_for_url(re.compile(r"/staff/prv/prv-1-ctl$"))
    open_page(page, server.url + "/staff/prv/prv-1-ctl?lang=en")
    assert page.locator("#live-cp").inner_text() == "2.21 bar"
    assert page.locator("#mode").inner_text() == "Critical point"
    # the style sheet: the form's fields are full width, the buttons blue
    button = page.locator("#to-hand")
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(11, 93, 143)"
    watch.assert_clean("the PRV page")
    button.click()  # a form post; no broker answers here: the page says so
    page.wait_for_url(re.compile(r"/staff/prv/prv-1-ctl\?"))
    status = page.locator("#status").inner_text()
    assert "Sent to the gateway: could not be sent" in status, status
    assert "MQTT broker is not reachable" in status
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT config->>'auto' FROM prv_controls").fetchone()
    assert row == ("false",)  # stored before the sending failed
    open_page(page, server.url + "/staff/prv/prv-1-ctl?lang=en")
    assert page.locator("#auto").inner_text() == "hand"
    assert page.locator("#to-auto").count() == 1
    watch.assert_clean("after the switch")
    ctx.close()
