"""Tokens are checked against the users table on every request (issue 13, item 1).

A token stands only while its user exists, is active, has the token's role and account, and
has the token's version; logout, a new password, a role change and disabling raise the
version. A refresh token used twice revokes its whole family. Production refuses a secret
key published in the repository, so a token forged with one cannot be used at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.security import Principal, Role, make_access_token
from suvnet.errors import ConfigError
from suvnet.settings import Settings, load_settings
from tests.api.conftest import (
    PASSWORD,
    SECRET,
    Clock,
    User,
    bearer,
    free_port,
    insert_user,
    make_account,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_token_of_a_user_that_does_not_exist_opens_nothing(
    db_url: str, app: FastAPI, client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    """A correctly signed token for an unknown user id, carrying a real account number,
    is refused by the API and by the cabinet pages."""
    customer = users[Role.CUSTOMER]
    assert customer.account_no is not None
    ghost = Principal(987_654, "ghost", Role.CUSTOMER, customer.account_no)
    token = make_access_token(ghost, SECRET, clock.now)
    r = await client.get("/api/v1/me/account", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "does not exist" in r.json()["detail"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        browser.cookies.set("suvnet_session", token)
        page = await browser.get("/cabinet/")
    assert page.status_code == 303 and "/cabinet/login" in page.headers["location"]
    # the real customer's token works, and one with another account number does not
    assert (await client.get("/api/v1/me/account", headers=bearer(customer, clock))).is_success
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, other = make_account(conn, 77)
    wrong = Principal(customer.id, customer.username, Role.CUSTOMER, other)
    r = await client.get(
        "/api/v1/me/account",
        headers={"Authorization": "Bearer " + make_access_token(wrong, SECRET, clock.now)},
    )
    assert r.status_code == 401


async def test_disabled_user_is_refused_at_once(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        tech = insert_user(conn, "tech_gone", Role.TECHNICIAN)
    tokens = await login(client, "tech_gone")
    assert (await client.get("/api/v1/gateways", headers=auth(tokens))).status_code == 200
    r = await client.patch(
        f"/api/v1/users/{tech.id}", json={"active": False}, headers=bearer(users[Role.ADMIN])
    )
    assert r.status_code == 200
    r = await client.post(
        "/api/v1/gateways", json={"code": "gw-evil", "name": "x"}, headers=auth(tokens)
    )
    assert r.status_code == 401 and "disabled" in r.json()["detail"]
    assert (await client.get("/api/v1/gateways", headers=auth(tokens))).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_lowered_role_is_refused_at_once(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        boss = insert_user(conn, "boss_two", Role.ADMIN)
    tokens = await login(client, "boss_two")
    assert (await client.get("/api/v1/users", headers=auth(tokens))).status_code == 200
    r = await client.patch(
        f"/api/v1/users/{boss.id}", json={"role": "viewer"}, headers=bearer(users[Role.ADMIN])
    )
    assert r.status_code == 200
    r = await client.get("/api/v1/users", headers=auth(tokens))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # the refresh token gives tokens with the new role
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert (await client.get("/api/v1/users", headers=auth(r.json()))).status_code == 403


async def test_role_changed_behind_the_apis_back_is_refused(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """The role is compared too, not only the version: a change made straight in the
    database (no version bump) still takes effect at once."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_user(conn, "clerk_sql", Role.BILLING_CLERK)
        tokens = await login(client, "clerk_sql")
        assert (await client.get("/api/v1/accounts", headers=auth(tokens))).status_code == 200
        conn.execute("UPDATE api_users SET role = 'viewer' WHERE username = 'clerk_sql'")
    r = await client.get("/api/v1/accounts", headers=auth(tokens))
    assert r.status_code == 401 and "role" in r.json()["detail"]


async def test_logout_and_new_password_end_the_access_tokens(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        user = insert_user(conn, "disp_two", Role.DISPATCHER)
    first = await login(client, "disp_two")
    second = await login(client, "disp_two")  # another device
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=auth(first))).status_code == 401
    # the other device's access token went too, but its session renews
    assert (await client.get("/api/v1/auth/me", headers=auth(second))).status_code == 401
    renewed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert renewed.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=auth(renewed.json()))).is_success
    # a new password: every session ends, refresh tokens included
    r = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"password": "Yangi-parol-77"},
        headers=bearer(users[Role.ADMIN]),
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=auth(renewed.json()))).status_code == 401
    r = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": renewed.json()["refresh_token"]}
    )
    assert r.status_code == 401
    assert (await login(client, "disp_two", "Yangi-parol-77"))["role"] == "dispatcher"


async def test_refresh_reuse_revokes_the_whole_family(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_user(conn, "acc_two", Role.ACCOUNTANT)
    first = await login(client, "acc_two")
    other_device = await login(client, "acc_two")
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    # at once: two requests of one browser racing; refused, the family lives on
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401
    clock.now += timedelta(seconds=5)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    newest = r.json()
    assert (await client.get("/api/v1/auth/me", headers=auth(newest))).is_success
    # later: the first token again (a stolen copy): the whole family dies
    clock.now += timedelta(minutes=2)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and "ended" in r.json()["detail"]
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]})
    assert r.status_code == 401  # the newest refresh token of the family too
    assert (await client.get("/api/v1/auth/me", headers=auth(newest))).status_code == 401
    # another login (another family) renews; it only needs a new access token
    r = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
    )
    assert r.status_code == 200
    with psycopg.connect(db_url) as conn:
        open_tokens = conn.execute(
            "SELECT count(*) FROM api_refresh_tokens t JOIN api_users u ON u.id = t.user_id "
            "WHERE u.username = 'acc_two' AND t.revoked_at IS NULL"
        ).fetchone()
    assert open_tokens == (1,)  # only the other device's newest


async def staff_page_login(client: httpx.AsyncClient, username: str) -> None:
    page = await client.get("/staff/login")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m
    r = await client.post(
        "/staff/login",
        data={"username": username, "password": PASSWORD, "csrf_token": m.group(1)},
    )
    assert r.status_code == 303


async def test_page_session_follows_a_role_change_and_ends_when_disabled(
    db_url: str, app: FastAPI, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """The back office renews a session whose access cookie was revoked (the role changed)
    from the refresh cookie, with the new role; a disabled user is sent to the login."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        clerk = insert_user(conn, "page_clerk", Role.BILLING_CLERK)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        await staff_page_login(browser, "page_clerk")
        old_cookie = browser.cookies.get("suvnet_session")
        assert (await browser.get("/staff/")).status_code == 200
        admin = bearer(users[Role.ADMIN])
        r = await client.patch(f"/api/v1/users/{clerk.id}", json={"role": "viewer"}, headers=admin)
        assert r.status_code == 200
        page = await browser.get("/staff/")
        assert page.status_code == 200
        new_cookie = browser.cookies.get("suvnet_session")
        assert new_cookie and new_cookie != old_cookie
        me = await browser.get("/api/v1/auth/me")
        assert me.json()["role"] == "viewer"
        r = await client.patch(f"/api/v1/users/{clerk.id}", json={"active": False}, headers=admin)
        assert r.status_code == 200
        page = await browser.get("/staff/")
        assert page.status_code == 303 and "/staff/login" in page.headers["location"]


def env_example_secret() -> str:
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if line.startswith("SUVNET_SECRET_KEY="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("deploy/env.example has no SUVNET_SECRET_KEY line")


def test_placeholder_secret_cannot_start_the_app_in_production(db_url: str) -> None:
    """A token forged with the placeholder key of deploy/env.example is useless: with that
    key production settings do not load, create_app refuses, `suvnet api run` exits."""
    placeholder = env_example_secret()
    forged = make_access_token(Principal(1, "admin", Role.ADMIN), placeholder, T0)
    with pytest.raises(ConfigError, match="token_urlsafe"):
        load_settings(mode="production", secret_key=placeholder, database_url=db_url)
    fields = load_settings(database_url=db_url).model_dump()
    unvalidated = Settings.model_construct(
        **{**fields, "mode": "production", "secret_key": placeholder}
    )
    with pytest.raises(ConfigError, match="published"):
        create_app(unvalidated)
    port = free_port()
    env = {
        **os.environ,
        "SUVNET_DATABASE_URL": db_url,
        "SUVNET_MODE": "production",
        "SUVNET_SECRET_KEY": placeholder,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "suvnet.cli", "api", "run", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "SUVNET_SECRET_KEY" in out and "token_urlsafe" in out
    assert "Traceback" not in out
    assert placeholder not in out  # the message never repeats the key
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            f"http://127.0.0.1:{port}/api/v1/users",
            headers={"Authorization": f"Bearer {forged}"},
            timeout=2,
        )
