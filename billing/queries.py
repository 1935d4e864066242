"""What the office API and its pages read in billing: accounts (search, the account card),
balances, the ledger, meters and their register readings, invoices, payments and billing
runs.

Async reads on an :class:`psycopg.AsyncConnection` (the API's pool; one,
:func:`review_total`, on a synchronous connection). They never write and never commit; a
missing row is ``None``. The rules (how a balance is made, how an invoice is priced) are in
the rest of the billing package; the balance here is the ``account_balances`` view's. The
SQL text is made of the constants below; every value travels as a parameter.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection, Connection

from suvnet.listing import Page, Where, fetch_all, fetch_one, fetch_page, like_pattern

AConn = AsyncConnection[Any]

# ---------------------------------------------------------------------------------- accounts

ACCOUNT_SELECT = """
SELECT a.id, a.number, a.kind, a.category, a.name, a.phone, a.email, a.status, a.residents,
       a.metered, a.opened_on, ad.region_uz AS region, ad.district_uz AS district,
       ad.mahalla_uz AS mahalla, ad.street_uz AS street, ad.house_number AS house,
       ad.apartment_number AS apartment, ad.street_id, ad.mahalla_id, ad.district_id
FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id"""

MIN_PHONE_DIGITS = 5
"""A search text with at least this many digits also matches phone numbers."""


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


async def list_accounts(
    conn: AConn,
    pg: Page,
    *,
    q: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    district_id: int | None = None,
    mahalla_id: int | None = None,
    street_id: int | None = None,
) -> dict[str, Any]:
    """Accounts by number: ``q`` is part of the number, name, street or mahalla (or, with 5
    digits or more, of the phone number)."""
    w = (
        Where()
        .eq("a.status", status)
        .eq("a.kind", kind)
        .eq("ad.district_id", district_id)
        .eq("ad.mahalla_id", mahalla_id)
        .eq("ad.street_id", street_id)
    )
    if q:
        digits = _digits(q)
        phone = len(digits) >= MIN_PHONE_DIGITS
        w.like(
            ["a.number", "a.name", "ad.street_uz", "ad.mahalla_uz", "ad.street_ru"],
            q,
            extra="a.phone LIKE %s" if phone else "",
            extra_args=(f"%{digits}%",) if phone else (),
        )
    return await fetch_page(conn, ACCOUNT_SELECT, w, "a.number", pg)


_SEARCH_SQL = (
    ACCOUNT_SELECT
    + """ WHERE a.number = %(q)s OR a.name ILIKE %(pat)s
          OR (ad.street_uz || ' ' || ad.house_number) ILIKE %(pat)s
          OR ad.mahalla_uz ILIKE %(pat)s OR ad.street_ru ILIKE %(pat)s
          OR (length(%(digits)s) >= 5 AND a.phone LIKE '%%' || %(digits)s || '%%')
        ORDER BY a.number LIMIT %(limit)s"""
)


async def search_accounts(conn: AConn, q: str, limit: int) -> list[dict[str, Any]]:
    """Accounts by number, name, address (street and house, mahalla) or phone: the back
    office's search box."""
    return await fetch_all(
        conn, _SEARCH_SQL, {"q": q, "pat": like_pattern(q), "digits": _digits(q), "limit": limit}
    )


async def account_by_number(conn: AConn, number: str) -> dict[str, Any] | None:
    """One account with its address (:data:`ACCOUNT_SELECT`)."""
    return await fetch_one(conn, ACCOUNT_SELECT + " WHERE a.number = %s", (number,))


BALANCE_SQL = "SELECT balance_tiyin FROM account_balances WHERE number = %s"
"""One account's balance by its number (one row, or none)."""


async def balance_tiyin(conn: AConn, number: str) -> int | None:
    """The account's balance from the ``account_balances`` view (positive: the customer
    owes; negative: prepaid)."""
    row = await fetch_one(conn, BALANCE_SQL, (number,))
    return None if row is None else int(row["balance_tiyin"])


# ------------------------------------------------------------------------------------ ledger


async def ledger_page(
    conn: AConn,
    pg: Page,
    account_id: int,
    *,
    kind: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    """Ledger entries of an account, newest value date first (``date_to`` inclusive)."""
    w = Where().add("account_id = %s", account_id).eq("kind", kind)
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


async def recent_ledger(conn: AConn, account_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ledger entries of an account (the account card)."""
    return await fetch_all(
        conn,
        "SELECT id, kind, amount_tiyin, value_date, period, source, external_ref, memo, "
        "reverses_id FROM ledger WHERE account_id = %s ORDER BY value_date DESC, id DESC "
        "LIMIT %s",
        (account_id, limit),
    )


# ------------------------------------------------------------------------------------ meters


async def account_meters(conn: AConn, pg: Page, account_id: int) -> dict[str, Any]:
    """Meters of an account, current and past, newest installation first."""
    return await fetch_page(
        conn,
        "SELECT m.id, m.serial_no, m.model, m.digits, m.point_id, c.installed_at, c.removed_at, "
        "c.initial_reading, c.final_reading FROM service_connections c "
        "JOIN meters m ON m.id = c.meter_id",
        Where().add("c.account_id = %s", account_id),
        "c.installed_at DESC",
        pg,
    )


async def meters_with_last_reading(conn: AConn, account_id: int) -> list[dict[str, Any]]:
    """Meters of an account with each one's last register reading (the account card)."""
    return await fetch_all(
        conn,
        "SELECT m.id, m.serial_no, m.model, c.installed_at, c.removed_at, c.initial_reading, "
        "(SELECT r.value_m3 FROM meter_readings r WHERE r.meter_id = m.id "
        " ORDER BY r.ts DESC LIMIT 1) AS last_m3, "
        "(SELECT r.ts FROM meter_readings r WHERE r.meter_id = m.id "
        " ORDER BY r.ts DESC LIMIT 1) AS last_ts "
        "FROM service_connections c JOIN meters m ON m.id = c.meter_id "
        "WHERE c.account_id = %s ORDER BY c.installed_at DESC",
        (account_id,),
    )


async def meter_readings(
    conn: AConn,
    pg: Page,
    meter_id: int,
    *,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Register readings of a meter, newest first."""
    w = Where().add("meter_id = %s", meter_id).eq("source", source).since_until("ts", since, until)
    return await fetch_page(
        conn, "SELECT ts, value_m3, source, entered_by FROM meter_readings", w, "ts DESC", pg
    )


async def account_readings(conn: AConn, account_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest register readings of an account's meters while they served it."""
    return await fetch_all(
        conn,
        "SELECT m.serial_no, r.ts, r.value_m3, r.source FROM meter_readings r "
        "JOIN service_connections c ON c.meter_id = r.meter_id AND c.account_id = %s "
        "AND r.ts >= c.installed_at AND (c.removed_at IS NULL OR r.ts <= c.removed_at) "
        "JOIN meters m ON m.id = r.meter_id ORDER BY r.ts DESC LIMIT %s",
        (account_id, limit),
    )


# ---------------------------------------------------------------------------------- invoices

INVOICE_SELECT = """
SELECT i.id, i.number, a.number AS account, i.period, i.kind, i.issued_at, i.amount_tiyin,
       i.vat_tiyin, i.volume_m3, i.estimated, i.run_id
FROM invoices i JOIN accounts a ON a.id = i.account_id"""
INVOICE_ORDERS = frozenset({"i.period DESC, i.number", "i.period DESC"})
"""The orders a list of invoices comes in: the office's, the customer's."""


async def list_invoices(
    conn: AConn,
    pg: Page,
    *,
    account: str | None = None,
    period: date | None = None,
    kind: str | None = None,
    estimated: bool | None = None,
    order: str = "i.period DESC, i.number",
) -> dict[str, Any]:
    """Invoices (of one account, period, kind), newest period first."""
    if order not in INVOICE_ORDERS:
        raise ValueError(f"unknown invoice order {order!r}")
    w = (
        Where()
        .eq("a.number", account)
        .eq("i.period", period)
        .eq("i.kind", kind)
        .eq("i.estimated", estimated)
    )
    return await fetch_page(conn, INVOICE_SELECT, w, order, pg)


async def invoices(conn: AConn, account_id: int, limit: int = 24) -> list[dict[str, Any]]:
    """The newest invoices of an account (the cabinet and the account card)."""
    return await fetch_all(
        conn,
        "SELECT id, number, period, kind, issued_at, amount_tiyin, vat_tiyin, volume_m3, "
        "estimated FROM invoices WHERE account_id = %s ORDER BY period DESC, id DESC LIMIT %s",
        (account_id, limit),
    )


async def invoice_owner(conn: AConn, invoice_id: int) -> dict[str, Any] | None:
    """An invoice's number and period with its account's id, number and kind."""
    return await fetch_one(
        conn,
        "SELECT i.number, i.period, a.id AS account_id, a.number AS account, a.kind "
        "FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE i.id = %s",
        (invoice_id,),
    )


async def monthly_consumption(
    conn: AConn, account_id: int, months: int = 12
) -> list[dict[str, Any]]:
    """Billed volume per month (regular and correction invoices), oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT period, sum(volume_m3) AS volume_m3, bool_or(estimated) AS estimated "
        "FROM invoices WHERE account_id = %s GROUP BY period ORDER BY period DESC LIMIT %s",
        (account_id, months),
    )
    return list(reversed(rows))


# ---------------------------------------------------------------------------------- payments


async def list_payments(
    conn: AConn,
    pg: Page,
    *,
    source: str | None = None,
    account: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    """Payments (ledger entries of kind payment, as positive amounts), newest first."""
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


async def account_payments(conn: AConn, pg: Page, account: str) -> dict[str, Any]:
    """One account's payments as the customer sees them, newest value date first."""
    w = Where().add("l.kind = 'payment'").eq("a.number", account)
    return await fetch_page(
        conn,
        "SELECT l.id, -l.amount_tiyin AS amount_tiyin, l.value_date, l.source "
        "FROM ledger l JOIN accounts a ON a.id = l.account_id",
        w,
        "l.value_date DESC, l.id DESC",
        pg,
    )


async def payments(conn: AConn, account_id: int, limit: int = 24) -> list[dict[str, Any]]:
    """The newest payments of an account (the cabinet)."""
    return await fetch_all(
        conn,
        "SELECT id, value_date, posted_at, -amount_tiyin AS amount_tiyin, source, external_ref "
        "FROM ledger WHERE account_id = %s AND kind = 'payment' "
        "ORDER BY value_date DESC, id DESC LIMIT %s",
        (account_id, limit),
    )


# ------------------------------------------------------------------------------ billing runs

RUN_SELECT = """SELECT id, to_char(period, 'YYYY-MM') AS period, state, started_at, finished_at,
       accounts_total, accounts_done, charged_tiyin, attempts, last_error FROM billing_runs"""


async def list_runs(conn: AConn, pg: Page, *, state: str | None = None) -> dict[str, Any]:
    """Billing runs with their progress, newest month first."""
    return await fetch_page(conn, RUN_SELECT, Where().eq("state", state), "period DESC", pg)


async def billing_run(conn: AConn, period: date) -> dict[str, Any] | None:
    """The billing run of a month (its first day)."""
    return await fetch_one(conn, RUN_SELECT + " WHERE period = %s", (period,))


async def recent_runs(conn: AConn, limit: int = 36) -> list[dict[str, Any]]:
    """The newest billing runs (the back office's billing page)."""
    return await fetch_all(
        conn,
        "SELECT to_char(period, 'YYYY-MM') AS period, state, started_at, finished_at, "
        "accounts_total, accounts_done, charged_tiyin, attempts, last_error "
        "FROM billing_runs ORDER BY period DESC LIMIT %s",
        (limit,),
    )


# ----------------------------------------------------------------------------- bank statements


def review_total(conn: Connection[Any]) -> int:
    """How many bank credits wait for a person (review, partly allocated, suspense). On a
    synchronous connection, so that it is read in one transaction with
    :func:`billing.payments.importer.review_queue`."""
    row = conn.execute(
        "SELECT count(*) FROM bank_statement_lines WHERE credit "
        "AND status IN ('review', 'partial', 'suspense')"
    ).fetchone()
    return int(row[0]) if row else 0
