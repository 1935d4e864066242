"""The cashier desk page in headless Chromium (Playwright driving /usr/bin/chromium) against
the app on a real uvicorn: an old bookmark of the desk, log in, take a card payment, see the
receipt link, the balance and the shift, void it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.i18n import format_som
from tests.api.conftest import PASSWORD, LiveServer, User, make_account
from tests.payments.conftest import balance

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


def test_desk_in_the_browser(
    browser: Any, server: LiveServer, staff: dict[str, User], db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, number = make_account(conn, 31, name="Saidova Malika", street="Bog'bon", house="4")
        before = balance(conn, number)
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(server.url + "/staff/cashier?lang=ru")  # an old bookmark of the desk
    assert "/staff/login" in page.url
    page.fill("#username", staff["cashier"].username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/staff/payments/desk**")
    assert page.locator("#desk-take").inner_text() == "Принять оплату"
    page.fill("#account", number)
    page.fill("#amount", "75 000,25")
    page.select_option("#method", "card")
    page.click("#desk-take")
    page.wait_for_selector("#desk-done")
    assert "Saidova Malika" in page.locator("#desk-done").inner_text()
    # the balance after the payment (positive = owes), as the receipt prints it
    shown = page.locator("#desk-balance").inner_text()
    assert shown == format_som(before - 7_500_025)
    link = page.locator("#receipt-link").get_attribute("href")
    assert link is not None and link.endswith(".pdf")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, number) == before - 7_500_025
    receipt_no = link.rsplit("/", 1)[1].removesuffix(".pdf")
    row = page.locator("tr", has_text=receipt_no)
    assert "Карта" in row.inner_text()
    row.locator("input[name=reason]").fill("ошибка суммы")
    row.locator("button").click()
    page.wait_for_selector("text=Аннулировано")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, number) == before
    ctx.close()
