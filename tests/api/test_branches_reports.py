"""The department reports with branches (issue 20): the consolidated regional report adds the
branches up to the tiyin, each branch's own report is headed with its requisites, and claim
letters ask to pay the debtor's branch (refused, with what is missing, for a branch without
requisites)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.security import Role
from tests.api import test_branches_walk as walk
from tests.api.conftest import insert_user
from tests.api.test_branches_walk import World, bearer_of, full_app, readable

world = walk.world
"""The two branches of the walk test (its module-scoped fixture, shared)."""

YEAR = {"date_from": "2026-01-01", "date_to": "2026-12-31"}
MONEY = (
    "opening_debit",
    "opening_credit",
    "charged",
    "paid",
    "closing_debit",
    "closing_credit",
)


@pytest.fixture
async def client(db_url: str, world: World) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = full_app(db_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(t for t in doc["tables"] if t["key"] == key)


def total(doc: dict[str, Any], key: str = "turnover") -> dict[str, Any]:
    return next(r for r in table(doc, key)["rows"] if r["level"] == 9)


async def test_the_regional_report_adds_the_branches_up(
    client: httpx.AsyncClient, world: World
) -> None:
    async def report(headers: dict[str, str]) -> dict[str, Any]:
        r = await client.get("/api/v1/reports/accounting", params=YEAR, headers=headers)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    regional = await report(bearer_of(world.regional, None))
    a = await report(bearer_of(world.a_admin, world.a.branch.id))
    b = await report(bearer_of(world.b.user, world.b.branch.id))
    rows = [r for r in table(regional, "by_branch")["rows"] if r["level"] == 0]
    by_code = {r["branch"].split()[0]: r for r in rows}
    assert set(by_code) == {"AURG", "BPAY"}
    for code, own in (("AURG", a), ("BPAY", b)):
        # each branch's line of the consolidated report is that branch's own report, exactly
        assert {k: by_code[code][k] for k in MONEY} == {k: total(own)[k] for k in MONEY}
        assert by_code[code]["accounts"] == len(
            [r for r in table(own, "turnover")["rows"] if r["level"] == 0]
        )
        # and a branch's report has only its own line
        assert [
            r["branch"].split()[0] for r in table(own, "by_branch")["rows"] if r["level"] == 0
        ] == [code]
    # the branches add up to the region, to the tiyin, and so do the figures' parts
    whole = total(regional)
    assert total(regional, "by_branch") | {"branch": ""} == {
        "level": 9,
        "branch": "",
        "accounts": sum(r["accounts"] for r in rows),
        **{k: sum(r[k] for r in rows) for k in (*MONEY, "opening", "closing")},
    }
    assert {k: whole[k] for k in MONEY} == {k: total(a)[k] + total(b)[k] for k in MONEY}
    assert whole["charged"] > 0 and whole["paid"] > 0
    # who heads the form: the branch for a branch user, the utility for the region
    assert a["seller"]["name"] == "Aurgut filiali suv ta'minoti"
    assert a["seller"]["inn"] == "301111111"
    assert "seller" not in regional


async def test_the_regional_collections_add_the_branches_up(
    client: httpx.AsyncClient, world: World, db_url: str
) -> None:
    """The finance report's collections per branch: each branch's line is that branch's own
    report's total, and the lines add up to the region's, to the tiyin."""

    async def report(headers: dict[str, str]) -> dict[str, Any]:
        r = await client.get("/api/v1/reports/finance", params=YEAR, headers=headers)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    with psycopg.connect(db_url, autocommit=True) as conn:
        b_accountant = insert_user(conn, "bpay_accountant", Role.ACCOUNTANT)
        conn.execute(
            "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
            (world.b.branch.id, b_accountant.id),
        )
    regional = await report(bearer_of(world.regional, None))
    own = {
        "AURG": await report(bearer_of(world.a_admin, world.a.branch.id)),
        "BPAY": await report(bearer_of(b_accountant, world.b.branch.id)),
    }
    rows = [r for r in table(regional, "by_branch")["rows"] if r["level"] == 0]
    by_code = {r["branch"].split()[0]: r for r in rows}
    assert set(by_code) == {"AURG", "BPAY"}
    for code, doc in own.items():
        mine = total(doc, "by_category")
        assert {k: by_code[code][k] for k in ("accounts", "charged", "paid")} == {
            k: mine[k] for k in ("accounts", "charged", "paid")
        }
    whole = total(regional, "by_category")
    branch_total = total(regional, "by_branch")
    for k in ("accounts", "charged", "paid"):
        assert branch_total[k] == whole[k] == sum(r[k] for r in rows)
    assert whole["paid"] > 0 and whole["charged"] > 0


async def test_a_regional_user_asks_for_one_branchs_report(
    client: httpx.AsyncClient, world: World
) -> None:
    """?branch=CODE: the regional user gets exactly the branch's own report, headed by the
    branch; a branch user cannot name another branch (it is unknown to them)."""
    h = bearer_of(world.regional, None)
    r = await client.get("/api/v1/reports/accounting", params={**YEAR, "branch": "bpay"}, headers=h)
    assert r.status_code == 200, r.text
    one = r.json()
    r = await client.get(
        "/api/v1/reports/accounting",
        params=YEAR,
        headers=bearer_of(world.b.user, world.b.branch.id),
    )
    own = r.json()
    assert table(one, "turnover")["rows"] == table(own, "turnover")["rows"]
    assert one["seller"]["inn"] == "302222222"
    assert any(f["value"] == "BPAY" for f in one["filters"]), one["filters"]
    r = await client.get(
        "/api/v1/reports/accounting",
        params={**YEAR, "branch": "BPAY", "lang": "ru"},
        headers=bearer_of(world.a_admin, world.a.branch.id),
    )
    assert r.status_code == 422, r.text
    # in the form's language, as the report page says it (it was English before)
    assert r.json()["detail"] == "Среди ваших филиалов нет филиала BPAY."
    r = await client.get(
        "/api/v1/reports/legal/claims", params={**YEAR, "branch": "AURG"}, headers=h
    )
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = z.namelist()
    assert names and all(world.a.number in n for n in names), names


async def test_the_report_page_offers_the_branches_to_a_regional_user(
    client: httpx.AsyncClient, world: World
) -> None:
    h = bearer_of(world.regional, None)
    page = await client.get("/staff/reports?lang=ru", headers=h)
    assert page.status_code == 200
    assert 'name="branch"' in page.text and "Все филиалы" in page.text
    assert "AURG Aurgut filiali" in page.text and "BPAY Bpayariq filiali" in page.text
    form = {**YEAR, "report": "accounting", "format": "pdf", "branch": "BPAY"}
    r = await client.get("/staff/reports/download", params=form, headers=h)
    assert r.status_code == 303, r.text
    assert "branch=BPAY" in r.headers["location"]
    # a branch user has nothing to choose
    page = await client.get("/staff/reports", headers=bearer_of(world.a_admin, world.a.branch.id))
    assert page.status_code == 200 and 'name="branch"' not in page.text


async def test_a_branch_users_forms_carry_the_branch(
    client: httpx.AsyncClient, world: World
) -> None:
    h = bearer_of(world.b.user, world.b.branch.id)
    for fmt in ("pdf", "xlsx", "csv"):
        r = await client.get(
            "/api/v1/reports/accounting", params={**YEAR, "format": fmt}, headers=h
        )
        assert r.status_code == 200, (fmt, r.text[:300])
        text = readable(r)
        assert "Bpayariq filiali suv ta'minoti" in text, fmt
        assert "Aurgut" not in text, fmt


async def test_claim_letters_ask_to_pay_the_debtors_branch(
    client: httpx.AsyncClient, world: World, db_url: str
) -> None:
    params = {**YEAR, "date_to": "2026-12-31"}
    h = bearer_of(world.regional, None)
    r = await client.get("/api/v1/reports/legal/claims", params=params, headers=h)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        letters = {n: z.read(n) for n in z.namelist()}
    texts = {n: readable(httpx.Response(200, content=body)) for n, body in letters.items()}
    # one letter per debtor, each headed by the debtor's branch and paid to its bank account
    for side, account, name, other in (
        (world.a, "20208000100000000001", "Aurgut filiali suv ta'minoti", "Bpayariq"),
        (world.b, "20208000100000000002", "Bpayariq filiali suv ta'minoti", "Aurgut"),
    ):
        mine = [t for n, t in texts.items() if side.number in n]
        assert len(mine) == 1, list(texts)
        assert account in mine[0].replace(" ", ""), mine[0]
        assert name in mine[0]
        assert other not in mine[0]
    # a branch without a bank account: the letters are refused, saying what is missing
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE branches SET bank_account = '', mfo = '' WHERE id = %s", (world.b.branch.id,)
        )
    try:
        r = await client.get(
            "/api/v1/reports/legal/claims", params={**params, "lang": "en"}, headers=h
        )
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "BPAY" in detail and "Bank account" in detail and "MFO" in detail, detail
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE branches SET bank_account = '20208000100000000002', mfo = '00444' "
                "WHERE id = %s",
                (world.b.branch.id,),
            )
