"""The customer cabinet: login with account number and password, first password with a
one-time code, balance, invoices, payments, consumption chart, Payme and Click buttons."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.deps import Conn, State, require
from api.errors import ApiError, NotAuthenticatedError, TooManyAttemptsError
from api.i18n import format_som, gettext_for, local_time
from api.readconn import ReadConn, read_fresh
from api.security import CUSTOMER_SELF, Principal
from api.services import customer_logins
from api.services.billing import account_or_404, balance_or_404, invoice_pdf_response
from api.web.common import (
    form_csrf_ok,
    language,
    render,
    set_session,
)
from api.web.login import LoginPages, add_login_routes
from billing import branches, paylinks, payment_history
from billing import queries as bq
from billing.config import get_billing_config

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cabinet", include_in_schema=False)
Customer = Annotated[Principal, Depends(require(CUSTOMER_SELF))]
LOGIN = LoginPages(
    prefix="/cabinet",
    template="cabinet_login.html",
    field="account_no",
    field_max=32,
    customer=True,
    roles=CUSTOMER_SELF,
)
add_login_routes(router, LOGIN)

PASSWORD_ERRORS = {
    "password_too_common": "common",
    "password_too_simple": "simple",
    "password_contains_username": "simple",
}
"""api.security.password_check codes -> the activation page's messages (else "weak")."""


@router.get("/activate")
async def activate_page(request: Request) -> Response:
    return render(request, "cabinet_activate.html", error=None, account_no="")


@router.post("/activate")
async def activate_submit(
    *,
    request: Request,
    conn: Conn,
    account_no: Annotated[str, Form(max_length=32)],
    code: Annotated[str, Form(max_length=32)],
    password: Annotated[str, Form(max_length=256)],
    password2: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def again(status: int, error: str) -> Response:
        return render(request, "cabinet_activate.html", status, error=error, account_no=account_no)

    if not form_csrf_ok(request, csrf_token):
        return again(403, "csrf")
    if password != password2:
        return again(422, "mismatch")
    try:
        pair = await customer_logins.activate(
            conn, request, account_no=account_no, code=code, password=password
        )
    except TooManyAttemptsError:
        return again(429, "locked")
    except NotAuthenticatedError:
        return again(401, "badcode")
    except ApiError as exc:
        return again(422, PASSWORD_ERRORS.get(exc.code, "weak"))
    resp = RedirectResponse("/cabinet/", status_code=303)
    set_session(resp, request, pair.access_token, pair.refresh_token)
    return resp


async def _pay_links(conn: Any, account_no: str, amount_tiyin: int) -> dict[str, str]:
    """The cabinet's Pay buttons (only the configured providers): through :func:`pay`."""
    found = await _provider_links(conn, account_no, amount_tiyin)
    return {name: f"/cabinet/pay/{name}" for name in found}


async def _provider_links(conn: Any, account_no: str, amount_tiyin: int) -> dict[str, str]:
    """Payme and Click links made by billing (only the configured providers), to the
    merchants of the account's branch where it has its own contract (docs/branches.md)."""
    cur = await conn.execute(branches.ACCOUNT_CONTRACTS_SQL, (account_no,))
    rows = await cur.fetchall()
    own = branches.contracts_of_rows(
        [tuple(r.values()) if isinstance(r, dict) else r for r in rows]
    )
    found = paylinks.links(get_billing_config(), account_no, max(amount_tiyin, 0), own)
    return {str(name): link for name, link in found.items()}


def N_(msgid: str) -> str:  # noqa: N802 - the gettext marker for babel's extraction
    return msgid


CHANNELS = {
    "payme": "Payme",
    "click": "Click",
    "bank": N_("Bank transfer"),
    "cashier": N_("Cashier desk"),
}
"""The payment channels as the customer reads them (Payme and Click are names)."""
STATUS = {
    "paid": N_("Paid"),
    "cancelled": N_("Cancelled"),
    "refunded": N_("Refunded"),
}


def _payments_for_page(rows: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    """Each payment with its channel and status in the visitor's language; a cancelled or
    refunded payment says when (Tashkent time)."""
    tr = gettext_for(language(request))
    for p in rows:
        channel = CHANNELS.get(p["source"])
        p["channel"] = tr.gettext(channel) if channel else p["source"]
        p["status_text"] = tr.gettext(STATUS.get(p["status"], p["status"]))
        p["cancelled_local"] = local_time(p.get("cancelled_at"), "%d.%m.%Y")
    return rows


PAY_FRESH_S = 15 * 60
"""After the customer leaves for Payme or Click, the cabinet reads from the primary database
for this long (not from a read replica that may lag): the payment shows as soon as the
provider's callback has posted it."""


@router.get("/pay/{provider}")
async def pay(*, request: Request, who: Customer, conn: Conn, provider: str) -> Response:
    """The Pay buttons: on to the provider's checkout for the current debt, and the cabinet
    reads its own writes for a while (:data:`PAY_FRESH_S`)."""
    assert who.account_no is not None
    balance = await balance_or_404(conn, who.account_no)
    link = (await _provider_links(conn, who.account_no, balance)).get(provider)
    if link is None:
        return RedirectResponse("/cabinet/", status_code=303)
    resp = RedirectResponse(link, status_code=303)
    read_fresh(resp, request, PAY_FRESH_S)
    return resp


@router.get("/")
async def home(*, request: Request, who: Customer, conn: ReadConn) -> Response:
    assert who.account_no is not None
    account = await account_or_404(conn, who.account_no)
    balance = await balance_or_404(conn, who.account_no)
    series = await bq.monthly_consumption(conn, account["id"])
    peak = max((float(r["volume_m3"] or 0) for r in series), default=0.0) or 1.0
    bars = [
        {
            "period": r["period"],
            "volume": float(r["volume_m3"] or 0),
            # whole per cent of the highest month: the style sheet's .h0 ... .h100
            "height": min(100, max(0, round(100 * float(r["volume_m3"] or 0) / peak))),
            "estimated": bool(r["estimated"]),
        }
        for r in series
    ]
    return render(
        request,
        "cabinet_home.html",
        account=account,
        balance=balance,
        invoices=await bq.invoices(conn, account["id"]),
        payments=_payments_for_page(await payment_history.recent(conn, account["id"]), request),
        bars=bars,
        pay=await _pay_links(conn, who.account_no, balance),
    )


@router.get("/balance.json")
async def balance_json(*, who: Customer, conn: ReadConn) -> Response:
    """The live balance: api/static/cabinet.js on the cabinet page asks every 30 seconds.
    ``balance_som`` is the amount as the page shows it (without sign: the heading says which)."""
    assert who.account_no is not None
    bal = await balance_or_404(conn, who.account_no)
    return JSONResponse(
        {"account": who.account_no, "balance_tiyin": bal, "balance_som": format_som(abs(bal))}
    )


@router.get("/invoices/{invoice_id}.pdf")
async def invoice_pdf(
    *, request: Request, who: Customer, conn: Conn, st: State, invoice_id: int
) -> Response:
    assert who.account_no is not None
    return await invoice_pdf_response(
        conn, st, invoice_id, account_no=who.account_no, lang=language(request)
    )
