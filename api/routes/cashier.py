"""The cashier desk API: take a payment, print its receipt, void it, the shift report."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.branch_text import requisites_refusal
from api.deps import get_state, require
from api.errors import ForbiddenError, InvalidError, NotFoundError
from api.i18n import request_language
from api.security import CASHIER_DESK, VOID_ANY, Principal
from api.services import payments
from api.syncdb import run_sync
from billing.branches import RequisitesMissingError, seller_of_account
from billing.config import get_billing_config
from billing.payments import cashier as desk
from billing.payments.errors import CashierError, PaymentsError, VoidRefusedError
from billing.payments.money import som_to_tiyin

router = APIRouter(prefix="/api/v1/payments/cashier", tags=["cashier desk"])
Desk = Annotated[Principal, Depends(require(CASHIER_DESK))]


class PaymentIn(BaseModel):
    account: str = Field(..., max_length=32, description="account number (9 digits)")
    amount: str = Field(..., max_length=32, description="so'm, up to 2 decimals: '150000.50'")
    method: Literal["cash", "card"] = "cash"
    request_key: str | None = Field(
        None, max_length=100, description="idempotency key of the form (double submit = one)"
    )


class VoidIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=500)


def _receipt_json(r: desk.Receipt) -> dict[str, Any]:
    return {
        "receipt_no": r.receipt_no,
        "account": r.account_number,
        "name": r.account_name,
        "amount_tiyin": r.amount_tiyin,
        "method": r.method,
        "cashier": r.cashier,
        "taken_at": r.taken_at.isoformat(),
        "ledger_id": r.ledger_id,
        "balance_after_tiyin": r.balance_after_tiyin,
        "voided_at": r.voided_at.isoformat() if r.voided_at else None,
        "voided_by": r.voided_by,
        "void_reason": r.void_reason,
        "created": r.created,
        "receipt_url": f"/api/v1/payments/cashier/receipts/{r.receipt_no}.pdf",
    }


@router.post("", summary="Take a cash or card payment (posted to the ledger at once)")
async def take(body: PaymentIn, request: Request, who: Desk) -> dict[str, Any]:
    try:
        tiyin = som_to_tiyin(body.amount)
    except PaymentsError as exc:
        raise InvalidError(str(exc)) from exc
    try:
        receipt = await payments.take_payment(
            request,
            who,
            account_number=body.account,
            amount_tiyin=tiyin,
            method=body.method,
            request_key=body.request_key,
        )
    except CashierError as exc:
        raise InvalidError(str(exc)) from exc
    return _receipt_json(receipt)


@router.get("/receipts/{receipt_no}.pdf", summary="The printable receipt (PDF)")
async def receipt_pdf(receipt_no: str, request: Request, who: Desk) -> Response:
    st = get_state(request)
    cfg = payments.payments_config(request)
    bcfg = get_billing_config()
    try:
        r = await run_sync(st, desk.get_receipt, receipt_no)
        # the receipt is the account's branch's: its name, STIR and phone (docs/branches.md)
        seller = await run_sync(st, seller_of_account, r.account_id, bcfg)
    except CashierError as exc:
        raise NotFoundError(str(exc)) from exc
    except RequisitesMissingError as exc:
        lang = request_language(request.query_params.get("lang"), request.cookies)
        raise requisites_refusal(exc, lang) from exc
    pdf = desk.render_receipt(
        r,
        seller.name,
        cfg.timezone,
        utility_inn=seller.inn,
        utility_phone=seller.phone,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{receipt_no}.pdf"'},
    )


@router.get("/receipts/{receipt_no}", summary="One receipt as JSON")
async def receipt_json(receipt_no: str, request: Request, who: Desk) -> dict[str, Any]:
    st = get_state(request)
    try:
        r = await run_sync(st, desk.get_receipt, receipt_no)
    except CashierError as exc:
        raise NotFoundError(str(exc)) from exc
    return _receipt_json(r)


@router.post(
    "/receipts/{receipt_no}/void",
    summary="Void a payment with a reversal (cashier: own, same day; accountant/admin: any)",
)
async def void(receipt_no: str, body: VoidIn, request: Request, who: Desk) -> dict[str, Any]:
    try:
        r = await payments.void_payment(request, who, receipt_no, reason=body.reason)
    except VoidRefusedError as exc:
        raise ForbiddenError(str(exc)) from exc
    except CashierError as exc:
        if "no cashier receipt" in str(exc):
            raise NotFoundError(str(exc)) from exc
        raise InvalidError(str(exc)) from exc
    return _receipt_json(r)


@router.get("/shift", summary="The shift report of a cashier for a day")
async def shift(
    request: Request,
    who: Desk,
    cashier: Annotated[str | None, Query(max_length=64)] = None,
    day: Annotated[date | None, Query(description="YYYY-MM-DD; default today")] = None,
) -> dict[str, Any]:
    st = get_state(request)
    cfg = payments.payments_config(request)
    name = cashier or who.username
    if name != who.username and who.role not in VOID_ANY:
        raise ForbiddenError("a cashier sees only their own shift")
    the_day = day or st.clock().astimezone(ZoneInfo(cfg.timezone)).date()
    rep = await run_sync(st, desk.shift_report, name, the_day, cfg.timezone)
    return {
        "cashier": rep.cashier,
        "day": rep.day.isoformat(),
        "count": rep.count,
        "cash_tiyin": rep.cash_tiyin,
        "card_tiyin": rep.card_tiyin,
        "net_tiyin": rep.net_tiyin,
        "voided_count": rep.voided_count,
        "voided_tiyin": rep.voided_tiyin,
        "payments": [{**p, "taken_at": p["taken_at"].isoformat()} for p in rep.payments],
    }
