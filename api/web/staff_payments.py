"""Back-office pages of the payments: the cashier desk (payment, receipt, void, today's shift)
and bank statements (upload, review queue, allocation, re-match). Thin pages over the same
actions as the JSON API (:mod:`api.services.payments`)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import get_state, require
from api.security import CASHIER_DESK, STATEMENTS, Principal
from api.services import payments
from api.syncdb import run_sync
from api.web.common import render
from billing.payments import cashier as desk
from billing.payments.errors import PaymentsError
from billing.payments.money import som_to_tiyin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff/payments", include_in_schema=False)
DeskUser = Annotated[Principal, Depends(require(CASHIER_DESK))]
Clerk = Annotated[Principal, Depends(require(STATEMENTS))]
DESK = "/staff/payments/desk"
STATEMENTS_PAGE = "/staff/payments/statements"


# ------------------------------------------------------------------ cashier desk
async def _desk_page(
    request: Request, who: Principal, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    st = get_state(request)
    cfg = payments.payments_config(request)
    tz = ZoneInfo(cfg.timezone)
    rep = await run_sync(
        st, desk.shift_report, who.username, st.clock().astimezone(tz).date(), cfg.timezone
    )
    for p in rep.payments:
        p["local_time"] = p["taken_at"].astimezone(tz).strftime("%H:%M")
    ctx.setdefault("receipt", None)
    ctx.setdefault("error", None)
    ctx.setdefault("hint", None)  # "amount", "refused" or "moved": a translated line
    ctx.setdefault("message", None)
    ctx.setdefault("account", "")
    return render(
        request,
        "payments_desk.html",
        status_code,
        who=who,
        shift=rep,
        request_key=uuid.uuid4().hex,
        **ctx,
    )


@router.get("/desk")
async def desk_page(
    request: Request, who: DeskUser, receipt: str = "", done: str = "", moved: str = ""
) -> Response:
    """The one cashier desk of the back office (/staff/cashier redirects here). ``moved`` is
    set when a form of the old desk page was sent: nothing was taken, the cashier is told so."""
    st = get_state(request)
    rec = None
    if receipt:
        try:
            rec = await run_sync(st, desk.get_receipt, receipt[:40])
        except PaymentsError:
            rec = None
    return await _desk_page(
        request, who, receipt=rec, message=done[:200] or None, hint="moved" if moved else None
    )


@router.post("/desk")
async def desk_take(
    *,
    request: Request,
    who: DeskUser,
    account: Annotated[str, Form(max_length=32)],
    amount: Annotated[str, Form(max_length=32)],
    method: Annotated[str, Form(max_length=8)] = "cash",
    request_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if method not in ("cash", "card"):
        return await _desk_page(
            request, who, 422, hint="refused", error="method must be cash or card"
        )
    try:
        tiyin = som_to_tiyin(amount)
    except PaymentsError as exc:
        return await _desk_page(request, who, 422, hint="amount", error=str(exc), account=account)
    try:
        r = await payments.take_payment(
            request,
            who,
            account_number=account,
            amount_tiyin=tiyin,
            method="card" if method == "card" else "cash",
            request_key=request_key or None,
        )
    except PaymentsError as exc:
        return await _desk_page(request, who, 422, hint="refused", error=str(exc), account=account)
    return RedirectResponse(f"{DESK}?receipt={r.receipt_no}", status_code=303)


@router.post("/desk/void")
async def desk_void(
    request: Request,
    who: DeskUser,
    receipt_no: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    try:
        await payments.void_payment(request, who, receipt_no, reason=reason)
    except PaymentsError as exc:
        return await _desk_page(request, who, 403, error=str(exc))
    return RedirectResponse(
        DESK + "?" + urlencode({"done": f"{receipt_no} voided"}), status_code=303
    )


# ------------------------------------------------------------------ bank statements
async def _statements_page(
    request: Request, who: Principal, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    items, _, suspense = await payments.review_queue(request, limit=200)
    for key in ("error", "message", "summary"):
        ctx.setdefault(key, None)
    return render(
        request,
        "payments_statements.html",
        status_code,
        who=who,
        items=items,
        suspense=suspense,
        **ctx,
    )


@router.get("/statements")
async def statements_page(request: Request, who: Clerk, done: str = "") -> Response:
    return await _statements_page(request, who, message=done[:200] or None)


@router.post("/statements")
async def statements_upload(
    request: Request, who: Clerk, file: Annotated[UploadFile, File()]
) -> Response:
    try:
        stmt = await payments.read_statement(file)
    except PaymentsError as exc:
        return await _statements_page(request, who, 422, error=str(exc))
    summary = await payments.import_statement(request, who, stmt, filename=file.filename or "")
    return await _statements_page(request, who, summary=summary)


@router.post("/statements/{line_id}/allocate")
async def statements_allocate(
    *,
    request: Request,
    who: Clerk,
    line_id: int,
    account: Annotated[str, Form(max_length=32)],
    amount: Annotated[str, Form(max_length=32)],
) -> Response:
    try:
        tiyin = som_to_tiyin(amount)
        status = await payments.allocate(request, who, line_id, [(account, tiyin)])
    except PaymentsError as exc:
        return await _statements_page(request, who, 422, error=str(exc))
    return RedirectResponse(
        STATEMENTS_PAGE + "?" + urlencode({"done": f"line {line_id}: {status}"}),
        status_code=303,
    )


@router.post("/statements/rematch")
async def statements_rematch(request: Request, who: Clerk) -> Response:
    counts = await payments.rematch(request, who)
    msg = ", ".join(f"{k} {v}" for k, v in counts.items())
    return RedirectResponse(STATEMENTS_PAGE + "?" + urlencode({"done": msg}), status_code=303)
