"""Login, refresh rotation, rate limiting, users, customer codes and the audit log, against
the app with a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import httpx
import psycopg
from fastapi import FastAPI
from psycopg.rows import dict_row

from api.security import Role
from tests.api.conftest import NOW, PASSWORD, Clock, User, bearer

CLIENT_IP = "127.0.0.1"
"""The address httpx's ASGI transport gives the app for the test client."""


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )


async def test_login_and_me(client: httpx.AsyncClient, users: dict[Role, User]) -> None:
    r = await login(client, "u_dispatcher", PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "dispatcher" and body["token_type"] == "bearer"
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == "u_dispatcher"


async def test_wrong_password_and_unknown_user_look_the_same(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    a = await login(client, "u_viewer", "wrong-password")
    b = await login(client, "nobody-here", "wrong-password")
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


async def test_rate_limit_blocks_then_frees_with_time(
    client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    for _ in range(5):
        assert (await login(client, "u_lawyer", "bad-password")).status_code == 401
    blocked = await login(client, "u_lawyer", PASSWORD)  # even the right password waits
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60 + 1
    clock.now += timedelta(minutes=16)
    assert (await login(client, "u_lawyer", PASSWORD)).status_code == 200


async def test_rate_limit_is_shared_through_the_database(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    """Failures written by another worker (rows in the table) count here too."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i in range(5):
            conn.execute(
                "INSERT INTO api_login_attempts (ts, username, ip, success) "
                "VALUES (%s, 'u_accountant', %s, false)",
                (clock.now - timedelta(seconds=i), CLIENT_IP),
            )
    assert (await login(client, "u_accountant", PASSWORD)).status_code == 429


async def test_an_attacker_cannot_lock_the_admin_out(
    app: FastAPI, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """Guessing admin's password from one address blocks that address (5 failures), not
    the admin at another address."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as attacker:
        for _ in range(5):
            assert (await login(attacker, "u_admin", "guess-guess-1")).status_code == 401
        assert (await login(attacker, "u_admin", "guess-guess-2")).status_code == 429
        assert (await login(attacker, "u_admin", PASSWORD)).status_code == 429
    assert (await login(client, "u_admin", PASSWORD)).status_code == 200


async def test_many_addresses_block_a_name_except_where_its_user_logged_in(
    db_url: str, app: FastAPI, client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    """100 failures for one name from many addresses block the name everywhere, except at
    an address where that user logged in successfully within 30 days."""
    assert (await login(client, "u_viewer", PASSWORD)).status_code == 200  # known address
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i in range(100):
            conn.execute(
                "INSERT INTO api_login_attempts (ts, username, ip, success) "
                "VALUES (%s, 'u_viewer', %s, false)",
                (clock.now - timedelta(seconds=i), f"198.51.100.{i}"),
            )
    transport = httpx.ASGITransport(app=app, client=("192.0.2.55", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as fresh:
        assert (await login(fresh, "u_viewer", PASSWORD)).status_code == 429
    assert (await login(client, "u_viewer", PASSWORD)).status_code == 200


async def test_refresh_rotates_and_old_token_dies(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    first = (await login(client, "u_technician", PASSWORD)).json()
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert again.status_code == 401
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]})
    assert out.status_code == 204
    dead = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert dead.status_code == 401


async def test_expired_access_token(
    client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    headers = bearer(users[Role.ADMIN], clock)
    assert (await client.get("/api/v1/users", headers=headers)).status_code == 200
    clock.now += timedelta(minutes=16)
    r = await client.get("/api/v1/users", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_user_admin_is_audited(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    admin = bearer(users[Role.ADMIN])
    r = await client.post(
        "/api/v1/users",
        json={
            "username": "new_clerk",
            "password": "another-pass-1",
            "role": "billing_clerk",
            "full_name": "Nodira",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    dup = await client.post(
        "/api/v1/users",
        json={"username": "new_clerk", "password": "another-pass-1", "role": "viewer"},
        headers=admin,
    )
    assert dup.status_code == 409
    r = await client.patch(f"/api/v1/users/{uid}", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await login(client, "new_clerk", "another-pass-1")).status_code == 401
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT actor, role, action, before, after FROM audit_log "
            "WHERE entity = 'user' AND entity_id = %s ORDER BY id",
            (str(uid),),
        ).fetchall()
    assert [r["action"] for r in rows] == ["create", "update"]
    assert rows[0]["actor"] == "u_admin" and rows[0]["before"] is None
    assert rows[1]["before"]["active"] is True and rows[1]["after"]["active"] is False
    assert "password_hash" not in rows[0]["after"]
    # the audit log is readable through the API, filtered
    r = await client.get(f"/api/v1/audit?entity=user&entity_id={uid}", headers=admin)
    assert r.json()["total"] == 2


async def test_customer_code_and_activation(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    from tests.api.conftest import make_account

    with psycopg.connect(db_url, autocommit=True) as conn:
        _, number = make_account(conn, 42, name="Yusupova Malika")
    clerk = bearer(users[Role.BILLING_CLERK])
    r = await client.post(f"/api/v1/customers/{number}/code", headers=clerk)
    assert r.status_code == 201
    code = r.json()["code"]
    assert len(code) == 8 and code.isdigit()
    bad = await client.post(
        "/api/v1/customers/activate",
        json={
            "account_no": number,
            "code": "00000000" if code != "00000000" else "1",
            "password": "my-new-pass",
        },
    )
    assert bad.status_code == 401
    ok = await client.post(
        "/api/v1/customers/activate",
        json={"account_no": number, "code": code, "password": "my-new-pass"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["role"] == "customer"
    # the code works once
    again = await client.post(
        "/api/v1/customers/activate",
        json={"account_no": number, "code": code, "password": "other-pass-2"},
    )
    assert again.status_code == 401
    assert (await login(client, number, "my-new-pass")).status_code == 200


def test_cli_users_add(db_url: str) -> None:
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "suvnet.cli",
            "users",
            "add",
            "kassir1",
            "--role",
            "cashier",
            "--full-name",
            "Kassir Bir",
            "--password-stdin",
        ],
        input="kassa-parol-1\n",
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "kassir1" in r.stdout
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT role, full_name, password_hash FROM api_users WHERE username = 'kassir1'"
        ).fetchone()
        audit = conn.execute(
            "SELECT count(*) FROM audit_log WHERE entity = 'user' AND actor = 'cli'"
        ).fetchone()
    assert row is not None and row[0] == "cashier" and row[1] == "Kassir Bir"
    assert row[2].startswith("$argon2")
    assert audit == (1,)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "suvnet.cli",
            "users",
            "add",
            "kassir2",
            "--role",
            "cashier",
            "--password-stdin",
        ],
        input="short\n",
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "at least 8 characters" in bad.stderr + bad.stdout


def test_cli_api_run_serves(db_url: str) -> None:
    """`suvnet api run` (the declared entry point) serves the app with uvicorn."""
    import time

    import httpx

    from tests.api.conftest import free_port

    port = free_port()
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url, "SUVNET_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "suvnet.cli", "api", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read().decode() if proc.stderr else ""
        assert health.json() == {"status": "ok", "database": True}
        docs = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5)
        assert docs.json()["info"]["title"] == "suvnet API"
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/gateways", timeout=5)
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def suvnet_cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url, "SUVNET_NOW": NOW.isoformat()}
    return subprocess.run(
        [sys.executable, "-m", "suvnet.cli", *args],
        input=stdin,
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=60,
    )


async def test_cli_users_take_effect_at_once(
    db_url: str, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """`suvnet users set-role / logout / password / disable / enable`: each one takes
    effect on the user's current tokens at once, and is audited."""
    from tests.api.conftest import insert_user

    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_user(conn, "cli_target", Role.TECHNICIAN)

    async def tokens(password: str = PASSWORD) -> dict[str, str]:
        r = await login(client, "cli_target", password)
        assert r.status_code == 200, r.text
        body: dict[str, str] = r.json()
        return body

    async def me(t: dict[str, str]) -> int:
        r = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {t['access_token']}"}
        )
        return r.status_code

    t = await tokens()
    assert await me(t) == 200
    r = suvnet_cli(db_url, "users", "set-role", "cli_target", "viewer")
    assert r.returncode == 0, r.stderr + r.stdout
    assert await me(t) == 401
    t = await tokens()
    assert t["role"] == "viewer"
    r = suvnet_cli(db_url, "users", "logout", "cli_target")
    assert r.returncode == 0, r.stderr + r.stdout
    assert await me(t) == 401
    dead = await client.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert dead.status_code == 401
    weak = suvnet_cli(
        db_url, "users", "password", "cli_target", "--password-stdin", stdin="Parol-12345\n"
    )
    assert weak.returncode != 0 and "most common" in weak.stderr + weak.stdout
    r = suvnet_cli(
        db_url, "users", "password", "cli_target", "--password-stdin", stdin="Texnik-yangi-26\n"
    )
    assert r.returncode == 0, r.stderr + r.stdout
    t = await tokens("Texnik-yangi-26")
    r = suvnet_cli(db_url, "users", "disable", "cli_target")
    assert r.returncode == 0, r.stderr + r.stdout
    assert await me(t) == 401
    assert (await login(client, "cli_target", "Texnik-yangi-26")).status_code == 401
    r = suvnet_cli(db_url, "users", "enable", "cli_target")
    assert r.returncode == 0
    await tokens("Texnik-yangi-26")
    listing = suvnet_cli(db_url, "users", "list")
    assert re.search(r"cli_target\s+viewer\s+active", listing.stdout), listing.stdout
    with psycopg.connect(db_url) as conn:
        actions = [
            row[0]
            for row in conn.execute(
                "SELECT a.action FROM audit_log a JOIN api_users u ON a.entity_id = u.id::text "
                "WHERE a.entity = 'user' AND u.username = 'cli_target' AND a.actor = 'cli' "
                "ORDER BY a.id"
            )
        ]
    assert actions == ["update", "logout", "update", "disable", "enable"]
