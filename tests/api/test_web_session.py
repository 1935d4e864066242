"""Web sessions through the in-process app: login form with CSRF, session renewal with the
refresh cookie after the access cookie expired, CSRF on authenticated forms, redirects."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from api.security import Role
from tests.api.conftest import PASSWORD, Clock, User


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m, page.text[:500]
    return m.group(1)


async def test_staff_session_renewed_after_access_expiry(
    client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    token = await csrf(client, "/staff/login")
    r = await client.post(
        "/staff/login",
        data={"username": "u_viewer", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/"
    first_refresh = client.cookies.get("suvnet_refresh")
    assert (await client.get("/staff/")).status_code == 200
    clock.now += timedelta(minutes=20)  # the access cookie has expired
    r = await client.get("/staff/")
    assert r.status_code == 200, r.headers
    assert client.cookies.get("suvnet_refresh") != first_refresh  # rotated
    # the old refresh token no longer works
    stale = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    stale.cookies.set("suvnet_refresh", first_refresh or "")
    r = await stale.get("/staff/")
    assert r.status_code == 303 and "/staff/login" in r.headers["location"]
    await stale.aclose()


async def test_authenticated_form_needs_csrf(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    token = await csrf(client, "/staff/login")
    await client.post(
        "/staff/login", data={"username": "u_cashier", "password": PASSWORD, "csrf_token": token}
    )
    r = await client.post("/staff/logout", data={})
    assert r.status_code == 403
    assert "form has expired" in r.json()["detail"]
    r = await client.post("/staff/logout", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await client.get("/staff/")).status_code == 303  # logged out


async def test_login_form_errors_and_open_redirect(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    token = await csrf(client, "/staff/login?lang=en")
    r = await client.post(
        "/staff/login", data={"username": "u_admin", "password": "nope", "csrf_token": token}
    )
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    # a customer cannot use the staff login, a staff user not the cabinet
    r = await client.post(
        "/cabinet/login", data={"account_no": "u_admin", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 401
    r = await client.post(
        "/staff/login",
        data={
            "username": "u_admin",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/"
