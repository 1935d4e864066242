"""The five department report forms: the figures come from billing's and alarms' query
modules (``billing.report_queries``, ``alarms.report_queries``); this module only shapes their
rows into report tables (columns, subtotals, totals, the footnotes that reconcile them). It
holds no SQL, and no word in a person's language: titles and labels are catalog messages
(:mod:`api.reports.text`), translated when the form is rendered.

Money figures follow the one definition of :mod:`billing.figures` (docs/billing.md, "Money
figures"): closing = opening + charged - paid, to the tiyin. docs/reports.md describes each
form, its columns and how it reconciles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from alarms import report_queries as network
from api.i18n import format_som
from api.reports.model import Column, Note, Report, Row, Table, total_row, with_subtotals
from api.reports.text import (
    ALARM_KIND,
    CATEGORY,
    CHANNEL,
    FLAG,
    PRIORITY,
    REQUEST_CHANNEL,
    REQUEST_KIND,
    REQUEST_STATUS,
    STATUS,
    Msg,
    pgettext,
)
from billing import report_queries as billing
from billing.figures import AddressScope, collection_rate

ReportName = Literal["accounting", "finance", "legal", "customer_service", "technical"]
TZ = ZoneInfo("Asia/Tashkent")


@dataclass(frozen=True)
class Filters:
    date_from: date
    date_to: date
    district_id: int | None = None
    mahalla_id: int | None = None
    street_id: int | None = None
    threshold_tiyin: int = 0
    lang: str = "uz"
    """The language of place names (the form's language)."""
    branch: str | None = None
    """One branch's code: the report of that branch alone (a regional user's choice;
    :func:`api.reports.service.narrow_to_branch`)."""

    def params(self) -> dict[str, str]:
        p = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        for k in ("district_id", "mahalla_id", "street_id", "branch"):
            v = getattr(self, k)
            if v is not None:
                p[k] = str(v)
        return p

    @property
    def scope(self) -> AddressScope:
        return AddressScope(self.district_id, self.mahalla_id, self.street_id)

    @property
    def ts_from(self) -> datetime:
        return datetime.combine(self.date_from, time(0), TZ)

    @property
    def ts_to(self) -> datetime:
        return datetime.combine(self.date_to + timedelta(days=1), time(0), TZ)


# labels used by several forms
L_ACCOUNT = pgettext("report", "Account")
L_NAME = pgettext("report", "Name")
L_DISTRICT = pgettext("report", "District")
L_MAHALLA = pgettext("report", "MFY")
L_STREET = pgettext("report", "Street")
L_ADDRESS = pgettext("report", "Address")
L_PHONE = pgettext("report", "Phone")
L_ACCOUNTS = pgettext("report", "Accounts")
L_CHARGED = pgettext("report", "Charged")
L_PAID = pgettext("report", "Paid")
L_CATEGORY = pgettext("report", "Category")
L_RATE = pgettext("report", "Collection rate, %")
L_ZONE = pgettext("report", "Zone")
L_MONTH = pgettext("report", "Month")
L_METER = pgettext("report", "Meter")
L_STATUS = pgettext("report", "Status")
L_ZONE_NAME = pgettext("report", "Zone name")
NO_ZONE = {"-": pgettext("report", "no zone")}
L_BRANCH = pgettext("report", "Branch")
NO_BRANCH = {"-": pgettext("report", "no branch")}

ADDRESS_GROUPS = [
    (1, "street_id", "street"),
    (2, "mahalla_id", "mahalla"),
    (3, "district_id", "district"),
]


async def place_filters(conn: AsyncConnection[Any], f: Filters) -> list[tuple[Msg, str]]:
    """The form's place filters for people: the names, not the ids ("" = all)."""
    names = await billing.place_names(conn, f.scope, f.lang)
    return [
        *([(L_BRANCH, f.branch)] if f.branch else []),
        (L_DISTRICT, names["district"] or ""),
        (L_MAHALLA, names["mahalla"] or ""),
        (L_STREET, names["street"] or ""),
    ]


def _report(
    name: str, title: Msg, tables: list[Table], f: Filters, filters: list[tuple[Msg, str]]
) -> Report:
    return Report(
        name, title, tables, f.params(), date_from=f.date_from, date_to=f.date_to, filters=filters
    )


# -------------------------------------------------------------------------------- accounting

TURNOVER_SUMS = [
    "accounts",
    "opening",
    "opening_debit",
    "opening_credit",
    "charged",
    "paid",
    "closing",
    "closing_debit",
    "closing_credit",
]
TURNOVER_MONEY = [
    Column("opening_debit", pgettext("report", "Opening balance: debit"), "money"),
    Column("opening_credit", pgettext("report", "Opening balance: credit"), "money"),
    Column("charged", L_CHARGED, "money"),
    Column("paid", L_PAID, "money"),
    Column("closing_debit", pgettext("report", "Closing balance: debit"), "money"),
    Column("closing_credit", pgettext("report", "Closing balance: credit"), "money"),
]


def _group(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows summed per ``keys`` (in the order met; the rows are sorted by them)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        g = out.setdefault(
            tuple(r[k] for k in keys), {k: r[k] for k in keys} | dict.fromkeys(TURNOVER_SUMS, 0)
        )
        for k in TURNOVER_SUMS:
            g[k] += r.get(k) or 0
    return list(out.values())


def _branch_label(b: dict[str, Any]) -> str:
    """A branch's code and name; "-" (shown as "no branch") for the accounts of none."""
    return f"{b['branch']} {b['branch_name']}" if b["branch"] else "-"


def _branch_order(b: dict[str, Any]) -> tuple[bool, str]:
    """Branches by code, the accounts of no branch last."""
    return (b["branch"] == "-", b["branch"])


async def accounting(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Turnover statement per account, with subtotals per street, MFY and district, and the
    same figures summed per street and per MFY: opening balance (debit, credit), charged,
    paid, closing balance (debit, credit). The JSON rows also carry the net ``opening`` and
    ``closing`` balances. The footnotes check the totals against the ledger's own sums."""
    filters = await place_filters(conn, f)
    rows = await billing.turnover(conn, f.date_from, f.date_to, f.scope, f.lang)
    for r in rows:
        r["label"] = r["number"]
        r["accounts"] = 1
    table_rows = with_subtotals(rows, ADDRESS_GROUPS, TURNOVER_SUMS, "label")
    for row in table_rows:  # subtotal rows name their group
        row.values.pop("accounts", None)
        if row.level:
            row.values["number"] = row.values["label"]
    cols = [
        Column("number", L_ACCOUNT),
        Column("name", L_NAME),
        Column("district", L_DISTRICT),
        Column("mahalla", L_MAHALLA),
        Column("street", L_STREET),
        *TURNOVER_MONEY,
    ]
    streets = _group(rows, ("district", "mahalla", "street", "street_id"))
    mahallas = _group(rows, ("district", "mahalla", "mahalla_id"))
    count = Column("accounts", L_ACCOUNTS, "int")
    tables = [
        Table("turnover", pgettext("report", "Turnover by account"), cols, table_rows),
        Table(
            "by_street",
            pgettext("report", "Turnover by street"),
            [
                Column("district", L_DISTRICT),
                Column("mahalla", L_MAHALLA),
                Column("street", L_STREET),
                count,
                *TURNOVER_MONEY,
            ],
            [Row(r) for r in streets] + [total_row(streets, TURNOVER_SUMS, "district", "")],
        ),
        Table(
            "by_mahalla",
            pgettext("report", "Turnover by MFY"),
            [Column("district", L_DISTRICT), Column("mahalla", L_MAHALLA), count, *TURNOVER_MONEY],
            [Row(r) for r in mahallas] + [total_row(mahallas, TURNOVER_SUMS, "district", "")],
        ),
    ]
    branches = await billing.turnover_by_branch(conn, f.date_from, f.date_to, f.scope)
    if any(b["branch"] for b in branches):
        # the consolidated report: each branch's figures and their sum (docs/branches.md)
        tables.append(
            Table(
                "by_branch",
                pgettext("report", "Turnover by branch"),
                [Column("branch", L_BRANCH, codes=NO_BRANCH), count, *TURNOVER_MONEY],
                [Row({**b, "branch": _branch_label(b)}) for b in branches]
                + [total_row(branches, TURNOVER_SUMS, "branch", "")],
            )
        )
    rep = _report(
        "accounting",
        pgettext("report", "Turnover statement of customer accounts"),
        tables,
        f,
        filters,
    )
    total = next(r.values for r in table_rows if r.level == 9)
    ledger = await billing.ledger_totals(conn, f.date_from, f.date_to, f.scope)
    rep.notes = accounting_notes(total, ledger, f.date_from, f.date_to)
    return rep


def accounting_notes(
    total: dict[str, Any], ledger: dict[str, int], date_from: date, date_to: date
) -> list[Note]:
    """The footnotes that reconcile the statement: its identity, and its balances against the
    ledger's sums (a difference other than 0,00 is printed as it is)."""
    opening, closing = int(total["opening"]), int(total["closing"])
    money = ("opening", "charged", "paid", "closing", "ledger", "difference")
    return [
        Note(
            pgettext(
                "report",
                "Closing balance = opening balance + charged - paid: %(opening)s + %(charged)s "
                "- %(paid)s = %(closing)s so'm (debit minus credit).",
            ),
            {
                "opening": opening,
                "charged": int(total["charged"]),
                "paid": int(total["paid"]),
                "closing": closing,
            },
            money,
        ),
        Note(
            pgettext(
                "report",
                "Ledger check: the entries dated before %(day)s sum to %(ledger)s so'm, the "
                "opening balance is %(opening)s so'm; difference %(difference)s so'm.",
            ),
            {
                "day": date_from.strftime("%d.%m.%Y"),
                "ledger": ledger["before"],
                "opening": opening,
                "difference": opening - ledger["before"],
            },
            money,
        ),
        Note(
            pgettext(
                "report",
                "Ledger check: the entries dated up to %(day)s sum to %(ledger)s so'm, the "
                "closing balance is %(closing)s so'm; difference %(difference)s so'm.",
            ),
            {
                "day": date_to.strftime("%d.%m.%Y"),
                "ledger": ledger["upto"],
                "closing": closing,
                "difference": closing - ledger["upto"],
            },
            money,
        ),
        Note(
            pgettext(
                "report",
                "A cancelled entry (storno) counts in the figure of the entry it cancels, with "
                "the opposite sign.",
            )
        ),
    ]


# ----------------------------------------------------------------------------------- finance

CHANNEL_ORDER = ("cashier", "bank", "payme", "click")


def _rate(vals: dict[str, Any]) -> None:
    vals["rate"] = collection_rate(vals.get("charged") or 0, vals.get("paid") or 0)


async def finance(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Collections against charges (collection rate) by MFY and customer category, and the
    money collected by channel and day."""
    filters = await place_filters(conn, f)
    rows = await billing.collections(conn, f.date_from, f.date_to, f.scope, f.lang)
    for r in rows:
        _rate(r)
    table_rows = with_subtotals(
        rows,
        [(2, "mahalla_id", "mahalla")],
        ["accounts", "charged", "paid"],
        "mahalla",
        derived=_rate,
    )
    by_cat: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = by_cat.setdefault(
            r["category"], {"category": r["category"], "accounts": 0, "charged": 0, "paid": 0}
        )
        for k in ("accounts", "charged", "paid"):
            c[k] += r[k]
    cat_rows = [Row(c) for c in by_cat.values()]
    for c in by_cat.values():
        _rate(c)
    total = total_row(by_cat.values(), ["accounts", "charged", "paid"], "category", "")
    _rate(total.values)
    # the consolidated report: collections per branch, adding up to the totals (branches.md)
    by_branch: dict[str, dict[str, Any]] = {}
    for r in rows:
        label = _branch_label(r)
        b = by_branch.setdefault(label, {"branch": label, "accounts": 0, "charged": 0, "paid": 0})
        for k in ("accounts", "charged", "paid"):
            b[k] += r[k]
    for b in by_branch.values():
        _rate(b)
    branch_total = total_row(by_branch.values(), ["accounts", "charged", "paid"], "branch", "")
    _rate(branch_total.values)
    cols = [
        Column("mahalla", L_MAHALLA),
        Column("category", L_CATEGORY, codes=CATEGORY),
        Column("accounts", L_ACCOUNTS, "int"),
        Column("charged", L_CHARGED, "money"),
        Column("paid", pgettext("report", "Collected"), "money"),
        Column("rate", L_RATE, "pct"),
    ]
    daily = await billing.collections_by_day(conn, f.date_from, f.date_to, f.scope)
    day_table, channel_table, collected = _by_channel(daily)
    paid = int(total.values["paid"])
    rep = _report(
        "finance",
        pgettext("report", "Collections against charges"),
        [
            Table("by_mahalla", pgettext("report", "Collection rate by MFY"), cols, table_rows),
            Table(
                "by_category",
                pgettext("report", "Collection rate by customer category"),
                cols[1:],
                [*cat_rows, total],
            ),
            day_table,
            channel_table,
        ],
        f,
        filters,
    )
    if any(r["branch"] for r in rows):
        rep.tables.insert(
            2,
            Table(
                "by_branch",
                pgettext("report", "Collection rate by branch"),
                [Column("branch", L_BRANCH, codes=NO_BRANCH), *cols[2:]],
                [*(Row(b) for b in sorted(by_branch.values(), key=_branch_order)), branch_total],
            ),
        )
    rep.notes = [
        Note(
            pgettext(
                "report",
                "Collection rate = collected / charged x 100. Collected is the money "
                "received less cancelled payments.",
            )
        ),
        Note(
            pgettext(
                "report",
                "Collected by channel in total: %(collected)s so'm; collected by category in "
                "total: %(paid)s so'm; difference %(difference)s so'm.",
            ),
            {"collected": collected, "paid": paid, "difference": collected - paid},
            ("collected", "paid", "difference"),
        ),
    ]
    return rep


def _by_channel(daily: list[dict[str, Any]]) -> tuple[Table, Table, int]:
    """The day x channel table, the per-channel table and the sum of both (tiyin)."""
    seen = {r["channel"] for r in daily}
    channels = [c for c in CHANNEL_ORDER if c in seen] + sorted(seen - set(CHANNEL_ORDER))
    days: dict[date, dict[str, Any]] = {}
    per_channel: dict[str, dict[str, Any]] = {
        c: {"channel": c, "payments": 0, "paid": 0} for c in channels
    }
    for r in daily:
        d = days.setdefault(r["day"], {"day": r["day"], "total": 0} | dict.fromkeys(channels, 0))
        d[r["channel"]] += int(r["paid"])
        d["total"] += int(r["paid"])
        per_channel[r["channel"]]["payments"] += int(r["payments"])
        per_channel[r["channel"]]["paid"] += int(r["paid"])
    collected = sum(int(r["paid"]) for r in daily)
    for c in per_channel.values():
        c["share"] = round(100.0 * c["paid"] / collected, 2) if collected else None
    day_cols = [
        Column("day", pgettext("report", "Day"), "date"),
        *(Column(c, CHANNEL.get(c, Msg(c)), "money") for c in channels),
        Column("total", pgettext("report", "Total"), "money"),
    ]
    day_rows = [Row(d) for d in days.values()]
    day_rows.append(total_row(days.values(), [*channels, "total"], "day", ""))
    ch_rows = [Row(c) for c in per_channel.values()]
    ch_total = total_row(per_channel.values(), ["payments", "paid"], "channel", "")
    ch_total.values["share"] = 100.0 if collected else None
    return (
        Table(
            "by_day",
            pgettext("report", "Collections by day and channel"),
            day_cols,
            day_rows,
            note=pgettext("report", "A day with no payment is left out."),
        ),
        Table(
            "by_channel",
            pgettext("report", "Collections by channel"),
            [
                Column("channel", pgettext("report", "Channel"), codes=CHANNEL),
                Column("payments", pgettext("report", "Payments"), "int"),
                Column("paid", pgettext("report", "Collected"), "money"),
                Column("share", pgettext("report", "Share, %"), "pct"),
            ],
            [*ch_rows, ch_total],
        ),
        collected,
    )


# ------------------------------------------------------------------------------------- legal

LEGAL_COLUMNS = [
    Column("number", L_ACCOUNT),
    Column("name", L_NAME),
    Column("kind", pgettext("report", "Customer"), codes=CATEGORY),
    Column("inn", pgettext("report", "INN")),
    Column("phone", L_PHONE),
    Column("address", L_ADDRESS),
    Column("b0", pgettext("report", "0-30 days"), "money"),
    Column("b1", pgettext("report", "31-60 days"), "money"),
    Column("b2", pgettext("report", "61-90 days"), "money"),
    Column("b3", pgettext("report", "over 90 days"), "money"),
    Column("debt", pgettext("report", "Debt"), "money"),
    Column("oldest", pgettext("report", "Oldest unpaid"), "date"),
]
THRESHOLD = pgettext("report", "Debts from")


async def legal(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Debtors above a threshold with FIFO aging buckets (from billing) and contact data;
    legal entities and budget bodies apart from households."""
    filters = await place_filters(conn, f)
    rows = await billing.debtors(conn, f.date_to, f.scope, f.threshold_tiyin, f.lang)
    for r in rows:
        r.pop("language", None)
        r.pop("district", None)
    money = ["b0", "b1", "b2", "b3", "debt"]
    orgs = [r for r in rows if r["kind"] != "household"]
    homes = [r for r in rows if r["kind"] == "household"]
    rep = Report(
        "legal",
        pgettext("report", "Debtors by age of debt"),
        [
            Table(
                "organisations",
                pgettext("report", "Legal entities and budget organisations"),
                LEGAL_COLUMNS,
                [Row(r) for r in orgs] + [total_row(orgs, money, "number", "")],
            ),
            Table(
                "households",
                pgettext("report", "Households"),
                LEGAL_COLUMNS,
                [Row(r) for r in homes] + [total_row(homes, money, "number", "")],
            ),
        ],
        {**f.params(), "threshold (so'm)": f"{f.threshold_tiyin / 100:.2f}"},
        date_from=f.date_from,
        date_to=f.date_to,
        filters=[*filters, (THRESHOLD, format_som(f.threshold_tiyin))],
    )
    rep.notes = [
        Note(
            pgettext(
                "report",
                "The debt is what the customer owes on %(day)s (the debit part of the closing "
                "balance). Payments settle the oldest charges first; a charge's age counts "
                "from its value date.",
            ),
            {"day": f.date_to.strftime("%d.%m.%Y")},
        )
    ]
    return rep


# -------------------------------------------------------------------------- customer service

REQUEST_COLUMNS = [
    Column("received_at", pgettext("report", "Received"), "datetime"),
    Column("number", L_ACCOUNT),
    Column("name", L_NAME),
    Column("channel", pgettext("report", "How"), codes=REQUEST_CHANNEL),
    Column("kind", pgettext("report", "Request"), codes=REQUEST_KIND),
    Column("subject", pgettext("report", "Subject")),
    Column("status", L_STATUS, codes=REQUEST_STATUS),
    Column("resolved_at", pgettext("report", "Resolved"), "datetime"),
    Column("resolution", pgettext("report", "Resolution")),
]


async def customer_service(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Customer requests and disputed bills received in the period, estimated bills,
    estimated or implausible consumption, stopped meters, accounts without a meter."""
    filters = await place_filters(conn, f)
    requests = await billing.customer_requests(conn, f.ts_from, f.ts_to, f.scope, f.lang)
    disputes = [r for r in requests if r["kind"] == "bill_dispute"]
    summary: dict[str, dict[str, Any]] = {}
    for r in requests:
        s = summary.setdefault(
            r["kind"], {"kind": r["kind"], "received": 0, "closed": 0, "open": 0}
        )
        s["received"] += 1
        s["closed" if r["status"] in {"resolved", "rejected"} else "open"] += 1
    estimated = await billing.estimated_bills(conn, f.date_from, f.date_to, f.scope, f.lang)
    flagged = await billing.flagged_consumption(
        conn, f.date_from, f.date_to, f.scope, billing.IMPLAUSIBLE, lang=f.lang
    )
    stopped = await billing.flagged_consumption(
        conn, f.date_from, f.date_to, f.scope, billing.STOPPED, lang=f.lang
    )
    no_meter = await billing.metered_without_meter(conn, f.scope, f.lang)
    flag_cols = [
        Column("number", L_ACCOUNT),
        Column("name", L_NAME),
        Column("phone", L_PHONE),
        Column("address", L_ADDRESS),
        Column("meter", L_METER),
        Column("period", L_MONTH, "month"),
        Column("volume_m3", pgettext("report", "Volume, m3"), "float"),
        Column("estimated_m3", pgettext("report", "Estimated, m3"), "float"),
        Column("flags", pgettext("report", "Why"), codes=FLAG),
    ]
    nm_cols = [
        Column("number", L_ACCOUNT),
        Column("name", L_NAME),
        Column("phone", L_PHONE),
        Column("address", L_ADDRESS),
        Column("status", L_STATUS, codes=STATUS),
    ]
    sum_keys = ["received", "closed", "open"]
    rep = _report(
        "customer_service",
        pgettext("report", "Customer service: requests, disputed bills and estimates"),
        [
            Table(
                "requests_by_kind",
                pgettext("report", "Requests by kind"),
                [
                    Column("kind", pgettext("report", "Request"), codes=REQUEST_KIND),
                    Column("received", pgettext("report", "Received"), "int"),
                    Column("closed", pgettext("report", "Resolved or rejected"), "int"),
                    Column("open", pgettext("report", "Still open"), "int"),
                ],
                [Row(s) for s in summary.values()]
                + [total_row(summary.values(), sum_keys, "kind", "")],
            ),
            Table(
                "requests",
                pgettext("report", "Requests received"),
                REQUEST_COLUMNS,
                [Row(r) for r in requests],
            ),
            Table(
                "disputes",
                pgettext("report", "Disputed bills"),
                [
                    Column("received_at", pgettext("report", "Received"), "datetime"),
                    Column("number", L_ACCOUNT),
                    Column("name", L_NAME),
                    Column("invoice", pgettext("report", "Invoice")),
                    Column("invoice_period", L_MONTH, "month"),
                    Column("invoice_amount", pgettext("report", "Billed"), "money"),
                    Column("disputed", pgettext("report", "Disputed"), "money"),
                    Column("status", L_STATUS, codes=REQUEST_STATUS),
                    Column("resolution", pgettext("report", "Resolution")),
                ],
                [Row(r) for r in disputes]
                + [total_row(disputes, ["invoice_amount", "disputed"], "received_at", "")],
            ),
            Table(
                "estimated_bills",
                pgettext("report", "Estimated bills"),
                [
                    Column("number", L_ACCOUNT),
                    Column("name", L_NAME),
                    Column("address", L_ADDRESS),
                    Column("invoice", pgettext("report", "Invoice")),
                    Column("period", L_MONTH, "month"),
                    Column("volume_m3", pgettext("report", "Volume, m3"), "float"),
                    Column("amount", pgettext("report", "Billed"), "money"),
                ],
                [Row(r) for r in estimated],
            ),
            Table(
                "flagged",
                pgettext("report", "Estimated or implausible consumption"),
                flag_cols,
                [Row(r) for r in flagged],
            ),
            Table(
                "stopped",
                pgettext("report", "Stopped meters"),
                flag_cols,
                [Row(r) for r in stopped],
            ),
            Table(
                "no_meter",
                pgettext("report", "Metered accounts without a meter"),
                nm_cols,
                [Row(r) for r in no_meter],
            ),
        ],
        f,
        filters,
    )
    rep.notes = [
        Note(
            pgettext(
                "report",
                "Requests are those registered in the table of customer requests; a request "
                "without an account is counted only when the form is not filtered by place.",
            )
        )
    ]
    return rep


# --------------------------------------------------------------------------------- technical


async def technical(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Consumption per zone and category, water balance and NRW per zone, meter faults,
    pressure compliance, alarm summary, gateway availability."""
    consumption = await billing.consumption_by_zone(conn, f.date_from, f.date_to)
    faults = await billing.meter_faults(conn, f.date_from, f.date_to)
    balance = await network.water_balance(conn, f.date_from, f.date_to)
    pressure = await network.pressure_compliance(conn, f.ts_from, f.ts_to)
    alarms = await network.alarm_summary(conn, f.ts_from, f.ts_to)
    avail = await network.gateway_availability(conn, f.ts_from, f.ts_to)
    for r in consumption + faults:
        r["zone"] = r["zone"] or "-"
    balance_total = total_row(
        balance, ["billed_m3", "inflow_m3", "consumption_m3", "losses_m3"], "zone", ""
    )
    inflow = balance_total.values["inflow_m3"]
    balance_total.values["nrw_pct"] = (
        round(100.0 * balance_total.values["losses_m3"] / inflow, 2) if inflow else None
    )
    rep = _report(
        "technical",
        pgettext("report", "Production and technical report"),
        [
            Table(
                "consumption",
                pgettext("report", "Billed consumption by zone"),
                [
                    Column("zone", L_ZONE, codes=NO_ZONE),
                    Column("zone_name", L_ZONE_NAME),
                    Column("category", L_CATEGORY, codes=CATEGORY),
                    Column("accounts", L_ACCOUNTS, "int"),
                    Column("bills", pgettext("report", "Bills"), "int"),
                    Column("billed_m3", pgettext("report", "Billed, m3"), "float"),
                    Column("estimated_m3", pgettext("report", "of it estimated, m3"), "float"),
                ],
                [Row(r) for r in consumption]
                + [
                    total_row(
                        consumption, ["accounts", "bills", "billed_m3", "estimated_m3"], "zone", ""
                    )
                ],
            ),
            Table(
                "water_balance",
                pgettext("report", "Water balance and non-revenue water by zone"),
                [
                    Column("zone", L_ZONE),
                    Column("name", L_ZONE_NAME),
                    Column("billed_m3", pgettext("report", "Billed, m3"), "float"),
                    Column("inflow_m3", pgettext("report", "Inflow, m3"), "float"),
                    Column("consumption_m3", pgettext("report", "Consumption, m3"), "float"),
                    Column("losses_m3", pgettext("report", "Losses, m3"), "float"),
                    Column("nrw_pct", pgettext("report", "NRW, %"), "pct"),
                ],
                [Row(r) for r in balance] + [balance_total],
                note=pgettext(
                    "report",
                    "Inflow, consumption and losses come from the daily water balance of "
                    "the leak analytics; NRW = losses / inflow.",
                ),
            ),
            Table(
                "meter_faults",
                pgettext("report", "Meter faults"),
                [
                    Column("meter", L_METER),
                    Column("model", pgettext("report", "Model")),
                    Column("zone", L_ZONE, codes=NO_ZONE),
                    Column("number", L_ACCOUNT),
                    Column("name", L_NAME),
                    Column("period", L_MONTH, "month"),
                    Column("volume_m3", pgettext("report", "Volume, m3"), "float"),
                    Column("faults", pgettext("report", "Fault"), codes=FLAG),
                ],
                [Row(r) for r in faults],
            ),
            Table(
                "pressure",
                pgettext("report", "Pressure compliance"),
                [
                    Column("zone", L_ZONE),
                    Column("min_bar", pgettext("report", "Min, bar"), "float"),
                    Column("max_bar", pgettext("report", "Max, bar"), "float"),
                    Column("hours", pgettext("report", "Hours"), "int"),
                    Column("ok_hours", pgettext("report", "Hours in range"), "int"),
                    Column("compliance", pgettext("report", "Compliance, %"), "pct"),
                    Column("lowest_bar", pgettext("report", "Lowest, bar"), "float"),
                ],
                [Row(r) for r in pressure],
            ),
            Table(
                "alarms",
                pgettext("report", "Alarm summary"),
                [
                    Column("priority", pgettext("report", "Priority"), codes=PRIORITY),
                    Column("kind", pgettext("report", "Alarm"), codes=ALARM_KIND),
                    Column("raised", pgettext("report", "Raised"), "int"),
                    Column("acked", pgettext("report", "Acknowledged"), "int"),
                    Column(
                        "minutes_to_ack", pgettext("report", "Mean minutes to acknowledge"), "float"
                    ),
                ],
                [Row(r) for r in alarms],
            ),
            Table(
                "gateways",
                pgettext("report", "Gateway availability"),
                [
                    Column("gateway", pgettext("report", "Gateway")),
                    Column("devices", pgettext("report", "Devices"), "int"),
                    Column("devices_offline", pgettext("report", "Devices offline now"), "int"),
                    Column("availability", pgettext("report", "Availability, %"), "pct"),
                ],
                [Row(r) for r in avail],
            ),
        ],
        f,
        [],
    )
    rep.notes = [
        Note(
            pgettext(
                "report",
                "Billed volume: the latest bill of each account and month (a correction "
                "replaces the first bill). The technical form covers the whole network: it is "
                "not filtered by place.",
            )
        )
    ]
    return rep


BUILDERS = {
    "accounting": accounting,
    "finance": finance,
    "legal": legal,
    "customer_service": customer_service,
    "technical": technical,
}
