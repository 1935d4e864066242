"""What the technical department report reads about the network, on the API's async
connection: the water balance per zone (leak analytics' ``zone_leak_daily`` against the
billed volume), pressure compliance against each zone's service band (hourly rollups), the
alarm summary and gateway availability.

Each function returns plain rows (dicts); the API shapes them into report tables
(``api/reports``). Every query is a fixed text; values travel as parameters.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def _rows(conn: AsyncConnection[Any], sql: str, args: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


async def water_balance(
    conn: AsyncConnection[Any], date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """Per zone over the days ``date_from``..``date_to``: the billed volume of the months in
    the period (the latest invoice of each of the zone's accounts and months: a correction
    replaces the regular bill), inflow, consumption and losses from the leak analytics' daily
    balance (live run), and the non-revenue water share in %."""
    return await _rows(
        conn,
        """SELECT z.code AS zone, z.name,
                  (SELECT coalesce(sum(i.volume_m3), 0)::float8 FROM (
                     SELECT DISTINCT ON (i.account_id, i.period) i.volume_m3 FROM invoices i
                       JOIN accounts a ON a.id = i.account_id
                      WHERE a.zone_id = z.id AND i.period BETWEEN
                            date_trunc('month', %(from)s::date) AND %(to)s
                      ORDER BY i.account_id, i.period, i.id DESC) i) AS billed_m3,
                  sum(d.inflow_m3) AS inflow_m3, sum(d.consumption_m3) AS consumption_m3,
                  sum(d.losses_m3) AS losses_m3,
                  (CASE WHEN sum(d.inflow_m3) > 0
                        THEN 100.0 * sum(d.losses_m3) / sum(d.inflow_m3) END)::float8 AS nrw_pct
           FROM zones z LEFT JOIN zone_leak_daily d ON d.zone_id = z.id AND d.run_id = 0
                AND d.day BETWEEN %(from)s AND %(to)s
           GROUP BY z.id, z.code, z.name ORDER BY z.code""",
        {"from": date_from, "to": date_to},
    )


async def pressure_compliance(
    conn: AsyncConnection[Any], ts_from: datetime, ts_to: datetime
) -> list[dict[str, Any]]:
    """Per zone with pressure sensors, over ``[ts_from, ts_to)``: the hours measured, the
    hours whose mean pressure stayed in the zone's service band, ``compliance`` (that share
    in %, None without data) and the lowest pressure (bar)."""
    rows = await _rows(
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
        {"tsf": ts_from, "tst": ts_to},
    )
    for r in rows:
        r["compliance"] = round(100.0 * r["ok_hours"] / r["hours"], 2) if r["hours"] else None
    return rows


async def alarm_summary(
    conn: AsyncConnection[Any], ts_from: datetime, ts_to: datetime
) -> list[dict[str, Any]]:
    """Alarms raised in ``[ts_from, ts_to)`` (live run) per priority and kind: how many, how
    many were acknowledged, and the mean minutes to acknowledge."""
    return await _rows(
        conn,
        """SELECT a.priority, a.kind, count(*) AS raised,
                  count(*) FILTER (WHERE a.acked_at IS NOT NULL) AS acked,
                  (avg(extract(epoch FROM a.acked_at - a.raised_at) / 60.0)
                      FILTER (WHERE a.acked_at IS NOT NULL))::float8 AS minutes_to_ack
           FROM alarms a WHERE a.run_id = 0 AND a.raised_at >= %(tsf)s AND a.raised_at < %(tst)s
           GROUP BY a.priority, a.kind ORDER BY a.priority, a.kind""",
        {"tsf": ts_from, "tst": ts_to},
    )


async def gateway_availability(
    conn: AsyncConnection[Any], ts_from: datetime, ts_to: datetime
) -> list[dict[str, Any]]:
    """Per gateway: its devices, those offline now, and the share of ``[ts_from, ts_to)`` it
    was not offline (%), from its state history."""
    return await _rows(
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
        {"tsf": ts_from, "tst": ts_to},
    )
