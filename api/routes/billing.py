"""Billing endpoints: accounts, meters, ledger, balances and roll-ups, invoices (PDF),
payments, billing runs. The rules live in the billing package; this module calls it."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Conn, Paging, State, client_ip, require, scoped_read
from api.errors import ConflictError, InvalidError, NotFoundError
from api.lean import lean
from api.readconn import ReadConn
from api.responses import json_response
from api.security import CASHIER_DESK, CUSTOMER_SELF, READ_BILLING, RUN_BILLING, Principal
from api.services import payments
from api.services.billing import (
    account_or_404,
    account_with_balance,
    balance_or_404,
    invoice_pdf_response,
    set_account_status,
)
from api.services.billing import start_run as start_billing_run
from api.syncdb import run_sync
from billing import payment_history
from billing import queries as bq
from billing.balances import BUCKETS, balances_by
from billing.config import get_billing_config
from billing.errors import AccountDataError, AccountNumberError, LedgerError
from billing.payments.errors import CashierError, RequestKeyReusedError
from suvnet.listing import paged

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["billing"])

Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Runner = Annotated[Principal, Depends(require(RUN_BILLING))]
DeskDep = Annotated[Principal, Depends(require(CASHIER_DESK))]
Customer = Annotated[Principal, Depends(require(CUSTOMER_SELF))]
Number = Annotated[str, Path(pattern=r"^[0-9]{9}$", description="9-digit account number")]
DbId = Annotated[int, Path(ge=1, le=2**62)]
Period = Annotated[str, Path(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


def _period(text: str) -> date:
    try:
        return date(int(text[:4]), int(text[5:7]), 1)
    except ValueError as exc:
        raise InvalidError("the period must be YYYY-MM") from exc


# ---------------------------------------------------------------------------------- accounts


@router.get("/accounts", summary="Accounts (search by number, name, address or phone)")
async def list_accounts(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    q: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["active", "suspended", "closed"] | None = None,
    kind: Literal["household", "legal", "budget"] | None = None,
    district_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    mahalla_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    street_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, Any]:
    return await bq.list_accounts(
        conn,
        pg,
        q=q,
        status=status,
        kind=kind,
        district_id=district_id,
        mahalla_id=mahalla_id,
        street_id=street_id,
    )


@router.get("/accounts/{number}", summary="One account with its balance")
async def get_account(*, _: Reader, conn: Conn, number: Number) -> dict[str, Any]:
    return await account_with_balance(conn, number)


async def account_balance(*, _: Reader, conn: Conn, number: Number) -> Response:
    """Positive: the customer owes; negative: prepaid."""
    bal = await balance_or_404(conn, number)
    return json_response({"account": number, "balance_tiyin": bal})


_NUMBER = re.compile(r"[0-9]{9}")


async def _lean_balance(request: Request) -> Response | None:
    """:func:`account_balance` for a Bearer-token call with a well-formed number, in one
    round trip (api.lean); anything else goes to :func:`account_balance`."""
    number = request.path_params.get("number")
    if not isinstance(number, str) or _NUMBER.fullmatch(number) is None:
        return None
    rows = await scoped_read(request, READ_BILLING, bq.BALANCE_SQL, (number,))
    if rows is None:
        return None
    if not rows:
        raise NotFoundError(f"no account with number {number!r}")
    return json_response({"account": number, "balance_tiyin": int(rows[0][0])})


# the busiest read of the API (cashiers, the call centre, integrations): served lean
router.add_api_route(
    "/accounts/{number}/balance",
    account_balance,
    methods=["GET"],
    summary="Balance of an account (tiyin)",
    route_class_override=lean(_lean_balance),
)


@router.get("/accounts/{number}/ledger", summary="Ledger entries of an account")
async def account_ledger(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    number: Number,
    kind: Literal["charge", "payment", "adjustment", "reversal", "penalty", "opening_balance"]
    | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    acc = await account_or_404(conn, number)
    return await bq.ledger_page(
        conn, pg, acc["id"], kind=kind, date_from=date_from, date_to=date_to
    )


@router.get("/accounts/{number}/meters", summary="Meters of an account (current and past)")
async def account_meters(*, _: Reader, conn: Conn, pg: Paging, number: Number) -> dict[str, Any]:
    acc = await account_or_404(conn, number)
    return await bq.account_meters(conn, pg, acc["id"])


@router.get("/meters/{meter_id}/readings", summary="Register readings of a meter")
async def meter_readings(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    meter_id: DbId,
    source: Literal["telemetry", "manual", "inspector", "customer"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    return await bq.meter_readings(conn, pg, meter_id, source=source, since=since, until=until)


# ---------------------------------------------------------------------------------- invoices


@router.get("/invoices", summary="Invoices")
async def list_invoices(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    account: Annotated[str | None, Query(pattern=r"^[0-9]{9}$")] = None,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    kind: Literal["regular", "correction"] | None = None,
    estimated: bool | None = None,
) -> dict[str, Any]:
    return await bq.list_invoices(
        conn,
        pg,
        account=account,
        period=None if period is None else _period(period),
        kind=kind,
        estimated=estimated,
    )


@router.get(
    "/invoices/{invoice_id}.pdf",
    summary="Invoice PDF (slip for households, hisob-faktura for organisations)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(
    *,
    _: Reader,
    conn: Conn,
    st: State,
    invoice_id: DbId,
    lang: Literal["uz", "ru"] = "uz",
) -> Response:
    return await invoice_pdf_response(conn, st, invoice_id, account_no=None, lang=lang)


# ---------------------------------------------------------------------------------- payments


class CashIn(BaseModel):
    amount_tiyin: int = Field(gt=0, lt=10**13, description="amount received, in tiyin")
    receipt: str = Field(
        min_length=1,
        max_length=64,
        description="the caller's own number for this payment (e.g. of a paper receipt); sent "
        "again, it returns the first payment instead of taking a second one",
    )
    method: Literal["cash", "card"] = "cash"


@router.get(
    "/payments",
    summary="Payments (ledger entries of kind payment) with their status",
    description="Each payment has ``status``: ``paid``, ``cancelled`` (a desk void, a bank "
    "allocation undone) or ``refunded`` (Payme or Click cancelled it after payment), and "
    "``cancelled_at``. A cancelled or refunded payment no longer counts in the balance.",
)
async def list_payments(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    source: Annotated[str | None, Query(max_length=32)] = None,
    account: Annotated[str | None, Query(pattern=r"^[0-9]{9}$")] = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    return await payment_history.payments(
        conn, pg, source=source, account=account, date_from=date_from, date_to=date_to
    )


@router.post(
    "/accounts/{number}/payments", status_code=201, summary="Take a payment at the cashier desk"
)
async def take_cash(
    *, request: Request, who: DeskDep, conn: Conn, st: State, number: Number, body: CashIn
) -> dict[str, Any]:
    """The same as the cashier desk (`POST /api/v1/payments/cashier`), for one account: the
    payment gets a desk receipt number and its PDF, is in the cashier's shift report and can
    be voided there. Idempotent on ``receipt``: sent twice, one payment is taken (the answer
    says ``created: false`` the second time); the same ``receipt`` with another amount is
    refused with 409."""
    await account_or_404(conn, number)
    try:
        r = await payments.take_payment(
            request,
            who,
            account_number=number,
            amount_tiyin=body.amount_tiyin,
            method=body.method,
            request_key=f"api:{body.receipt}",
        )
    except RequestKeyReusedError as exc:
        raise ConflictError(
            f"receipt {body.receipt!r} was already used for another payment (desk receipt "
            f"{exc.receipt_no}); a new payment needs a new receipt number"
        ) from exc
    except CashierError as exc:
        raise ConflictError(str(exc)) from exc
    return {
        "ledger_id": r.ledger_id,
        "created": r.created,
        "receipt_no": r.receipt_no,
        "receipt_url": f"/api/v1/payments/cashier/receipts/{r.receipt_no}.pdf",
        "balance_tiyin": await balance_or_404(conn, number),
    }


# ------------------------------------------------------------------------------ account status


class StatusIn(BaseModel):
    status: Literal["active", "suspended", "closed"]
    at: datetime | None = Field(
        None,
        description="when the change took effect (default: now); without a UTC offset it is "
        "the office's local time. Billing counts the days of service from it.",
    )
    reason: str = Field("", max_length=500, description="why (kept in the status history)")


@router.post("/accounts/{number}/status", summary="Suspend, close or reopen an account")
async def change_status(
    *, request: Request, who: Runner, st: State, number: Number, body: StatusIn
) -> dict[str, Any]:
    """The status history keeps the time and the reason. A change entered late (``at`` in the
    past) may not lie before the account's previous change nor in the future; asking for the
    status the account already has changes nothing (``changed: false``). The answer
    lists the months already billed from then on (``months_to_correct``): run
    ``suvnet billing correct`` for them so that their bills follow the new days of service."""
    tz = get_billing_config().timezone
    now = st.clock()
    when = body.at or now
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    if when > now:
        raise InvalidError(f"at {when.isoformat()} is in the future")

    try:
        months = await set_account_status(
            st, who, client_ip(request), number, body.status, when=when, reason=body.reason
        )
    except (LedgerError, AccountNumberError) as exc:  # no such account, a mistyped number
        raise NotFoundError(str(exc)) from exc
    except AccountDataError as exc:
        raise ConflictError(str(exc)) from exc
    if months is None:
        return {"account": number, "status": body.status, "changed": False}
    return {
        "account": number,
        "status": body.status,
        "changed": True,
        "since": when.isoformat(),
        "months_to_correct": months,
    }


# ---------------------------------------------------------------------------------- balances


def _balances(conn: Any, by: str, as_of: date) -> list[dict[str, Any]]:
    out = []
    for g in balances_by(conn, by, as_of):  # type: ignore[arg-type]
        d = asdict(g)
        aging = d.pop("aging")
        d["aging"] = dict(zip(BUCKETS, aging["buckets"], strict=True))
        out.append(d)
    return out


@router.get("/balances", summary="Balances rolled up per street, mahalla, district or account")
async def balances(
    *,
    _: Reader,
    st: State,
    pg: Paging,
    by: Literal["street", "mahalla", "district", "account"] = "mahalla",
    as_of: date | None = None,
    debtors_only: bool = False,
) -> dict[str, Any]:
    """Debt and prepaid credit are reported apart (never netted), with FIFO aging buckets
    (0-30, 31-60, 61-90, 90+ days)."""
    day = as_of or st.clock().date()
    rows = await run_sync(st, _balances, by, day)
    if debtors_only:
        rows = [r for r in rows if r["debt"] > 0]
    return paged(rows[pg.offset : pg.offset + pg.limit], len(rows), pg)


# ------------------------------------------------------------------------------ billing runs


class RunIn(BaseModel):
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    dry_run: bool = Field(False, description="compute and summarise, post nothing")
    force: bool = Field(
        False,
        description="run a month that has not ended yet, or one before a month already billed "
        "(both are refused with 409 otherwise; a dry run only warns)",
    )


@router.get("/billing-runs", summary="Billing runs with progress")
async def list_runs(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    state: Literal["running", "completed", "failed"] | None = None,
) -> dict[str, Any]:
    return await bq.list_runs(conn, pg, state=state)


@router.get("/billing-runs/{period}", summary="One billing run (progress and summary)")
async def get_run(*, _: Reader, conn: Conn, period: Period) -> dict[str, Any]:
    row = await bq.billing_run(conn, _period(period))
    if row is None:
        raise NotFoundError(f"no billing run for {period}")
    return row


@router.post("/billing-runs", status_code=202, summary="Start the billing run of a month")
async def start_run(
    *, request: Request, who: Runner, conn: Conn, st: State, body: RunIn
) -> dict[str, Any]:
    """A dry run answers with the summary at once. A real run starts in the background and
    answers 202; follow it with GET /billing-runs/{period}. Running a month again bills only
    the accounts not billed yet.

    ``warnings`` lists what to know: a month that has not ended yet, a later month already
    billed, the utility's requisites that the documents would print blank. A real run of a
    month that has not ended, or of one before a month already billed (October after
    November), is refused with 409 unless ``force`` is true."""
    return await start_billing_run(
        conn, request, who, st, _period(body.period), dry_run=body.dry_run, force=body.force
    )


# --------------------------------------------------------------------------- customer (self)


@router.get("/me/account", tags=["cabinet"], summary="The customer's own account and balance")
async def my_account(*, who: Customer, conn: Conn) -> dict[str, Any]:
    assert who.account_no is not None
    return await account_with_balance(conn, who.account_no)


@router.get("/me/invoices", tags=["cabinet"], summary="The customer's own invoices")
async def my_invoices(*, who: Customer, conn: ReadConn, pg: Paging) -> dict[str, Any]:
    return await bq.list_invoices(conn, pg, account=who.account_no, order="i.period DESC")


@router.get(
    "/me/payments",
    tags=["cabinet"],
    summary="The customer's own payments, each with its status (paid, cancelled, refunded)",
)
async def my_payments(*, who: Customer, conn: ReadConn, pg: Paging) -> dict[str, Any]:
    assert who.account_no is not None
    return await payment_history.account_payments(conn, pg, who.account_no)


@router.get("/me/consumption", tags=["cabinet"], summary="The customer's billed m³ by month")
async def my_consumption(
    *, who: Customer, conn: ReadConn, months: Annotated[int, Query(ge=1, le=120)] = 12
) -> dict[str, Any]:
    assert who.account_no is not None
    acc = await account_or_404(conn, who.account_no)
    rows = await bq.monthly_consumption(conn, acc["id"], months)
    return {"account": who.account_no, "items": rows}


@router.get(
    "/me/invoices/{invoice_id}.pdf",
    tags=["cabinet"],
    summary="PDF of one of the customer's own invoices",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def my_invoice_pdf(
    *, who: Customer, conn: Conn, st: State, invoice_id: DbId, lang: Literal["uz", "ru"] = "uz"
) -> Response:
    return await invoice_pdf_response(conn, st, invoice_id, account_no=who.account_no, lang=lang)
