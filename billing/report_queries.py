"""What the department reports read from billing's tables, on the API's async connection.

Each function returns plain rows (dicts); the API shapes them into report tables
(``api/reports``). Money figures come from :mod:`billing.figures` (the SQL function
``account_figures`` of migration 0202), aging from the pure FIFO core of
:mod:`billing.balances`: nothing here defines a figure of its own.

The SQL texts hold only fixed column names; the address filter is
:meth:`billing.figures.AddressScope.sql`, and every value travels as a parameter.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from billing import consumption as cons
from billing.balances import ENTRIES_SQL, age_entries, entries_by_account
from billing.figures import FIGURE_COLUMNS, AddressScope, check_period

IMPLAUSIBLE = (
    cons.ESTIMATED_MASK
    | cons.SPIKE
    | cons.NEGATIVE
    | cons.REVERSE
    | cons.ROLLOVER
    | cons.PROLONGED_ESTIMATE
)
"""Consumption flags that make customer service check a reading (estimated or implausible)."""

STOPPED = cons.LONG_ZERO
"""The consumption flag of a meter that stopped (no movement for too long)."""


async def _rows(conn: AsyncConnection[Any], sql: str, args: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


def _args(scope: AddressScope, **extra: Any) -> dict[str, Any]:
    return {**scope.params(), **extra}


async def turnover(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope
) -> list[dict[str, Any]]:
    """The figures of every account in ``scope`` over the period, with its address, ordered
    by district, mahalla, street and account number (the accounting report's detail rows)."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT ad.district_id, ad.district_uz AS district, ad.mahalla_id,
                   ad.mahalla_uz AS mahalla, ad.street_id, ad.street_uz AS street,
                   a.number, a.name, a.kind, {FIGURE_COLUMNS}
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            JOIN account_figures(%(from)s, %(to)s) f ON f.account_id = a.id
            WHERE {scope.sql("ad")}
            ORDER BY ad.district_uz, ad.district_id, ad.mahalla_uz, ad.mahalla_id,
                     ad.street_uz, ad.street_id, a.number""",  # noqa: S608 - fixed column list and AddressScope conditions; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def collections(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope
) -> list[dict[str, Any]]:
    """Charged and paid over the period per mahalla and customer category (the finance
    report), with the number of accounts."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT ad.mahalla_id, ad.mahalla_uz AS mahalla, a.category,
                   count(*) AS accounts,
                   sum(f.charged_tiyin)::bigint AS charged,
                   sum(f.paid_tiyin)::bigint AS paid
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            JOIN account_figures(%(from)s, %(to)s) f ON f.account_id = a.id
            WHERE {scope.sql("ad")}
            GROUP BY ad.mahalla_id, ad.mahalla_uz, a.category
            ORDER BY ad.mahalla_uz, ad.mahalla_id, a.category""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def debtors(
    conn: AsyncConnection[Any], as_of: date, scope: AddressScope, threshold_tiyin: int = 0
) -> list[dict[str, Any]]:
    """Accounts in ``scope`` that owe at least ``threshold_tiyin`` (and something) on
    ``as_of``, with FIFO aging buckets ``b0``..``b3``, ``debt``, ``oldest`` (the value date of
    the oldest unpaid debit) and contact data; largest debt first."""
    accounts = await _rows(
        conn,
        f"""SELECT a.id, a.number, a.name, a.kind, a.inn, a.phone,
                   concat_ws(', ', ad.district_uz, ad.mahalla_uz,
                             ad.street_uz || ' ' || ad.house_number,
                             ad.apartment_number) AS address
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            WHERE {scope.sql("ad")}""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope),
    )
    unscoped = scope == AddressScope()
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            ENTRIES_SQL, {"as_of": as_of, "ids": None if unscoped else [a["id"] for a in accounts]}
        )
        entries = entries_by_account(await cur.fetchall())
    out = []
    for acc in accounts:
        aging = age_entries(entries.get(int(acc["id"]), []), as_of)
        if aging.debt <= 0 or aging.debt < threshold_tiyin:
            continue
        b0, b1, b2, b3 = aging.buckets
        out.append(
            {
                **acc,
                "b0": b0,
                "b1": b1,
                "b2": b2,
                "b3": b3,
                "debt": aging.debt,
                "oldest": aging.oldest_unpaid,
            }
        )
    out.sort(key=lambda r: (-r["debt"], r["number"]))
    return out


_CONSUMPTION_ROWS = """SELECT a.number, a.name, a.phone,
       concat_ws(', ', ad.mahalla_uz, ad.street_uz || ' ' || ad.house_number) AS address,
       m.serial_no AS meter, to_char(pc.period, 'YYYY-MM') AS period,
       pc.volume_m3, pc.estimated_m3, pc.flags
FROM period_consumption pc JOIN accounts a ON a.id = pc.account_id
JOIN account_addresses ad ON ad.account_id = a.id
JOIN meters m ON m.id = pc.meter_id
WHERE pc.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
  AND (pc.flags & %(mask)s) <> 0"""


async def flagged_consumption(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope, mask: int
) -> list[dict[str, Any]]:
    """Billed consumption rows of the months in the period that carry any flag of ``mask``
    (:data:`IMPLAUSIBLE`, :data:`STOPPED`); ``flags`` is given as the flags' names."""
    check_period(date_from, date_to)
    # string-built, but ruff's S608 does not see SQL in it (it starts with a placeholder):
    # a fixed query and AddressScope conditions; values are parameters
    rows = await _rows(
        conn,
        f"""{_CONSUMPTION_ROWS} AND {scope.sql("ad")}
            ORDER BY a.number, pc.period""",
        _args(scope, **{"from": date_from, "to": date_to, "mask": mask}),
    )
    for r in rows:
        r["flags"] = tuple(cons.flag_names(int(r["flags"])))
    return rows


async def metered_without_meter(
    conn: AsyncConnection[Any], scope: AddressScope
) -> list[dict[str, Any]]:
    """Active metered accounts in ``scope`` with no meter installed."""
    return await _rows(
        conn,
        f"""SELECT a.number, a.name, a.phone, a.status,
                   concat_ws(', ', ad.mahalla_uz, ad.street_uz || ' ' || ad.house_number)
                       AS address
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            WHERE a.metered AND a.status = 'active' AND {scope.sql("ad")}
              AND NOT EXISTS (SELECT 1 FROM service_connections c
                              WHERE c.account_id = a.id AND c.removed_at IS NULL)
            ORDER BY a.number""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope),
    )
