"""Billing endpoints against a real database, with figures checked against the ledger."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import httpx
import psycopg
import pytest

from api.security import Role
from tests.api.conftest import User, add_invoice_and_charge, bearer, make_account


@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, Any]:
    """Three accounts on two streets: one owes, one is prepaid, one is even."""
    from billing.ledger import post_payment

    with psycopg.connect(db_url) as conn:
        a1, n1 = make_account(
            conn, 501, name="Olimov Bekzod", street="Navoiy", house="1", phone="+998911112233"
        )
        a2, n2 = make_account(conn, 502, name="Saidova Gulnora", street="Navoiy", house="2")
        a3, n3 = make_account(conn, 503, name="Tursunov Jamshid", street="Bobur", house="7")
        add_invoice_and_charge(conn, a1, date(2026, 9, 1), 4_000_000, 4.0, "2026-0000501")
        add_invoice_and_charge(conn, a1, date(2026, 10, 1), 6_000_000, 6.0, "2026-0000502")
        post_payment(
            conn,
            amount_tiyin=3_000_000,
            paid_at=datetime(2026, 10, 5, tzinfo=UTC),
            source="click",
            external_ref="c-1",
            account_id=a1,
        )
        add_invoice_and_charge(conn, a2, date(2026, 10, 1), 2_000_000, 2.0, "2026-0000503")
        post_payment(
            conn,
            amount_tiyin=5_000_000,
            paid_at=datetime(2026, 10, 6, tzinfo=UTC),
            source="payme",
            external_ref="p-1",
            account_id=a2,
        )
        add_invoice_and_charge(conn, a3, date(2026, 10, 1), 1_000_000, 1.0, "2026-0000504")
        post_payment(
            conn,
            amount_tiyin=1_000_000,
            paid_at=datetime(2026, 10, 7, tzinfo=UTC),
            source="bank",
            external_ref="b-1",
            account_id=a3,
        )
        conn.commit()
    return {"owes": n1, "prepaid": n2, "even": n3, "ids": (a1, a2, a3)}


async def get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params, headers=bearer(user))
    assert r.status_code == 200, r.text
    return r.json()


def ledger_sum(db_url: str, number: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT coalesce(sum(l.amount_tiyin), 0) FROM ledger l JOIN accounts a "
            "ON a.id = l.account_id WHERE a.number = %s",
            (number,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_account_search_and_card(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any], db_url: str
) -> None:
    clerk = users[Role.BILLING_CLERK]
    by_name = await get(client, clerk, "/api/v1/accounts", q="saidova")
    assert [a["number"] for a in by_name["items"]] == [accounts["prepaid"]]
    by_phone = await get(client, clerk, "/api/v1/accounts", q="91 111 22")
    assert [a["number"] for a in by_phone["items"]] == [accounts["owes"]]
    by_street = await get(client, clerk, "/api/v1/accounts", q="Bobur")
    assert [a["number"] for a in by_street["items"]] == [accounts["even"]]
    card = await get(client, clerk, f"/api/v1/accounts/{accounts['owes']}")
    assert card["balance_tiyin"] == 7_000_000 == ledger_sum(db_url, accounts["owes"])
    bal = await get(client, clerk, f"/api/v1/accounts/{accounts['prepaid']}/balance")
    assert bal["balance_tiyin"] == -3_000_000 == ledger_sum(db_url, accounts["prepaid"])
    led = await get(client, clerk, f"/api/v1/accounts/{accounts['owes']}/ledger", kind="charge")
    assert [e["amount_tiyin"] for e in led["items"]] == [6_000_000, 4_000_000]
    r = await client.get("/api/v1/accounts/123", headers=bearer(clerk))
    assert r.status_code == 422
    r = await client.get("/api/v1/accounts/000000000", headers=bearer(clerk))
    assert r.status_code == 404


async def test_balances_rollup_matches_ledger(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any], db_url: str
) -> None:
    acc = users[Role.ACCOUNTANT]
    streets = await get(client, acc, "/api/v1/balances", by="street", as_of="2026-11-30")
    by_name = {s["name"]: s for s in streets["items"]}
    navoiy = by_name["Navoiy"]
    # Navoiy: +70 000 (owes) and -30 000 (prepaid): debt and credit stay apart
    assert navoiy["debt"] == 7_000_000 and navoiy["credit"] == 3_000_000
    assert navoiy["balance"] == ledger_sum(db_url, accounts["owes"]) + ledger_sum(
        db_url, accounts["prepaid"]
    )
    assert by_name["Bobur"]["balance"] == 0
    # FIFO aging: 10 000 of September's charge is paid, the rest of it is 61-90 days old
    assert navoiy["aging"]["61-90"] == 1_000_000 and navoiy["aging"]["31-60"] == 6_000_000
    debtors = await get(client, acc, "/api/v1/balances", by="account", debtors_only="true")
    assert [d["name"] for d in debtors["items"]] == [accounts["owes"]]


async def test_invoices_and_pdf(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any]
) -> None:
    from pypdf import PdfReader

    v = users[Role.VIEWER]
    inv = await get(client, v, "/api/v1/invoices", account=accounts["owes"])
    assert [i["number"] for i in inv["items"]] == ["2026-0000502", "2026-0000501"]
    oct_ = await get(client, v, "/api/v1/invoices", period="2026-10")
    assert oct_["total"] == 3
    r = await client.get(f"/api/v1/invoices/{inv['items'][0]['id']}.pdf", headers=bearer(v))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert accounts["owes"] in text


async def test_payments_and_cash_desk_api(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any], db_url: str
) -> None:
    cashier = bearer(users[Role.CASHIER])
    url = f"/api/v1/accounts/{accounts['owes']}/payments"
    first = await client.post(
        url, json={"amount_tiyin": 2_000_000, "receipt": "R-77"}, headers=cashier
    )
    assert first.status_code == 201, first.text
    took = first.json()
    assert took["created"] is True and took["balance_tiyin"] == 5_000_000
    again = await client.post(
        url, json={"amount_tiyin": 2_000_000, "receipt": "R-77"}, headers=cashier
    )
    assert again.json()["created"] is False and again.json()["balance_tiyin"] == 5_000_000
    assert again.json()["receipt_no"] == took["receipt_no"]
    clash = await client.post(url, json={"amount_tiyin": 1_000, "receipt": "R-77"}, headers=cashier)
    assert clash.status_code == 409
    assert took["receipt_no"] in clash.text and "new receipt number" in clash.text
    assert ledger_sum(db_url, accounts["owes"]) == 5_000_000
    bad = await client.post(url, json={"amount_tiyin": -5, "receipt": "R-78"}, headers=cashier)
    assert bad.status_code == 422
    pays = await get(client, users[Role.ACCOUNTANT], "/api/v1/payments", source="cashier")
    assert [(p["account"], p["amount_tiyin"]) for p in pays["items"]] == [
        (accounts["owes"], 2_000_000)
    ]
    # a desk payment like any other: in the cashier's shift report, with a printable receipt,
    # and voidable there
    shift = await get(client, users[Role.CASHIER], "/api/v1/payments/cashier/shift")
    assert [(p["receipt_no"], p["amount_tiyin"]) for p in shift["payments"]] == [
        (took["receipt_no"], 2_000_000)
    ]
    assert shift["cash_tiyin"] == 2_000_000
    pdf = await client.get(took["receipt_url"], headers=cashier)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    void = await client.post(
        f"/api/v1/payments/cashier/receipts/{took['receipt_no']}/void",
        json={"reason": "wrong account"},
        headers=cashier,
    )
    assert void.status_code == 200, void.text
    assert ledger_sum(db_url, accounts["owes"]) == 7_000_000
    card = await client.post(
        url,
        json={"amount_tiyin": 500_000, "receipt": "R-79", "method": "card"},
        headers=bearer(users[Role.ACCOUNTANT]),
    )
    assert card.status_code == 201, card.text
    receipt = await get(
        client,
        users[Role.ACCOUNTANT],
        f"/api/v1/payments/cashier/receipts/{card.json()['receipt_no']}",
    )
    assert (receipt["method"], receipt["cashier"]) == ("card", users[Role.ACCOUNTANT].username)


async def test_billing_run_dry_then_real(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any], db_url: str
) -> None:
    import asyncio

    clerk = bearer(users[Role.BILLING_CLERK])
    r = await client.post(
        "/api/v1/billing-runs", json={"period": "2026-11", "dry_run": True}, headers=clerk
    )
    assert r.status_code == 409 and "no tariff" in r.json()["detail"]
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
            "VALUES ('household', '2026-01-01', 250000)"
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2026-01-01', 4)")
    r = await client.post(
        "/api/v1/billing-runs", json={"period": "2026-11", "dry_run": True}, headers=clerk
    )
    assert r.status_code == 202, r.text
    dry = r.json()
    assert dry["dry_run"] is True and dry["invoices_created"] == 0
    assert (await get(client, users[Role.VIEWER], "/api/v1/billing-runs"))["total"] == 0
    r = await client.post("/api/v1/billing-runs", json={"period": "2026-11"}, headers=clerk)
    assert r.status_code == 202 and r.json()["state"] == "started"
    for _ in range(200):
        run = await client.get("/api/v1/billing-runs/2026-11", headers=clerk)
        if run.status_code == 200 and run.json()["state"] != "running":
            break
        await asyncio.sleep(0.05)
    body = run.json()
    assert body["state"] == "completed", body
    assert body["accounts_done"] == body["accounts_total"] > 0
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT coalesce(sum(amount_tiyin), 0) FROM ledger WHERE period = '2026-11-01' "
            "AND kind = 'charge'"
        ).fetchone()
    assert row is not None and body["charged_tiyin"] == row[0] == dry["total_tiyin"]
    r = await client.post("/api/v1/billing-runs", json={"period": "2026-13"}, headers=clerk)
    assert r.status_code == 422


async def test_customer_sees_only_own_data(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, Any], db_url: str
) -> None:
    from tests.api.conftest import insert_user

    with psycopg.connect(db_url, autocommit=True) as c:
        owner = insert_user(c, accounts["prepaid"], Role.CUSTOMER, account_no=accounts["prepaid"])
    me = bearer(owner)
    acc = (await client.get("/api/v1/me/account", headers=me)).json()
    assert acc["number"] == accounts["prepaid"]
    assert acc["balance_tiyin"] == ledger_sum(db_url, accounts["prepaid"])
    pays = (await client.get("/api/v1/me/payments", headers=me)).json()
    assert [(p["amount_tiyin"], p["source"]) for p in pays["items"]] == [(5_000_000, "payme")]
    cons = (await client.get("/api/v1/me/consumption", headers=me)).json()
    october = [c for c in cons["items"] if c["period"] == "2026-10-01"]
    assert [c["volume_m3"] for c in october] == [2.0]
    own = (await client.get("/api/v1/me/invoices", headers=me)).json()["items"]
    r = await client.get(f"/api/v1/me/invoices/{own[0]['id']}.pdf", headers=me)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    other = (
        await client.get(
            "/api/v1/invoices",
            params={"account": accounts["owes"]},
            headers=bearer(users[Role.VIEWER]),
        )
    ).json()["items"][0]
    r = await client.get(f"/api/v1/me/invoices/{other['id']}.pdf", headers=me)
    assert r.status_code == 404  # another account's invoice does not exist for this customer
    r = await client.get(f"/api/v1/accounts/{accounts['owes']}", headers=me)
    assert r.status_code == 403


async def test_account_status_change_entered_late(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        acc, number = make_account(conn, 509, name="Qosimov Aziz", street="Bobur", house="9")
        add_invoice_and_charge(conn, acc, date(2026, 10, 1), 1_000_000, 1.0, "2026-0000509")
        conn.commit()
    clerk = bearer(users[Role.BILLING_CLERK])
    url = f"/api/v1/accounts/{number}/status"
    # closed on 12 October at 15:00 office time, entered now: October is billed already
    r = await client.post(
        url, json={"status": "closed", "at": "2026-10-12T15:00", "reason": "moved"}, headers=clerk
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "account": number,
        "status": "closed",
        "changed": True,
        "since": "2026-10-12T15:00:00+05:00",
        "months_to_correct": ["2026-10"],
    }
    closed_at = datetime(2026, 10, 12, 10, 0, tzinfo=UTC)
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT status, status_since FROM accounts WHERE id = %s", (acc,))
        assert row.fetchone() == ("closed", closed_at)
        hist = conn.execute(
            "SELECT status, since, reason FROM account_status_history WHERE account_id = %s "
            "ORDER BY id DESC LIMIT 1",
            (acc,),
        ).fetchone()
        assert hist == ("closed", closed_at, "moved")
        audit = conn.execute(
            "SELECT actor, action, after->>'status' FROM audit_log "
            "WHERE entity = 'account' AND entity_id = %s",
            (number,),
        ).fetchall()
        assert audit == [(users[Role.BILLING_CLERK].username, "status", "closed")]
    # closed again: nothing changes, nothing is audited twice
    same = await client.post(url, json={"status": "closed"}, headers=clerk)
    assert same.json() == {"account": number, "status": "closed", "changed": False}
    with psycopg.connect(db_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM audit_log WHERE entity = 'account' AND entity_id = %s", (number,)
        ).fetchone()
        assert n == (1,)
    # the history stays in time order; nothing in the future; only billing staff; real statuses
    before = await client.post(url, json={"status": "active", "at": "2026-10-01"}, headers=clerk)
    assert before.status_code == 409 and "cannot take effect before" in before.text
    future = await client.post(url, json={"status": "active", "at": "2999-01-01"}, headers=clerk)
    assert future.status_code == 422 and "future" in future.text
    cashier = bearer(users[Role.CASHIER])
    assert (await client.post(url, json={"status": "active"}, headers=cashier)).status_code == 403
    assert (await client.post(url, json={"status": "gone"}, headers=clerk)).status_code == 422
    for wrong in ("000000000", "000000001"):  # no such account; a wrong check digit
        r = await client.post(
            f"/api/v1/accounts/{wrong}/status", json={"status": "active"}, headers=clerk
        )
        assert r.status_code == 404, r.text
    # reopened now: nothing billed from this month on
    again = await client.post(url, json={"status": "active", "reason": "back"}, headers=clerk)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "active" and again.json()["months_to_correct"] == []
