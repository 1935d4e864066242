"""Read-only views of billing data for the cabinet and the back office.

These read billing's tables and views (``accounts``, ``account_balances``,
``account_addresses``, ``invoices``, ``ledger``); the rules (how a balance is made, how an
invoice is priced) stay in the billing package.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from api.errors import NotFoundError
from suvnet.listing import fetch_all, fetch_one

ACCOUNT_SELECT = """
SELECT a.id, a.number, a.kind, a.category, a.name, a.phone, a.email, a.status, a.residents,
       a.metered, a.opened_on, ad.region_uz AS region, ad.district_uz AS district,
       ad.mahalla_uz AS mahalla, ad.street_uz AS street, ad.house_number AS house,
       ad.apartment_number AS apartment, ad.street_id, ad.mahalla_id, ad.district_id
FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id"""


async def account_by_number(conn: AsyncConnection[Any], number: str) -> dict[str, Any]:
    row = await fetch_one(conn, ACCOUNT_SELECT + " WHERE a.number = %s", (number,))
    if row is None:
        raise NotFoundError(f"no account with number {number!r}")
    return row


async def balance_tiyin(conn: AsyncConnection[Any], number: str) -> int:
    """The account's balance from billing's ``account_balances`` view (positive = owes)."""
    row = await fetch_one(
        conn, "SELECT balance_tiyin FROM account_balances WHERE number = %s", (number,)
    )
    if row is None:
        raise NotFoundError(f"no account with number {number!r}")
    return int(row["balance_tiyin"])


async def invoices(conn: AsyncConnection[Any], account_id: int, limit: int = 24) -> list[Any]:
    return await fetch_all(
        conn,
        "SELECT id, number, period, kind, issued_at, amount_tiyin, vat_tiyin, volume_m3, "
        "estimated FROM invoices WHERE account_id = %s ORDER BY period DESC, id DESC LIMIT %s",
        (account_id, limit),
    )


async def payments(conn: AsyncConnection[Any], account_id: int, limit: int = 24) -> list[Any]:
    return await fetch_all(
        conn,
        "SELECT id, value_date, posted_at, -amount_tiyin AS amount_tiyin, source, external_ref "
        "FROM ledger WHERE account_id = %s AND kind = 'payment' "
        "ORDER BY value_date DESC, id DESC LIMIT %s",
        (account_id, limit),
    )


async def monthly_consumption(
    conn: AsyncConnection[Any], account_id: int, months: int = 12
) -> list[dict[str, Any]]:
    """Billed volume per month (regular and correction invoices), oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT period, sum(volume_m3) AS volume_m3, bool_or(estimated) AS estimated "
        "FROM invoices WHERE account_id = %s GROUP BY period ORDER BY period DESC LIMIT %s",
        (account_id, months),
    )
    return list(reversed(rows))
