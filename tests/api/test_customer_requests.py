"""Customer requests (issue 15): the account card's form and list, the queue
/staff/requests, the cabinet's "write to us", the JSON API /api/v1/customer-requests and the
correspondence language on the account's edit page. Each action audited, the same rules for
page and API (an invoice of another account, a disputed amount above the invoice or negative,
an unknown kind, resolving twice are refused and nothing is written), forms idempotent by
their key (Back, then submit: one request), a branch's clerk sees and touches only their
branch's requests. On the real PostgreSQL, the app in-process, a fixed clock."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.security import Role
from billing import branches as br
from billing.accounts import Address, create_account
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    User,
    add_invoice_and_charge,
    api_settings,
    bearer,
    insert_user,
    make_account,
)

EDIT = {Role.ADMIN, Role.BILLING_CLERK}
READ = {Role.ADMIN, Role.BILLING_CLERK, Role.CASHIER, Role.ACCOUNTANT, Role.LAWYER, Role.VIEWER}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(db_url: str, clock: Clock) -> FastAPI:
    return create_app(api_settings(db_url), clock=clock)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def login(client: httpx.AsyncClient, kind: str, name: str) -> str:
    """Log in on the staff or cabinet page; the CSRF token for the forms."""
    client.cookies.clear()
    page = await client.get(f"/{kind}/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    field = "username" if kind == "staff" else "account_no"
    r = await client.post(
        f"/{kind}/login",
        data={field: name, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert r.status_code == 303, r.text
    return token.group(1)


def text(r: httpx.Response) -> str:
    return html.unescape(r.text)


def form_key(r: httpx.Response) -> str:
    m = re.search(r'name="request_key" value="([0-9a-f]{32})"', r.text)
    assert m, r.text[:500]
    return m.group(1)


def count(db_url: str, sql: str, *args: Any) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])


def requests_of(db_url: str, account_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT id, channel, kind, invoice_id, disputed_tiyin, subject, status, received_at, "
            "resolved_at, resolution, created_by FROM customer_requests WHERE account_id = %s "
            "ORDER BY id",
            (account_id,),
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def audit(db_url: str, action: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT actor, entity, entity_id, before, after FROM audit_log WHERE action = %s "
            "ORDER BY id",
            (action,),
        ).fetchall()


@pytest.fixture(scope="module")
def place(db_url: str, users: dict[Role, User]) -> dict[str, Any]:
    """Two accounts with invoices (150 000,00 so'm each month), a customer login for the
    first."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 700, name="Karimova Nilufar")
        other_id, other = make_account(conn, 701, name="Rahimov Jasur", house="14")
        inv = add_invoice_and_charge(conn, aid, date(2026, 11, 1), 15_000_000, 10.0, "R-2026-11")
        inv_oct = add_invoice_and_charge(conn, aid, date(2026, 10, 1), 12_000_000, 8.0, "R-2026-10")
        other_inv = add_invoice_and_charge(
            conn, other_id, date(2026, 11, 1), 9_000_000, 6.0, "R-2026-11b"
        )
        customer = insert_user(conn, number, Role.CUSTOMER, account_no=number)
        conn.commit()
    return {
        "account_id": aid,
        "number": number,
        "other_id": other_id,
        "other": other,
        "invoice": inv,
        "invoice_oct": inv_oct,
        "other_invoice": other_inv,
        "customer": customer,
    }


# ------------------------------------------------------------------------- the card's form


async def test_a_clerk_records_a_request_once_even_when_the_form_is_sent_again(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    csrf = await login(client, "staff", users[Role.BILLING_CLERK].username)
    number = place["number"]
    before = len(requests_of(db_url, place["account_id"]))
    card = await client.get(f"/staff/accounts/{number}?lang=uz")
    assert card.status_code == 200
    assert 'id="request-form"' in card.text and "form_key.js" in card.text
    key = form_key(card)
    form = {
        "csrf_token": csrf,
        "request_key": key,
        "channel": "phone",
        "kind": "bill_dispute",
        "subject": "Noyabr hisobi juda katta",
        "invoice_id": str(place["invoice"]),
        "disputed": "15 000,50",
    }
    r = await client.post(f"/staff/accounts/{number}/requests", data=form)
    assert r.status_code == 303, text(r)[:2000]
    assert r.headers["location"].startswith(f"/staff/accounts/{number}?form=")
    assert form_key(await client.get(r.headers["location"])) != key  # the next form: new key
    # browser Back, then the same form again: the first request, not a second one
    again = await client.post(f"/staff/accounts/{number}/requests", data=form)
    assert again.status_code == 303 and "again=1" in again.headers["location"]
    shown = await client.get(again.headers["location"].split("#")[0] + "&lang=en")
    assert "was recorded then, not again" in text(shown)
    rows = requests_of(db_url, place["account_id"])
    assert len(rows) == before + 1
    new = rows[-1]
    assert new["channel"] == "phone" and new["kind"] == "bill_dispute"
    assert new["invoice_id"] == place["invoice"]
    assert new["disputed_tiyin"] == 1_500_050  # 15 000,50 so'm
    assert new["received_at"] == NOW and new["status"] == "open"
    assert new["created_by"] == users[Role.BILLING_CLERK].username
    rows_audit = [a for a in audit(db_url, "request") if a[2] == str(new["id"])]
    assert len(rows_audit) == 1
    assert rows_audit[0][0] == users[Role.BILLING_CLERK].username
    assert rows_audit[0][4]["disputed_tiyin"] == 1_500_050
    # the card lists it, in the page's language, the amount as the office writes it
    card = await client.get(f"/staff/accounts/{number}?lang=ru")
    page = text(card)
    assert f'id="request-{new["id"]}"' in page
    assert "Оспоренный счёт" in page and "15\u202f000,50" in page
    assert "Noyabr hisobi juda katta" in page


async def test_a_refused_form_writes_nothing_and_says_why_at_each_field(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    csrf = await login(client, "staff", users[Role.ADMIN].username)
    number = place["number"]
    before = len(requests_of(db_url, place["account_id"]))
    audits = len(audit(db_url, "request"))
    base = {"csrf_token": csrf, "channel": "office", "kind": "bill_dispute", "subject": "x"}
    cases = [
        ({"invoice_id": str(place["other_invoice"])}, "This invoice is not one of this account's"),
        (
            {"invoice_id": str(place["invoice"]), "disputed": "150 000,01"},
            "more than the invoice's amount, 150\u202f000,00 so'm",
        ),
        ({"invoice_id": str(place["invoice"]), "disputed": "-5"}, "cannot be negative"),
        ({"invoice_id": str(place["invoice"]), "disputed": "12,345"}, "Enter an amount in so'm"),
        ({}, "Choose the disputed invoice"),
        ({"kind": "gossip"}, "Choose what the request is about"),
        ({"kind": "leak", "subject": "  "}, "Fill this in"),
    ]
    for extra, words in cases:
        r = await client.post(f"/staff/accounts/{number}/requests?lang=en", data={**base, **extra})
        assert r.status_code == 422, (extra, r.status_code)
        assert words in text(r), (extra, re.findall(r"field-error[^<]*<?[^<]*", text(r)))
        assert 'name="request_key"' in r.text  # the form again, with what was typed
    assert len(requests_of(db_url, place["account_id"])) == before
    assert len(audit(db_url, "request")) == audits


async def test_in_progress_resolve_and_the_same_resolve_sent_again(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    place: dict[str, Any],
    db_url: str,
    clock: Clock,
) -> None:
    csrf = await login(client, "staff", users[Role.BILLING_CLERK].username)
    number = place["number"]
    card = await client.get(f"/staff/accounts/{number}")
    r = await client.post(
        f"/staff/accounts/{number}/requests",
        data={
            "csrf_token": csrf,
            "request_key": form_key(card),
            "channel": "office",
            "kind": "leak",
            "subject": "Hovlida quvur oqyapti",
        },
    )
    assert r.status_code == 303
    rid = requests_of(db_url, place["account_id"])[-1]["id"]
    url = f"/staff/requests/{rid}/status"
    r = await client.post(url, data={"csrf_token": csrf, "status": "in_progress"})
    assert r.status_code == 303 and r.headers["location"].endswith(f"#request-{rid}")
    r = await client.post(url + "?lang=en", data={"csrf_token": csrf, "status": "resolved"})
    assert r.status_code == 422 and "Say how the request was resolved" in text(r)
    clock.now = NOW + timedelta(hours=3)
    try:
        done = {"csrf_token": csrf, "status": "resolved", "resolution": "Quvur almashtirildi"}
        r = await client.post(url, data=done)
        assert r.status_code == 303
        row = requests_of(db_url, place["account_id"])[-1]
        assert row["status"] == "resolved" and row["resolution"] == "Quvur almashtirildi"
        assert row["resolved_at"] == NOW + timedelta(hours=3)  # the injected clock
        # Back, then the same form again: said done, not refused, nothing changes
        r = await client.post(url, data=done)
        assert r.status_code == 303
        # another answer to an ended request is refused (409), nothing written
        r = await client.post(
            url + "?lang=en", data={**done, "status": "rejected", "resolution": "boshqa"}
        )
        assert r.status_code == 409 and "has ended already" in text(r)
    finally:
        clock.now = NOW
    assert requests_of(db_url, place["account_id"])[-1]["resolution"] == "Quvur almashtirildi"
    changes = [a for a in audit(db_url, "request_status") if a[2] == str(rid)]
    assert [a[4]["status"] for a in changes] == ["in_progress", "resolved"]
    assert changes[1][3] == {"status": "in_progress", "resolution": ""}


async def test_subject_and_resolution_are_text_not_markup(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any]
) -> None:
    csrf = await login(client, "staff", users[Role.BILLING_CLERK].username)
    number = place["number"]
    card = await client.get(f"/staff/accounts/{number}")
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    r = await client.post(
        f"/staff/accounts/{number}/requests",
        data={
            "csrf_token": csrf,
            "request_key": form_key(card),
            "channel": "letter",
            "kind": "other",
            "subject": evil,
        },
    )
    assert r.status_code == 303
    for url in (f"/staff/accounts/{number}", "/staff/requests?kind=other"):
        body = (await client.get(url)).text
        assert "<script>alert(1)" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# ------------------------------------------------------------------------------ the roles


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.CUSTOMER])
async def test_who_reads_and_who_records(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], role: Role
) -> None:
    csrf = await login(client, "staff", users[role].username)
    r = await client.get("/staff/requests")
    assert r.status_code == (200 if role in READ else 403), role
    home = await client.get("/staff/")
    assert ('href="/staff/requests"' in home.text) == (role in READ)
    if role in READ:
        card = await client.get(f"/staff/accounts/{place['number']}")
        assert 'id="requests"' in card.text
        assert ('id="request-form"' in card.text) == (role in EDIT)
    r = await client.post(
        f"/staff/accounts/{place['number']}/requests",
        data={"csrf_token": csrf, "channel": "office", "kind": "question", "subject": "?"},
    )
    if role not in EDIT:
        assert r.status_code == 403, role
    api = await client.post(
        "/api/v1/customer-requests",
        json={"account": place["number"], "kind": "question", "subject": "?"},
        headers=bearer(users[role]),
    )
    assert api.status_code == (201 if role in EDIT else 403), role


# ------------------------------------------------------------------------------- the queue


async def test_the_queue_open_ones_oldest_first_by_kind_and_state(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        ids = [
            conn.execute(
                "INSERT INTO customer_requests (account_id, received_at, kind, status, subject, "
                "resolved_at, resolution) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (place["other_id"], at, kind, status, subj, res_at, res),
            ).fetchone()[0]  # type: ignore[index]
            for at, kind, status, subj, res_at, res in (
                (NOW - timedelta(days=9), "no_water", "open", "Q-old", None, ""),
                (NOW - timedelta(days=1), "no_water", "in_progress", "Q-new", None, ""),
                (NOW - timedelta(days=20), "quality", "open", "Q-quality", None, ""),
                (NOW - timedelta(days=30), "no_water", "resolved", "Q-done", NOW, "ok"),
            )
        ]
        conn.commit()
    await login(client, "staff", users[Role.VIEWER].username)
    r = await client.get("/staff/requests?kind=no_water&lang=uz")
    page = text(r)
    assert "Q-done" not in page and "Q-quality" not in page
    assert page.index("Q-old") < page.index("Q-new")  # oldest first
    assert f'href="/staff/accounts/{place["other"]}#request-{ids[0]}"' in page
    r = await client.get("/staff/requests?kind=no_water&status=in_progress")
    assert "Q-new" in text(r) and "Q-old" not in text(r)
    r = await client.get("/staff/requests")
    rows = re.findall(r'<tr id="q-(\d+)"', r.text)
    with psycopg.connect(db_url) as conn:
        received: dict[int, Any] = dict(
            conn.execute("SELECT id, received_at FROM customer_requests").fetchall()
        )
    assert rows and [received[int(i)] for i in rows] == sorted(received[int(i)] for i in rows)
    assert str(ids[3]) not in rows


# --------------------------------------------------------------------------------- the API


async def test_the_api_records_lists_and_changes_with_the_same_rules(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    clerk = bearer(users[Role.BILLING_CLERK])
    url = "/api/v1/customer-requests"
    before = count(db_url, "SELECT count(*) FROM customer_requests")
    audits = count(db_url, "SELECT count(*) FROM audit_log")
    dispute = {
        "account": place["number"],
        "channel": "letter",
        "kind": "bill_dispute",
        "subject": "Oktabr",
        "invoice_id": place["invoice_oct"],
    }
    refused = [
        ({**dispute, "kind": "gossip"}, "request_kind"),
        ({**dispute, "invoice_id": place["other_invoice"]}, "other_invoice"),
        ({**dispute, "disputed_tiyin": 12_000_001}, "amount_over_invoice"),
        ({**dispute, "disputed_tiyin": -1}, "amount_negative"),
        ({**dispute, "channel": "pigeon"}, "request_channel"),
        ({**dispute, "kind": "leak"}, "not_dispute"),
    ]
    for body, code in refused:
        r = await client.post(url, json=body, headers=clerk)
        assert r.status_code == 422, (code, r.text)
        assert code in [p["code"] for p in r.json()["problems"]], r.text
        assert r.json()["error"] == "invalid"
    r = await client.post(url, json={**dispute, "account": "999999999"}, headers=clerk)
    assert r.status_code == 404
    assert count(db_url, "SELECT count(*) FROM customer_requests") == before
    assert count(db_url, "SELECT count(*) FROM audit_log") == audits

    body = {**dispute, "disputed_tiyin": 12_000_000, "request_key": "letter-2026-0042"}
    r = await client.post(url, json=body, headers=clerk)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["disputed_tiyin"] == 12_000_000 and made["invoice"] == "R-2026-10"
    assert made["status"] == "open" and made["account"] == place["number"]
    r = await client.post(url, json=body, headers=clerk)  # the same key: the first one
    assert r.status_code == 200 and r.json()["id"] == made["id"]
    assert count(db_url, "SELECT count(*) FROM customer_requests") == before + 1

    r = await client.get(
        url, params={"kind": "bill_dispute", "account": place["number"], "limit": 1}, headers=clerk
    )
    assert r.status_code == 200
    listing = r.json()
    assert listing["limit"] == 1 and listing["offset"] == 0 and listing["total"] >= 1
    assert listing["items"][0]["id"] == made["id"]  # newest first
    assert all(i["kind"] == "bill_dispute" for i in listing["items"])
    r = await client.get(url, params={"kind": "gossip"}, headers=clerk)
    assert r.status_code == 422
    r = await client.get(url, params={"open": "true", "oldest_first": "true"}, headers=clerk)
    items = r.json()["items"]
    assert all(i["status"] in ("open", "in_progress") for i in items)
    assert [i["received_at"] for i in items] == sorted(i["received_at"] for i in items)

    patch = f"{url}/{made['id']}"
    r = await client.patch(patch, json={"status": "rejected"}, headers=clerk)
    assert r.status_code == 422 and r.json()["problems"][0]["code"] == "resolution_required"
    r = await client.patch(patch, json={"status": "open"}, headers=clerk)
    assert r.status_code == 422
    r = await client.patch(
        patch, json={"status": "rejected", "resolution": "Hisob to'g'ri"}, headers=clerk
    )
    assert r.status_code == 200 and r.json()["resolved_at"] is not None
    r = await client.patch(patch, json={"status": "resolved", "resolution": "yana"}, headers=clerk)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await client.patch(f"{url}/987654321", json={"status": "resolved"}, headers=clerk)
    assert r.status_code == 404
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT status, resolution FROM customer_requests WHERE id = %s", (made["id"],)
        ).fetchone()
    assert row == ("rejected", "Hisob to'g'ri")
    r = await client.get(url, headers=bearer(users[Role.VIEWER]))
    assert r.status_code == 200
    r = await client.get(url, headers=bearer(users[Role.DISPATCHER]))
    assert r.status_code == 403


# ----------------------------------------------------------------------------- the cabinet


async def test_the_customer_writes_from_the_cabinet(
    client: httpx.AsyncClient, place: dict[str, Any], db_url: str
) -> None:
    csrf = await login(client, "cabinet", place["number"])
    home = await client.get("/cabinet/")
    assert 'href="/cabinet/requests"' in home.text
    r = await client.get("/cabinet/requests?lang=uz")
    assert r.status_code == 200
    key = form_key(r)
    form = {
        "csrf_token": csrf,
        "request_key": key,
        "kind": "no_water",
        "subject": "Ikki kundan beri suv yo'q",
        # a field the cabinet does not show is not taken from the form: always 'cabinet'
        "channel": "office",
    }
    before = len(requests_of(db_url, place["account_id"]))
    r = await client.post("/cabinet/requests", data=form)
    assert r.status_code == 303 and "done=1" in r.headers["location"]
    thanks = await client.get(r.headers["location"] + "&lang=en")
    assert "Thank you" in text(thanks) and "Ikki kundan beri suv yo'q" in text(thanks)
    assert "Open request" in text(thanks)
    r = await client.post("/cabinet/requests", data=form)  # Back, then submit again
    assert "again=1" in r.headers["location"]
    rows = requests_of(db_url, place["account_id"])
    assert len(rows) == before + 1
    assert rows[-1]["channel"] == "cabinet" and rows[-1]["created_by"] == place["number"]
    # a dispute of another account's invoice is refused in the cabinet too
    r = await client.post(
        "/cabinet/requests?lang=en",
        data={
            "csrf_token": csrf,
            "request_key": "0" * 32,
            "kind": "bill_dispute",
            "subject": "x",
            "invoice_id": str(place["other_invoice"]),
        },
    )
    assert r.status_code == 422 and "not one of this account's" in text(r)
    assert len(requests_of(db_url, place["account_id"])) == before + 1
    # the staff pages and the API are not the customer's
    r = await client.get("/staff/requests", follow_redirects=False)
    assert r.status_code in (303, 403)


# ----------------------------------------------------------------- correspondence language


async def test_the_language_of_letters_on_the_edit_page(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    csrf = await login(client, "staff", users[Role.BILLING_CLERK].username)
    number = place["other"]
    edit = f"/staff/register/accounts/{number}/edit"
    r = await client.get(edit + "?lang=en")
    assert 'id="language-form"' in r.text and "the utility's default" in text(r)
    url = f"/staff/register/accounts/{number}/language"
    r = await client.post(url + "?lang=en", data={"csrf_token": csrf, "language": "fr"})
    assert r.status_code == 422 and "Choose one of the languages" in text(r)
    r = await client.post(url, data={"csrf_token": csrf, "language": "uz_Cyrl"})
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT correspondence_language FROM accounts WHERE number = %s", (number,)
        ).fetchone()
    assert row == ("uz_Cyrl",)
    card = await client.get(f"/staff/accounts/{number}?lang=ru")
    assert "Узбекский (кириллица)" in text(card)
    r = await client.post(url, data={"csrf_token": csrf, "language": ""})
    assert r.status_code == 303
    rows = [a for a in audit(db_url, "language") if a[2] == number]
    assert [(a[3], a[4]) for a in rows] == [
        ({"correspondence_language": None}, {"correspondence_language": "uz_Cyrl"}),
        ({"correspondence_language": "uz_Cyrl"}, {"correspondence_language": None}),
    ]
    await login(client, "staff", users[Role.VIEWER].username)
    r = await client.post(url, data={"csrf_token": csrf, "language": "ru"})
    assert r.status_code == 403


# ------------------------------------------------------------------------------- branches


async def test_a_branch_clerk_sees_and_touches_only_their_branch(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """Requests go through the request's scoped connection: branch A's clerk finds none of
    branch B's requests in the queue, the API or on a card, cannot record one on B's account
    or change B's; the regional clerk sees both."""
    with psycopg.connect(db_url) as c:
        sides = {}
        for key, code, district, person in (
            ("a", "RQA", "Rqa tumani", "Alimova Aziza"),
            ("b", "RQB", "Rqb tumani", "Botirova Barno"),
        ):
            branch = br.add_branch(c, code, f"{code} filiali")
            aid, number = create_account(
                c,
                kind="household",
                name=person,
                address=Address(
                    "Samarqand viloyati", district, f"{code} MFY", f"{code} ko'chasi", "1"
                ),
                now=NOW,
                residents=2,
                opened_on=date(2025, 1, 1),
            )
            br.assign(c, code, districts=[district])
            rid = c.execute(
                "INSERT INTO customer_requests (account_id, received_at, kind, subject) "
                "VALUES (%s, %s, 'no_water', %s) RETURNING id",
                (aid, NOW - timedelta(days=2), f"{code}-secret"),
            ).fetchone()[0]  # type: ignore[index]
            clerk = insert_user(c, f"clerk_{code.lower()}", Role.BILLING_CLERK)
            c.execute(
                "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
                (branch.id, clerk.id),
            )
            sides[key] = {"number": number, "request": rid, "clerk": clerk, "id": aid}
        regional = insert_user(c, "clerk_region", Role.BILLING_CLERK)
        c.commit()
    a, b = sides["a"], sides["b"]
    csrf = await login(client, "staff", a["clerk"].username)
    r = await client.get("/staff/requests")
    assert "RQA-secret" in r.text and "RQB-secret" not in r.text
    r = await client.get("/api/v1/customer-requests", headers={"x-csrf-token": csrf})
    subjects = {i["subject"] for i in r.json()["items"]}
    assert "RQA-secret" in subjects and "RQB-secret" not in subjects
    r = await client.get(f"/staff/accounts/{b['number']}")
    assert r.status_code == 404
    r = await client.post(
        f"/staff/accounts/{b['number']}/requests",
        data={"csrf_token": csrf, "channel": "office", "kind": "leak", "subject": "x"},
    )
    assert r.status_code == 404
    r = await client.post(
        f"/staff/requests/{b['request']}/status",
        data={"csrf_token": csrf, "status": "rejected", "resolution": "x"},
    )
    assert r.status_code == 404
    r = await client.patch(
        f"/api/v1/customer-requests/{b['request']}",
        json={"status": "rejected", "resolution": "x"},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 404
    # a dispute naming B's invoice from A's account: not one of the account's
    with psycopg.connect(db_url) as c:
        b_inv = add_invoice_and_charge(c, b["id"], date(2026, 11, 1), 100_000, 1.0, "RQB-1")
        c.commit()
    r = await client.post(
        "/api/v1/customer-requests",
        json={"account": a["number"], "kind": "bill_dispute", "subject": "x", "invoice_id": b_inv},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 422
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT status, (SELECT count(*) FROM customer_requests WHERE account_id = %s) "
            "FROM customer_requests WHERE id = %s",
            (b["id"], b["request"]),
        ).fetchone()
    assert row == ("open", 1)  # untouched, nothing added
    await login(client, "staff", regional.username)
    r = await client.get("/staff/requests")
    assert "RQA-secret" in r.text and "RQB-secret" in r.text
