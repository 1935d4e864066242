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
    help="Logins for staff and customers: add users, issue customers' one-time codes.",
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

    console.print(f"suvnet api on http://{host}:{port}  (API docs: /api/docs)")
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


@users_app.command("code")
def code(
    account_no: Annotated[str, typer.Argument(help="the customer's account number")],
) -> None:
    """Issue a one-time code with which a customer sets the first cabinet password (valid
    7 days; an earlier unused code stops working)."""
    from api import accounts
    from api.deps import utcnow

    async def go(conn: Any) -> tuple[str, Any]:
        return await accounts.issue_customer_code(conn, account_no, None, utcnow())

    otp, expires = asyncio.run(_with_conn(go))
    until = f"{expires:%Y-%m-%d %H:%M} UTC"
    console.print(f"one-time code for {account_no}: [bold]{otp}[/bold] (valid until {until})")
