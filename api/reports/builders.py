"""The five department reports: the figures come from billing's and alarms' query modules
(``billing.report_queries``, ``alarms.report_queries``); this module only shapes their rows
into report tables (columns, subtotals, totals). It holds no SQL.

Money figures follow the one definition of :mod:`billing.figures` (docs/billing.md, "Money
figures"): closing = opening + charged - paid, to the tiyin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from alarms import report_queries as network
from api.reports.model import Column, Report, Row, Table, total_row, with_subtotals
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

    def params(self) -> dict[str, str]:
        p = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        for k in ("district_id", "mahalla_id", "street_id"):
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


ADDRESS_GROUPS = [
    (1, "street_id", "street"),
    (2, "mahalla_id", "mahalla"),
    (3, "district_id", "district"),
]


# -------------------------------------------------------------------------------- accounting

TURNOVER_SUMS = [
    "opening",
    "opening_debit",
    "opening_credit",
    "charged",
    "paid",
    "closing",
    "closing_debit",
    "closing_credit",
]


async def accounting(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Turnover statement per account: opening balance (debit, credit), charged, paid,
    closing balance (debit, credit); subtotals per street, mahalla and district. The JSON
    rows also carry the net ``opening`` and ``closing`` balances."""
    rows = await billing.turnover(conn, f.date_from, f.date_to, f.scope)
    for r in rows:
        r["label"] = r["number"]
    table_rows = with_subtotals(rows, ADDRESS_GROUPS, TURNOVER_SUMS, "label")
    for row in table_rows:  # subtotal rows name their group
        if row.level:
            row.values["number"] = row.values["label"]
    cols = [
        Column("number", "Account"),
        Column("name", "Name"),
        Column("district", "District"),
        Column("mahalla", "Mahalla"),
        Column("street", "Street"),
        Column("opening_debit", "Opening debit", "money"),
        Column("opening_credit", "Opening credit", "money"),
        Column("charged", "Charged", "money"),
        Column("paid", "Paid", "money"),
        Column("closing_debit", "Closing debit", "money"),
        Column("closing_credit", "Closing credit", "money"),
    ]
    return Report(
        "accounting",
        "Turnover statement (accounting)",
        [Table("Turnover", cols, table_rows)],
        f.params(),
    )


# ----------------------------------------------------------------------------------- finance


def _rate(vals: dict[str, Any]) -> None:
    vals["rate"] = collection_rate(vals.get("charged") or 0, vals.get("paid") or 0)


async def finance(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Collections against charges (collection rate) by mahalla and customer category."""
    rows = await billing.collections(conn, f.date_from, f.date_to, f.scope)
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
    cols = [
        Column("mahalla", "Mahalla"),
        Column("category", "Category"),
        Column("accounts", "Accounts", "int"),
        Column("charged", "Charged", "money"),
        Column("paid", "Collected", "money"),
        Column("rate", "Collection rate %", "pct"),
    ]
    cat_cols = [
        Column("category", "Category"),
        Column("accounts", "Accounts", "int"),
        Column("charged", "Charged", "money"),
        Column("paid", "Collected", "money"),
        Column("rate", "Collection rate %", "pct"),
    ]
    return Report(
        "finance",
        "Collections against charges (finance)",
        [
            Table("By mahalla", cols, table_rows),
            Table("By category", cat_cols, [*cat_rows, total]),
        ],
        f.params(),
    )


# ------------------------------------------------------------------------------------- legal


async def legal(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Debtors above a threshold with FIFO aging buckets (from billing) and contact data;
    legal entities and budget bodies apart from households."""
    rows = await billing.debtors(conn, f.date_to, f.scope, f.threshold_tiyin)
    money = ["b0", "b1", "b2", "b3", "debt"]
    cols = [
        Column("number", "Account"),
        Column("name", "Name"),
        Column("kind", "Kind"),
        Column("inn", "INN"),
        Column("phone", "Phone"),
        Column("address", "Address"),
        Column("b0", "0-30 days", "money"),
        Column("b1", "31-60 days", "money"),
        Column("b2", "61-90 days", "money"),
        Column("b3", "over 90 days", "money"),
        Column("debt", "Debt", "money"),
        Column("oldest", "Oldest unpaid", "date"),
    ]
    orgs = [r for r in rows if r["kind"] != "household"]
    homes = [r for r in rows if r["kind"] == "household"]
    params = {**f.params(), "threshold (so'm)": f"{f.threshold_tiyin / 100:.2f}"}
    return Report(
        "legal",
        "Debtors with aging (legal)",
        [
            Table(
                "Legal entities and budget",
                cols,
                [Row(r) for r in orgs] + [total_row(orgs, money, "number", "")],
            ),
            Table(
                "Households",
                cols,
                [Row(r) for r in homes] + [total_row(homes, money, "number", "")],
            ),
        ],
        params,
    )


# -------------------------------------------------------------------------- customer service


async def customer_service(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Estimated or implausible consumption, stopped meters, accounts without a meter."""
    flagged = await billing.flagged_consumption(
        conn, f.date_from, f.date_to, f.scope, billing.IMPLAUSIBLE
    )
    stopped = await billing.flagged_consumption(
        conn, f.date_from, f.date_to, f.scope, billing.STOPPED
    )
    for r in flagged + stopped:
        r["flags"] = ", ".join(r["flags"])
    no_meter = await billing.metered_without_meter(conn, f.scope)
    flag_cols = [
        Column("number", "Account"),
        Column("name", "Name"),
        Column("phone", "Phone"),
        Column("address", "Address"),
        Column("meter", "Meter"),
        Column("period", "Month"),
        Column("volume_m3", "Volume m³", "float"),
        Column("estimated_m3", "Estimated m³", "float"),
        Column("flags", "Flags"),
    ]
    nm_cols = [
        Column("number", "Account"),
        Column("name", "Name"),
        Column("phone", "Phone"),
        Column("address", "Address"),
        Column("status", "Status"),
    ]
    return Report(
        "customer_service",
        "Readings to check (customer service)",
        [
            Table("Estimated or implausible", flag_cols, [Row(r) for r in flagged]),
            Table("Stopped meters", flag_cols, [Row(r) for r in stopped]),
            Table("Metered accounts without a meter", nm_cols, [Row(r) for r in no_meter]),
        ],
        f.params(),
    )


# --------------------------------------------------------------------------------- technical


async def technical(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Consumption and water balance per zone, pressure compliance, alarm summary, gateway
    availability."""
    balance = await network.water_balance(conn, f.date_from, f.date_to)
    pressure = await network.pressure_compliance(conn, f.ts_from, f.ts_to)
    alarms = await network.alarm_summary(conn, f.ts_from, f.ts_to)
    avail = await network.gateway_availability(conn, f.ts_from, f.ts_to)
    return Report(
        "technical",
        "Network report (technical)",
        [
            Table(
                "Water balance by zone",
                [
                    Column("zone", "Zone"),
                    Column("name", "Name"),
                    Column("billed_m3", "Billed m³", "float"),
                    Column("inflow_m3", "Inflow m³", "float"),
                    Column("consumption_m3", "Consumption m³", "float"),
                    Column("losses_m3", "Losses m³", "float"),
                    Column("nrw_pct", "NRW %", "pct"),
                ],
                [Row(r) for r in balance],
            ),
            Table(
                "Pressure compliance",
                [
                    Column("zone", "Zone"),
                    Column("min_bar", "Min bar", "float"),
                    Column("max_bar", "Max bar", "float"),
                    Column("hours", "Hours", "int"),
                    Column("ok_hours", "Hours in range", "int"),
                    Column("compliance", "Compliance %", "pct"),
                    Column("lowest_bar", "Lowest bar", "float"),
                ],
                [Row(r) for r in pressure],
            ),
            Table(
                "Alarm summary",
                [
                    Column("priority", "Priority"),
                    Column("kind", "Kind"),
                    Column("raised", "Raised", "int"),
                    Column("acked", "Acknowledged", "int"),
                    Column("minutes_to_ack", "Mean minutes to ack", "float"),
                ],
                [Row(r) for r in alarms],
            ),
            Table(
                "Gateway availability",
                [
                    Column("gateway", "Gateway"),
                    Column("devices", "Devices", "int"),
                    Column("devices_offline", "Devices offline now", "int"),
                    Column("availability", "Availability %", "pct"),
                ],
                [Row(r) for r in avail],
            ),
        ],
        f.params(),
    )
