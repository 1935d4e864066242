"""The staff back office: login, the home page with the account search, the account card
and its one-time cabinet codes. The cashier desk is :mod:`api.web.staff_payments`
(/staff/payments/desk); /staff/cashier only redirects there."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, require
from api.security import (
    ALARMS_READ,
    CASHIER_DESK,
    ISSUE_CUSTOMER_CODES,
    READ_BILLING,
    READ_REGISTRY,
    REPORTS,
    STAFF,
    STATEMENTS,
    Principal,
)
from api.services import customer_logins
from api.services.billing import account_or_404, balance_or_404
from api.web import staff_requests
from api.web.common import render
from api.web.login import LoginPages, add_login_routes
from api.web.staff_register_common import Words, can
from billing import queries as bq
from billing import register as reg

router = APIRouter(prefix="/staff", include_in_schema=False)
HAS_MAP = find_spec("assets") is not None
"""The network map (/staff/map) comes with the asset register, which an install may leave out."""
Staff = Annotated[Principal, Depends(require(STAFF))]
BillingReader = Annotated[Principal, Depends(require(READ_BILLING))]
DESK = "/staff/payments/desk"
LOGIN = LoginPages(
    prefix="/staff",
    template="staff_login.html",
    field="username",
    field_max=64,
    customer=False,
    roles=STAFF,
)
add_login_routes(router, LOGIN)


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
        can_map=HAS_MAP and who.role in READ_REGISTRY,
        can_prv=who.role in READ_REGISTRY,
    )


@router.get("/accounts/{number}")
async def account_card(
    *, request: Request, who: BillingReader, conn: Conn, number: str
) -> Response:
    return await _card(request, who, conn, number, None)


async def _card(
    request: Request, who: Principal, conn: Conn, number: str, code: dict[str, Any] | None
) -> Response:
    """The account card: every code shown in the page's language (kind, status, ledger
    entries and their months, channels, reading sources), a legal entity's INN and bank
    details, a smart meter's telemetry readings (one a day), times in Tashkent."""
    account = await account_or_404(conn, number)
    ledger = await bq.recent_ledger(conn, account["id"], 200)
    reversed_ids = {e["reverses_id"] for e in ledger if e["reverses_id"] is not None}
    kinds = {e["id"]: e["kind"] for e in ledger}
    for e in ledger:
        e["cancelled"] = e["id"] in reversed_ids
        e["reverses_kind"] = kinds.get(e["reverses_id"]) if e["reverses_id"] else None
    return render(
        request,
        "staff_account.html",
        who=who,
        w=Words(request),
        can_issue_code=who.role in ISSUE_CUSTOMER_CODES,
        can_register=can(who),
        code=code,
        account=account,
        details=await reg.account_details(conn, account["id"]),
        balance=await balance_or_404(conn, number),
        ledger=ledger,
        meters=await reg.account_meters(conn, account["id"]),
        readings=await reg.account_readings(conn, account["id"], 50),
        invoices=await bq.invoices(conn, account["id"], 36),
        **await staff_requests.card_context(request, who, conn, account),
    )


@router.api_route("/cashier", methods=["GET", "HEAD", "POST"])
async def old_cashier_desk(request: Request) -> Response:
    """The old cashier desk address. The one desk is /staff/payments/desk (api.web.staff_payments):
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
    number: str,
) -> Response:
    """A one-time code for the customer's first cabinet password, shown once on the card."""
    account = await account_or_404(conn, number)
    code, expires = await customer_logins.issue_code(conn, request, who, account["number"])
    return await _card(request, who, conn, number, {"code": code, "expires_at": expires})
