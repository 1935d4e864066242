"""The account search through the office API and the register page (GET
/api/v1/search/accounts, /staff/register?q=): what people type in Uzbekistan finds the
account, for the roles that read billing; the old plain search of the back office found none
of these (issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.security import Role
from billing import queries as bq
from tests.api.conftest import NOW, Clock, User, api_settings, bearer, make_account
from tests.api.test_register_pages import login, page


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(api_settings(db_url), clock=Clock(NOW))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture(scope="module")
def accounts(db_url: str, users: dict[Role, User]) -> dict[str, str]:
    """The customer's account (Karimov Anvar, Navoiy 12) and two more, on streets named as a
    dictionary names them ("Navoiy ko'chasi", with its Cyrillic and Russian names)."""
    with psycopg.connect(db_url) as conn:
        _, navoiy112 = make_account(conn, 602, name="Olimova Zuhra", street="Navoiy", house="112")
        _, bogbon3 = make_account(
            conn,
            603,
            name="Yusupova Gulnora",
            street="Bog'bon ko'chasi",
            house="3",
            phone="998935551122",
        )
        conn.execute(
            "UPDATE streets SET name_uz = 'Navoiy ko''chasi', name_uz_cyrl = 'Навоий кўчаси', "
            "name_ru = 'улица Навои' WHERE name_uz = 'Navoiy'"
        )
        conn.execute(
            "UPDATE streets SET name_uz_cyrl = 'Боғбон кўчаси' WHERE name_uz = 'Bog''bon ko''chasi'"
        )
        conn.commit()
    return {
        "navoiy12": users[Role.CUSTOMER].username,  # the customer's login is its number
        "navoiy112": navoiy112,
        "bogbon3": bogbon3,
    }


ISSUE_EXAMPLES = [
    ("Bog'bon 3", "bogbon3"),
    ("Navoiy 12", "navoiy12"),
    ("Навоий 12", "navoiy12"),
    ("Навои 12", "navoiy12"),
    ("Боғбон 3", "bogbon3"),
    ("93 555 11 22", "bogbon3"),
    ("Каримов", "navoiy12"),
]


@pytest.mark.parametrize(("text", "first"), ISSUE_EXAMPLES)
async def test_the_api_finds_what_people_type(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    accounts: dict[str, str],
    text: str,
    first: str,
) -> None:
    r = await client.get(
        "/api/v1/search/accounts",
        params={"q": text, "limit": 5},
        headers=bearer(users[Role.CASHIER]),
    )
    assert r.status_code == 200
    items = r.json()["items"]
    assert items and items[0]["number"] == accounts[first], (text, items)
    assert {"number", "name", "street", "house", "mahalla", "status", "kind"} <= set(items[0])


async def test_the_old_search_found_none_of_them(db_url: str, accounts: dict[str, str]) -> None:
    """The search the back office had (billing.queries.search_accounts, plain ILIKE) finds
    none of the issue's examples but the phone number: what this search fixes."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        found = {
            text: [r["number"] for r in await bq.search_accounts(conn, text, 5)]
            for text, _ in ISSUE_EXAMPLES
        }
    assert found.pop("93 555 11 22") == [accounts["bogbon3"]]
    assert all(numbers == [] for numbers in found.values()), found


async def test_the_search_is_for_the_roles_that_read_billing(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, str]
) -> None:
    allowed = {"admin", "billing_clerk", "cashier", "accountant", "lawyer", "viewer"}
    for role, user in users.items():
        r = await client.get(
            "/api/v1/search/accounts", params={"q": "Navoiy"}, headers=bearer(user)
        )
        assert r.status_code == (200 if role.value in allowed else 403), role
    r = await client.get("/api/v1/search/accounts", params={"q": "Navoiy"})
    assert r.status_code == 401


async def test_bad_queries_are_refused_or_find_nothing(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, str]
) -> None:
    h = bearer(users[Role.ADMIN])
    assert (
        await client.get("/api/v1/search/accounts", params={"q": ""}, headers=h)
    ).status_code == 422
    r = await client.get("/api/v1/search/accounts", params={"q": "x" * 101}, headers=h)
    assert r.status_code == 422
    r = await client.get(
        "/api/v1/search/accounts", params={"q": "'; DROP TABLE accounts; --"}, headers=h
    )
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get("/api/v1/search/accounts", params={"q": "%_%"}, headers=h)
    assert r.status_code == 200 and r.json()["items"] == []


async def test_the_register_page_search(
    client: httpx.AsyncClient, users: dict[Role, User], accounts: dict[str, str]
) -> None:
    await login(client, users[Role.LAWYER])
    r = await client.get("/staff/register", params={"q": "Навои 12", "lang": "ru"})
    assert r.status_code == 200
    text = page(r)
    rows = text.split('id="results"', 1)[1].split("</table>", 1)[0]
    assert accounts["navoiy12"] in rows and accounts["navoiy112"] not in rows
    assert "Активен" in rows  # the status in the page's language
    r = await client.get("/staff/register", params={"q": "Zzzyx", "lang": "uz"})
    assert "Hech narsa topilmadi." in page(r)


def test_search_results_match_the_card_columns() -> None:
    """What the search answers has the columns the pages list (number, name, address)."""
    from billing.search import _FOUND

    for col in ("a.number", "a.name", "AS street", "AS house", "AS apartment", "AS mahalla"):
        assert col in _FOUND
