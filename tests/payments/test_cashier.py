"""The cashier desk over real HTTP: payment, PDF receipt (text read back with pypdf),
idempotent double submit, voids by role and day, the shift report."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pypdf import PdfReader

from suvnet.numfmt import format_som
from tests.api.conftest import Clock, LiveServer, User, bearer, make_account
from tests.payments.conftest import balance
from tests.pdf_layout import joined, layout_problems, line_of, word_boxes


@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, a1 = make_account(conn, 1, name="Karimov Anvar", street="Navoiy", house="12")
        _, a2 = make_account(conn, 2, name="Rahimova Dilnoza", house="14")
    return {"a1": a1, "a2": a2}


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def pay(
    http: httpx.Client, user: User, clock: Clock, account: str, amount: str, **extra: Any
) -> httpx.Response:
    return http.post(
        "/api/v1/payments/cashier",
        json={"account": account, "amount": amount, **extra},
        headers=bearer(user, clock),
    )


MM = 72 / 25.4


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


def test_payment_receipt_and_balance(
    tmp_path: Path,
    http: httpx.Client,
    staff: dict[str, User],
    accounts: dict[str, str],
    pay_clock: Clock,
    db: psycopg.Connection[Any],
) -> None:
    a1 = accounts["a1"]
    before = balance(db, a1)
    r = pay(http, staff["cashier"], pay_clock, a1, "1 500,50", method="cash")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["receipt_no"] == "K-2026-0000001"
    assert rec["amount_tiyin"] == 150050
    assert rec["balance_after_tiyin"] == before - 150050
    assert balance(db, a1) == before - 150050
    pdf = http.get(rec["receipt_url"], headers=bearer(staff["cashier"], pay_clock))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(pdf.content)
    assert "K-2026-0000001" in text
    assert a1 in text
    assert "Karimov Anvar" in text
    # the one money format (15 000,50 as on the pages), the number whole on its line
    assert f"{format_som(150050)} soʻm / сум" in text and "1 500.50" not in text
    assert "kassir1" in text
    assert "Квитанция" in text
    assert "20.11.2026 14:00 (Toshkent / Ташкент)" in text  # 09:00 UTC in Tashkent, named
    ws = word_boxes(pdf.content, tmp_path, "receipt")
    assert joined(line_of(ws, "K-2026-0000001")) == "№ K-2026-0000001"
    assert layout_problems(pdf.content, tmp_path, margin_pt=5 * MM, name="receipt") == []
    audit = db.execute(
        "SELECT actor, action FROM audit_log WHERE entity = 'cashier_receipt' AND entity_id = %s",
        (rec["receipt_no"],),
    ).fetchall()
    assert audit == [("kassir1", "payment")]


def test_double_submit_pays_once(
    http: httpx.Client,
    staff: dict[str, User],
    accounts: dict[str, str],
    pay_clock: Clock,
    db: psycopg.Connection[Any],
) -> None:
    a2 = accounts["a2"]
    before = balance(db, a2)
    first = pay(http, staff["cashier"], pay_clock, a2, "20000", method="card", request_key="f-1")
    second = pay(http, staff["cashier"], pay_clock, a2, "20000", method="card", request_key="f-1")
    assert first.json()["receipt_no"] == second.json()["receipt_no"]
    assert (first.json()["created"], second.json()["created"]) == (True, False)
    assert balance(db, a2) == before - 2000000
    reused = pay(http, staff["cashier"], pay_clock, a2, "30000", method="card", request_key="f-1")
    assert reused.status_code == 422
    assert first.json()["receipt_no"] in reused.json()["detail"]
    assert balance(db, a2) == before - 2000000


def test_bad_input(
    http: httpx.Client, staff: dict[str, User], accounts: dict[str, str], pay_clock: Clock
) -> None:
    for amount in ("0", "-5", "1.001", "abc"):
        r = pay(http, staff["cashier"], pay_clock, accounts["a1"], amount)
        assert r.status_code == 422, amount
    r = pay(http, staff["cashier"], pay_clock, "000000019", "100")
    assert r.status_code == 422
    assert "000000019" in r.json()["detail"]
    r = pay(http, staff["cashier"], pay_clock, accounts["a1"], "100", method="cheque")
    assert r.status_code == 422
    assert pay(http, staff["viewer"], pay_clock, accounts["a1"], "100").status_code == 403
    nf = http.get(
        "/api/v1/payments/cashier/receipts/K-2026-9999999.pdf",
        headers=bearer(staff["cashier"], pay_clock),
    )
    assert nf.status_code == 404


def test_void_rules_and_shift_report(
    http: httpx.Client,
    staff: dict[str, User],
    accounts: dict[str, str],
    pay_clock: Clock,
    db: psycopg.Connection[Any],
) -> None:
    a1 = accounts["a1"]
    c1, c2, acc = staff["cashier"], staff["cashier2"], staff["accountant"]
    r1 = pay(http, c1, pay_clock, a1, "10000").json()
    r2 = pay(http, c1, pay_clock, a1, "30000", method="card").json()
    r3 = pay(http, c1, pay_clock, a1, "5000").json()
    before = balance(db, a1)

    def void(user: User, no: str) -> httpx.Response:
        return http.post(
            f"/api/v1/payments/cashier/receipts/{no}/void",
            json={"reason": "wrong account"},
            headers=bearer(user, pay_clock),
        )

    assert void(c2, r1["receipt_no"]).status_code == 403  # another cashier's payment
    ok = void(c1, r1["receipt_no"])
    assert ok.status_code == 200, ok.text
    assert ok.json()["voided_by"] == "kassir1"
    assert balance(db, a1) == before + 1000000
    assert void(c1, r1["receipt_no"]).status_code == 403  # already voided
    kinds = db.execute(
        "SELECT kind, amount_tiyin FROM ledger WHERE external_ref = %s ORDER BY id",
        (r1["receipt_no"],),
    ).fetchall()
    assert kinds == [("payment", -1000000), ("reversal", 1000000)]
    voided_pdf = http.get(r1["receipt_url"], headers=bearer(c1, pay_clock))
    assert "АННУЛИРОВАНО" in pdf_text(voided_pdf.content)

    shift = http.get("/api/v1/payments/cashier/shift", headers=bearer(c1, pay_clock)).json()
    assert shift["day"] == "2026-11-20"
    mine = {p["receipt_no"]: p for p in shift["payments"]}
    assert mine[r1["receipt_no"]]["voided"] is True
    assert {r2["receipt_no"], r3["receipt_no"]} <= set(mine)
    assert shift["voided_count"] == 1 and shift["voided_tiyin"] == 1000000
    assert shift["card_tiyin"] == sum(
        p["amount_tiyin"] for p in shift["payments"] if p["method"] == "card" and not p["voided"]
    )
    assert shift["net_tiyin"] == shift["cash_tiyin"] + shift["card_tiyin"]
    assert shift["count"] == len(shift["payments"]) - 1
    # a cashier sees only their own shift; an accountant any
    assert (
        http.get(
            "/api/v1/payments/cashier/shift?cashier=kassir1", headers=bearer(c2, pay_clock)
        ).status_code
        == 403
    )
    other = http.get(
        "/api/v1/payments/cashier/shift?cashier=kassir1", headers=bearer(acc, pay_clock)
    ).json()
    assert other["net_tiyin"] == shift["net_tiyin"]

    # the next day: the cashier may no longer void, the accountant may
    pay_clock.now += timedelta(days=1)
    try:
        assert void(c1, r2["receipt_no"]).status_code == 403
        assert void(acc, r2["receipt_no"]).status_code == 200
        assert balance(db, a1) == before + 1000000 + 3000000
        nextday = http.get("/api/v1/payments/cashier/shift", headers=bearer(c1, pay_clock)).json()
        assert nextday["payments"] == []
    finally:
        pay_clock.now -= timedelta(days=1)
