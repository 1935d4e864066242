"""The staff back office: login, account search, the account card. The cashier desk is
api.payments.web (/staff/payments/desk); /staff/cashier only redirects there."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api import users
from api.audit import write_audit
from api.customer_accounts import account_or_404, balance_or_404
from api.deps import REFRESH_COOKIE, Conn, State, require
from api.payments.common import CASHIER_DESK, STATEMENTS
from api.security import (
    ALARMS_READ,
    ISSUE_CUSTOMER_CODES,
    READ_BILLING,
    REPORTS,
    STAFF,
    Principal,
)
from api.web.common import clear_session, login_form, render
from billing import queries as bq

router = APIRouter(prefix="/staff", include_in_schema=False)
Staff = Annotated[Principal, Depends(require(STAFF))]
BillingReader = Annotated[Principal, Depends(require(READ_BILLING))]
DESK = "/staff/payments/desk"


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "staff_login.html", error=None, username="")


@router.post("/login")
async def login_submit(
    *,
    request: Request,
    conn: Conn,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    return await login_form(
        request,
        conn,
        template="staff_login.html",
        field="username",
        login=username,
        password=password,
        csrf_token=csrf_token,
        next_url=next_url,
        home="/staff/",
        customer=False,
    )


@router.post("/logout")
async def logout(*, request: Request, who: Staff, conn: Conn, st: State) -> Response:
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        await users.revoke(conn, token, st.secret, st.clock())
    resp = RedirectResponse("/staff/login", status_code=303)
    clear_session(resp)
    return resp


@router.get("/")
async def home(
    *,
    request: Request,
    who: Staff,
    conn: Conn,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    results: list[dict[str, Any]] = []
    if q.strip() and who.role in READ_BILLING:
        results = await bq.search_accounts(conn, q.strip(), 50)
    return render(
        request,
        "staff_home.html",
        who=who,
        q=q,
        results=results,
        # a link is shown only to the roles its page lets in
        can_billing=who.role in READ_BILLING,
        can_cashier=who.role in CASHIER_DESK,
        can_statements=who.role in STATEMENTS,
        can_alarms=who.role in ALARMS_READ,
        can_reports=who.role in REPORTS,
    )


@router.get("/accounts/{number}")
async def account_card(
    *, request: Request, who: BillingReader, conn: Conn, number: str
) -> Response:
    return await _card(request, who, conn, number, None)


async def _card(
    request: Request, who: Principal, conn: Conn, number: str, code: dict[str, Any] | None
) -> Response:
    account = await account_or_404(conn, number)
    ledger = await bq.recent_ledger(conn, account["id"], 200)
    meters = await bq.meters_with_last_reading(conn, account["id"])
    readings = await bq.account_readings(conn, account["id"], 50)
    return render(
        request,
        "staff_account.html",
        who=who,
        can_issue_code=who.role in ISSUE_CUSTOMER_CODES,
        code=code,
        account=account,
        balance=await balance_or_404(conn, number),
        ledger=ledger,
        meters=meters,
        readings=readings,
        invoices=await bq.invoices(conn, account["id"], 36),
    )


@router.api_route("/cashier", methods=["GET", "HEAD", "POST"])
async def old_cashier_desk(request: Request) -> Response:
    """The old cashier desk address. The one desk is /staff/payments/desk (api.payments.web):
    a bookmark is sent there for good (308, query kept). A form sent from a page of the old
    desk left open is not re-posted (its fields differ): the desk says that nothing was taken.
    The desk checks the login and the role itself."""
    if request.method == "POST":
        lang = request.query_params.get("lang")
        keep = f"&lang={quote(lang)}" if lang else ""  # the notice in the page's language
        return RedirectResponse(DESK + "?moved=1" + keep, status_code=303)
    query = request.url.query
    return RedirectResponse(DESK + ("?" + query if query else ""), status_code=308)


@router.post("/accounts/{number}/code")
async def issue_code(
    *,
    request: Request,
    who: Annotated[Principal, Depends(require(ISSUE_CUSTOMER_CODES))],
    conn: Conn,
    st: State,
    number: str,
) -> Response:
    """A one-time code for the customer's first cabinet password, shown once on the card."""
    account = await account_or_404(conn, number)
    code, expires = await users.issue_customer_code(
        conn, account["number"], who.user_id, st.clock()
    )
    await write_audit(
        conn,
        request,
        who,
        action="issue_code",
        entity="customer",
        entity_id=account["number"],
        after={"expires_at": expires},
    )
    return await _card(request, who, conn, number, {"code": code, "expires_at": expires})
