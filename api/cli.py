"""``suvnet api ...`` (run the web server) and ``suvnet users ...`` (manage logins)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from api.security import Role
from suvnet.settings import get_settings

console = Console()

app = typer.Typer(
    help="The office web server: REST API (/api/v1, docs at /api/docs), customer cabinet "
    "(/cabinet) and staff back office (/staff).",
    no_args_is_help=True,
)
users_app = typer.Typer(
    help="Logins for staff and customers: add, list, disable, enable, change role or "
    "password, log out everywhere, issue customers' one-time codes.",
    no_args_is_help=True,
)


def _factory() -> Any:
    from api.app import create_app

    return create_app(get_settings())


@app.command("run")
def run(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes", min=1, max=64)] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="trust X-Forwarded-* from a reverse proxy on this machine")
    ] = True,
) -> None:
    """Serve the API, the customer cabinet and the back office with uvicorn.

    Put it behind a TLS reverse proxy (nginx, Caddy) in production: the login cookies are
    marked Secure when SUVNET_MODE=production and only travel over https.
    """
    import uvicorn

    # settings are checked here, before uvicorn starts: a refused secret key (production)
    # is one clear message, not a traceback from each worker
    settings = get_settings()
    docs = {"public": "/api/docs", "staff": "/api/docs (staff login)", "off": "off"}
    console.print(
        f"suvnet api on http://{host}:{port}  (API docs: {docs[settings.api_docs_access]})"
    )
    uvicorn.run(
        "api.cli:_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        log_config=None,
    )


@app.command("openapi")
def openapi() -> None:
    """Print the OpenAPI description of the REST API (JSON)."""
    sys.stdout.write(json.dumps(_factory().openapi(), indent=2) + "\n")


async def _with_conn(fn: Any) -> Any:
    import psycopg

    from suvnet.db import database_url

    async with await psycopg.AsyncConnection.connect(database_url(get_settings())) as conn:
        result = await fn(conn)
        await conn.commit()
        return result


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    pw = getpass.getpass("password: ")
    if getpass.getpass("again: ") != pw:
        raise typer.BadParameter("the two passwords differ")
    return pw


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="login name (customers: the account number)")],
    role: Annotated[Role, typer.Option(help="what the user may do")],
    full_name: Annotated[str, typer.Option(help="shown in the audit log")] = "",
    account_no: Annotated[
        str | None, typer.Option(help="customers only: their account number")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="read the password from standard input instead of asking")
    ] = False,
) -> None:
    """Add a user. The password is asked twice (or read from stdin) and stored as an
    argon2 hash. Example: suvnet users add dilnoza --role cashier --full-name 'Dilnoza K.'"""
    from psycopg.types.json import Jsonb

    from api import accounts

    password = _read_password(password_stdin)
    if role is Role.CUSTOMER and account_no is None:
        account_no = username

    async def go(conn: Any) -> dict[str, Any]:
        row = await accounts.create_user(
            conn,
            username=username,
            password=password,
            role=role,
            full_name=full_name,
            account_no=account_no,
        )
        await conn.execute(
            "INSERT INTO audit_log (actor, role, action, entity, entity_id, after) "
            "VALUES ('cli', 'admin', 'create', 'user', %s, %s)",
            (str(row["id"]), Jsonb(json.loads(json.dumps(row, default=str)))),
        )
        return row

    row = asyncio.run(_with_conn(go))
    console.print(f"user [bold]{row['username']}[/bold] ({row['role']}) added, id {row['id']}")


async def _cli_audit(conn: Any, action: str, before: Any, after: Any, entity_id: Any) -> None:
    from psycopg.types.json import Jsonb

    def js(v: Any) -> Any:
        return None if v is None else Jsonb(json.loads(json.dumps(v, default=str)))

    await conn.execute(
        "INSERT INTO audit_log (actor, role, action, entity, entity_id, before, after) "
        "VALUES ('cli', 'admin', %s, 'user', %s, %s, %s)",
        (action, str(entity_id), js(before), js(after)),
    )


def _change(username: str, what: str, **changes: Any) -> dict[str, Any]:
    """Apply ``accounts.update_user`` to the user named ``username`` and audit it."""
    from api import accounts
    from suvnet.clock import utcnow

    async def go(conn: Any) -> dict[str, Any]:
        user = await accounts.get_user_by_name(conn, username)
        before, after = await accounts.update_user(conn, user["id"], now=utcnow(), **changes)
        audit_after = dict(after)
        if "password" in changes:
            audit_after["password"] = "changed"  # noqa: S105 - never the password itself
        await _cli_audit(conn, what, before, audit_after, user["id"])
        return after

    result: dict[str, Any] = asyncio.run(_with_conn(go))
    return result


@users_app.command("list")
def list_users() -> None:
    """List every login with its role and whether it is active."""
    from psycopg.rows import dict_row

    from api import accounts

    async def go(conn: Any) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {accounts.USER_COLUMNS} FROM api_users ORDER BY id")
            rows: list[dict[str, Any]] = await cur.fetchall()
        return rows

    for row in asyncio.run(_with_conn(go)):
        state = "active" if row["active"] else "disabled"
        console.print(f"{row['id']:>6}  {row['username']:<24} {row['role']:<14} {state}")


@users_app.command("disable")
def disable(username: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Disable a login: it cannot log in, and its tokens stop working at once."""
    _change(username, "disable", active=False)
    console.print(f"user [bold]{username}[/bold] disabled and logged out everywhere")


@users_app.command("enable")
def enable(username: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Enable a disabled login again (it logs in anew)."""
    _change(username, "enable", active=True)
    console.print(f"user [bold]{username}[/bold] enabled")


@users_app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[Role, typer.Argument(help="the new role")],
) -> None:
    """Give a staff login another role; its tokens with the old role stop working at once."""
    row = _change(username, "update", role=role)
    console.print(f"user [bold]{username}[/bold] now has the role {row['role']}")


@users_app.command("password")
def password(
    username: Annotated[str, typer.Argument(help="the login name")],
    password_stdin: Annotated[
        bool, typer.Option(help="read the password from standard input instead of asking")
    ] = False,
) -> None:
    """Set a new password (asked twice, or read from stdin); the user is logged out
    everywhere."""
    new = _read_password(password_stdin)
    _change(username, "update", password=new)
    console.print(f"password of [bold]{username}[/bold] changed; logged out everywhere")


@users_app.command("logout")
def logout(username: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Log a user out everywhere: every refresh token revoked, every access token dead."""
    from api import accounts
    from suvnet.clock import utcnow

    async def go(conn: Any) -> None:
        user = await accounts.get_user_by_name(conn, username)
        await accounts.end_sessions(conn, user["id"], utcnow())
        await _cli_audit(conn, "logout", None, {"sessions": "ended"}, user["id"])

    asyncio.run(_with_conn(go))
    console.print(f"user [bold]{username}[/bold] logged out everywhere")


@users_app.command("code")
def code(
    account_no: Annotated[str, typer.Argument(help="the customer's account number")],
) -> None:
    """Issue a one-time code with which a customer sets the first cabinet password (valid
    7 days; an earlier unused code stops working)."""
    from api import accounts
    from suvnet.clock import utcnow

    async def go(conn: Any) -> tuple[str, Any]:
        return await accounts.issue_customer_code(conn, account_no, None, utcnow())

    otp, expires = asyncio.run(_with_conn(go))
    until = f"{expires:%Y-%m-%d %H:%M} UTC"
    console.print(f"one-time code for {account_no}: [bold]{otp}[/bold] (valid until {until})")
