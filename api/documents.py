"""Invoice PDFs: made by billing.documents, served by the API."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from psycopg import AsyncConnection

from api.deps import AppState
from api.errors import NotFoundError, UnavailableError
from api.syncdb import run_sync
from suvnet.listing import fetch_one


def _render(conn: Any, account_id: int, period: Any, kind: str, lang: str) -> bytes:
    from billing import documents
    from billing.config import get_billing_config
    from billing.errors import BillingError

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
    row = await fetch_one(
        conn,
        "SELECT i.number, i.period, a.id AS account_id, a.number AS account, a.kind "
        "FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE i.id = %s",
        (invoice_id,),
    )
    if row is None or (account_no is not None and row["account"] != account_no):
        raise NotFoundError(f"no invoice with id {invoice_id}")
    pdf = await run_sync(st, _render, row["account_id"], row["period"], row["kind"], lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{row["number"]}.pdf"'},
    )
