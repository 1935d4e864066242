"""The payment pages in headless Chromium (Playwright driving /usr/bin/chromium, the
Content-Security-Policy enforced) against the app on a real uvicorn. The desk: an old bookmark
of the desk, log in, take a card payment, see the receipt link, the balance and the shift, void
it. The statements page: upload a statement, allocate a line from the review queue. On both,
the policy refuses nothing, no script fails and the style sheet lays out the forms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.i18n import format_som
from api.web.common import PAGE_CSP
from tests.api.conftest import PASSWORD, LiveServer, User, make_account
from tests.api.cspwatch import CspWatch
from tests.payments.conftest import balance, make_legal

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DATA = Path(__file__).parent / "data"


def style(page: Any, selector: str, prop: str) -> str:
    value: str = page.locator(selector).first.evaluate(f"e => getComputedStyle(e).{prop}")
    return value


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
    watch = CspWatch(page)
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
    # the void form: one row, reason and button side by side (suvnet.css, no style attribute)
    void = "form[action='/staff/payments/desk/void']"
    assert style(page, void, "display") == "flex"
    assert style(page, void + " button", "marginTop") == "0px"
    row.locator("input[name=reason]").fill("ошибка суммы")
    row.locator("button").click()
    page.wait_for_selector("text=Аннулировано")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, number) == before
    watch.assert_clean()
    ctx.close()


def test_statements_in_the_browser(
    browser: Any, server: LiveServer, staff: dict[str, User], db_url: str
) -> None:
    """Upload a bank statement; a payment from a firm with two accounts waits for review and
    is allocated from its form."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        make_legal(conn, 41, name="Bog'ishamol Non MChJ", inn="301234567")
        _, second = make_legal(conn, 42, name="Bog'ishamol Non 2", inn="301234567", house="2")
        before = balance(conn, second)
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    resp = page.goto(server.url + "/staff/login?lang=en")
    assert resp is not None and resp.headers["content-security-policy"] == PAGE_CSP
    page.fill("#username", staff["accountant"].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/staff/")
    resp = page.goto(server.url + "/staff/payments/statements")
    assert resp is not None and resp.headers["content-security-policy"] == PAGE_CSP
    page.set_input_files("#file", str(DATA / "statement.csv"))
    page.click("#stmt-upload")
    page.wait_for_selector("#stmt-summary")
    with psycopg.connect(db_url, autocommit=True) as conn:
        line = conn.execute(
            "SELECT id FROM bank_statement_lines WHERE purpose = 'Suv uchun noyabr 2026'"
        ).fetchone()
    assert line is not None
    card = f"#line-{line[0]}"
    form = card + " form"
    # the allocation form: a wrapping row, boxes of 12 and 10 rem (suvnet.css)
    assert style(page, form, "display") == "flex"
    assert style(page, form, "flexWrap") == "wrap"
    assert style(page, form + " input[name=account]", "width") == "192px"
    assert style(page, form + " input[name=amount]", "width") == "160px"
    page.locator(form + " input[name=account]").fill(second)
    page.locator(form + " input[name=amount]").fill("500 000,00")
    page.locator(form + " button").click()
    page.wait_for_selector("#stmt-message")
    assert page.locator(card).count() == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, second) == before - 50_000_000
    watch.assert_clean()
    ctx.close()


def test_desk_back_and_resubmit_in_the_browser(
    browser: Any, server: LiveServer, staff: dict[str, User], db_url: str
) -> None:
    """A card payment, then the browser's Back button and the same form sent again: the desk
    answers with the first receipt, and the ledger has one payment."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, number = make_account(conn, 35, name="Qodirov Sardor", street="Bog'bon", house="9")
        before = balance(conn, number)
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    page.goto(server.url + "/staff/login?lang=en")
    page.fill("#username", staff["cashier"].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/staff/")
    page.goto(server.url + "/staff/payments/desk")
    page.wait_for_url("**/staff/payments/desk?form=*")
    page.fill("#account", number)
    page.fill("#amount", "15 000,50")
    page.select_option("#method", "card")
    page.click("#desk-take")
    page.wait_for_selector("#desk-done")
    first = page.locator("#receipt-link").get_attribute("href")
    assert first is not None
    page.go_back()
    page.wait_for_selector("#desk-take")
    # the form as the browser shows it after Back: filled again by hand if it was emptied
    if page.input_value("#account") != number:
        page.fill("#account", number)
        page.fill("#amount", "15 000,50")
        page.select_option("#method", "card")
    page.click("#desk-take")
    page.wait_for_selector("#desk-done")
    assert page.locator("#receipt-link").get_attribute("href") == first
    assert "This form was sent before" in page.locator("#desk-done").inner_text()
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, number) == before - 1_500_050
        n = conn.execute(
            "SELECT count(*) FROM ledger l JOIN accounts a ON a.id = l.account_id "
            "WHERE a.number = %s AND l.kind = 'payment'",
            (number,),
        ).fetchone()
    assert n == (1,)
    watch.assert_clean()
    ctx.close()


def test_review_tie_is_not_preselected_in_the_browser(
    browser: Any, server: LiveServer, staff: dict[str, User], db_url: str
) -> None:
    """Two accounts of one firm tie: Chromium shows no account chosen; pressing Allocate
    without choosing posts nothing and says why; choosing the second account and allocating
    puts the money there."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        make_legal(conn, 43, name="Tong Non MChJ", inn="304444444")
        _, second = make_legal(conn, 44, name="Tong Non 2", inn="304444444", house="3")
        before = balance(conn, second)
    statement = (
        "account;20208000900123456001\nnumber;120\ndate_from;2026-11-18\ndate_to;2026-11-18\n"
        "opening_balance;0,00\nclosing_balance;70 000,00\n"
        "date;doc_no;credit;debit;payer_name;payer_inn;payer_account;payer_mfo;purpose\n"
        "18.11.2026;701;70000.00;;Tong Non MChJ;304444444;;;Suv uchun dekabr\n"
    )
    ctx = browser.new_context()
    page = ctx.new_page()
    watch = CspWatch(page)
    page.goto(server.url + "/staff/login?lang=en")
    page.fill("#username", staff["accountant"].username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/staff/")
    page.goto(server.url + "/staff/payments/statements")
    page.set_input_files(
        "#file", files=[{"name": "tie.csv", "mimeType": "text/csv", "buffer": statement.encode()}]
    )
    page.click("#stmt-upload")
    page.wait_for_selector("#stmt-summary")
    with psycopg.connect(db_url, autocommit=True) as conn:
        line = conn.execute(
            "SELECT id FROM bank_statement_lines WHERE purpose = 'Suv uchun dekabr'"
        ).fetchone()
    assert line is not None
    card = f"#line-{line[0]}"
    assert page.locator(card + " select[name=pick]").input_value() == ""
    assert page.locator(card + " input[name=account]").input_value() == ""
    assert page.locator(card + " .tie").is_visible()
    page.locator(card + " button").click()
    page.wait_for_selector("#stmt-error")
    assert "Choose one of the suggested accounts" in page.locator("#stmt-error").inner_text()
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, second) == before
    # the refusal is a 422 page on purpose; nothing else may fail
    assert watch.violations == [] and len(watch.failed) == 1 and "allocate" in watch.failed[0]
    watch.errors.clear()
    watch.failed.clear()
    page.locator(card + " select[name=pick]").select_option(second)
    page.locator(card + " button").click()
    page.wait_for_selector("#stmt-message")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert balance(conn, second) == before - 7_000_000
    watch.assert_clean()
    ctx.close()
