"""Payments as the customer and the office read them, each with what became of it: paid,
cancelled (a desk void, a bank allocation undone: a reversal in the ledger) or refunded (a
Payme or Click payment the provider cancelled after it was paid; the money went back to the
card). The ledger keeps the payment and its reversal as two entries (it is never edited);
these reads put them together so that nobody takes a cancelled payment for a paid one.

Async reads on the API's pool (:mod:`suvnet.listing`), like :mod:`billing.queries`. The SQL
is made of the constants below; every value travels as a parameter.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection

from suvnet.listing import Page, Where, fetch_all, fetch_page

AConn = AsyncConnection[Any]

PROVIDERS = ("payme", "click")
"""Channels whose cancelled payment is a refund to the customer's card."""

SELECT = """SELECT l.id, a.number AS account, -l.amount_tiyin AS amount_tiyin, l.value_date,
       l.posted_at, l.source, l.external_ref, l.created_by,
       CASE WHEN r.id IS NULL THEN 'paid'
            WHEN l.source IN ('payme', 'click') THEN 'refunded'
            ELSE 'cancelled' END AS status,
       r.posted_at AS cancelled_at
FROM ledger l JOIN accounts a ON a.id = l.account_id
LEFT JOIN ledger r ON r.reverses_id = l.id AND r.kind = 'reversal'"""


async def payments(
    conn: AConn,
    pg: Page,
    *,
    source: str | None = None,
    account: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    """Payments (ledger entries of kind payment, as positive amounts) with their ``status``
    (paid, cancelled, refunded) and ``cancelled_at``, newest first."""
    w = Where().add("l.kind = 'payment'").eq("l.source", source).eq("a.number", account)
    if date_from is not None:
        w.add("l.value_date >= %s", date_from)
    if date_to is not None:
        w.add("l.value_date <= %s", date_to)
    return await fetch_page(conn, SELECT, w, "l.posted_at DESC, l.id DESC", pg)


async def account_payments(conn: AConn, pg: Page, account: str) -> dict[str, Any]:
    """One account's payments as the customer sees them, newest value date first, with
    ``status`` and ``cancelled_at``."""
    w = Where().add("l.kind = 'payment'").eq("a.number", account)
    return await fetch_page(conn, SELECT, w, "l.value_date DESC, l.id DESC", pg)


async def recent(conn: AConn, account_id: int, limit: int = 24) -> list[dict[str, Any]]:
    """The newest payments of an account with their status (the cabinet)."""
    return await fetch_all(
        conn,
        SELECT + " WHERE l.account_id = %s AND l.kind = 'payment' "
        "ORDER BY l.value_date DESC, l.id DESC LIMIT %s",
        (account_id, limit),
    )
