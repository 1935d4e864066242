"""The five department reports, built from billing's, alarms' and the telemetry tables.

Figures come from the ledger (sums of entries) and billing's own functions (FIFO aging);
nothing is recomputed differently here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from api.deps import AppState
from api.reports.model import Column, Report, Row, Table, total_row, with_subtotals
from api.sql import fetch_all
from api.syncdb import run_sync

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

    def address_sql(self, alias: str = "ad") -> tuple[str, dict[str, Any]]:
        conds = [
            f"{alias}.{k} = %({k})s"
            for k in ("district_id", "mahalla_id", "street_id")
            if getattr(self, k) is not None
        ]
        return (" AND ".join(conds) or "true"), {
            "district_id": self.district_id,
            "mahalla_id": self.mahalla_id,
            "street_id": self.street_id,
            "from": self.date_from,
            "to": self.date_to,
        }

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


async def accounting(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Turnover statement per account: opening, charged, paid, adjusted, closing; subtotals
    per street, mahalla and district. closing = opening + charged - paid + adjusted."""
    where, args = f.address_sql()
    rows = await fetch_all(
        conn,
        f"""WITH e AS (
              SELECT account_id,
                coalesce(sum(amount_tiyin) FILTER (WHERE value_date < %(from)s), 0) AS opening,
                coalesce(sum(amount_tiyin) FILTER (WHERE value_date >= %(from)s
                         AND kind IN ('charge', 'penalty')), 0) AS charged,
                coalesce(-sum(amount_tiyin) FILTER (WHERE value_date >= %(from)s
                         AND kind = 'payment'), 0) AS paid,
                coalesce(sum(amount_tiyin) FILTER (WHERE value_date >= %(from)s
                         AND kind IN ('adjustment', 'reversal', 'opening_balance')), 0)
                         AS adjusted
              FROM ledger WHERE value_date <= %(to)s GROUP BY account_id)
            SELECT ad.district_id, ad.district_uz AS district, ad.mahalla_id,
                   ad.mahalla_uz AS mahalla, ad.street_id, ad.street_uz AS street,
                   a.number, a.name, a.kind,
                   coalesce(e.opening, 0)::bigint AS opening,
                   coalesce(e.charged, 0)::bigint AS charged,
                   coalesce(e.paid, 0)::bigint AS paid,
                   coalesce(e.adjusted, 0)::bigint AS adjusted,
                   (coalesce(e.opening, 0) + coalesce(e.charged, 0) - coalesce(e.paid, 0)
                    + coalesce(e.adjusted, 0))::bigint AS closing
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            LEFT JOIN e ON e.account_id = a.id
            WHERE {where}
            ORDER BY ad.district_uz, ad.district_id, ad.mahalla_uz, ad.mahalla_id,
                     ad.street_uz, ad.street_id, a.number""",
        args,
    )
    for r in rows:
        r["label"] = r["number"]
    money = ["opening", "charged", "paid", "adjusted", "closing"]
    table_rows = with_subtotals(rows, ADDRESS_GROUPS, money, "label")
    for row in table_rows:  # subtotal rows name their group
        if row.level:
            row.values["number"] = row.values["label"]
    cols = [
        Column("number", "Account"),
        Column("name", "Name"),
        Column("district", "District"),
        Column("mahalla", "Mahalla"),
        Column("street", "Street"),
        Column("opening", "Opening", "money"),
        Column("charged", "Charged", "money"),
        Column("paid", "Paid", "money"),
        Column("adjusted", "Adjusted", "money"),
        Column("closing", "Closing", "money"),
    ]
    return Report(
        "accounting",
        "Turnover statement (accounting)",
        [Table("Turnover", cols, table_rows)],
        f.params(),
    )


# ----------------------------------------------------------------------------------- finance


def _rate(vals: dict[str, Any]) -> None:
    ch = vals.get("charged") or 0
    vals["rate"] = round(100.0 * (vals.get("paid") or 0) / ch, 2) if ch else None


async def finance(conn: AsyncConnection[Any], f: Filters) -> Report:
    """Collections against charges (collection rate) by mahalla and customer category."""
    where, args = f.address_sql()
    rows = await fetch_all(
        conn,
        f"""SELECT ad.mahalla_id, ad.mahalla_uz AS mahalla, a.category,
                   count(DISTINCT a.id) AS accounts,
                   coalesce(sum(l.amount_tiyin) FILTER (WHERE l.kind IN ('charge', 'penalty')),
                            0)::bigint AS charged,
                   coalesce(-sum(l.amount_tiyin) FILTER (WHERE l.kind = 'payment'), 0)::bigint
                            AS paid
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            LEFT JOIN ledger l ON l.account_id = a.id
                 AND l.value_date BETWEEN %(from)s AND %(to)s
            WHERE {where}
            GROUP BY ad.mahalla_id, ad.mahalla_uz, a.category
            ORDER BY ad.mahalla_uz, ad.mahalla_id, a.category""",
        args,
    )
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


def _aging(conn: Any, as_of: date) -> dict[int, dict[str, Any]]:
    from billing.balances import aging_by_account

    out = {}
    for acc, a in aging_by_account(conn, as_of).items():
        out[acc] = {
            "b0": a.buckets[0],
            "b1": a.buckets[1],
            "b2": a.buckets[2],
            "b3": a.buckets[3],
            "debt": a.debt,
            "oldest": a.oldest_unpaid,
        }
    return out


async def legal(conn: AsyncConnection[Any], f: Filters, st: AppState) -> Report:
    """Debtors above a threshold with FIFO aging buckets (from billing) and contact data;
    legal entities and budget bodies apart from households."""
    ages = await run_sync(st, _aging, f.date_to)
    where, args = f.address_sql()
    debtors = [a for a, v in ages.items() if v["debt"] > 0 and v["debt"] >= f.threshold_tiyin]
    args["ids"] = debtors
    rows = await fetch_all(
        conn,
        f"""SELECT a.id, a.number, a.name, a.kind, a.inn, a.phone,
                   concat_ws(', ', ad.district_uz, ad.mahalla_uz,
                             ad.street_uz || ' ' || ad.house_number,
                             ad.apartment_number) AS address
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            WHERE a.id = ANY(%(ids)s) AND {where}""",
        args,
    )
    for r in rows:
        r.update(ages[r["id"]])
    rows.sort(key=lambda r: (-r["debt"], r["number"]))
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
    from billing import consumption as cons

    where, args = f.address_sql()
    implausible = (
        cons.ESTIMATED_MASK
        | cons.SPIKE
        | cons.NEGATIVE
        | cons.REVERSE
        | (cons.ROLLOVER | cons.PROLONGED_ESTIMATE)
    )
    args.update(mask=implausible, stopped=cons.LONG_ZERO)
    flagged = await fetch_all(
        conn,
        f"""SELECT a.number, a.name, a.phone,
                   concat_ws(', ', ad.mahalla_uz, ad.street_uz || ' ' || ad.house_number)
                       AS address,
                   m.serial_no AS meter, to_char(pc.period, 'YYYY-MM') AS period,
                   pc.volume_m3, pc.estimated_m3, pc.flags
            FROM period_consumption pc JOIN accounts a ON a.id = pc.account_id
            JOIN account_addresses ad ON ad.account_id = a.id
            JOIN meters m ON m.id = pc.meter_id
            WHERE pc.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
              AND {where} AND (pc.flags & %(mask)s) <> 0
            ORDER BY a.number, pc.period""",
        args,
    )
    stopped = await fetch_all(
        conn,
        f"""SELECT a.number, a.name, a.phone,
                   concat_ws(', ', ad.mahalla_uz, ad.street_uz || ' ' || ad.house_number)
                       AS address,
                   m.serial_no AS meter, to_char(pc.period, 'YYYY-MM') AS period,
                   pc.volume_m3, pc.estimated_m3, pc.flags
            FROM period_consumption pc JOIN accounts a ON a.id = pc.account_id
            JOIN account_addresses ad ON ad.account_id = a.id
            JOIN meters m ON m.id = pc.meter_id
            WHERE pc.period BETWEEN date_trunc('month', %(from)s::date) AND %(to)s
              AND {where} AND (pc.flags & %(stopped)s) <> 0
            ORDER BY a.number, pc.period""",
        args,
    )
    for r in flagged + stopped:
        r["flags"] = ", ".join(cons.flag_names(int(r["flags"])))
    no_meter = await fetch_all(
        conn,
        f"""SELECT a.number, a.name, a.phone, a.status,
                   concat_ws(', ', ad.mahalla_uz, ad.street_uz || ' ' || ad.house_number)
                       AS address
            FROM accounts a JOIN account_addresses ad ON ad.account_id = a.id
            WHERE a.metered AND a.status = 'active' AND {where}
              AND NOT EXISTS (SELECT 1 FROM service_connections c
                              WHERE c.account_id = a.id AND c.removed_at IS NULL)
            ORDER BY a.number""",
        args,
    )
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
    args = {"from": f.date_from, "to": f.date_to, "tsf": f.ts_from, "tst": f.ts_to}
    balance = await fetch_all(
        conn,
        """SELECT z.code AS zone, z.name,
                  (SELECT coalesce(sum(i.volume_m3), 0) FROM invoices i
                     JOIN accounts a ON a.id = i.account_id
                    WHERE a.zone_id = z.id AND i.period BETWEEN
                          date_trunc('month', %(from)s::date) AND %(to)s) AS billed_m3,
                  sum(d.inflow_m3) AS inflow_m3, sum(d.consumption_m3) AS consumption_m3,
                  sum(d.losses_m3) AS losses_m3,
                  (CASE WHEN sum(d.inflow_m3) > 0
                        THEN 100.0 * sum(d.losses_m3) / sum(d.inflow_m3) END)::float8 AS nrw_pct
           FROM zones z LEFT JOIN zone_leak_daily d ON d.zone_id = z.id AND d.run_id = 0
                AND d.day BETWEEN %(from)s AND %(to)s
           GROUP BY z.id, z.code, z.name ORDER BY z.code""",
        args,
    )
    pressure = await fetch_all(
        conn,
        """SELECT z.code AS zone, z.min_service_pressure_bar AS min_bar,
                  z.max_service_pressure_bar AS max_bar, count(r.*) AS hours,
                  count(r.*) FILTER (WHERE r.avg >= coalesce(z.min_service_pressure_bar,
                                                             '-infinity')
                                       AND r.avg <= coalesce(z.max_service_pressure_bar,
                                                             'infinity')) AS ok_hours,
                  min(r.min) AS lowest_bar
           FROM zones z JOIN devices d ON d.zone_id = z.id AND d.kind = 'pressure_sensor'
           JOIN points p ON p.device_id = d.id AND p.unit = 'bar'
           JOIN readings_1h r ON r.point_id = p.id AND r.bucket >= %(tsf)s
                AND r.bucket < %(tst)s
           GROUP BY z.id ORDER BY z.code""",
        args,
    )
    for r in pressure:
        r["compliance"] = round(100.0 * r["ok_hours"] / r["hours"], 2) if r["hours"] else None
    alarms = await fetch_all(
        conn,
        """SELECT a.priority, a.kind, count(*) AS raised,
                  count(*) FILTER (WHERE a.acked_at IS NOT NULL) AS acked,
                  (avg(extract(epoch FROM a.acked_at - a.raised_at) / 60.0)
                      FILTER (WHERE a.acked_at IS NOT NULL))::float8 AS minutes_to_ack
           FROM alarms a WHERE a.run_id = 0 AND a.raised_at >= %(tsf)s AND a.raised_at < %(tst)s
           GROUP BY a.priority, a.kind ORDER BY a.priority, a.kind""",
        args,
    )
    avail = await fetch_all(
        conn,
        """WITH h AS (
             SELECT gateway_id, ts, state,
                    lead(ts, 1, %(tst)s::timestamptz) OVER (PARTITION BY gateway_id ORDER BY ts)
                        AS next_ts
             FROM gateway_state_history WHERE ts < %(tst)s)
           SELECT g.code AS gateway, count(DISTINCT d.id) AS devices,
                  count(DISTINCT d.id) FILTER (WHERE ds.state = 'offline') AS devices_offline,
                  (100.0 - 100.0 * coalesce((SELECT sum(greatest(0, extract(epoch FROM
                              least(h.next_ts, %(tst)s) - greatest(h.ts, %(tsf)s))))
                           FROM h WHERE h.gateway_id = g.id AND h.state = 'offline'), 0)
                        / extract(epoch FROM %(tst)s::timestamptz - %(tsf)s::timestamptz)
                  )::float8 AS availability
           FROM gateways g LEFT JOIN devices d ON d.gateway_id = g.id
           LEFT JOIN device_state ds ON ds.device_id = d.id
           GROUP BY g.id ORDER BY g.code""",
        args,
    )
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
