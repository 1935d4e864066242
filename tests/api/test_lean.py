"""The lean balance route (api.lean, issue 20) answers exactly as the ordinary handler does:
the same bodies and refusals, the login checked against the users table on every call, and
it really is the lean path that serves a Bearer call (one round trip), while a page's cookie
session goes through the ordinary handler. (That a branch user sees nothing of another
branch through it is walked by test_branches_walk.py, which calls with Bearer tokens.)"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import psycopg
import pytest

import api.routes.billing as billing_routes
from api.deps import SESSION_COOKIE, scoped_read
from api.security import Role, make_access_token

from .conftest import (
    NOW,
    SECRET,
    User,
    add_invoice_and_charge,
    bearer,
    insert_user,
    make_account,
)


def _cookie(user: User) -> dict[str, str]:
    return {SESSION_COOKIE: make_access_token(user.principal(), SECRET, NOW)}


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The requests that api.deps.scoped_read answered (with rows or a refusal) for the
    balance route; the real function runs."""
    calls: list[tuple[Any, ...]] = []
    real = scoped_read

    async def counted(*args: Any) -> Any:
        try:
            rows = await real(*args)
        except Exception:
            calls.append(args[1:])  # it answered: with a refusal
            raise
        if rows is not None:  # None: it left the request to the ordinary handler
            calls.append(args[1:])
        return rows

    monkeypatch.setattr(billing_routes, "scoped_read", counted)
    return calls


async def _both(
    client: httpx.AsyncClient, user: User, path: str
) -> tuple[httpx.Response, httpx.Response]:
    lean = await client.get(path, headers=bearer(user))
    client.cookies.clear()
    client.cookies.update(_cookie(user))
    ordinary = await client.get(path)
    client.cookies.clear()
    return lean, ordinary


async def test_lean_balance_answers_as_the_ordinary_handler(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    db_url: str,
    lean_calls: list[tuple[Any, ...]],
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        acc_id, number = make_account(conn, 7301, name="Lean Balance")
        add_invoice_and_charge(conn, acc_id, date(2026, 10, 1), 1_234_500, 10.0, "LEAN-0001")
    path = f"/api/v1/accounts/{number}/balance"
    lean, ordinary = await _both(client, users[Role.ADMIN], path)
    assert lean.status_code == ordinary.status_code == 200, (lean.text, ordinary.text)
    assert lean.json() == ordinary.json() == {"account": number, "balance_tiyin": 1_234_500}
    assert lean.headers["content-type"] == ordinary.headers["content-type"]
    assert lean.headers["x-frame-options"] == "DENY"  # the middleware still wraps it
    assert len(lean_calls) == 1  # the Bearer call took the lean path, the cookie one did not

    # an unknown account: the same 404
    lean, ordinary = await _both(client, users[Role.ADMIN], "/api/v1/accounts/999999999/balance")
    assert lean.status_code == ordinary.status_code == 404
    assert lean.json() == ordinary.json()

    # a role that may not read billing: the same 403, and no statement sent
    before = len(lean_calls)
    lean, ordinary = await _both(client, users[Role.DISPATCHER], path)
    assert lean.status_code == ordinary.status_code == 403
    assert lean.json() == ordinary.json()
    assert len(lean_calls) == before + 1

    # a malformed number is left to the ordinary handler: the same 422 as before
    bad = await client.get("/api/v1/accounts/12AB/balance", headers=bearer(users[Role.ADMIN]))
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid"


async def test_lean_balance_checks_the_login_on_every_call(
    client: httpx.AsyncClient, db_url: str, lean_calls: list[tuple[Any, ...]]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, number = make_account(conn, 7302)
        clerk = insert_user(conn, "lean_clerk", Role.BILLING_CLERK)
    path = f"/api/v1/accounts/{number}/balance"
    assert (await client.get(path, headers=bearer(clerk))).status_code == 200
    token = bearer(clerk)

    # disabled: the very next call is refused, with the ordinary handler's words
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE api_users SET active = false WHERE id = %s", (clerk.id,))
    lean, ordinary = await _both(client, clerk, path)
    assert lean.status_code == ordinary.status_code == 401
    assert lean.json() == ordinary.json()
    assert "disabled" in lean.json()["detail"]

    # enabled again but the token revoked (logout, new password): refused too
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_users SET active = true, token_version = token_version + 1 WHERE id = %s",
            (clerk.id,),
        )
    again = await client.get(path, headers=token)
    assert again.status_code == 401
    assert "revoked" in again.json()["detail"]
    assert len(lean_calls) == 3

    # no token, or another scheme: the ordinary handler's 401
    assert (await client.get(path)).status_code == 401
    basic = await client.get(path, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    assert "Bearer" in basic.json()["detail"]
    assert len(lean_calls) == 3


async def test_lean_balance_is_documented_like_the_others(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    op = spec["paths"]["/api/v1/accounts/{number}/balance"]["get"]
    assert op["summary"] == "Balance of an account (tiyin)"
    assert [p["name"] for p in op["parameters"]] == ["number"]
