"""``suvnet api ...`` (run the web server), ``suvnet users ...`` (manage logins) and
``suvnet branches ...`` (district branches: what they own, their requisites and payment
contracts; docs/branches.md)."""

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
from api.errors import ApiError
from api.security import Role
from billing import branches as br
from billing.errors import BillingError
from suvnet.clock import utcnow
from suvnet.db import connect, database_url
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
    help="Logins for staff and customers: add, list, disable, enable, change role, branch or "
    "password, log out everywhere, issue customers' one-time codes.",
    no_args_is_help=True,
)
branches_app = typer.Typer(
    help="District branches: add, list, assign districts, MFYs, zones and gateways, set "
    "requisites and payment contracts, read-only logins for a branch's Grafana "
    "(docs/branches.md).",
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


def _run(coro_fn: Any) -> Any:
    """Run ``coro_fn(conn)`` on a connection of its own; a refusal is one line and exit 1."""
    try:
        return asyncio.run(_with_conn(coro_fn))
    except ApiError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc


async def _branch_id(conn: Any, code: str) -> int:
    branch_id = await br.branch_id_by_code(conn, code)
    if branch_id is None:
        console.print(f"[red]no branch {code!r} (suvnet branches list shows them)[/red]")
        raise typer.Exit(1)
    return branch_id


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    pw = getpass.getpass("password: ")
    if getpass.getpass("again: ") != pw:
        raise typer.BadParameter("the two passwords differ")
    return pw


@users_app.command("add")
def add(  # noqa: PLR0917 - typer options
    username: Annotated[str, typer.Argument(help="login name (customers: the account number)")],
    role: Annotated[Role, typer.Option(help="what the user may do")],
    full_name: Annotated[str, typer.Option(help="shown in the audit log")] = "",
    account_no: Annotated[
        str | None, typer.Option(help="customers only: their account number")
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="staff: the code of their branch (they see only its data)")
    ] = None,
    regional: Annotated[
        bool, typer.Option(help="staff: the regional office's user (sees every branch)")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option(help="read the password from standard input instead of asking")
    ] = False,
) -> None:
    """Add a user. The password is asked twice (or read from stdin) and stored as an
    argon2 hash. Once the installation has branches, a staff user needs --branch or
    --regional. Example: suvnet users add dilnoza --role cashier --branch URG"""
    password = _read_password(password_stdin)
    if role is Role.CUSTOMER and account_no is None:
        account_no = username

    async def go(conn: Any) -> dict[str, Any]:
        branch_id = None if branch is None else await _branch_id(conn, branch)
        row = await users.create_user(
            conn,
            username=username,
            password=password,
            role=role,
            full_name=full_name,
            account_no=account_no,
            branch_id=branch_id,
            regional=regional or None,
        )
        await write_cli_audit(conn, action="create", entity_id=row["id"], before=None, after=row)
        return row

    row = _run(go)
    where = f", branch {branch.upper()}" if branch else (", regional" if regional else "")
    console.print(
        f"user [bold]{row['username']}[/bold] ({row['role']}{where}) added, id {row['id']}"
    )


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

    result: dict[str, Any] = _run(go)
    return result


@users_app.command("list")
def list_users() -> None:
    """List every login with its role, its branch (or "region"; once there are branches) and
    whether it is active."""
    rows = asyncio.run(_with_conn(users.all_users))
    staff = [r for r in rows if r["role"] != Role.CUSTOMER.value]
    with_branches = any(r["branch"] or not r["regional"] for r in staff)
    for row in rows:
        state = "active" if row["active"] else "disabled"
        scope = (
            ""
            if row["role"] == Role.CUSTOMER.value
            else (row["branch"] or ("region" if row["regional"] else "NO BRANCH"))
        )
        where = f"{scope:<10} " if with_branches else ""
        console.print(f"{row['id']:>6}  {row['username']:<24} {row['role']:<14} {where}{state}")


@users_app.command("set-branch")
def set_branch(
    username: Annotated[str, typer.Argument(help="the login name")],
    branch: Annotated[str | None, typer.Argument(help="the branch code")] = None,
    regional: Annotated[
        bool, typer.Option(help="instead of a branch: the regional office (every branch)")
    ] = False,
) -> None:
    """Move a staff user to a branch, or to the region with --regional; their tokens stop
    working at once (the next login has the new scope)."""
    if (branch is None) != regional:
        console.print("[red]give either a branch code or --regional[/red]")
        raise typer.Exit(2)

    async def go(conn: Any) -> dict[str, Any]:
        user = await users.get_user_by_name(conn, username)
        branch_id = None if branch is None else await _branch_id(conn, branch)
        before, after = await users.set_scope(
            conn, user["id"], branch_id=branch_id, regional=regional
        )
        await write_cli_audit(
            conn, action="update", entity_id=user["id"], before=before, after=after
        )
        return after

    _run(go)
    where = f"branch {branch.upper()}" if branch else "the region"
    console.print(f"user [bold]{username}[/bold] now belongs to {where}; logged out everywhere")


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


# ------------------------------------------------------------------------------- branches


def _branches(fn: Any) -> Any:
    """Run ``fn(conn)`` on a connection of its own (the owner's: every branch), committed;
    a refusal is one line and exit 1."""
    try:
        with connect(database_url(get_settings())) as conn:
            result = fn(conn)
            conn.commit()
            return result
    except BillingError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


_REQUISITE_HELP = {
    "legal_name": "the name printed on the branch's documents",
    "inn": "STIR (INN) of the branch, 9 digits",
    "bank": "the bank, e.g. 'Xalq banki Urgut filiali'",
    "bank_account": "the bank account, 20 digits",
    "mfo": "the bank's MFO, 5 digits",
    "address": "the branch's address",
    "phone": "the branch's phone for customers",
}


def _requisites(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


@branches_app.command("add")
def branches_add(  # noqa: PLR0917 - typer options
    code: Annotated[str, typer.Argument(help="2-8 capital letters/digits; prefixes the numbers")],
    name: Annotated[str, typer.Argument(help="the branch's name, e.g. 'Urgut tuman filiali'")],
    legal_name: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["legal_name"])] = None,
    inn: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["inn"])] = None,
    bank: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["bank"])] = None,
    bank_account: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["bank_account"])] = None,
    mfo: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["mfo"])] = None,
    address: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["address"])] = None,
    phone: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["phone"])] = None,
) -> None:
    """Add a district branch. Its invoices are numbered CODE-YYYY-NNNNNNN and its receipts
    K-CODE-YYYY-NNNNNNN. Example: suvnet branches add URG 'Urgut tuman filiali' --inn 301234567"""
    req = _requisites(
        legal_name=legal_name,
        inn=inn,
        bank=bank,
        bank_account=bank_account,
        mfo=mfo,
        address=address,
        phone=phone,
    )
    b = _branches(lambda conn: br.add_branch(conn, code, name, **req))
    console.print(f"branch [bold]{b.code}[/bold] ({b.name}) added, id {b.id}")
    if b.missing_requisites():
        console.print(
            f"its documents need: {', '.join(b.missing_requisites())} "
            f"(suvnet branches set {b.code} ...)"
        )


@branches_app.command("set")
def branches_set(  # noqa: PLR0917 - typer options
    code: Annotated[str, typer.Argument(help="the branch code")],
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    legal_name: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["legal_name"])] = None,
    inn: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["inn"])] = None,
    bank: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["bank"])] = None,
    bank_account: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["bank_account"])] = None,
    mfo: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["mfo"])] = None,
    address: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["address"])] = None,
    phone: Annotated[str | None, typer.Option(help=_REQUISITE_HELP["phone"])] = None,
) -> None:
    """Change a branch's name or requisites (those given; '' clears one)."""
    req = _requisites(
        name=name,
        legal_name=legal_name,
        inn=inn,
        bank=bank,
        bank_account=bank_account,
        mfo=mfo,
        address=address,
        phone=phone,
    )
    b = _branches(lambda conn: br.set_requisites(conn, code, **req))
    missing = b.missing_requisites()
    tail = f"; its documents still need: {', '.join(missing)}" if missing else ""
    console.print(f"branch [bold]{b.code}[/bold] changed{tail}")


@branches_app.command("list")
def branches_list() -> None:
    """Every branch with its requisites and what it owns."""
    rows = _branches(br.list_branches)
    if not rows:
        console.print("no branches: every user sees everything (suvnet branches add ...)")
    for r in rows:
        b: br.Branch = r["branch"]
        missing = b.missing_requisites()
        console.print(f"[bold]{b.code}[/bold] {b.name} (id {b.id})")
        console.print(
            f"  requisites: {b.legal_name or '-'}; STIR {b.inn or '-'}; {b.bank or '-'}; "
            f"account {b.bank_account or '-'}; MFO {b.mfo or '-'}"
            + (f"  [red]missing: {', '.join(missing)}[/red]" if missing else "")
        )
        console.print(f"  districts: {r['districts'] or '-'}; MFYs: {r['mahallas'] or '-'}")
        console.print(f"  zones: {r['zones'] or '-'}; gateways: {r['gateways'] or '-'}")
        console.print(f"  accounts: {r['accounts']}; users: {r['users']}")


@branches_app.command("assign")
def branches_assign(
    code: Annotated[str, typer.Argument(help="the branch code")],
    district: Annotated[
        list[str] | None, typer.Option(help="a district (code or name), wholly; repeatable")
    ] = None,
    mfy: Annotated[
        list[str] | None,
        typer.Option(help="an MFY of a split district (code, name or 'district/MFY')"),
    ] = None,
    zone: Annotated[list[str] | None, typer.Option(help="a zone code (with its gateways)")] = None,
    gateway: Annotated[list[str] | None, typer.Option(help="a gateway code")] = None,
) -> None:
    """Give a branch districts, MFYs, zones and gateways; their addresses, accounts,
    devices, points and meters follow. A district or MFY that is another branch's is
    refused (suvnet branches release it there first)."""
    done = _branches(
        lambda conn: br.assign(
            conn,
            code,
            districts=district or (),
            mahallas=mfy or (),
            zones=zone or (),
            gateways=gateway or (),
        )
    )
    console.print(
        f"branch [bold]{code.upper()}[/bold]: {done.districts} district(s), {done.mahallas} "
        f"MFY(s), {done.zones} zone(s), {done.gateways} gateway(s) assigned; "
        f"{done.accounts} account(s) in the branch"
    )


@branches_app.command("release")
def branches_release(
    code: Annotated[str, typer.Argument(help="the branch code")],
    district: Annotated[list[str] | None, typer.Option(help="a district to release")] = None,
    mfy: Annotated[list[str] | None, typer.Option(help="an MFY to release")] = None,
) -> None:
    """Take districts or MFYs from a branch (their accounts then belong to no branch and
    only regional users see them until they are assigned again)."""
    n = _branches(lambda conn: br.release(conn, code, districts=district or (), mahallas=mfy or ()))
    console.print(f"branch [bold]{code.upper()}[/bold]: {n} area(s) released")


@branches_app.command("reader")
def branches_reader(
    role: Annotated[str, typer.Argument(help="the login's name, e.g. grafana_urg")],
    branch: Annotated[list[str], typer.Option(help="a branch code the login sees; repeatable")],
    password_env: Annotated[
        str | None,
        typer.Option(
            help="the environment variable holding its password (else it is asked for; "
            "needed for a new login, optional for a change)"
        ),
    ] = None,
) -> None:
    """A read-only database login that sees the given branches only, for that branch's
    Grafana (its datasource user) or another reporting tool: every table's rows are scoped
    as for a branch user of the API, whatever SQL is typed. Run again to change its branches
    or password. Example: SUVNET_READER_PW=... suvnet branches reader grafana_urg --branch
    URG --password-env SUVNET_READER_PW (docs/branches.md, "Grafana per branch")."""
    import os

    password: str | None = None
    if password_env:
        password = os.environ.get(password_env) or None
        if password is None:
            console.print(f"[red]the environment variable {password_env} is not set[/red]")
            raise typer.Exit(1)
    elif sys.stdin.isatty():
        password = (
            typer.prompt(
                f"password for {role} (empty: keep it)",
                hide_input=True,
                confirmation_prompt=True,
                default="",
                show_default=False,
            )
            or None
        )
    done = _branches(lambda conn: br.set_reader(conn, role, branch, password))
    console.print(
        f"reader [bold]{role}[/bold] sees {', '.join(b.code for b in done)}; give it to the "
        "branch's Grafana as its datasource user"
    )


@branches_app.command("readers")
def branches_readers() -> None:
    """The read-only logins of branches and what each sees."""
    rows = _branches(br.list_readers)
    if not rows:
        console.print("no branch readers (suvnet branches reader NAME --branch CODE)")
    for role, codes in rows:
        console.print(
            f"[bold]{role}[/bold]: {', '.join(codes) or '[red]no branch: sees nothing[/red]'}"
        )


@branches_app.command("reader-drop")
def branches_reader_drop(
    role: Annotated[str, typer.Argument(help="the reader's login name")],
) -> None:
    """Remove a branch's read-only login."""
    _branches(lambda conn: br.drop_reader(conn, role))
    console.print(f"reader [bold]{role}[/bold] removed")


@branches_app.command("contract")
def branches_contract(
    code: Annotated[str, typer.Argument(help="the branch code")],
    provider: Annotated[str, typer.Argument(help="payme or click")],
    merchant_id: Annotated[str, typer.Option(help="Payme cash-desk id / Click merchant id")],
    service_id: Annotated[
        str | None, typer.Option(help="Click: the service id its calls carry")
    ] = None,
    key_stdin: Annotated[
        bool, typer.Option(help="read the key from standard input instead of asking")
    ] = False,
) -> None:
    """Give a branch its own Payme cash desk or Click service: its callbacks (told apart by
    the cash-desk key, or Click's service_id) pay only that branch's accounts."""
    if provider not in ("payme", "click"):
        console.print("[red]the provider is payme or click[/red]")
        raise typer.Exit(2)
    key = sys.stdin.readline().strip() if key_stdin else getpass.getpass("key: ")
    c = _branches(
        lambda conn: br.set_contract(
            conn,
            code,
            "payme" if provider == "payme" else "click",
            merchant_id=merchant_id,
            secret=key,
            service_id=service_id,
        )
    )
    console.print(f"branch [bold]{c.branch_code}[/bold]: own {c.provider} merchant {c.merchant_id}")
