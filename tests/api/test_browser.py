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

from api.security import Role
from tests.api.conftest import (
    PASSWORD,
    LiveServer,
    User,
    add_invoice_and_charge,
    bearer,
    make_account,
)

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
    # log out, and back in with the new password
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
    ctx = browser.new_context()
    page = ctx.new_page()
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
    page.goto(live_server.url + "/staff/cashier")
    for _ in range(2):  # the same receipt twice: one payment
        page.fill("#number", account["number"])
        page.fill("#amount", "50 000,00")
        page.fill("#receipt", "K-0001")
        page.click("#take-payment")
        page.wait_for_selector("#cash-done")
    assert page.locator("#cash-balance").inner_text() == "100\u202f000,00"
    page.fill("#number", account["number"])
    page.fill("#amount", "-5")
    page.fill("#receipt", "K-0002")
    page.click("#take-payment")
    assert "Enter the amount" in page.locator(".error").inner_text()
    ctx.close()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT amount_tiyin, source, created_by FROM ledger WHERE account_id = %s "
            "AND external_ref = 'K-0001'",
            (account["id"],),
        ).fetchall()
        audit = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'payment' AND entity_id = %s",
            (account["number"],),
        ).fetchone()
    assert rows == [(-5_000_000, "cashier", "u_cashier")]
    assert audit is not None and audit[0] >= 1
    assert before == "150\u202f000,00"
