"""Who may read /api/docs and /api/openapi.json (SUVNET_API_DOCS): anyone in development,
staff logins in production, nobody when off (issue 13, item 7; docs/api.md says the same)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from api.app import create_app
from api.security import Role, make_access_token
from suvnet.settings import load_settings
from tests.api.conftest import SECRET, Clock, User


def production_key() -> str:
    # made here, not written down: a key written in the repository is refused in production
    return secrets.token_urlsafe(48)


T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def serve(db_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        load_settings(database_url=db_url, db_pool_min=1, db_pool_max=2, **settings),
        clock=Clock(T0),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def as_user(user: User, key: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + make_access_token(user.principal(), key, T0)}


async def test_production_keeps_the_docs_for_staff(db_url: str, users: dict[Role, User]) -> None:
    key = production_key()
    async for c in serve(db_url, mode="production", secret_key=key):
        r = await c.get("/api/openapi.json")
        assert r.status_code == 401
        page = await c.get("/api/docs")
        assert page.status_code == 303
        assert page.headers["location"] == "/staff/login?next=/api/docs"
        r = await c.get("/api/openapi.json", headers=as_user(users[Role.CUSTOMER], key))
        assert r.status_code == 403
        r = await c.get("/api/openapi.json", headers=as_user(users[Role.CASHIER], key))
        assert r.status_code == 200 and r.json()["info"]["title"] == "suvnet API"
        page = await c.get("/api/docs", headers=as_user(users[Role.VIEWER], key))
        assert page.status_code == 200 and "swagger" in page.text.lower()


async def test_docs_switch(db_url: str, users: dict[Role, User]) -> None:
    async for c in serve(db_url, secret_key=SECRET):  # development: public
        assert (await c.get("/api/openapi.json")).status_code == 200
        assert (await c.get("/api/docs")).status_code == 200
    async for c in serve(db_url, secret_key=SECRET, api_docs="off"):
        assert (await c.get("/api/openapi.json")).status_code == 404
        r = await c.get("/api/docs", headers=as_user(users[Role.ADMIN], SECRET))
        assert r.status_code == 404
    key = production_key()
    async for c in serve(db_url, mode="production", secret_key=key, api_docs="public"):
        assert (await c.get("/api/openapi.json")).status_code == 200
