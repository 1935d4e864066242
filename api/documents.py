"""Invoice PDFs: made by the billing package, served by the API."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import Response
from psycopg import AsyncConnection

from api.errors import NotFoundError, UnavailableError
from api.sql import fetch_one


def _render_with_billing(db_url: str, invoice_id: int) -> bytes:
    import importlib

    try:
        documents = importlib.import_module("billing.documents")
    except ImportError as exc:
        raise UnavailableError("invoice PDFs are not available in this installation") from exc
    render: Any = getattr(documents, "invoice_pdf", None)
    if render is None:
        raise UnavailableError("invoice PDFs are not available in this installation")
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        pdf: bytes = render(conn, invoice_id)
    return pdf


async def invoice_pdf_response(
    conn: AsyncConnection[Any], invoice_id: int, *, account_no: str | None, db_url: str = ""
) -> Response:
    """The PDF of one invoice; with ``account_no`` only when the invoice is that account's."""
    row = await fetch_one(
        conn,
        "SELECT i.number, a.number AS account FROM invoices i "
        "JOIN accounts a ON a.id = i.account_id WHERE i.id = %s",
        (invoice_id,),
    )
    if row is None or (account_no is not None and row["account"] != account_no):
        raise NotFoundError(f"no invoice with id {invoice_id}")
    if not db_url:
        db_url = conn.info.dsn
    pdf = await asyncio.to_thread(_render_with_billing, db_url, invoice_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{row["number"]}.pdf"'},
    )
