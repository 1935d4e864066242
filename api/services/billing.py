"""Billing at the office: a customer's billing account as the API and the pages show it (the
account and its balance, 404 when there is no such account; its invoices as PDF) and the
start of a billing run. The reads are :mod:`billing.queries`, the PDFs
:mod:`billing.documents`, the run :func:`billing.run.run_billing`. Used by
:mod:`api.routes.billing`, the cabinet (:mod:`api.web.cabinet`) and the back office
(:mod:`api.web.staff`, :mod:`api.web.staff_billing`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from psycopg import AsyncConnection

from api.audit import audit_sync, write_audit
from api.deps import AppState
from api.errors import ConflictError, NotFoundError, UnavailableError
from api.security import Principal
from api.syncdb import run_sync
from billing import queries as bq
from billing.accounts import months_billed_since, set_status
from billing.config import get_billing_config
from billing.errors import BillingError
from billing.ledger import account_id_for_number
from billing.run import run_billing

# billing.documents (ReportLab) is imported on the first invoice PDF, not at start-up: every
# API worker starts faster and smaller without it (start-up time).

log = logging.getLogger(__name__)


async def account_or_404(conn: AsyncConnection[Any], number: str) -> dict[str, Any]:
    """The account (:data:`billing.queries.ACCOUNT_SELECT`), or 404."""
    row = await bq.account_by_number(conn, number)
    if row is None:
        raise NotFoundError(f"no account with number {number!r}")
    return row


async def balance_or_404(conn: AsyncConnection[Any], number: str) -> int:
    """The account's balance in tiyin (positive: owes), or 404."""
    bal = await bq.balance_tiyin(conn, number)
    if bal is None:
        raise NotFoundError(f"no account with number {number!r}")
    return bal


async def account_with_balance(conn: AsyncConnection[Any], number: str) -> dict[str, Any]:
    """The account and its ``balance_tiyin``, or 404."""
    acc = await account_or_404(conn, number)
    acc["balance_tiyin"] = await balance_or_404(conn, number)
    return acc


def _render(conn: Any, account_id: int, period: Any, kind: str, lang: str) -> bytes:
    from billing import documents

    cfg = get_billing_config()
    language: Any = "ru" if lang == "ru" else "uz"
    try:
        slip = documents.slip_data(conn, account_id, period, cfg)
        if kind == "household":
            return documents.render_slips([slip], cfg, language)
        return documents.render_invoice(slip, cfg, language)
    except BillingError as exc:
        raise UnavailableError(f"the invoice PDF could not be made: {exc}") from exc


async def invoice_pdf_response(
    conn: AsyncConnection[Any],
    st: AppState,
    invoice_id: int,
    *,
    account_no: str | None,
    lang: str = "uz",
) -> Response:
    """The PDF of one invoice; with ``account_no`` only when the invoice is that account's.
    Households get their payment slip, legal entities and budget bodies the hisob-faktura."""
    row = await bq.invoice_owner(conn, invoice_id)
    if row is None or (account_no is not None and row["account"] != account_no):
        raise NotFoundError(f"no invoice with id {invoice_id}")
    pdf = await run_sync(st, _render, row["account_id"], row["period"], row["kind"], lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{row["number"]}.pdf"'},
    )


# ------------------------------------------------------------------------------ billing runs


def _run(conn: Any, period: date, now: datetime, dry_run: bool) -> dict[str, Any]:
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


async def start_run(
    conn: AsyncConnection[Any],
    request: Request,
    who: Principal,
    st: AppState,
    period: date,
    *,
    dry_run: bool,
) -> dict[str, Any]:
    """A dry run answers with its summary at once (ConflictError when billing refuses). A
    real run is audited and committed, then runs in the background of this worker:
    ``{"period": "YYYY-MM", "state": "started"}``."""
    if dry_run:
        try:
            return await run_sync(st, _run, period, st.clock(), True)
        except BillingError as exc:
            raise ConflictError(str(exc)) from exc
    month = f"{period:%Y-%m}"
    await write_audit(
        conn,
        request,
        who,
        action="start",
        entity="billing_run",
        entity_id=month,
        after={"period": month},
    )
    await conn.commit()
    _start_background(st, period, who)
    return {"period": month, "state": "started"}


# ------------------------------------------------------------------------------ account status


async def set_account_status(
    st: AppState,
    who: Principal,
    ip: str,
    number: str,
    status: str,
    *,
    when: datetime,
    reason: str,
) -> list[str] | None:
    """Suspend, close or reopen an account from ``when`` on, with its audit row. None when
    the account already has that status (nothing changes); else the months already billed
    from then on (``YYYY-MM``: to correct). LedgerError, AccountNumberError for an unknown
    or mistyped number, AccountDataError for a refused change."""
    now = st.clock()
    tz = get_billing_config().timezone

    def work(conn: Any) -> list[str] | None:
        acc = account_id_for_number(conn, number)
        if not set_status(conn, acc, status, now=when, reason=reason):
            return None
        audit_sync(
            conn,
            who=who,
            ip=ip,
            now=now,
            action="status",
            entity="account",
            entity_id=number,
            after={"status": status, "since": when.isoformat(), "reason": reason},
        )
        return months_billed_since(conn, acc, when, tz)

    return await run_sync(st, work)
