"""``suvnet api ...`` (run the web server) and ``suvnet users ...`` (manage logins)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console

from api import users
from api.audit import write_cli_audit
from api.security import Role
from suvnet.clock import utcnow
from suvnet.db import database_url
from suvnet.settings import get_settings

# The web app (api.app) and uvicorn are imported inside the commands that serve it: the
# ``suvnet users`` commands start without loading FastAPI (start-up time).

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
    password = _read_password(password_stdin)
    if role is Role.CUSTOMER and account_no is None:
        account_no = username

    async def go(conn: Any) -> dict[str, Any]:
        row = await users.create_user(
            conn,
            username=username,
            password=password,
            role=role,
            full_name=full_name,
            account_no=account_no,
        )
        await write_cli_audit(conn, action="create", entity_id=row["id"], before=None, after=row)
        return row

    row = asyncio.run(_with_conn(go))
    console.print(f"user [bold]{row['username']}[/bold] ({row['role']}) added, id {row['id']}")


def _change(username: str, what: str, **changes: Any) -> dict[str, Any]:
    """Apply ``users.update_user`` to the user named ``username`` and audit it."""

    async def go(conn: Any) -> dict[str, Any]:
        user = await users.get_user_by_name(conn, username)
        before, after = await users.update_user(conn, user["id"], now=utcnow(), **changes)
        audit_after = dict(after)
        if "password" in changes:
            audit_after["password"] = "changed"  # noqa: S105 - never the password itself
        await write_cli_audit(
            conn, action=what, entity_id=user["id"], before=before, after=audit_after
        )
        return after

    result: dict[str, Any] = asyncio.run(_with_conn(go))
    return result


@users_app.command("list")
def list_users() -> None:
    """List every login with its role and whether it is active."""
    for row in asyncio.run(_with_conn(users.all_users)):
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

    async def go(conn: Any) -> None:
        user = await users.get_user_by_name(conn, username)
        await users.end_sessions(conn, user["id"], utcnow())
        await write_cli_audit(
            conn, action="logout", entity_id=user["id"], before=None, after={"sessions": "ended"}
        )

    asyncio.run(_with_conn(go))
    console.print(f"user [bold]{username}[/bold] logged out everywhere")


@users_app.command("code")
def code(
    account_no: Annotated[str, typer.Argument(help="the customer's account number")],
) -> None:
    """Issue a one-time code with which a customer sets the first cabinet password (valid
    7 days; an earlier unused code stops working)."""

    async def go(conn: Any) -> tuple[str, Any]:
        return await users.issue_customer_code(conn, account_no, None, utcnow())

    otp, expires = asyncio.run(_with_conn(go))
    until = f"{expires:%Y-%m-%d %H:%M} UTC"
    console.print(f"one-time code for {account_no}: [bold]{otp}[/bold] (valid until {until})")
