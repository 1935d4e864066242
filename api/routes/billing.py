"""Billing endpoints: accounts, meters, ledger, balances and roll-ups, invoices (PDF),
payments, billing runs. The rules live in the billing package; this module calls it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

import billing  # noqa: F401 - the router is only mounted when billing is installed
from api import billing_data
from api.audit import write_audit
from api.deps import AppState, Conn, Paging, State, client_ip, require
from api.documents import invoice_pdf_response
from api.errors import ConflictError, InvalidError, NotFoundError
from api.payments.common import CASHIER_DESK
from api.responses import json_response
from api.security import CUSTOMER_SELF, READ_BILLING, RUN_BILLING, Principal
from api.syncdb import run_sync
from billing.payments.cashier import Receipt
from suvnet.listing import Where, fetch_one, fetch_page, paged

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
    w = (
        Where()
        .eq("a.status", status)
        .eq("a.kind", kind)
        .eq("ad.district_id", district_id)
        .eq("ad.mahalla_id", mahalla_id)
        .eq("ad.street_id", street_id)
    )
    if q:
        digits = "".join(c for c in q if c.isdigit())
        w.like(["a.number", "a.name", "ad.street_uz", "ad.mahalla_uz", "ad.street_ru"], q)
        if len(digits) >= 5:
            w.parts[-1] = w.parts[-1][:-1] + " OR a.phone LIKE %s)"
            w.args.append(f"%{digits}%")
    return await fetch_page(conn, billing_data.ACCOUNT_SELECT, w, "a.number", pg)


@router.get("/accounts/{number}", summary="One account with its balance")
async def get_account(*, _: Reader, conn: Conn, number: Number) -> dict[str, Any]:
    acc = await billing_data.account_by_number(conn, number)
    acc["balance_tiyin"] = await billing_data.balance_tiyin(conn, number)
    return acc


@router.get("/accounts/{number}/balance", summary="Balance of an account (tiyin)")
async def account_balance(*, _: Reader, conn: Conn, number: Number) -> Response:
    """Positive: the customer owes; negative: prepaid."""
    bal = await billing_data.balance_tiyin(conn, number)
    return json_response({"account": number, "balance_tiyin": bal})


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
    acc = await billing_data.account_by_number(conn, number)
    w = Where().add("account_id = %s", acc["id"]).eq("kind", kind)
    if date_from is not None:
        w.add("value_date >= %s", date_from)
    if date_to is not None:
        w.add("value_date <= %s", date_to)
    return await fetch_page(
        conn,
        "SELECT id, kind, amount_tiyin, vat_tiyin, value_date, period, posted_at, source, "
        "external_ref, invoice_id, reverses_id, memo, created_by FROM ledger",
        w,
        "value_date DESC, id DESC",
        pg,
    )


@router.get("/accounts/{number}/meters", summary="Meters of an account (current and past)")
async def account_meters(*, _: Reader, conn: Conn, pg: Paging, number: Number) -> dict[str, Any]:
    acc = await billing_data.account_by_number(conn, number)
    return await fetch_page(
        conn,
        "SELECT m.id, m.serial_no, m.model, m.digits, m.point_id, c.installed_at, c.removed_at, "
        "c.initial_reading, c.final_reading FROM service_connections c "
        "JOIN meters m ON m.id = c.meter_id",
        Where().add("c.account_id = %s", acc["id"]),
        "c.installed_at DESC",
        pg,
    )


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
    w = Where().add("meter_id = %s", meter_id).eq("source", source)
    if since is not None:
        w.add("ts >= %s", since)
    if until is not None:
        w.add("ts < %s", until)
    return await fetch_page(
        conn, "SELECT ts, value_m3, source, entered_by FROM meter_readings", w, "ts DESC", pg
    )


# ---------------------------------------------------------------------------------- invoices

INVOICE_SELECT = """
SELECT i.id, i.number, a.number AS account, i.period, i.kind, i.issued_at, i.amount_tiyin,
       i.vat_tiyin, i.volume_m3, i.estimated, i.run_id
FROM invoices i JOIN accounts a ON a.id = i.account_id"""


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
    w = (
        Where()
        .eq("a.number", account)
        .eq("i.period", None if period is None else _period(period))
        .eq("i.kind", kind)
        .eq("i.estimated", estimated)
    )
    return await fetch_page(conn, INVOICE_SELECT, w, "i.period DESC, i.number", pg)


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


@router.get("/payments", summary="Payments (ledger entries of kind payment)")
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
    w = Where().add("l.kind = 'payment'").eq("l.source", source).eq("a.number", account)
    if date_from is not None:
        w.add("l.value_date >= %s", date_from)
    if date_to is not None:
        w.add("l.value_date <= %s", date_to)
    return await fetch_page(
        conn,
        "SELECT l.id, a.number AS account, -l.amount_tiyin AS amount_tiyin, l.value_date, "
        "l.posted_at, l.source, l.external_ref, l.created_by FROM ledger l "
        "JOIN accounts a ON a.id = l.account_id",
        w,
        "l.posted_at DESC, l.id DESC",
        pg,
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
    from api.payments.common import take_payment_audited
    from billing.payments.errors import CashierError, RequestKeyReusedError

    await billing_data.account_by_number(conn, number)
    now = st.clock()

    def work(sync_conn: Any) -> Receipt:
        return take_payment_audited(
            sync_conn,
            who=who,
            ip=client_ip(request),
            now=now,
            account_number=number,
            amount_tiyin=body.amount_tiyin,
            method=body.method,
            request_key=f"api:{body.receipt}",
        )

    try:
        r = await run_sync(st, work)
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
        "balance_tiyin": await billing_data.balance_tiyin(conn, number),
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
    from zoneinfo import ZoneInfo

    from billing.accounts import months_billed_since, set_status
    from billing.config import get_billing_config
    from billing.errors import AccountDataError, AccountNumberError, LedgerError
    from billing.ledger import account_id_for_number

    tz = get_billing_config().timezone
    now = st.clock()
    when = body.at or now
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    if when > now:
        raise InvalidError(f"at {when.isoformat()} is in the future")

    def work(conn: Any) -> tuple[bool, list[str]]:
        from api.payments.common import audit_sync

        acc = account_id_for_number(conn, number)
        if not set_status(conn, acc, body.status, now=when, reason=body.reason):
            return False, []
        audit_sync(
            conn,
            who=who,
            ip=client_ip(request),
            now=now,
            action="status",
            entity="account",
            entity_id=number,
            after={"status": body.status, "since": when.isoformat(), "reason": body.reason},
        )
        return True, months_billed_since(conn, acc, when, tz)

    try:
        changed, months = await run_sync(st, work)
    except (LedgerError, AccountNumberError) as exc:  # no such account, a mistyped number
        raise NotFoundError(str(exc)) from exc
    except AccountDataError as exc:
        raise ConflictError(str(exc)) from exc
    if not changed:
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
    from billing.balances import BUCKETS, balances_by

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

RUN_SELECT = """SELECT id, to_char(period, 'YYYY-MM') AS period, state, started_at, finished_at,
       accounts_total, accounts_done, charged_tiyin, attempts, last_error FROM billing_runs"""


class RunIn(BaseModel):
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    dry_run: bool = Field(False, description="compute and summarise, post nothing")


def _run(conn: Any, period: date, now: datetime, dry_run: bool) -> dict[str, Any]:
    from billing.config import get_billing_config
    from billing.run import run_billing

    summary = run_billing(conn, period, get_billing_config(), now=now, dry_run=dry_run)
    return asdict(summary)


def _start_background(st: AppState, period: date, who: Principal) -> None:
    name = f"billing-run-{period:%Y-%m}"

    async def job() -> None:
        try:
            summary = await run_sync(st, _run, period, st.clock(), False)
            log.info(
                "billing run finished",
                extra={
                    "period": f"{period:%Y-%m}",
                    "by": who.username,
                    "invoices": summary["invoices_created"],
                },
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # the state and the error are in billing_runs (billing writes them)
            log.exception("billing run %s failed", f"{period:%Y-%m}")

    task = asyncio.create_task(job(), name=name)
    st.tasks.add(task)
    task.add_done_callback(st.tasks.discard)


@router.get("/billing-runs", summary="Billing runs with progress")
async def list_runs(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    state: Literal["running", "completed", "failed"] | None = None,
) -> dict[str, Any]:
    return await fetch_page(conn, RUN_SELECT, Where().eq("state", state), "period DESC", pg)


@router.get("/billing-runs/{period}", summary="One billing run (progress and summary)")
async def get_run(*, _: Reader, conn: Conn, period: Period) -> dict[str, Any]:
    row = await fetch_one(conn, RUN_SELECT + " WHERE period = %s", (_period(period),))
    if row is None:
        raise NotFoundError(f"no billing run for {period}")
    return row


@router.post("/billing-runs", status_code=202, summary="Start the billing run of a month")
async def start_run(
    *, request: Request, who: Runner, conn: Conn, st: State, body: RunIn
) -> dict[str, Any]:
    """A dry run answers with the summary at once. A real run starts in the background and
    answers 202; follow it with GET /billing-runs/{period}. Running a month again bills only
    the accounts not billed yet."""
    period = _period(body.period)
    if body.dry_run:
        from billing.errors import BillingError

        try:
            return await run_sync(st, _run, period, st.clock(), True)
        except BillingError as exc:
            raise ConflictError(str(exc)) from exc
    await write_audit(
        conn,
        request,
        who,
        action="start",
        entity="billing_run",
        entity_id=body.period,
        after={"period": body.period},
    )
    await conn.commit()
    _start_background(st, period, who)
    return {"period": body.period, "state": "started"}


# --------------------------------------------------------------------------- customer (self)


@router.get("/me/account", tags=["cabinet"], summary="The customer's own account and balance")
async def my_account(*, who: Customer, conn: Conn) -> dict[str, Any]:
    assert who.account_no is not None
    acc = await billing_data.account_by_number(conn, who.account_no)
    acc["balance_tiyin"] = await billing_data.balance_tiyin(conn, who.account_no)
    return acc


@router.get("/me/invoices", tags=["cabinet"], summary="The customer's own invoices")
async def my_invoices(*, who: Customer, conn: Conn, pg: Paging) -> dict[str, Any]:
    w = Where().eq("a.number", who.account_no)
    return await fetch_page(conn, INVOICE_SELECT, w, "i.period DESC", pg)


@router.get("/me/payments", tags=["cabinet"], summary="The customer's own payments")
async def my_payments(*, who: Customer, conn: Conn, pg: Paging) -> dict[str, Any]:
    w = Where().add("l.kind = 'payment'").eq("a.number", who.account_no)
    return await fetch_page(
        conn,
        "SELECT l.id, -l.amount_tiyin AS amount_tiyin, l.value_date, l.source "
        "FROM ledger l JOIN accounts a ON a.id = l.account_id",
        w,
        "l.value_date DESC, l.id DESC",
        pg,
    )


@router.get("/me/consumption", tags=["cabinet"], summary="The customer's billed m³ by month")
async def my_consumption(
    *, who: Customer, conn: Conn, months: Annotated[int, Query(ge=1, le=120)] = 12
) -> dict[str, Any]:
    assert who.account_no is not None
    acc = await billing_data.account_by_number(conn, who.account_no)
    rows = await billing_data.monthly_consumption(conn, acc["id"], months)
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
