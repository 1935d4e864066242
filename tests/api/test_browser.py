"""Browser tests: headless Chromium (Playwright driving /usr/bin/chromium) against the app
served by a real uvicorn on a loopback port."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.security import Role
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    LiveServer,
    User,
    add_invoice_and_charge,
    api_settings,
    bearer,
    make_account,
)
from tests.api.cspwatch import CspWatch

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def live_server(db_url: str, users: dict[Role, User]) -> Iterator[LiveServer]:
    """The app on a real uvicorn with the tests' fixed clock: the API tokens of ``bearer`` are
    dated by it, so the server must not judge them by the wall clock."""
    with LiveServer(create_app(api_settings(db_url), clock=Clock(NOW))) as srv:
        yield srv


@pytest.fixture(scope="module")
def account(db_url: str) -> dict[str, Any]:
    """An account that owes 150 000,00 so'm: two invoices minus one payment."""
    from datetime import UTC, datetime

    from billing.ledger import post_payment

    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 777, name="Rahimova Dilfuza", street="Mustaqillik")
        add_invoice_and_charge(conn, aid, date(2026, 9, 1), 10_000_000, 8.0, "2026-0000001")
        add_invoice_and_charge(conn, aid, date(2026, 10, 1), 12_500_000, 10.0, "2026-0000002")
        post_payment(
            conn,
            amount_tiyin=7_500_000,
            paid_at=datetime(2026, 10, 20, tzinfo=UTC),
            source="payme",
            external_ref="pm-1",
            account_id=aid,
        )
        conn.commit()
    return {"id": aid, "number": number}


def issue_code(live_server: LiveServer, clerk: User, number: str) -> str:
    """The office issues the one-time code through the API."""
    r = httpx.post(
        f"{live_server.url}/api/v1/customers/{number}/code", headers=bearer(clerk), timeout=10
    )
    assert r.status_code == 201, r.text
    code: str = r.json()["code"]
    return code


def test_cabinet_first_password_balance_language(
    browser: Any, live_server: LiveServer, account: dict[str, Any], users: dict[Role, User]
) -> None:
    code = issue_code(live_server, users[Role.BILLING_CLERK], account["number"])
    ctx = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = ctx.new_page()
    watch = CspWatch(page)  # the pages' policy refuses nothing, no script fails
    page.goto(live_server.url + "/cabinet/login")
    assert page.locator("h1").inner_text() == "Abonent kabineti: kirish"  # Uzbek by default
    page.click("a[href='/cabinet/activate']")
    page.fill("#account_no", account["number"])
    page.fill("#code", code)
    page.fill("#password", "yangi-parol-1")
    page.fill("#password2", "yangi-parol-1")
    page.click("#activate")
    page.wait_for_url(re.compile(r"/cabinet/$"))
    # balance: 100 000 + 125 000 - 75 000 = 150 000 so'm owed
    assert page.locator("#balance").get_attribute("data-tiyin") == "15000000"
    assert page.locator("#balance").inner_text() == "150\u202f000,00"
    assert page.locator("h1").inner_text() == "To'lov uchun"
    assert page.locator("#invoices tbody tr").count() == 2
    assert page.locator("#payments tbody tr").count() == 1
    # invoice download (the PDF comes from billing's documents)
    with page.expect_download() as dl:
        page.locator("a.invoice-pdf").first.click()
    pdf_path = dl.value.path()
    assert dl.value.suggested_filename == "invoice-2026-0000002.pdf"
    from pypdf import PdfReader

    assert account["number"] in "".join(p.extract_text() for p in PdfReader(pdf_path).pages)
    # language switch on the page, remembered in a cookie
    page.click("a[data-lang='ru']")
    assert page.locator("h1").inner_text() == "К оплате"
    assert page.locator("html").get_attribute("lang") == "ru"
    page.goto(live_server.url + "/cabinet/")
    assert page.locator("h1").inner_text() == "К оплате"
    page.click("a[data-lang='uz_Cyrl']")
    assert page.locator("h1").inner_text() == "Тўлов учун"
    page.click("a[data-lang='en']")
    assert page.locator("h1").inner_text() == "To pay"
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["suvnet_session"]["httpOnly"] is True
    assert cookies["suvnet_session"]["sameSite"] == "Lax"
    assert cookies["suvnet_csrf"]["httpOnly"] is True
    watch.assert_clean()
    # log out, and back in with the new password (the wrong one answers 401: a console error)
    page.click("#logout")
    page.wait_for_url(re.compile(r"/cabinet/login"))
    page.goto(live_server.url + "/cabinet/")
    assert "/cabinet/login" in page.url
    page.fill("#account_no", account["number"])
    page.fill("#password", "wrong-password")
    page.click("#login")
    assert page.locator(".error").inner_text() == "Wrong account number or password."
    page.fill("#password", "yangi-parol-1")
    page.click("#login")
    page.wait_for_url(re.compile(r"/cabinet/$"))
    assert page.locator("#account-number").inner_text() == account["number"]
    assert watch.violations == []
    ctx.close()


def test_form_without_csrf_token_is_refused(
    browser: Any, live_server: LiveServer, account: dict[str, Any]
) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(live_server.url + "/cabinet/login")
    page.evaluate("document.querySelector(\"input[name='csrf_token']\").value = 'forged.x'")
    page.fill("#account_no", account["number"])
    page.fill("#password", "whatever-123")
    page.click("#login")
    assert page.locator(".error").inner_text() == "Sahifa eskirgan. Iltimos, qayta urinib ko'ring."
    ctx.close()


def test_cashier_flow(
    browser: Any,
    live_server: LiveServer,
    account: dict[str, Any],
    users: dict[Role, User],
    db_url: str,
) -> None:
    """The one cashier desk: from the staff home page to a payment and its printed receipt;
    the old desk address sends the browser there."""
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    page.goto(live_server.url + "/staff/?lang=en")
    assert "/staff/login" in page.url
    page.fill("#username", users[Role.CASHIER].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/staff/"))
    page.fill("#q", "Rahimova")
    page.click("#search")
    assert page.locator("#results tbody tr").count() == 1
    page.click(f"a[href='/staff/accounts/{account['number']}']")
    before = page.locator("#balance").inner_text()
    page.goto(live_server.url + "/staff/")
    # one desk link on the home page, and it leads to the one desk
    desk_links = page.locator("a[href*='desk'], a[href*='cashier']")
    assert desk_links.count() == 1
    page.click("#cashier-link")
    page.wait_for_selector("#desk-take")
    # form_key.js writes the form key into the address (?form=...)
    assert re.search(r"/staff/payments/desk(\?form=[0-9a-f]+)?$", page.url), page.url
    assert page.locator("h1").inner_text() == "Cashier desk"
    page.fill("#account", account["number"])
    page.fill("#amount", "50 000,00")
    page.click("#desk-take")
    page.wait_for_selector("#desk-done")
    assert page.locator("#desk-balance").inner_text() == "100\u202f000,00"
    link = page.locator("#receipt-link").get_attribute("href")
    assert link is not None and link.endswith(".pdf")
    receipt_no = link.rsplit("/", 1)[1].removesuffix(".pdf")
    assert receipt_no in page.locator("#desk-done").inner_text()
    # the receipt prints (a PDF naming the receipt and the account)
    pdf = page.request.get(live_server.url + link)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    from io import BytesIO

    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(BytesIO(pdf.body())).pages)
    assert receipt_no in text and account["number"] in text
    # the same payment is in today's shift
    assert page.locator("tr", has_text=receipt_no).count() == 1
    watch.assert_clean()
    # a bad amount: the page says how to write it and takes nothing
    page.fill("#account", account["number"])
    page.fill("#amount", "-5")
    page.click("#desk-take")
    assert "Enter the amount" in page.locator("#desk-error").inner_text()
    # an old bookmark of the desk lands on the one desk, query kept
    page.goto(live_server.url + "/staff/cashier?lang=ru")
    # form_key.js adds the form's idempotency key to the address (&form=...)
    assert page.url.startswith(live_server.url + "/staff/payments/desk?lang=ru")
    assert page.locator("#desk-take").inner_text() == "Принять оплату"
    ctx.close()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT amount_tiyin, source, created_by FROM ledger WHERE account_id = %s "
            "AND external_ref = %s",
            (account["id"], receipt_no),
        ).fetchall()
        audit = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'payment' AND entity_id = %s",
            (receipt_no,),
        ).fetchone()
        payments = conn.execute(
            "SELECT count(*) FROM ledger WHERE account_id = %s AND source = 'cashier'",
            (account["id"],),
        ).fetchone()
    assert rows == [(-5_000_000, "cashier", "u_cashier")]
    assert audit == (1,)
    assert payments == (1,)  # the refused amount took nothing
    assert before == "150\u202f000,00"


def test_viewer_has_no_desk(browser: Any, live_server: LiveServer, users: dict[Role, User]) -> None:
    """A role that may not take payments sees no desk link and is refused at the desk,
    at its old address too."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(live_server.url + "/staff/login?lang=en")
    page.fill("#username", users[Role.VIEWER].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/staff/$"))
    assert page.locator("#cashier-link").count() == 0
    assert page.locator("a[href*='desk'], a[href*='cashier']").count() == 0
    for url in ("/staff/payments/desk", "/staff/cashier"):
        resp = page.goto(live_server.url + url)
        assert resp is not None and resp.status == 403, url
        assert page.locator("#desk-take").count() == 0
    ctx.close()
