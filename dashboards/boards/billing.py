"""Billing for managers: charges, collections, collection rate, debt by mahalla.

Reads the billing package's tables (``suvnet/migrations/02xx``): ``accounts``, ``invoices``,
the view ``account_addresses``, and the money figures of migration 0202: the view
``ledger_turnover`` (each ledger entry with the figure it counts in) and the function
``account_figures(from, to)`` (opening, charged, paid and closing balance per account). The
figures therefore follow the one definition that the reports and documents use
(docs/billing.md, "Money figures"): a reversal counts as the kind of the entry it reverses;
paid is the payments (and their reversals), charged everything else; closing = opening +
charged - paid; debt and prepayment are the debit and credit parts of each account's closing
balance, never netted. Figures are shown in so'm (tiyin / 100), as of the end of the range.
"""

from __future__ import annotations

from dashboards.boards.common import LINK_ALL, ZONE, columns, value_texts
from dashboards.i18n import N_, Text, suffix_unit
from dashboards.model import Dashboard, Override, Panel, Row, SqlTarget, Threshold

# ledger_turnover and account_figures come with the same migration (0202): needing the view
# means having both.
BILLING_TABLES = ("ledger", "accounts", "ledger_turnover")
SOM = suffix_unit(N_("so'm"))

CHANNELS: dict[str, Text] = {
    "cashier": N_("cash desk"),
    "bank": N_("bank"),
    "billing": N_("billing"),
    "import": N_("import"),
    "manual": N_("entered by hand"),
}
"""The ledger's payment channels in words (payme and click are names: shown as they are)."""
ACCOUNT_KINDS: dict[str, Text] = {
    "household": N_("household"),
    "legal": N_("legal entity"),
    "budget": N_("budget organisation"),
}

_IN_ZONE = "(a.zone_id IS NULL OR a.zone_id IN (SELECT id FROM zones WHERE code IN ($zone)))"

_ENTRIES = f"""
SELECT t.value_date, t.source, t.counts_as, t.charged_tiyin, t.paid_tiyin
FROM ledger_turnover t
JOIN accounts a ON a.id = t.account_id
WHERE t.value_date BETWEEN $__timeFrom()::date AND $__timeTo()::date AND {_IN_ZONE}
"""  # noqa: S608 - Grafana query text from fixed fragments; Grafana fills in the macros
"""The ledger entries of the time range with their charged and paid parts."""

_FIGURES = "account_figures($__timeFrom()::date, $__timeTo()::date) f"
"""The figures of every account over the time range (closing: as of its end)."""

MONTHLY = Panel(
    type="timeseries",
    title=N_("Charges and collections per month"),
    description=N_(
        "Charged (charges, penalties, adjustments, carried-in balances, net of "
        "reversals) and paid (payments net of cancelled ones), by value date."
    ),
    targets=(
        SqlTarget(
            format="time_series",
            requires=BILLING_TABLES,
            sql=f"""
SELECT date_trunc('month', e.value_date)::timestamp AT TIME ZONE 'UTC' AS "time",
       sum(e.charged_tiyin) / 100.0 AS charged,
       sum(e.paid_tiyin) / 100.0 AS collected
FROM ({_ENTRIES}) e
GROUP BY 1
ORDER BY 1
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=16,
    h=9,
    unit=SOM,
    custom={"drawStyle": "bars", "barAlignment": 0, "fillOpacity": 60},
    columns=columns("collected", charged=N_("Charged")),
)

COLLECTION_RATE = Panel(
    type="stat",
    title=N_("Collection rate in the range"),
    description=N_("Paid ÷ charged for value dates in the time range."),
    targets=(
        SqlTarget(
            requires=BILLING_TABLES,
            sql=f"""
SELECT 100.0 * coalesce(sum(e.paid_tiyin), 0) / nullif(sum(e.charged_tiyin), 0)
       AS collection_pct
FROM ({_ENTRIES}) e
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=8,
    h=9,
    unit="percent",
    decimals=1,
    thresholds=(Threshold(None, "red"), Threshold(80, "orange"), Threshold(95, "green")),
    columns={"collection_pct": N_("Collection rate, %")},
)

TOTALS = Panel(
    type="stat",
    title=N_("Debt and prepayments at the end of the range"),
    description=N_("The debit and credit parts of each account's closing balance, summed."),
    targets=(
        SqlTarget(
            requires=BILLING_TABLES,
            sql=f"""
SELECT coalesce(sum(f.closing_debit_tiyin), 0) / 100.0 AS debt,
       coalesce(sum(f.closing_credit_tiyin), 0) / 100.0 AS prepaid,
       count(*) FILTER (WHERE f.closing_debit_tiyin > 0) AS debtors
FROM {_FIGURES}
JOIN accounts a ON a.id = f.account_id
WHERE {_IN_ZONE}
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=24,
    h=5,
    unit=SOM,
    overrides=(Override("debtors", {"unit": "none"}),),
    columns=columns("debt", "prepaid", "debtors"),
)

DEBT_BY_MAHALLA = Panel(
    type="table",
    title=N_("Debt by mahalla"),
    description=N_(
        "Closing balances at the end of the range; closed accounts' debts count, "
        "'accounts' counts the accounts that are not closed."
    ),
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_addresses"),
            sql=f"""
SELECT ad.mahalla_uz AS mahalla, ad.district_uz AS district,
       count(*) FILTER (WHERE a.status <> 'closed') AS accounts,
       count(*) FILTER (WHERE f.closing_debit_tiyin > 0) AS debtors,
       sum(f.closing_debit_tiyin) / 100.0 AS debt,
       sum(f.closing_credit_tiyin) / 100.0 AS prepaid,
       sum(f.closing_tiyin) / 100.0 AS net_balance
FROM {_FIGURES}
JOIN accounts a ON a.id = f.account_id
JOIN account_addresses ad ON ad.account_id = f.account_id
WHERE {_IN_ZONE}
GROUP BY ad.mahalla_uz, ad.district_uz
ORDER BY debt DESC
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=14,
    h=10,
    unit=SOM,
    decimals=0,
    overrides=(
        Override("accounts", {"unit": "none"}),
        Override("debtors", {"unit": "none"}),
    ),
    columns=columns(
        *("mahalla", "district", "debtors", "debt", "prepaid"),
        accounts=N_("Accounts"),
        net_balance=N_("Net balance"),
    ),
)

DEBT_BAR = Panel(
    type="bargauge",
    title=N_("Debt by mahalla (so'm)"),
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_addresses"),
            sql=f"""
SELECT ad.mahalla_uz AS mahalla, sum(f.closing_debit_tiyin) / 100.0 AS debt
FROM {_FIGURES}
JOIN accounts a ON a.id = f.account_id
JOIN account_addresses ad ON ad.account_id = f.account_id
WHERE {_IN_ZONE}
GROUP BY ad.mahalla_uz
ORDER BY debt DESC
LIMIT 20
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=10,
    h=10,
    unit=SOM,
    options={"orientation": "horizontal", "displayMode": "gradient"},
    columns=columns("mahalla", "debt"),
)

PAYMENTS_BY_CHANNEL = Panel(
    type="piechart",
    title=N_("Collections by channel"),
    description=N_("Paid per channel in the time range, net of cancelled payments."),
    targets=(
        SqlTarget(
            requires=BILLING_TABLES,
            sql=f"""
SELECT e.source AS channel, sum(e.paid_tiyin) / 100.0 AS collected
FROM ({_ENTRIES}) e
WHERE e.counts_as = 'payment'
GROUP BY e.source
ORDER BY 2 DESC
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=8,
    h=9,
    unit=SOM,
    options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"], "fields": ""}},
    overrides=(Override("channel", {"mappings": value_texts(CHANNELS)}),),
    columns=columns("collected", channel=N_("Channel")),
)

TOP_DEBTORS = Panel(
    type="table",
    title=N_("Largest debtors"),
    targets=(
        SqlTarget(
            requires=(*BILLING_TABLES, "account_addresses"),
            sql=f"""
SELECT a.number AS account, a.name, a.kind, ad.mahalla_uz AS mahalla,
       ad.street_uz AS street, ad.house_number AS house,
       f.closing_debit_tiyin / 100.0 AS debt,
       (SELECT max(l.value_date) FROM ledger l
         WHERE l.account_id = a.id AND l.kind = 'payment'
           AND l.value_date <= $__timeTo()::date) AS last_payment
FROM {_FIGURES}
JOIN accounts a ON a.id = f.account_id
JOIN account_addresses ad ON ad.account_id = a.id
WHERE f.closing_debit_tiyin > 0 AND {_IN_ZONE}
ORDER BY f.closing_debit_tiyin DESC
LIMIT 25
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=16,
    h=9,
    overrides=(Override("kind", {"mappings": value_texts(ACCOUNT_KINDS)}),),
    columns=columns(
        *("name", "kind", "mahalla", "debt"),
        account=N_("Account"),
        street=N_("Street"),
        house=N_("House"),
        last_payment=N_("Last payment"),
    ),
)

INVOICES = Panel(
    type="timeseries",
    title=N_("Invoices issued and billed volume per month"),
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
""",  # noqa: S608 - Grafana query text from fixed fragments
        ),
    ),
    w=24,
    h=8,
    custom={"drawStyle": "bars"},
    columns=columns("billed_m3", invoices=N_("Invoices")),
)

DASHBOARD = Dashboard(
    uid="suvnet-billing",
    title=N_("suvnet · Billing for managers"),
    description=N_("Charges, collections and debt, by month and by mahalla."),
    variables=(ZONE,),
    time_from="now-1y",
    refresh="",
    tags=("suvnet", "billing"),
    links=(LINK_ALL,),
    items=(
        TOTALS,
        MONTHLY,
        COLLECTION_RATE,
        Row(N_("Debt")),
        DEBT_BY_MAHALLA,
        DEBT_BAR,
        Row(N_("Collections")),
        PAYMENTS_BY_CHANNEL,
        TOP_DEBTORS,
        INVOICES,
    ),
)
