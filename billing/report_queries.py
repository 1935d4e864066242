"""What the department reports read from billing's tables, on the API's async connection.

Each function returns plain rows (dicts); the API shapes them into report tables
(``api/reports``). Money figures come from :mod:`billing.figures` (the SQL function
``account_figures`` of migration 0202), aging from the pure FIFO core of
:mod:`billing.balances`: nothing here defines a figure of its own.

The SQL texts hold only fixed column names; the address filter is
:meth:`billing.figures.AddressScope.sql`, and every value travels as a parameter. Place names
are given in the report's language where the address registry has them (``lang``: ``uz``,
``uz_Cyrl``, ``ru`` or ``en``; Uzbek Latin where a name is missing).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from billing import consumption as cons
from billing.balances import ENTRIES_SQL, age_entries, entries_by_account, unpaid_debits
from billing.errors import BillingError
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


_NAME_COLUMN = {
    "uz": "{t}.name_uz",
    "uz_Cyrl": "coalesce({t}.name_uz_cyrl, {t}.name_uz)",
    "ru": "coalesce({t}.name_ru, {t}.name_uz)",
    "en": "{t}.name_uz",
}


def name_of(table_alias: str, lang: str) -> str:
    """The SQL expression of a registry row's name in ``lang`` (fixed text: the alias is
    one of this module's, the forms are the constants above)."""
    if not table_alias.isidentifier():
        raise BillingError(f"not an SQL alias: {table_alias!r}")
    return _NAME_COLUMN.get(lang, _NAME_COLUMN["uz"]).format(t=table_alias)


_PLACES = """JOIN streets s ON s.id = ad.street_id JOIN mahallas m ON m.id = ad.mahalla_id
             JOIN districts d ON d.id = ad.district_id"""
"""The registry rows of an ``account_addresses ad`` row, for names in other languages."""


def _place_names(lang: str) -> str:
    return (
        f"{name_of('d', lang)} AS district, {name_of('m', lang)} AS mahalla, "
        f"{name_of('s', lang)} AS street"
    )


def _address(lang: str) -> str:
    return (
        f"concat_ws(', ', {name_of('m', lang)}, {name_of('s', lang)} || ' ' || ad.house_number, "
        "ad.apartment_number)"
    )


async def place_names(
    conn: AsyncConnection[Any], scope: AddressScope, lang: str
) -> dict[str, str | None]:
    """The names of the district, mahalla and street a report is filtered by (None where it
    is not filtered). Raises :class:`BillingError` for an id that does not exist."""
    out: dict[str, str | None] = {}
    for key, table in (("district", "districts"), ("mahalla", "mahallas"), ("street", "streets")):
        ident = getattr(scope, f"{key}_id")
        if ident is None:
            out[key] = None
            continue
        row = await _rows(
            conn,
            f"SELECT {name_of('x', lang)} AS name FROM {table} x WHERE x.id = %(id)s",  # noqa: S608 - fixed table names and name expressions; the id is a parameter
            {"id": ident},
        )
        if not row:
            raise BillingError(f"there is no {key} with id {ident}")
        out[key] = str(row[0]["name"])
    return out


async def turnover(
    conn: AsyncConnection[Any],
    date_from: date,
    date_to: date,
    scope: AddressScope,
    lang: str = "uz",
) -> list[dict[str, Any]]:
    """The figures of every account in ``scope`` over the period, with its address, ordered
    by district, mahalla, street and account number (the accounting report's detail rows)."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT ad.district_id, ad.mahalla_id, ad.street_id, {_place_names(lang)},
                   a.number, a.name, a.kind, {FIGURE_COLUMNS}
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
            JOIN account_figures(%(from)s, %(to)s) f ON f.account_id = a.id
            WHERE {scope.sql("ad")}
            ORDER BY 4, ad.district_id, 5, ad.mahalla_id, 6, ad.street_id, a.number""",  # noqa: S608 - fixed column list, name expressions and AddressScope conditions; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def ledger_totals(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope
) -> dict[str, int]:
    """The ledger itself, summed for the accounts in ``scope``: ``before`` (entries dated
    before ``date_from``), ``upto`` (dated up to ``date_to``) and the period's ``charged``
    and ``paid`` as the view ``ledger_turnover`` counts them. The accounting form checks its
    totals against these sums."""
    check_period(date_from, date_to)
    rows = await _rows(
        conn,
        f"""SELECT coalesce(sum(t.amount_tiyin) FILTER (WHERE t.value_date < %(from)s), 0)::bigint
                       AS before,
                   coalesce(sum(t.amount_tiyin), 0)::bigint AS upto,
                   coalesce(sum(t.charged_tiyin) FILTER (WHERE t.value_date >= %(from)s), 0)
                       ::bigint AS charged,
                   coalesce(sum(t.paid_tiyin) FILTER (WHERE t.value_date >= %(from)s), 0)
                       ::bigint AS paid
            FROM ledger_turnover t JOIN account_addresses ad ON ad.account_id = t.account_id
            WHERE t.value_date <= %(to)s AND {scope.sql("ad")}""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )
    return {k: int(v) for k, v in rows[0].items()}


async def collections(
    conn: AsyncConnection[Any],
    date_from: date,
    date_to: date,
    scope: AddressScope,
    lang: str = "uz",
) -> list[dict[str, Any]]:
    """Charged and paid over the period per mahalla and customer category (the finance
    report), with the number of accounts and the accounts' branch (``branch``: its code, ''
    for none, and ``branch_name``)."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT ad.mahalla_id, {name_of("m", lang)} AS mahalla, a.category,
                   coalesce(b.code, '') AS branch, coalesce(b.name, '') AS branch_name,
                   count(*) AS accounts,
                   sum(f.charged_tiyin)::bigint AS charged,
                   sum(f.paid_tiyin)::bigint AS paid
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
            JOIN account_figures(%(from)s, %(to)s) f ON f.account_id = a.id
            LEFT JOIN branches b ON b.id = a.branch_id
            WHERE {scope.sql("ad")}
            GROUP BY ad.mahalla_id, 2, a.category, b.code, b.name
            ORDER BY 2, ad.mahalla_id, a.category, b.code""",  # noqa: S608 - name expressions and AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def collections_by_day(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope
) -> list[dict[str, Any]]:
    """What was paid (the figure "paid" of ``ledger_turnover``) per value date and channel:
    ``day``, ``channel`` (the ledger's ``source``; a cancelled payment counts on the channel
    of the payment it cancels), ``payments`` (payments received, not counting cancellations)
    and ``paid`` (tiyin, net of cancellations). Summed over every day and channel it is the
    period's paid of the turnover statement."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT t.value_date AS day, coalesce(o.source, t.source) AS channel,
                   count(*) FILTER (WHERE t.kind = 'payment') AS payments,
                   sum(t.paid_tiyin)::bigint AS paid
            FROM ledger_turnover t LEFT JOIN ledger o ON o.id = t.reverses_id
            JOIN account_addresses ad ON ad.account_id = t.account_id
            WHERE t.counts_as = 'payment' AND t.value_date BETWEEN %(from)s AND %(to)s
              AND {scope.sql("ad")}
            GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def debtors(
    conn: AsyncConnection[Any],
    as_of: date,
    scope: AddressScope,
    threshold_tiyin: int = 0,
    lang: str = "uz",
    *,
    numbers: list[str] | None = None,
    breakdown: bool = False,
) -> list[dict[str, Any]]:
    """Accounts in ``scope`` that owe at least ``threshold_tiyin`` (and something) on
    ``as_of``, with FIFO aging buckets ``b0``..``b3``, ``debt``, ``oldest`` (the value date of
    the oldest unpaid debit), contact data and ``language`` (of the customer's letters, None:
    the utility's default); largest debt first. ``numbers`` keeps only those accounts;
    ``breakdown`` adds ``unpaid``: each unpaid debit's value date and unpaid rest, oldest
    first (the claim letter's table)."""
    accounts = await _rows(
        conn,
        f"""SELECT a.id, a.number, a.name, a.kind, a.inn, a.phone, a.branch_id,
                   a.correspondence_language AS language, {_address(lang)} AS address,
                   {name_of("d", lang)} AS district
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
            WHERE {scope.sql("ad")}
              AND (%(numbers)s::text[] IS NULL OR a.number = ANY(%(numbers)s::text[]))""",  # noqa: S608 - name expressions and AddressScope conditions only; values are parameters
        _args(scope, numbers=numbers),
    )
    unscoped = scope == AddressScope() and numbers is None
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            ENTRIES_SQL, {"as_of": as_of, "ids": None if unscoped else [a["id"] for a in accounts]}
        )
        entries = entries_by_account(await cur.fetchall())
    out = []
    for acc in accounts:
        mine = entries.get(int(acc["id"]), [])
        aging = age_entries(mine, as_of)
        if aging.debt <= 0 or aging.debt < threshold_tiyin:
            continue
        b0, b1, b2, b3 = aging.buckets
        row = {
            **acc,
            "b0": b0,
            "b1": b1,
            "b2": b2,
            "b3": b3,
            "debt": aging.debt,
            "oldest": aging.oldest_unpaid,
        }
        if breakdown:
            row["unpaid"] = unpaid_debits(mine, as_of)[0]
        out.append(row)
    out.sort(key=lambda r: (-r["debt"], r["number"]))
    return out


# ------------------------------------------------------------------------------ branches

BRANCH_COLUMNS = (
    "b.id, b.code, b.name, b.legal_name, b.inn, b.bank_account, b.mfo, b.address, b.phone"
)


async def turnover_by_branch(
    conn: AsyncConnection[Any], date_from: date, date_to: date, scope: AddressScope
) -> list[dict[str, Any]]:
    """The turnover statement's figures summed per branch (docs/branches.md): one row per
    branch the session sees (``branch``: its code, ``branch_name``), and one for the accounts
    of no branch (``branch`` ''), each figure added account by account as the statement
    does, so that the branches add up to the whole, to the tiyin. A regional session gets
    every branch (the consolidated report), a branch's session its own."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT a.branch_id, coalesce(b.code, '') AS branch,
                   coalesce(b.name, '') AS branch_name, count(*) AS accounts,
                   sum(f.opening_tiyin)::bigint AS opening,
                   sum(f.opening_debit_tiyin)::bigint AS opening_debit,
                   sum(f.opening_credit_tiyin)::bigint AS opening_credit,
                   sum(f.charged_tiyin)::bigint AS charged,
                   sum(f.paid_tiyin)::bigint AS paid,
                   sum(f.closing_tiyin)::bigint AS closing,
                   sum(f.closing_debit_tiyin)::bigint AS closing_debit,
                   sum(f.closing_credit_tiyin)::bigint AS closing_credit
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            JOIN account_figures(%(from)s, %(to)s) f ON f.account_id = a.id
            LEFT JOIN branches b ON b.id = a.branch_id
            WHERE {scope.sql("ad")}
            GROUP BY a.branch_id, b.code, b.name
            ORDER BY b.code IS NULL, b.code""",  # noqa: S608 - AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def branches_of(
    conn: AsyncConnection[Any], ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """The branches ``ids`` with their requisites (``BRANCH_COLUMNS``); ``None``: the branch
    of a session that sees exactly one (a branch user's), if any."""
    where = "b.id = suvnet_session_branch()" if ids is None else "b.id = ANY(%(ids)s)"
    return await _rows(
        conn,
        f"SELECT {BRANCH_COLUMNS} FROM branches b WHERE {where} ORDER BY b.code",  # noqa: S608 - constants
        {"ids": ids},
    )


def _consumption_rows(lang: str) -> str:
    return f"""SELECT a.number, a.name, a.phone, {_address(lang)} AS address,
       mt.serial_no AS meter, pc.period, pc.volume_m3, pc.estimated_m3, pc.flags
FROM period_consumption pc JOIN accounts a ON a.id = pc.account_id
JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
JOIN meters mt ON mt.id = pc.meter_id
WHERE pc.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
  AND (pc.flags & %(mask)s) <> 0"""  # noqa: S608 - fixed text and name expressions


async def flagged_consumption(
    conn: AsyncConnection[Any],
    date_from: date,
    date_to: date,
    scope: AddressScope,
    mask: int,
    *,
    lang: str = "uz",
) -> list[dict[str, Any]]:
    """Billed consumption rows of the months in the period that carry any flag of ``mask``
    (:data:`IMPLAUSIBLE`, :data:`STOPPED`); ``flags`` is given as the flags' names."""
    check_period(date_from, date_to)
    # a fixed query and AddressScope conditions; values are parameters
    rows = await _rows(
        conn,
        f"""{_consumption_rows(lang)} AND {scope.sql("ad")}
            ORDER BY a.number, pc.period""",
        _args(scope, **{"from": date_from, "to": date_to, "mask": mask}),
    )
    for r in rows:
        r["flags"] = tuple(cons.flag_names(int(r["flags"])))
    return rows


async def metered_without_meter(
    conn: AsyncConnection[Any], scope: AddressScope, lang: str = "uz"
) -> list[dict[str, Any]]:
    """Active metered accounts in ``scope`` with no meter installed."""
    return await _rows(
        conn,
        f"""SELECT a.number, a.name, a.phone, a.status, {_address(lang)} AS address
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
            WHERE a.metered AND a.status = 'active' AND {scope.sql("ad")}
              AND NOT EXISTS (SELECT 1 FROM service_connections c
                              WHERE c.account_id = a.id AND c.removed_at IS NULL)
            ORDER BY a.number""",  # noqa: S608 - name expressions and AddressScope conditions only; values are parameters
        _args(scope),
    )


async def customer_requests(
    conn: AsyncConnection[Any],
    ts_from: datetime,
    ts_to: datetime,
    scope: AddressScope,
    lang: str = "uz",
) -> list[dict[str, Any]]:
    """Customer requests received in ``[ts_from, ts_to)`` (table ``customer_requests``,
    migration 0204): when, which account (requests without one count only when the report
    is not filtered by place), channel, kind, subject, state, when resolved and how; for a
    disputed bill the invoice (number, month, amount) and the amount disputed."""
    unscoped = scope == AddressScope()
    return await _rows(
        conn,
        f"""SELECT r.id, r.received_at, r.channel, r.kind, r.subject, r.status,
                   r.resolved_at, r.resolution, r.disputed_tiyin AS disputed,
                   a.number, a.name, a.phone, {_address(lang)} AS address,
                   i.number AS invoice, i.period AS invoice_period,
                   i.amount_tiyin AS invoice_amount
            FROM customer_requests r
            LEFT JOIN accounts a ON a.id = r.account_id
            LEFT JOIN account_addresses ad ON ad.account_id = a.id
            LEFT JOIN streets s ON s.id = ad.street_id
            LEFT JOIN mahallas m ON m.id = ad.mahalla_id
            LEFT JOIN invoices i ON i.id = r.invoice_id
            WHERE r.received_at >= %(tsf)s AND r.received_at < %(tst)s
              AND ((a.id IS NULL AND %(unscoped)s) OR (a.id IS NOT NULL AND {scope.sql("ad")}))
            ORDER BY r.received_at, r.id""",  # noqa: S608 - name expressions and AddressScope conditions only; values are parameters
        _args(scope, tsf=ts_from, tst=ts_to, unscoped=unscoped),
    )


async def estimated_bills(
    conn: AsyncConnection[Any],
    date_from: date,
    date_to: date,
    scope: AddressScope,
    lang: str = "uz",
) -> list[dict[str, Any]]:
    """Bills of the months in the period that were estimated (``invoices.estimated``: no
    usable reading for the whole month), with the account, volume and amount."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        f"""SELECT a.number, a.name, a.phone, {_address(lang)} AS address,
                   i.number AS invoice, i.period, i.volume_m3, i.amount_tiyin AS amount
            FROM invoices i JOIN accounts a ON a.id = i.account_id
            JOIN account_addresses ad ON ad.account_id = a.id {_PLACES}
            WHERE i.estimated AND i.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
              AND {scope.sql("ad")}
            ORDER BY i.period, a.number, i.id""",  # noqa: S608 - name expressions and AddressScope conditions only; values are parameters
        _args(scope, **{"from": date_from, "to": date_to}),
    )


async def consumption_by_zone(
    conn: AsyncConnection[Any], date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """Billed volume of the months in the period per zone and customer category: the latest
    invoice of each account and month counts (a correction replaces the regular bill);
    ``zone`` is None for accounts that are in no zone."""
    check_period(date_from, date_to)
    return await _rows(
        conn,
        """WITH latest AS (
               SELECT DISTINCT ON (account_id, period) id, account_id, volume_m3, estimated
               FROM invoices
               WHERE period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
               ORDER BY account_id, period, id DESC)
           SELECT z.code AS zone, z.name AS zone_name, a.category,
                  count(DISTINCT a.id) AS accounts, count(*) AS bills,
                  sum(l.volume_m3)::float8 AS billed_m3,
                  (sum(l.volume_m3) FILTER (WHERE l.estimated))::float8 AS estimated_m3
           FROM latest l JOIN accounts a ON a.id = l.account_id
           LEFT JOIN zones z ON z.id = a.zone_id
           GROUP BY z.code, z.name, a.category ORDER BY z.code NULLS LAST, a.category""",
        {"from": date_from, "to": date_to},
    )


METER_FAULTS = cons.ROLLOVER | cons.NEGATIVE | cons.LONG_ZERO | cons.REVERSE | cons.NO_DATA
"""Consumption flags that point at a faulty meter (not at an odd month of use)."""


async def meter_faults(
    conn: AsyncConnection[Any], date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """Meters whose billed consumption in the months of the period carries a fault flag
    (:data:`METER_FAULTS`): meter, model, zone, account and the faults' names."""
    check_period(date_from, date_to)
    rows = await _rows(
        conn,
        """SELECT m.serial_no AS meter, m.model, z.code AS zone, a.number, a.name,
                  pc.period, pc.volume_m3, pc.flags
           FROM period_consumption pc JOIN meters m ON m.id = pc.meter_id
           JOIN accounts a ON a.id = pc.account_id
           LEFT JOIN zones z ON z.id = coalesce(m.zone_id, a.zone_id)
           WHERE pc.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
             AND (pc.flags & %(mask)s) <> 0
           ORDER BY z.code NULLS LAST, m.serial_no, pc.period""",
        {"from": date_from, "to": date_to, "mask": METER_FAULTS},
    )
    for r in rows:
        r["faults"] = tuple(cons.flag_names(int(r.pop("flags")) & METER_FAULTS))
    return rows
