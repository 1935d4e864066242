"""Zone / DMA: inflow, the pressure band, the minimum night flow trend and the water balance.

Inflow is the sum of the zone's district flow meters, each signed by ``devices.flow_sign``
(+1 into the zone). The water balance per day compares inflow with what the zone's customer
meters registered (the daily increase of their volume registers); the difference is the loss
and NRW % = losses / inflow. The night window is 02:00-04:00 local time (Asia/Tashkent).
"""

from __future__ import annotations

from dashboards.boards import alarms
from dashboards.boards.common import DEVICE, LINK_ALL, ZONE, columns
from dashboards.i18n import N_
from dashboards.model import Dashboard, Override, Panel, Row, SqlTarget, Threshold
from dashboards.sql import (
    FLOW_POINT,
    FLOW_TO_M3H,
    IN_ZONES,
    LOCAL_TZ,
    PRESSURE_POINT,
    PRESSURE_TO_BAR,
    VOLUME_POINT,
    series_source,
)

_INFLOW_POINTS = f"""
    SELECT p.id, d.zone_id, d.flow_sign * {FLOW_TO_M3H} AS k
    FROM points p
    JOIN devices d ON d.id = p.device_id
    JOIN zones z ON z.id = d.zone_id
    WHERE d.kind = 'district_meter' AND d.enabled AND {FLOW_POINT} AND {IN_ZONES}
"""  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables

INFLOW = Panel(
    type="timeseries",
    title=N_("Zone inflow"),
    description=N_("Sum of the zone's district meters, signed by direction (into the zone = +)."),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS ({_INFLOW_POINTS}), src AS (
  {series_source("SELECT id FROM pts")}
), per_point AS (
    SELECT $__timeGroup(src.ts, $__interval) AS t, src.point_id, avg(src.avg) AS q
    FROM src GROUP BY 1, 2
)
SELECT pp.t AS "time", z.code AS metric, sum(pp.q * pts.k) AS inflow_m3h
FROM per_point pp
JOIN pts ON pts.id = pp.point_id
JOIN zones z ON z.id = pts.zone_id
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=12,
    h=9,
    unit="m3/h",
)

PRESSURE_BAND = Panel(
    type="timeseries",
    title=N_("Pressure band (lowest, average, highest sensor) and service limits"),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS (
    SELECT p.id, d.zone_id, {PRESSURE_TO_BAR} AS k
    FROM points p
    JOIN devices d ON d.id = p.device_id
    JOIN zones z ON z.id = d.zone_id
    WHERE {PRESSURE_POINT} AND d.enabled AND {IN_ZONES}
), src AS (
  {series_source("SELECT id FROM pts")}
)
SELECT $__timeGroupAlias(src.ts, $__interval), z.code AS zone,
       min(src.min * pts.k) AS lowest_bar,
       avg(src.avg * pts.k) AS average_bar,
       max(src.max * pts.k) AS highest_bar,
       min(z.min_service_pressure_bar) AS service_min_bar,
       min(z.max_service_pressure_bar) AS service_max_bar
FROM src
JOIN pts ON pts.id = src.point_id
JOIN zones z ON z.id = pts.zone_id
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=12,
    h=9,
    unit="pressurebar",
    series_label="zone",
    columns={
        "lowest_bar": N_("Lowest sensor"),
        "average_bar": N_("Average"),
        "highest_bar": N_("Highest sensor"),
        "service_min_bar": N_("Service minimum"),
        "service_max_bar": N_("Service maximum"),
    },
)

MNF = Panel(
    type="timeseries",
    title=N_("Minimum night flow (02:00-04:00) per day"),
    description=N_(
        "The lowest hourly zone inflow in the night window. A rising trend means a growing "
        "leak: at night almost nobody uses water."
    ),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS ({_INFLOW_POINTS}), hourly AS (
    SELECT b.bucket, pts.zone_id, sum(b.avg * pts.k) AS q_m3h
    FROM readings_1h b
    JOIN pts ON pts.id = b.point_id
    WHERE $__timeFilter(b.bucket)
    GROUP BY 1, 2
)
SELECT date_trunc('day', h.bucket AT TIME ZONE '{LOCAL_TZ}') AT TIME ZONE '{LOCAL_TZ}'
           AS "time",
       z.code AS metric,
       min(h.q_m3h) / 3.6 AS mnf_lps
FROM hourly h
JOIN zones z ON z.id = h.zone_id
WHERE extract(hour FROM h.bucket AT TIME ZONE '{LOCAL_TZ}') >= 2
  AND extract(hour FROM h.bucket AT TIME ZONE '{LOCAL_TZ}') < 4
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=12,
    h=9,
    unit="flowlps",
    custom={"drawStyle": "bars"},
)

_WATER_BALANCE = f"""
WITH inflow AS (
    SELECT b.bucket, d.zone_id,
           sum(b.avg * d.flow_sign * {FLOW_TO_M3H} * 24.0) AS m3
    FROM readings_1d b
    JOIN points p ON p.id = b.point_id
    JOIN devices d ON d.id = p.device_id
    WHERE d.kind = 'district_meter' AND {FLOW_POINT} AND $__timeFilter(b.bucket)
    GROUP BY 1, 2
), deltas AS (
    SELECT b.bucket, d.zone_id,
           b.last - lag(b.last) OVER (PARTITION BY b.point_id ORDER BY b.bucket) AS delta
    FROM readings_1d b
    JOIN points p ON p.id = b.point_id
    JOIN devices d ON d.id = p.device_id
    WHERE d.kind = 'customer_meter' AND {VOLUME_POINT}
      AND b.bucket >= $__timeFrom()::timestamptz - interval '1 day'
      AND b.bucket <= $__timeTo()::timestamptz
), consumption AS (
    SELECT bucket, zone_id, sum(greatest(delta, 0)) AS m3
    FROM deltas
    WHERE delta IS NOT NULL AND $__timeFilter(bucket)
    GROUP BY 1, 2
)
SELECT i.bucket AS "time", z.code AS zone,
       i.m3 AS inflow_m3,
       coalesce(c.m3, 0) AS consumption_m3,
       i.m3 - coalesce(c.m3, 0) AS losses_m3,
       CASE WHEN i.m3 > 0 THEN 100.0 * (i.m3 - coalesce(c.m3, 0)) / i.m3 END AS nrw_pct
FROM inflow i
JOIN zones z ON z.id = i.zone_id
LEFT JOIN consumption c ON c.zone_id = i.zone_id AND c.bucket = i.bucket
WHERE {IN_ZONES}
ORDER BY 1, 2
"""  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables

WATER_BALANCE = Panel(
    type="table",
    title=N_("Daily water balance (telemetry)"),
    description=N_(
        "Inflow = daily average flow of the district meters × 24 h. Consumption = the daily "
        "increase of the customer meters' volume registers (meters not read by telemetry are "
        "missing here, so NRW is an upper bound)."
    ),
    targets=(SqlTarget(sql=_WATER_BALANCE),),
    w=12,
    h=9,
    decimals=1,
    columns=columns("time", "zone", "inflow_m3", "consumption_m3", "losses_m3", "nrw_pct"),
)

NRW = Panel(
    type="timeseries",
    title=N_("NRW % per day (telemetry)"),
    targets=(
        SqlTarget(
            format="time_series",
            # Grafana panel SQL built from this package's constants; Grafana fills its variables
            sql=f"SELECT wb.time, wb.zone AS metric, wb.nrw_pct FROM ({_WATER_BALANCE}) wb "  # noqa: S608
            "ORDER BY 1",
        ),
    ),
    w=12,
    h=9,
    unit="percent",
    thresholds=(Threshold(None, "green"), Threshold(20, "orange"), Threshold(35, "red")),
    custom={"thresholdsStyle": {"mode": "dashed"}},
)

MONTHLY_BALANCE = Panel(
    type="table",
    title=N_("Monthly water balance: inflow against billed volume"),
    description=N_(
        "Inflow of the month from the district meters against the volume invoiced to the "
        "zone's accounts for that month (billing). Non-revenue water = inflow - billed: real "
        "losses, unbilled use and meter under-registration together."
    ),
    targets=(
        SqlTarget(
            requires=("invoices", "accounts"),
            sql=f"""
WITH inflow AS (
    SELECT date_trunc('month', b.bucket)::date AS period, d.zone_id,
           sum(b.avg * d.flow_sign * {FLOW_TO_M3H} * 24.0) AS m3,
           count(DISTINCT b.bucket) AS days
    FROM readings_1d b
    JOIN points p ON p.id = b.point_id
    JOIN devices d ON d.id = p.device_id
    WHERE d.kind = 'district_meter' AND {FLOW_POINT} AND $__timeFilter(b.bucket)
    GROUP BY 1, 2
), billed AS (
    SELECT i.period, a.zone_id, sum(i.volume_m3) AS m3
    FROM invoices i
    JOIN accounts a ON a.id = i.account_id
    WHERE i.period BETWEEN date_trunc('month', $__timeFrom()::timestamptz)::date
                       AND $__timeTo()::date
    GROUP BY 1, 2
)
SELECT i.period::timestamp AT TIME ZONE 'UTC' AS "time", z.code AS zone, i.days,
       i.m3 AS inflow_m3, coalesce(b.m3, 0) AS billed_m3,
       i.m3 - coalesce(b.m3, 0) AS nrw_m3,
       CASE WHEN i.m3 > 0 THEN 100.0 * (i.m3 - coalesce(b.m3, 0)) / i.m3 END AS nrw_pct
FROM inflow i
JOIN zones z ON z.id = i.zone_id
LEFT JOIN billed b ON b.zone_id = i.zone_id AND b.period = i.period
WHERE {IN_ZONES}
ORDER BY 1, 2
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=7,
    decimals=1,
    overrides=(Override("nrw_pct", {"unit": "percent"}),),
    columns=columns(
        *("time", "zone", "inflow_m3", "billed_m3", "nrw_pct"),
        days=N_("Days with data"),
        nrw_m3=N_("Non-revenue water, m³"),
    ),
)

DEVICE_SERIES = Panel(
    type="timeseries",
    title=N_("Selected devices: every analog point"),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS (
    SELECT p.id, d.code || ' ' || p.name || coalesce(' (' || nullif(p.unit, '') || ')', '')
               AS label
    FROM points p
    JOIN devices d ON d.id = p.device_id
    WHERE d.code IN ($device) AND p.kind = 'analog'
), src AS (
  {series_source("SELECT id FROM pts")}
)
SELECT $__timeGroupAlias(src.ts, $__interval), pts.label AS metric, avg(src.avg) AS value
FROM src JOIN pts ON pts.id = src.point_id
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=9,
)

DASHBOARD = Dashboard(
    uid="suvnet-zone",
    title=N_("suvnet · Zone / DMA"),
    description=N_("Inflow, pressure band, minimum night flow and water balance of zones (DMAs)."),
    variables=(ZONE, DEVICE),
    time_from="now-7d",
    links=(LINK_ALL,),
    annotations=(alarms.ANNOTATION,),
    items=(
        INFLOW,
        PRESSURE_BAND,
        Row(N_("Leakage")),
        MNF,
        alarms.MNF_BASELINE,
        WATER_BALANCE,
        NRW,
        alarms.NRW_ANALYTICS,
        MONTHLY_BALANCE,
        Row(N_("Devices")),
        DEVICE_SERIES,
    ),
)
