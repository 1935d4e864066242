"""A customer's billing account as the API and the pages show it: the account and its
balance (404 when there is no such account) and its invoices as PDF. The reads are
:mod:`billing.queries`; the PDFs are made by :mod:`billing.documents`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from psycopg import AsyncConnection

from api.deps import AppState
from api.errors import NotFoundError, UnavailableError
from api.syncdb import run_sync
from billing import queries as bq
from billing.config import get_billing_config
from billing.errors import BillingError

# billing.documents (ReportLab) is imported on the first invoice PDF, not at start-up: every
# API worker starts faster and smaller without it (start-up time).


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
