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
from api.branch_text import requisites_refusal
from api.deps import AppState
from api.errors import ConflictError, NotFoundError, UnavailableError
from api.security import Principal
from api.syncdb import run_sync
from billing import queries as bq
from billing.accounts import months_billed_since, set_status
from billing.branches import RequisitesMissingError
from billing.config import get_billing_config, requisites_problems
from billing.errors import BillingError
from billing.ledger import account_id_for_number
from billing.run import PeriodCheck, check_period, refusal, run_billing

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
    except RequisitesMissingError:
        raise  # said in the asker's language by invoice_pdf_response
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
    try:
        pdf = await run_sync(st, _render, row["account_id"], row["period"], row["kind"], lang)
    except RequisitesMissingError as exc:  # the account's branch has no requisites yet
        raise requisites_refusal(exc, lang) from exc
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{row["number"]}.pdf"'},
    )


# ------------------------------------------------------------------------------ billing runs


def _run(conn: Any, period: date, now: datetime, dry_run: bool, force: bool) -> dict[str, Any]:
    summary = run_billing(conn, period, get_billing_config(), now=now, dry_run=dry_run, force=force)
    return asdict(summary)


def _check(conn: Any, period: date, now: datetime) -> PeriodCheck:
    check = check_period(conn, period, get_billing_config().timezone, now=now)
    conn.rollback()
    return check


async def period_check(st: AppState, period: date) -> PeriodCheck:
    """Whether ``period`` is ready to bill now (:class:`billing.run.PeriodCheck`): not yet
    ended, or a later month billed already."""
    return await run_sync(st, _check, period, st.clock())


def requisites_warnings() -> list[tuple[str, str]]:
    """The utility's requisites the slips and invoices would print blank, and a slip without
    a QR code (:func:`billing.config.requisites_problems`): ``(code, English text)``."""
    return requisites_problems(get_billing_config())


def _start_background(st: AppState, period: date, who: Principal, force: bool) -> None:
    name = f"billing-run-{period:%Y-%m}"

    async def job() -> None:
        try:
            summary = await run_sync(st, _run, period, st.clock(), False, force)
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


class RunRefusedConflictError(ConflictError):
    """A billing run was not started because of its month; ``check`` says why (the page
    translates ``check.codes``)."""

    def __init__(self, message: str, check: PeriodCheck) -> None:
        super().__init__(message)
        self.check = check


async def start_run(
    conn: AsyncConnection[Any],
    request: Request,
    who: Principal,
    st: AppState,
    period: date,
    *,
    dry_run: bool,
    force: bool = False,
) -> dict[str, Any]:
    """A dry run answers with its summary at once (ConflictError when billing refuses). A
    real run is audited and committed, then runs in the background of this worker:
    ``{"period": "YYYY-MM", "state": "started"}``.

    Both carry ``warnings`` (an unfinished month, a later month billed, the requisites the
    documents would print blank). A real run of a month that has not ended, or of one before
    a month already billed, is refused (:class:`RunRefusedConflictError`, 409) unless ``force``."""
    check = await period_check(st, period)
    why = refusal(check, dry_run=dry_run, force=force, unfinished=True)
    if why is not None:
        msg = f"billing run {period:%Y-%m} refused: {why} (send force: true)"
        raise RunRefusedConflictError(msg, check)
    warnings = check.warnings + [text for _, text in requisites_warnings()]
    if dry_run:
        try:
            out = await run_sync(st, _run, period, st.clock(), True, force)
        except BillingError as exc:
            raise ConflictError(str(exc)) from exc
        out["warnings"] = warnings
        return out
    month = f"{period:%Y-%m}"
    await write_audit(
        conn,
        request,
        who,
        action="start",
        entity="billing_run",
        entity_id=month,
        after={"period": month, "force": force, "warnings": check.codes},
    )
    await conn.commit()
    _start_background(st, period, who, force)
    return {"period": month, "state": "started", "warnings": warnings}


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
