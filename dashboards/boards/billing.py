"""Billing for managers: charges, collections, collection rate, debt by mahalla.

Reads the billing package's tables (``suvnet/migrations/02xx``): ``ledger``, ``accounts``,
``invoices`` and the views ``account_addresses`` and ``account_balances``. Ledger amounts are
integer tiyin, positive = the customer owes more (charge, penalty), negative = paid; a reversal
counts as the kind of the entry it reverses. Figures are shown in so'm (tiyin / 100).
"""

from __future__ import annotations

from dashboards.boards.common import LINK_ALL, ZONE
from dashboards.model import Dashboard, Panel, Row, SqlTarget, Threshold

BILLING_TABLES = ("ledger", "accounts")
SOM = "suffix: so'm"

_IN_ZONE = "(a.zone_id IS NULL OR a.zone_id IN (SELECT id FROM zones WHERE code IN ($zone)))"

_ENTRIES = f"""
SELECT l.value_date, l.amount_tiyin, l.source, coalesce(o.kind, l.kind) AS kind
FROM ledger l
LEFT JOIN ledger o ON o.id = l.reverses_id
JOIN accounts a ON a.id = l.account_id
WHERE l.value_date BETWEEN $__timeFrom()::date AND $__timeTo()::date AND {_IN_ZONE}
"""

MONTHLY = Panel(
    type="timeseries",
    title="Charges and collections per month",
    targets=(
        SqlTarget(
            format="time_series",
            requires=BILLING_TABLES,
            sql=f"""
SELECT date_trunc('month', e.value_date)::timestamp AT TIME ZONE 'UTC' AS "time",
       sum(e.amount_tiyin) FILTER (WHERE e.kind IN ('charge', 'penalty')) / 100.0 AS charged,
       -sum(e.amount_tiyin) FILTER (WHERE e.kind = 'payment') / 100.0 AS collected
FROM ({_ENTRIES}) e
GROUP BY 1
ORDER BY 1
""",
        ),
    ),
    w=16,
    h=9,
    unit=SOM,
    custom={"drawStyle": "bars", "barAlignment": 0, "fillOpacity": 60},
)

COLLECTION_RATE = Panel(
    type="stat",
    title="Collection rate in the range",
    description="Payments received ÷ charges issued for value dates in the time range.",
    targets=(
        SqlTarget(
            requires=BILLING_TABLES,
            sql=f"""
SELECT 100.0 * -coalesce(sum(e.amount_tiyin) FILTER (WHERE e.kind = 'payment'), 0)
       / nullif(sum(e.amount_tiyin) FILTER (WHERE e.kind IN ('charge', 'penalty')), 0)
       AS collection_pct
FROM ({_ENTRIES}) e
""",
        ),
    ),
    w=8,
    h=9,
    unit="percent",
    decimals=1,
    thresholds=(Threshold(None, "red"), Threshold(80, "orange"), Threshold(95, "green")),
)

TOTALS = Panel(
    type="stat",
    title="Debt and prepayments now",
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_balances"),
            sql=f"""
SELECT coalesce(sum(b.balance_tiyin) FILTER (WHERE b.balance_tiyin > 0), 0) / 100.0 AS debt,
       -coalesce(sum(b.balance_tiyin) FILTER (WHERE b.balance_tiyin < 0), 0) / 100.0
           AS prepaid,
       count(*) FILTER (WHERE b.balance_tiyin > 0) AS debtors
FROM account_balances b
JOIN accounts a ON a.id = b.account_id
WHERE {_IN_ZONE}
""",
        ),
    ),
    w=24,
    h=5,
    unit=SOM,
)

DEBT_BY_MAHALLA = Panel(
    type="table",
    title="Debt by mahalla",
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_balances", "account_addresses"),
            sql=f"""
SELECT ad.mahalla_uz AS mahalla, ad.district_uz AS district,
       count(*) AS accounts,
       count(*) FILTER (WHERE b.balance_tiyin > 0) AS debtors,
       coalesce(sum(b.balance_tiyin) FILTER (WHERE b.balance_tiyin > 0), 0) / 100.0 AS debt,
       -coalesce(sum(b.balance_tiyin) FILTER (WHERE b.balance_tiyin < 0), 0) / 100.0
           AS prepaid,
       sum(b.balance_tiyin) / 100.0 AS net_balance
FROM account_balances b
JOIN accounts a ON a.id = b.account_id
JOIN account_addresses ad ON ad.account_id = b.account_id
WHERE a.status <> 'closed' AND {_IN_ZONE}
GROUP BY ad.mahalla_uz, ad.district_uz
ORDER BY debt DESC
""",
        ),
    ),
    w=14,
    h=10,
    unit=SOM,
    decimals=0,
)

DEBT_BAR = Panel(
    type="bargauge",
    title="Debt by mahalla (so'm)",
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_balances", "account_addresses"),
            sql=f"""
SELECT ad.mahalla_uz AS mahalla,
       coalesce(sum(b.balance_tiyin) FILTER (WHERE b.balance_tiyin > 0), 0) / 100.0 AS debt
FROM account_balances b
JOIN accounts a ON a.id = b.account_id
JOIN account_addresses ad ON ad.account_id = b.account_id
WHERE {_IN_ZONE}
GROUP BY ad.mahalla_uz
ORDER BY debt DESC
LIMIT 20
""",
        ),
    ),
    w=10,
    h=10,
    unit=SOM,
    options={"orientation": "horizontal", "displayMode": "gradient"},
)

PAYMENTS_BY_CHANNEL = Panel(
    type="piechart",
    title="Collections by channel",
    targets=(
        SqlTarget(
            requires=BILLING_TABLES,
            sql=f"""
SELECT e.source AS channel, -sum(e.amount_tiyin) / 100.0 AS collected
FROM ({_ENTRIES}) e
WHERE e.kind = 'payment'
GROUP BY e.source
ORDER BY 2 DESC
""",
        ),
    ),
    w=8,
    h=9,
    unit=SOM,
    options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"], "fields": ""}},
)

TOP_DEBTORS = Panel(
    type="table",
    title="Largest debtors",
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_balances", "account_addresses"),
            sql=f"""
SELECT a.number AS account, a.name, a.kind, ad.mahalla_uz AS mahalla,
       ad.street_uz AS street, ad.house_number AS house,
       b.balance_tiyin / 100.0 AS debt,
       (SELECT max(l.value_date) FROM ledger l
         WHERE l.account_id = a.id AND l.kind = 'payment') AS last_payment
FROM account_balances b
JOIN accounts a ON a.id = b.account_id
JOIN account_addresses ad ON ad.account_id = a.id
WHERE b.balance_tiyin > 0 AND {_IN_ZONE}
ORDER BY b.balance_tiyin DESC
LIMIT 25
""",
        ),
    ),
    w=16,
    h=9,
)

INVOICES = Panel(
    type="timeseries",
    title="Invoices issued and billed volume per month",
    targets=(
        SqlTarget(
            format="time_series",
            requires=(*BILLING_TABLES, "invoices"),
            sql=f"""
SELECT i.period::timestamp AT TIME ZONE 'UTC' AS "time",
       count(*) AS invoices, sum(i.volume_m3) AS billed_m3
FROM invoices i
JOIN accounts a ON a.id = i.account_id
WHERE i.period BETWEEN date_trunc('month', $__timeFrom()::timestamptz)::date
                   AND $__timeTo()::date
  AND {_IN_ZONE}
GROUP BY 1
ORDER BY 1
""",
        ),
    ),
    w=24,
    h=8,
    custom={"drawStyle": "bars"},
)

DASHBOARD = Dashboard(
    uid="suvnet-billing",
    title="suvnet · Billing for managers",
    description="Charges, collections and debt, by month and by mahalla.",
    variables=(ZONE,),
    time_from="now-1y",
    refresh="",
    tags=("suvnet", "billing"),
    links=(LINK_ALL,),
    items=(
        TOTALS,
        MONTHLY,
        COLLECTION_RATE,
        Row("Debt"),
        DEBT_BY_MAHALLA,
        DEBT_BAR,
        Row("Collections"),
        PAYMENTS_BY_CHANNEL,
        TOP_DEBTORS,
        INVOICES,
    ),
)
