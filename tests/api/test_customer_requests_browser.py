"""Customer requests in headless Chromium (the register browser test's server, village and
layout checks, tests/api/test_register_browser.py): the queue /staff/requests, the account
card with its requests and their forms open, a request form sent with mistakes, and the
cabinet's "write to us", at 1280 and 390 px, in Uzbek Latin and Cyrillic and Russian. Fails
on a page wider than the screen, a field or button out of its card or over another, text cut
off, anything the Content-Security-Policy refused, English on a Cyrillic page. Then a clerk
records a request in the browser, goes Back and sends the form again: one request.

``SUVNET_SCREENSHOTS=docs/img/backoffice`` writes the pictures of docs/backoffice.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.security import Role
from tests.api.conftest import NOW, PASSWORD, LiveServer, User, add_invoice_and_charge, insert_user
from tests.api.cspwatch import CspWatch
from tests.api.test_register_browser import (  # noqa: F401 - the fixtures are used by name
    CHROMIUM,
    LANGS,
    LAYOUT,
    LOCALES,
    WIDTHS,
    browsers,
    english,
    login,
    server,
    shots_dir,
    village,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def requests_data(db_url: str, village: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """The household of the village with an invoice, requests in every state (a disputed
    bill, a long subject, a resolved one), a second account's request in the queue, and the
    household's cabinet login."""
    number = village["household"]
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT id FROM accounts WHERE number = %s", (number,)).fetchone()
        assert row is not None
        aid = int(row[0])
        last = conn.execute(
            "SELECT id FROM invoices WHERE account_id = %s ORDER BY period DESC LIMIT 1", (aid,)
        ).fetchone()
        inv = (
            int(last[0])
            if last
            else add_invoice_and_charge(conn, aid, date(2026, 11, 1), 18_450_000, 12.3, "RQ-11")
        )
        other = conn.execute(
            "SELECT id FROM accounts WHERE number = %s", (village["legal"],)
        ).fetchone()
        assert other is not None
        rows = [
            (aid, 9, "office", "bill_dispute", inv, 61_500, ("Noyabr hisobi: hisoblagich "
             "ko'rsatkichi noto'g'ri yozilgan, 12,3 emas 4,1 m³"), "open", None, ""),
            (aid, 6, "phone", "no_water", None, None, "Uch kundan beri kechqurun suv yo'q",
             "in_progress", None, "Usta yuborildi"),
            (aid, 30, "letter", "quality", None, None, "Suv loyqa", "resolved", 25,
             "Quvur yuvildi, namuna olindi: me'yorda"),
            (other[0], 14, "telegram", "leak", None, None, "Ko'chada quvur yorilgan",
             "open", None, ""),
        ]  # fmt: skip
        for acc, days, channel, kind, invoice, disputed, subject, status, res_days, res in rows:
            conn.execute(
                "INSERT INTO customer_requests (account_id, received_at, channel, kind, "
                "invoice_id, disputed_tiyin, subject, status, resolved_at, resolution, "
                "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'u_billing_clerk')",
                (
                    acc,
                    NOW - timedelta(days=days),
                    channel,
                    kind,
                    invoice,
                    disputed,
                    subject,
                    status,
                    NOW - timedelta(days=res_days) if res_days else None,
                    res,
                ),
            )
        customer = insert_user(conn, number, Role.CUSTOMER, account_no=number)
        conn.commit()
    return {"number": number, "invoice": inv, "customer": customer}


def _open_forms(page: Any) -> None:
    for d in page.locator("details.form").all():
        d.evaluate("e => e.open = true")


def _refused_form(page: Any) -> None:
    """The card's request form sent with mistakes: a disputed bill without its invoice and
    an amount that is no amount."""
    page.select_option("#rq-kind", "bill_dispute")
    page.fill("#rq-subject", "Hisob katta")
    page.fill("#rq-disputed", "12,345")
    page.click("#record-request")
    page.wait_for_selector("#request-errors")


def staff_pages(d: dict[str, Any]) -> list[tuple[str, str, Callable[[Any], None] | None]]:
    return [
        ("requests-queue", "/staff/requests", None),
        ("card-requests", f"/staff/accounts/{d['number']}", _open_forms),
        ("request-refused", f"/staff/accounts/{d['number']}", _refused_form),
    ]


def cabinet_login(page: Any, url: str, user: User) -> None:
    page.goto(url + "/cabinet/login?lang=uz")
    page.fill("#account_no", user.username)
    page.fill("#password", PASSWORD)
    page.locator("form[method=post] button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/cabinet/$"))


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_request_pages_look_right(
    browsers: dict[str, Any],  # noqa: F811 - the imported fixture
    server: LiveServer,  # noqa: F811
    users: dict[Role, User],
    requests_data: dict[str, Any],
    tmp_path: Path,
    width: str,
) -> None:
    out = shots_dir(tmp_path)
    w, h = WIDTHS[width]
    problems: list[str] = []
    for lang in LANGS:
        ctx = browsers[lang].new_context(
            viewport={"width": w, "height": h}, device_scale_factor=1, locale=LOCALES[lang]
        )
        page = ctx.new_page()
        watch = CspWatch(page)
        login(page, server.url, users[Role.BILLING_CLERK])
        shots = [*staff_pages(requests_data), ("cabinet-requests", "/cabinet/requests", None)]
        for name, path, prepare in shots:
            if name == "cabinet-requests":
                page.context.clear_cookies()
                cabinet_login(page, server.url, requests_data["customer"])
            resp = page.goto(f"{server.url}{path}?lang={lang}")
            assert resp is not None and resp.status == 200, (path, resp and resp.status)
            if prepare is not None:
                prepare(page)
            problems += [f"{name} {lang} {width}: {p}" for p in page.evaluate(LAYOUT)]
            if lang != "uz":
                text = page.locator("main").inner_text()
                problems += [f"{name} {lang}: English {sorted(e)}" for e in [english(text)] if e]
            page.screenshot(path=str(out / f"{name}-{lang}-{width}.png"), full_page=True)
        # the refused form answers 422 (Chromium logs it): nothing else
        assert all(f.startswith("422 ") and f.endswith("/requests") for f in watch.failed)
        watch.errors = [e for e in watch.errors if "status of 422" not in e]
        watch.assert_clean(f"{width} {lang}")
        ctx.close()
    assert problems == [], "\n".join(problems)


def test_back_and_send_again_records_one_request(
    browsers: dict[str, Any],  # noqa: F811
    server: LiveServer,  # noqa: F811
    users: dict[Role, User],
    requests_data: dict[str, Any],
    db_url: str,
) -> None:
    """In the browser: record, Back, the same form sent again: one request, the card says the
    form was sent before."""
    ctx = browsers["ru"].new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    page = ctx.new_page()
    login(page, server.url, users[Role.BILLING_CLERK])
    number = requests_data["number"]
    page.goto(f"{server.url}/staff/accounts/{number}?lang=ru")
    page.wait_for_function("() => new URL(location.href).searchParams.get('form')")
    subject = "Hisoblagich plombasi uzilgan (browser)"
    page.select_option("#rq-kind", "meter")
    page.fill("#rq-subject", subject)
    page.click("#record-request")
    page.wait_for_selector("#request-done")
    page.go_back()
    page.wait_for_selector("#record-request")
    page.select_option("#rq-kind", "meter")
    page.fill("#rq-subject", subject)
    page.click("#record-request")
    page.wait_for_selector("#request-done")
    assert "повторно не регистрируется" in page.locator("#request-done").inner_text()
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM customer_requests WHERE subject = %s", (subject,)
        ).fetchone()
    assert row == (1,)
    ctx.close()
