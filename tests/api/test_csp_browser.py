"""The pages in headless Chromium (Playwright driving /usr/bin/chromium, the policy enforced)
against the app on a real uvicorn: nothing is refused by the Content-Security-Policy, no script
error, and what moved out of the pages into api/static still works: the cabinet's balance
refreshes itself (cabinet.js), and the style sheet (suvnet.css) lays the pages out, the
consumption chart included. A first test shows the watcher does see a refused inline script."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from api.app import create_app
from api.security import Role
from api.web.common import PAGE_CSP
from billing.ledger import post_payment
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    LiveServer,
    User,
    add_invoice_and_charge,
    api_settings,
    insert_user,
    make_account,
)
from tests.api.cspwatch import CspWatch

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HEADER_BLUE = "rgb(11, 93, 143)"  # suvnet.css: header{background:#0b5d8f}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(db_url: str, users: dict[Role, User]) -> Iterator[LiveServer]:
    """The app on a real uvicorn with the tests' fixed clock (tokens are dated by it)."""
    with LiveServer(create_app(api_settings(db_url), clock=Clock(NOW))) as srv:
        yield srv


@pytest.fixture(scope="module")
def customer(db_url: str) -> dict[str, Any]:
    """A customer who owes 150 000,00 so'm, with 8 and 10 m³ billed in two months."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 778, name="Rahimova Dilfuza", street="Mustaqillik")
        add_invoice_and_charge(conn, aid, date(2026, 9, 1), 10_000_000, 8.0, "2026-0000011")
        add_invoice_and_charge(conn, aid, date(2026, 10, 1), 12_500_000, 10.0, "2026-0000012")
        post_payment(
            conn,
            amount_tiyin=7_500_000,
            paid_at=datetime(2026, 10, 20, tzinfo=UTC),
            source="payme",
            external_ref="pm-csp-1",
            account_id=aid,
        )
        user = insert_user(conn, number, Role.CUSTOMER, account_no=number)
        conn.commit()
    return {"id": aid, "number": number, "user": user}


def open_page(page: Any, url: str) -> None:
    """Go to a page and check it came with the policy (Playwright does not bypass it)."""
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, url
    assert resp.headers["content-security-policy"] == PAGE_CSP, url
    assert page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor") == (
        HEADER_BLUE
    ), f"{url}: the style sheet did not apply"


def test_the_watch_sees_what_the_policy_refuses(browser: Any, server: LiveServer) -> None:
    """A page of this site with the policy and inline code: Chromium runs none of it and the
    watch reports each refusal, so a clean watch below means something."""
    probe = (
        "<!doctype html><title>probe</title><style>p{color:red}</style>"
        "<script>document.title = 'ran'</script>"
        '<p id="styled" style="color:red">x</p>'
        '<button id="b" onclick="document.title = \'clicked\'">b</button>'
    )
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    page.route(
        server.url + "/csp-probe",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP},
            body=probe,
        ),
    )
    page.goto(server.url + "/csp-probe")
    page.click("#b")
    assert page.title() == "probe"  # neither the inline script nor the handler ran
    assert page.locator("#styled").evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    wanted = {"script-src-elem", "script-src-attr", "style-src-elem", "style-src-attr"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = {v.split()[0] for v in watch.violations}
        if wanted <= seen:
            break
        page.wait_for_timeout(50)
    assert wanted <= {v.split()[0] for v in watch.violations}, watch.violations
    assert any("Content Security Policy" in e for e in watch.errors), watch.errors
    with pytest.raises(AssertionError):
        watch.assert_clean()
    ctx.close()


def test_back_office_pages_run_clean(
    browser: Any, server: LiveServer, users: dict[Role, User], customer: dict[str, Any]
) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    open_page(page, server.url + "/staff/login?lang=en")
    page.fill("#username", users[Role.ADMIN].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/staff/$"))
    open_page(page, server.url + "/staff/?q=Rahimova")
    assert page.locator("#results tbody tr").count() == 1
    # the moved styles: the logout form floats right, the user's name is light on blue
    logout = page.locator("form[action='/staff/logout']")
    assert logout.evaluate("e => getComputedStyle(e).cssFloat") == "right"
    assert page.locator("header .who").evaluate("e => getComputedStyle(e).color") == (
        "rgb(219, 238, 250)"
    )
    for path in (
        f"/staff/accounts/{customer['number']}",
        "/staff/alarms",
        "/staff/reports",
        "/staff/payments/desk",
        "/staff/payments/statements",
    ):
        open_page(page, server.url + path)
    open_page(page, server.url + "/staff/billing")
    box = page.locator("input[name=dry_run]").bounding_box()
    assert box is not None and box["width"] < 40  # a checkbox, not a full-width box
    watch.assert_clean()
    # logging out (a plain form post) still works
    open_page(page, server.url + "/staff/")
    page.click("form[action='/staff/logout'] button")
    page.wait_for_url(re.compile(r"/staff/login$"))
    watch.assert_clean()
    ctx.close()


def test_cabinet_balance_refreshes_itself(
    browser: Any, server: LiveServer, customer: dict[str, Any], db_url: str
) -> None:
    """cabinet.js asks /cabinet/balance.json every 30 s and shows the new balance, its
    heading and its colour; the chart bars take their heights from the style sheet."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = ctx.new_page()
    watch = CspWatch(page)
    page.clock.install(time=NOW)  # the page's timers run on a clock the test moves
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "balance.json" in r.url else None)
    open_page(page, server.url + "/cabinet/activate")
    open_page(page, server.url + "/cabinet/login?lang=en")
    page.fill("#account_no", customer["number"])
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/cabinet/$"))
    open_page(page, server.url + "/cabinet/")
    amount = page.locator("#balance")
    heading = page.locator("#balance-heading")
    assert amount.inner_text() == "150\u202f000,00"
    assert heading.inner_text() == "To pay"
    assert "debt" in (page.locator("p.balance").get_attribute("class") or "")
    # the chart: 8 and 10 m³ -> 80 % and 100 % of the chart's height
    bars = page.locator(".chart div")
    assert bars.count() == 2
    chart = page.locator(".chart").bounding_box()
    low, high = bars.nth(0).bounding_box(), bars.nth(1).bounding_box()
    assert chart is not None and low is not None and high is not None
    assert high["height"] == pytest.approx(chart["height"] - 1, abs=1.5)  # minus the border
    assert low["height"] / high["height"] == pytest.approx(0.8, abs=0.02)
    # a payment arrives (Payme, say): 200 000 so'm, the account is now 50 000 ahead
    with psycopg.connect(db_url) as conn:
        post_payment(
            conn,
            amount_tiyin=20_000_000,
            paid_at=NOW,
            source="payme",
            external_ref="pm-csp-2",
            account_id=customer["id"],
        )
        conn.commit()
    page.clock.run_for(29_000)
    page.evaluate("1")  # a round trip: a request made by now has been seen
    assert asked == []  # not yet: every 30 seconds
    assert amount.inner_text() == "150\u202f000,00"
    with page.expect_response(lambda r: "/cabinet/balance.json" in r.url) as answer:
        page.clock.run_for(1_000)
    assert answer.value.status == 200
    expect(amount).to_have_text("50\u202f000,00")
    expect(heading).to_have_text("Prepaid")
    assert amount.get_attribute("data-tiyin") == "-5000000"
    assert "credit" in (page.locator("p.balance").get_attribute("class") or "")
    assert "debt" not in (page.locator("p.balance").get_attribute("class") or "")
    assert len(asked) == 1
    watch.assert_clean()
    # logging out still works (the form posts; nothing inline is needed)
    page.click("#logout")
    page.wait_for_url(re.compile(r"/cabinet/login"))
    watch.assert_clean()
    ctx.close()
