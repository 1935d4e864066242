"""Branches in the API (issue 20): every request's connection runs as suvnet_app with its
caller's scope, set in one place (api.deps, api.syncdb); users belong to a branch or to the
region, a user with neither is refused; a branch administrator manages only their branch's
users; the command line manages branches and users' branches."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import psycopg
import pytest
from fastapi import Depends, FastAPI
from typer.testing import CliRunner

from api import users as api_users
from api.app import create_app
from api.cli import branches_app, users_app
from api.deps import Conn, State, require, scope_connection
from api.errors import ForbiddenError, InvalidError
from api.security import STAFF, Principal, Role, make_access_token
from api.syncdb import run_sync
from tests.api.conftest import (
    NOW,
    PASSWORD,
    SECRET,
    Clock,
    User,
    api_settings,
    bearer,
    insert_user,
)

Staff = Annotated[Principal, Depends(require(STAFF))]
SCOPE_SQL = "SELECT current_user AS role, current_setting('suvnet.branches', true) AS branches"


def _sync_scope(conn: Any) -> dict[str, Any]:
    row = conn.execute(SCOPE_SQL).fetchone()
    return {"role": row[0], "branches": row[1]}


def probe_app(db_url: str) -> FastAPI:
    """The app with four probe routes that say what their connection's session is: the login
    before the connection, the connection before the login, no login, and the worker
    thread of api.syncdb."""
    app = create_app(api_settings(db_url), clock=Clock(NOW))

    @app.get("/api/v1/_probe/login-first")
    async def login_first(who: Staff, conn: Conn) -> dict[str, Any]:
        return dict(await (await conn.execute(SCOPE_SQL)).fetchone() or {})

    @app.get("/api/v1/_probe/conn-first")
    async def conn_first(conn: Conn, who: Staff) -> dict[str, Any]:
        return dict(await (await conn.execute(SCOPE_SQL)).fetchone() or {})

    @app.get("/api/v1/_probe/anonymous")
    async def anonymous(conn: Conn) -> dict[str, Any]:
        return dict(await (await conn.execute(SCOPE_SQL)).fetchone() or {})

    @app.get("/api/v1/_probe/sync")
    async def in_thread(who: Staff, st: State) -> dict[str, Any]:
        return await run_sync(st, _sync_scope)

    @app.post("/api/v1/_probe/write")
    async def write(conn: Conn, who: Staff) -> dict[str, Any]:
        return dict(await (await conn.execute(SCOPE_SQL)).fetchone() or {})

    @app.post("/api/v1/_probe/zone-of/{branch_id}")
    async def zone_of(conn: Conn, who: Staff, branch_id: int) -> dict[str, Any]:
        await conn.execute(
            "INSERT INTO zones (code, name, branch_id) VALUES ('probe-a', 'x', %s)", (branch_id,)
        )
        return {}

    @app.post("/api/v1/_probe/zone-of/{branch_id}/sync")
    async def zone_of_sync(who: Staff, st: State, branch_id: int) -> dict[str, Any]:
        def insert(conn: Any) -> dict[str, Any]:
            conn.execute(
                "INSERT INTO zones (code, name, branch_id) VALUES ('probe-s', 'x', %s)",
                (branch_id,),
            )
            return {}

        return await run_sync(st, insert)

    # the probes answer before the app's own routes
    app.router.routes[:] = app.router.routes[-7:] + app.router.routes[:-7]
    return app


@pytest.fixture(scope="module")
def branch_ids(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO branches (code, name) VALUES ('AURG', 'Aurgut filiali'), "
            "('BPAY', 'Bpayariq filiali') RETURNING code, id"
        ).fetchall()
    return {code: int(i) for code, i in rows}


def branch_user(db_url: str, name: str, role: Role, branch_id: int) -> User:
    with psycopg.connect(db_url, autocommit=True) as conn:
        u = insert_user(conn, name, role)
        conn.execute(
            "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
            (branch_id, u.id),
        )
    return u


def token(user: User, branch_id: int | None) -> dict[str, str]:
    p = Principal(user.id, user.username, user.role, user.account_no, branch_id=branch_id)
    return {"Authorization": "Bearer " + make_access_token(p, SECRET, NOW)}


@pytest.fixture
async def probe(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = probe_app(db_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_every_connection_has_the_callers_scope(
    probe: httpx.AsyncClient, db_url: str, users: dict[Role, User], branch_ids: dict[str, int]
) -> None:
    clerk = branch_user(db_url, "probe_clerk", Role.BILLING_CLERK, branch_ids["BPAY"])
    mine = token(clerk, branch_ids["BPAY"])
    expected = {"role": "suvnet_app", "branches": str(branch_ids["BPAY"])}
    for path in ("login-first", "conn-first", "sync"):
        r = await probe.get(f"/api/v1/_probe/{path}", headers=mine)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == expected, path
    r = await probe.post("/api/v1/_probe/write", headers=mine)
    assert r.json() == expected
    # a regional user sees every branch; a request without a login sees none, also right
    # after a branch user's request on the same connection
    regional = bearer(users[Role.ADMIN])
    for path in ("login-first", "conn-first", "sync"):
        r = await probe.get(f"/api/v1/_probe/{path}", headers=regional)
        assert r.json() == {"role": "suvnet_app", "branches": "*"}, path
    for _ in range(3):
        await probe.get("/api/v1/_probe/conn-first", headers=mine)
        r = await probe.get("/api/v1/_probe/anonymous")
        assert r.json() == {"role": "suvnet_app", "branches": ""}


async def test_a_write_into_another_branch_is_refused(
    probe: httpx.AsyncClient, db_url: str, branch_ids: dict[str, int]
) -> None:
    """A row that the policies refuse (here a zone given to another branch) is a 403
    other_branch, not a server error, on the request's connection and in api.syncdb's
    threads; nothing is written. The same row of the caller's own branch is taken."""
    clerk = branch_user(db_url, "probe_writer", Role.ADMIN, branch_ids["AURG"])
    mine = token(clerk, branch_ids["AURG"])
    for path in ("zone-of/{}", "zone-of/{}/sync"):
        r = await probe.post("/api/v1/_probe/" + path.format(branch_ids["BPAY"]), headers=mine)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"] == "other_branch"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM zones WHERE code LIKE 'probe-%'").fetchone() == (
            0,
        )
    r = await probe.post(f"/api/v1/_probe/zone-of/{branch_ids['AURG']}", headers=mine)
    assert r.status_code == 200, r.text
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM zones WHERE code LIKE 'probe-%'")


async def test_the_deferred_login_check_still_refuses(
    probe: httpx.AsyncClient, db_url: str, branch_ids: dict[str, int]
) -> None:
    """The login check that waits for the request's connection (the login declared before
    the connection) is as strict as before: a disabled user, a token of another branch."""
    cashier = branch_user(db_url, "probe_cashier", Role.CASHIER, branch_ids["AURG"])
    ok = token(cashier, branch_ids["AURG"])
    assert (await probe.get("/api/v1/_probe/login-first", headers=ok)).status_code == 200
    # a token that claims another branch than the user's
    forged = token(cashier, branch_ids["BPAY"])
    for path in ("login-first", "conn-first", "sync"):
        r = await probe.get(f"/api/v1/_probe/{path}", headers=forged)
        assert r.status_code == 401 and "branch" in r.json()["detail"], path
    # a token without a branch (regional) of a branch user
    r = await probe.get("/api/v1/_probe/login-first", headers=token(cashier, None))
    assert r.status_code == 401
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE api_users SET active = false WHERE id = %s", (cashier.id,))
    for path in ("login-first", "conn-first", "sync"):
        r = await probe.get(f"/api/v1/_probe/{path}", headers=ok)
        assert r.status_code == 401 and "disabled" in r.json()["detail"], path


async def test_scope_connection_contract(db_url: str, branch_ids: dict[str, int]) -> None:
    """api.deps.scope_connection: one statement, session-level (it holds in autocommit and
    across transactions), and None means no branch at all."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        p = Principal(1, "x", Role.VIEWER, branch_id=branch_ids["AURG"])
        await scope_connection(conn, p)
        await conn.execute("SELECT 1")
        row = await (await conn.execute(SCOPE_SQL)).fetchone()
        assert row == ("suvnet_app", str(branch_ids["AURG"]))
        await scope_connection(conn, None)
        assert await (await conn.execute(SCOPE_SQL)).fetchone() == ("suvnet_app", "")
        await scope_connection(conn, Principal(2, "c", Role.CUSTOMER, "000000018"))
        assert await (await conn.execute(SCOPE_SQL)).fetchone() == ("suvnet_app", "*")


async def test_login_of_a_user_without_a_branch_is_refused(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """A staff user who is neither in a branch nor regional (their branch was deleted) cannot
    log in, and is told why; their tokens stop working."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        u = insert_user(conn, "orphan_clerk", Role.BILLING_CLERK)
        b = conn.execute(
            "INSERT INTO branches (code, name) VALUES ('GONE', 'Closed branch') RETURNING id"
        ).fetchone()
        assert b is not None
        conn.execute(
            "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s", (b[0], u.id)
        )
    t = token(u, int(b[0]))
    assert (await client.get("/api/v1/auth/me", headers=t)).status_code == 200
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM branches WHERE id = %s", (b[0],))  # ON DELETE SET NULL
    r = await client.get("/api/v1/auth/me", headers=t)
    assert r.status_code == 401 and "belongs to no branch" in r.json()["detail"]
    r = await client.post(
        "/api/v1/auth/token", data={"username": "orphan_clerk", "password": PASSWORD}
    )
    assert r.status_code == 401
    assert "belongs to no branch" in r.json()["detail"]
    assert "suvnet users set-branch" in r.json()["detail"]
    assert r.json()["error"] == "no_branch"


async def test_the_login_page_says_why_a_user_without_a_branch_is_refused(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """The staff login page, in the user's language: the right password of a login without
    a branch is told so (not "wrong password"); a wrong password still says only that."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_user(conn, "orphan_page", Role.VIEWER)
        conn.execute("UPDATE api_users SET regional = false WHERE username = 'orphan_page'")
    page = await client.get("/staff/login?lang=ru")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m is not None
    form = {"username": "orphan_page", "password": PASSWORD, "csrf_token": m.group(1)}
    r = await client.post("/staff/login", data=form)
    assert r.status_code == 401
    assert "не относится ни к одному филиалу" in r.text
    assert "suvnet_session" not in r.headers.get("set-cookie", "")
    r = await client.post("/staff/login", data={**form, "password": "wrong-password-1"})
    assert r.status_code == 401
    assert "филиал" not in r.text


async def test_users_need_a_branch_once_branches_exist(
    client: httpx.AsyncClient, db_url: str, users: dict[Role, User], branch_ids: dict[str, int]
) -> None:
    admin = bearer(users[Role.ADMIN])
    body = {"username": "new_cashier", "password": "Kassa-parol-2026", "role": "cashier"}
    r = await client.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 422 and r.json()["error"] == "branch_required", r.text
    assert "--branch" in r.json()["detail"]
    # a branch administrator's new user lands in their branch, never elsewhere
    branch_admin = branch_user(db_url, "aurgut_admin", Role.ADMIN, branch_ids["AURG"])
    t = token(branch_admin, branch_ids["AURG"])
    r = await client.post("/api/v1/users", json=body, headers=t)
    assert r.status_code == 201, r.text
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT branch_id, regional FROM api_users WHERE username = 'new_cashier'"
        ).fetchone()
    assert row == (branch_ids["AURG"], False)
    # ... and sees only their branch's users
    r = await client.get("/api/v1/users", headers=t)
    names = {u["username"] for u in r.json()["items"]}
    assert {"aurgut_admin", "new_cashier"} <= names
    assert "u_admin" not in names and "u_cashier" not in names
    other = branch_user(db_url, "bpayariq_viewer", Role.VIEWER, branch_ids["BPAY"])
    r = await client.patch(f"/api/v1/users/{other.id}", json={"active": False}, headers=t)
    assert r.status_code == 404
    r = await client.patch(f"/api/v1/users/{users[Role.VIEWER].id}", json={}, headers=t)
    assert r.status_code == 404
    # the regional administrator sees them all
    r = await client.get("/api/v1/users?limit=1000", headers=admin)
    assert {"aurgut_admin", "new_cashier", "bpayariq_viewer", "u_admin"} <= {
        u["username"] for u in r.json()["items"]
    }


async def test_the_api_places_users_in_branches(
    client: httpx.AsyncClient, db_url: str, users: dict[Role, User], branch_ids: dict[str, int]
) -> None:
    """The regional administrator makes a user of a branch (by its code) or of the region and
    moves users between them (their tokens stop at once); a branch administrator may do
    neither."""
    admin = bearer(users[Role.ADMIN])
    body = {"username": "bpay_clerk", "password": "Kassa-parol-2026", "role": "billing_clerk"}
    r = await client.post("/api/v1/users", json={**body, "branch": "bpay"}, headers=admin)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = await client.post(
        "/api/v1/users", json={**body, "username": "x", "branch": "NOPE"}, headers=admin
    )
    assert r.status_code == 422 and r.json()["error"] == "no_such_branch"
    r = await client.post(
        "/api/v1/users", json={**body, "username": "vil", "regional": True}, headers=admin
    )
    assert r.status_code == 201, r.text

    def place(name: str) -> tuple[Any, ...] | None:
        with psycopg.connect(db_url) as conn:
            return conn.execute(
                "SELECT b.code, u.regional FROM api_users u LEFT JOIN branches b "
                "ON b.id = u.branch_id WHERE u.username = %s",
                (name,),
            ).fetchone()

    assert place("bpay_clerk") == ("BPAY", False)
    assert place("vil") == (None, True)
    old_token = token(User(uid, "bpay_clerk", Role.BILLING_CLERK, None), branch_ids["BPAY"])
    assert (await client.get("/api/v1/auth/me", headers=old_token)).status_code == 200
    r = await client.patch(f"/api/v1/users/{uid}", json={"branch": "AURG"}, headers=admin)
    assert r.status_code == 200, r.text
    assert place("bpay_clerk") == ("AURG", False)
    assert (await client.get("/api/v1/auth/me", headers=old_token)).status_code == 401
    # a branch administrator moves nobody, not even their own branch's users
    aurg_admin = branch_user(db_url, "aurg_admin2", Role.ADMIN, branch_ids["AURG"])
    t = token(aurg_admin, branch_ids["AURG"])
    for change in ({"branch": "BPAY"}, {"regional": True}):
        r = await client.patch(f"/api/v1/users/{uid}", json=change, headers=t)
        assert r.status_code == 403, r.text
    assert place("bpay_clerk") == ("AURG", False)


async def test_create_user_refusals(db_url: str, branch_ids: dict[str, int]) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        with pytest.raises(InvalidError, match="not both"):
            await api_users.create_user(
                conn,
                username="both",
                password="Kassa-parol-2026",
                role=Role.CASHIER,
                branch_id=branch_ids["AURG"],
                regional=True,
            )
        with pytest.raises(InvalidError, match="no branch with id"):
            await api_users.create_user(
                conn,
                username="nowhere",
                password="Kassa-parol-2026",
                role=Role.CASHIER,
                branch_id=999_999,
            )
        # a branch session cannot make a regional user or one of another branch
        await scope_connection(conn, Principal(1, "a", Role.ADMIN, branch_id=branch_ids["AURG"]))
        for kw in ({"regional": True}, {"branch_id": branch_ids["BPAY"]}):
            with pytest.raises(ForbiddenError):
                await api_users.create_user(
                    conn, username="sneaky", password="Kassa-parol-2026", role=Role.ADMIN, **kw
                )
        await conn.rollback()


def test_cli_branches_and_users(
    db_url: str, monkeypatch: pytest.MonkeyPatch, branch_ids: dict[str, int]
) -> None:
    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    from suvnet.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()

    def ok(app: Any, *args: str, stdin: str | None = None) -> str:
        r = runner.invoke(app, list(args), input=stdin)
        assert r.exit_code == 0, r.output
        return r.output

    def refused(app: Any, *args: str, stdin: str | None = None) -> str:
        r = runner.invoke(app, list(args), input=stdin)
        assert r.exit_code != 0, r.output
        assert "Traceback" not in r.output
        return r.output

    out = ok(branches_app, "add", "KTQ", "Kattaqo'rg'on filiali", "--inn", "301234567")
    assert "its documents need: name, bank account, MFO" in out
    assert "MFO must have 5 digits" in refused(branches_app, "set", "KTQ", "--mfo", "123456")
    ok(
        branches_app,
        "set",
        "KTQ",
        "--legal-name",
        "Kattaqo'rg'on suv",
        "--bank-account",
        "20208000900100000001",
        "--mfo",
        "00444",
    )
    assert "code must be 2 to 8 capital" in refused(branches_app, "add", "k", "x")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO regions (name_uz) VALUES ('Samarqand viloyati') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO districts (region_id, name_uz) SELECT id, 'Kattaqo''rg''on tumani' "
            "FROM regions WHERE name_uz = 'Samarqand viloyati'"
        )
        conn.execute("INSERT INTO zones (code, name) VALUES ('ktq-1', 'Kattaqo''rg''on DMA')")
        conn.execute(
            "INSERT INTO gateways (code, zone_id) SELECT 'gw-ktq', id FROM zones "
            "WHERE code = 'ktq-1'"
        )
    out = ok(branches_app, "assign", "KTQ", "--district", "Kattaqo'rg'on tumani", "--zone", "ktq-1")
    assert "1 district(s)" in out and "1 zone(s), 1 gateway(s)" in out
    out = refused(branches_app, "assign", "BPAY", "--district", "Kattaqo'rg'on tumani")
    assert "already belongs to branch KTQ" in out
    out = ok(branches_app, "list")
    assert "KTQ" in out and "Kattaqo'rg'on tumani" in out and "gw-ktq" in out
    # users: a branch or the region, once there are branches
    out = refused(
        users_app,
        "add",
        "ktq_kassir",
        "--role",
        "cashier",
        "--password-stdin",
        stdin="Kassa-parol-2026\n",
    )
    assert "needs a branch or the regional scope" in out
    ok(
        users_app,
        "add",
        "ktq_kassir",
        "--role",
        "cashier",
        "--branch",
        "KTQ",
        "--password-stdin",
        stdin="Kassa-parol-2026\n",
    )
    ok(
        users_app,
        "add",
        "viloyat",
        "--role",
        "accountant",
        "--regional",
        "--password-stdin",
        stdin="Hisobchi-parol-2026\n",
    )
    out = ok(users_app, "list")
    assert any("ktq_kassir" in ln and "KTQ" in ln for ln in out.splitlines())
    assert any("viloyat" in ln and "region" in ln for ln in out.splitlines())
    ok(users_app, "set-branch", "viloyat", "KTQ")
    ok(users_app, "set-branch", "ktq_kassir", "--regional")
    with psycopg.connect(db_url) as conn:
        rows: dict[str, str] = dict(
            conn.execute(
                "SELECT u.username, coalesce(b.code, 'region') FROM api_users u "
                "LEFT JOIN branches b ON b.id = u.branch_id "
                "WHERE u.username IN ('viloyat', 'ktq_kassir')"
            ).fetchall()
        )
    assert rows == {"viloyat": "KTQ", "ktq_kassir": "region"}
    assert "either a branch code or --regional" in refused(users_app, "set-branch", "viloyat")
    get_settings.cache_clear()
