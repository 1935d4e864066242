"""Alarms: the active list, history, ISA-18.2 KPIs, and the leak-analytics panels.

Every query here reads the alarm tables of the alarms package (``suvnet/migrations/04xx``):
``alarms``, ``alarm_rules``, ``alarm_positions``, the ``alarm_journal`` view and
``zone_leak_daily``. Replayed alarms (``replayed = true``) are never shown.
"""

from __future__ import annotations

from alarms.messages import EVENT, KIND
from dashboards.boards.common import (
    ALARM_STATES,
    LINK_ALL,
    PRIORITIES,
    ZONE,
    columns,
    rename_series,
    value_texts,
)
from dashboards.i18n import N_, Text
from dashboards.model import (
    Dashboard,
    Override,
    Panel,
    Row,
    SqlAnnotation,
    SqlTarget,
    Threshold,
)
from dashboards.sql import DEVICE_LAT, DEVICE_LON, DEVICE_PLACE_JOINS, SPAN

ALARM_TABLES = ("alarms", "alarm_rules")

_PRIORITY_ORDER = (
    "CASE a.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"
)

_PRIORITY_COLOURS = Override(
    "priority",
    {
        "custom.cellOptions": {"type": "color-background"},
        "mappings": value_texts(
            PRIORITIES, {"urgent": "dark-red", "high": "red", "medium": "orange", "low": "yellow"}
        ),
    },
)

EVENTS: dict[str, Text] = {code: Text(words) for code, words in EVENT.items()}
"""The journal's events in the words of the staff alarm page (alarms/messages.py)."""

ALARM_KINDS: dict[str, Text] = {code: Text(words) for code, words in KIND.items()}
"""The alarm kinds (``alarms.kind``, ``alarm_rules.kind``) in the words of the staff alarm
page and the notifications (alarms/messages.py)."""

_STATE_WORDS = Override("state", {"mappings": value_texts(ALARM_STATES)})

ANNOTATION = SqlAnnotation(
    name=N_("Alarms"),
    requires=ALARM_TABLES,
    sql="""
SELECT a.raised_at AS time, coalesce(a.cleared_at, a.closed_at) AS timeend,
       a.priority || ' · ' || r.code || coalesce(': ' || nullif(a.message, ''), '') AS text,
       a.priority || ',' || a.kind || coalesce(',' || z.code, '') AS tags
FROM alarms a
JOIN alarm_rules r ON r.id = a.rule_id
LEFT JOIN zones z ON z.id = a.zone_id
WHERE $__timeFilter(a.raised_at) AND NOT a.replayed AND a.kind <> 'flood'
  AND (a.zone_id IS NULL OR z.code IN ($zone))
ORDER BY 1
""",
)
"""Alarm occurrences (raised to cleared) drawn on the time-series panels."""

ACTIVE_ON_MAP = SqlTarget(
    ref_id="alarms",
    requires=(*ALARM_TABLES, "alarm_positions"),
    sql=f"""
SELECT * FROM (
    SELECT r.code AS rule, a.kind AS alarm_kind, a.priority, a.state, a.message, a.raised_at,
           z.code AS zone,
           coalesce({DEVICE_LAT}, zc.lat) AS latitude,
           coalesce({DEVICE_LON}, zc.lon) AS longitude
    FROM alarms a
    JOIN alarm_rules r ON r.id = a.rule_id
    LEFT JOIN points p ON p.id = a.point_id
    LEFT JOIN devices d ON d.id = coalesce(a.device_id, p.device_id)
    {DEVICE_PLACE_JOINS}
    LEFT JOIN zones z ON z.id = coalesce(a.zone_id, d.zone_id)
    LEFT JOIN LATERAL (
        SELECT avg(n2.y) AS lat, avg(n2.x) AS lon
        FROM nodes n2 LEFT JOIN networks nw2 ON nw2.id = n2.network_id
        WHERE n2.zone_id = z.id AND coalesce(nw2.crs, 'EPSG:4326') = 'EPSG:4326'
    ) zc ON true
    WHERE a.closed_at IS NULL AND NOT a.replayed AND (z.id IS NULL OR z.code IN ($zone))
) located
WHERE latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
)

_ACTIVE_FROM = """
FROM alarms a
JOIN alarm_rules r ON r.id = a.rule_id
LEFT JOIN points p ON p.id = a.point_id
LEFT JOIN devices d ON d.id = coalesce(a.device_id, p.device_id)
LEFT JOIN zones z ON z.id = coalesce(a.zone_id, d.zone_id)
WHERE a.closed_at IS NULL AND NOT a.replayed AND (z.id IS NULL OR z.code IN ($zone))
"""

ACTIVE_BY_ZONE = Panel(
    type="bargauge",
    title=N_("Active alarms by zone"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT coalesce(z.code, '—') AS zone, count(*) AS active
{_ACTIVE_FROM}
GROUP BY 1
ORDER BY 1
""",
        ),
    ),
    w=8,
    h=8,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange"), Threshold(5, "red")),
    options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True},
    columns=columns("zone", active=N_("Active alarms")),
)

ACTIVE_LIST_SHORT = Panel(
    type="table",
    title=N_("Active alarms"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT a.raised_at AS raised, a.priority, a.state, r.code AS rule, z.code AS zone,
       d.code AS device, a.message
{_ACTIVE_FROM}
ORDER BY {_PRIORITY_ORDER}, a.raised_at DESC
LIMIT 50
""",
        ),
    ),
    w=16,
    h=8,
    overrides=(_PRIORITY_COLOURS, _STATE_WORDS),
    columns=columns("raised", "priority", "state", "rule", "zone", "device", "message"),
)

ACTIVE_LIST = Panel(
    type="table",
    title=N_("Active alarms (not yet back to normal)"),
    description=N_(
        "The state column: active, not acknowledged; active, acknowledged; cleared, but "
        "nobody acknowledged it yet; shelved: hidden by a dispatcher until the shelving "
        "time ends."
    ),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT a.raised_at AS raised, a.priority, a.state, r.code AS rule, a.kind,
       z.code AS zone, d.code AS device, a.value, a.message, a.acked_by,
       a.acked_at, a.chattering,
       extract(epoch FROM $__timeTo()::timestamptz - a.raised_at) AS age_s
{_ACTIVE_FROM}
ORDER BY {_PRIORITY_ORDER}, a.raised_at DESC
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=10,
    overrides=(
        _PRIORITY_COLOURS,
        _STATE_WORDS,
        Override("kind", {"mappings": value_texts(ALARM_KINDS)}),
        Override("age_s", {"unit": "s"}),
    ),
    columns=columns(
        *("raised", "priority", "state", "rule", "kind", "zone", "device", "message"),
        value=N_("Value"),
        acked_by=N_("Acknowledged by"),
        acked_at=N_("Acknowledged at"),
        chattering=N_("Chattering"),
        age_s=N_("Active for"),
    ),
)

RAISED_OVER_TIME = Panel(
    type="timeseries",
    title=N_("Alarms raised, by priority"),
    targets=(
        SqlTarget(
            format="time_series",
            requires=ALARM_TABLES,
            sql="""
SELECT $__timeGroupAlias(a.raised_at, $__interval), a.priority AS metric, count(*) AS alarms
FROM alarms a
LEFT JOIN zones z ON z.id = a.zone_id
WHERE $__timeFilter(a.raised_at) AND NOT a.replayed
  AND (a.zone_id IS NULL OR z.code IN ($zone))
GROUP BY 1, 2
ORDER BY 1
""",
        ),
    ),
    w=24,
    h=8,
    custom={"drawStyle": "bars", "stacking": {"mode": "normal", "group": "A"}},
    transformations=rename_series(PRIORITIES),
)

JOURNAL = Panel(
    type="table",
    title=N_("Alarm journal (every transition)"),
    targets=(
        SqlTarget(
            requires=("alarm_journal",),
            sql="""
SELECT j.time, j.event, j.from_state, j.to_state, j.rule, j.priority, j.zone,
       j.user_name, j.comment, j.message
FROM alarm_journal j
WHERE $__timeFilter(j.time) AND (j.zone IS NULL OR j.zone IN ($zone))
ORDER BY j.time DESC
LIMIT 500
""",
        ),
    ),
    w=24,
    h=10,
    overrides=(
        _PRIORITY_COLOURS,
        Override("from_state", {"mappings": value_texts(ALARM_STATES)}),
        Override("to_state", {"mappings": value_texts(ALARM_STATES)}),
        Override("event", {"mappings": value_texts(EVENTS)}),
    ),
    columns=columns(
        *("time", "priority", "rule", "zone", "message"),
        event=N_("Event"),
        from_state=N_("From state"),
        to_state=N_("To state"),
        user_name=N_("User"),
        comment=N_("Comment"),
    ),
)

_RANGE_ALARMS = """
FROM alarms a
WHERE $__timeFilter(a.raised_at) AND NOT a.replayed AND a.kind <> 'flood'
"""

KPI_RATE = Panel(
    type="stat",
    title=N_("Average alarms per 10 minutes"),
    description=N_(
        "ISA-18.2: about 1 is manageable, 2 is the maximum manageable; over 10 is a flood."
    ),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT count(*)::float8 / greatest(extract(epoch FROM {SPAN}) / 600.0, 1.0) AS per_10_min
{_RANGE_ALARMS}
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=4,
    h=5,
    decimals=2,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange"), Threshold(2, "red")),
    columns={"per_10_min": N_("Alarms per 10 minutes")},
)

KPI_PEAK = Panel(
    type="stat",
    title=N_("Peak alarms in any 10 minutes"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT coalesce(max(n), 0) AS peak_10_min FROM (
    SELECT count(*) AS n
    {_RANGE_ALARMS}
    GROUP BY floor(extract(epoch FROM a.raised_at) / 600)
) buckets
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=4,
    h=5,
    thresholds=(Threshold(None, "green"), Threshold(5, "orange"), Threshold(10, "red")),
    columns={"peak_10_min": N_("Peak in 10 minutes")},
)

KPI_FLOOD = Panel(
    type="stat",
    title=N_("Time in alarm flood"),
    description=N_("Share of the time range during which a flood summary alarm was active."),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT 100.0 * coalesce(sum(extract(epoch FROM
           least(coalesce(a.cleared_at, $__timeTo()::timestamptz), $__timeTo()::timestamptz)
           - greatest(a.raised_at, $__timeFrom()::timestamptz))), 0)
       / greatest(extract(epoch FROM {SPAN}), 1.0) AS flood_pct
FROM alarms a
WHERE a.kind = 'flood' AND NOT a.replayed
  AND a.raised_at < $__timeTo()::timestamptz
  AND coalesce(a.cleared_at, $__timeTo()::timestamptz) > $__timeFrom()::timestamptz
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=4,
    h=5,
    unit="percent",
    decimals=1,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange"), Threshold(5, "red")),
    columns={"flood_pct": N_("Time in alarm flood, %")},
)

KPI_CHATTERING = Panel(
    type="stat",
    title=N_("Chattering alarms"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"SELECT count(*) AS chattering {_RANGE_ALARMS} AND a.chattering",
        ),
    ),
    w=4,
    h=5,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange")),
    columns={"chattering": N_("Chattering alarms")},
)

KPI_STALE = Panel(
    type="stat",
    title=N_("Stale alarms (active > 24 h)"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql="""
SELECT count(*) AS stale
FROM alarms a
WHERE a.closed_at IS NULL AND NOT a.replayed
  AND a.cleared_at IS NULL
  AND a.raised_at < $__timeTo()::timestamptz - interval '24 hours'
""",
        ),
    ),
    w=4,
    h=5,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange")),
    columns={"stale": N_("Stale alarms")},
)

KPI_ACK_TIME = Panel(
    type="stat",
    title=N_("Median time to acknowledge"),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql=f"""
SELECT percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM a.acked_at - a.raised_at)) AS median_ack_s
{_RANGE_ALARMS} AND a.acked_at IS NOT NULL
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=4,
    h=5,
    unit="s",
    columns={"median_ack_s": N_("Median time to acknowledge")},
)

TOP_CONTRIBUTORS = Panel(
    type="bargauge",
    title=N_("Top 10 alarm contributors"),
    description=N_("The rules raising most alarms in the range: the first candidates for tuning."),
    targets=(
        SqlTarget(
            requires=ALARM_TABLES,
            sql="""
SELECT r.code AS rule, count(*) AS alarms
FROM alarms a JOIN alarm_rules r ON r.id = a.rule_id
WHERE $__timeFilter(a.raised_at) AND NOT a.replayed AND a.kind <> 'flood'
GROUP BY r.code
ORDER BY alarms DESC, r.code
LIMIT 10
""",
        ),
    ),
    w=12,
    h=9,
    options={"orientation": "horizontal", "displayMode": "gradient"},
    columns=columns("rule", "alarms"),
)

PER_10_MIN = Panel(
    type="timeseries",
    title=N_("Alarms per 10 minutes (flood above 10)"),
    targets=(
        SqlTarget(
            format="time_series",
            requires=ALARM_TABLES,
            sql="""
SELECT $__timeGroupAlias(a.raised_at, 10m, 0), count(*) AS alarms
FROM alarms a
WHERE $__timeFilter(a.raised_at) AND NOT a.replayed AND a.kind <> 'flood'
GROUP BY 1
ORDER BY 1
""",
        ),
    ),
    w=12,
    h=9,
    thresholds=(Threshold(None, "green"), Threshold(10, "red")),
    custom={"drawStyle": "bars", "thresholdsStyle": {"mode": "line"}},
    columns=columns("alarms"),
)

# ------------------------------------------------------------------ leak analytics (zone board)

NRW_ANALYTICS = Panel(
    type="timeseries",
    title=N_("NRW % per day (alarm analytics)"),
    description=N_("Non-revenue water from the alarms worker's daily DMA water balance."),
    targets=(
        SqlTarget(
            format="time_series",
            requires=("zone_leak_daily",),
            sql="""
SELECT (l.day::timestamp AT TIME ZONE 'UTC') AS "time", z.code AS metric, l.nrw_pct
FROM zone_leak_daily l
JOIN zones z ON z.id = l.zone_id
WHERE l.run_id = 0 AND z.code IN ($zone)
  AND l.day BETWEEN $__timeFrom()::date AND $__timeTo()::date
ORDER BY 1
""",
        ),
    ),
    w=12,
    h=8,
    unit="percent",
)

MNF_BASELINE = Panel(
    type="timeseries",
    title=N_("Minimum night flow against its learned baseline (alarm analytics)"),
    targets=(
        SqlTarget(
            format="time_series",
            requires=("zone_leak_daily",),
            sql="""
SELECT (l.day::timestamp AT TIME ZONE 'UTC') AS "time", z.code AS zone,
       l.mnf_lps, l.mnf_baseline_lps, l.mnf_baseline_lps + l.mnf_allowance_lps AS mnf_limit_lps
FROM zone_leak_daily l
JOIN zones z ON z.id = l.zone_id
WHERE l.run_id = 0 AND z.code IN ($zone)
  AND l.day BETWEEN $__timeFrom()::date AND $__timeTo()::date
ORDER BY 1
""",
        ),
    ),
    w=12,
    h=8,
    unit="flowlps",
    series_label="zone",
    columns={
        "mnf_lps": N_("Minimum night flow"),
        "mnf_baseline_lps": N_("Learned baseline"),
        "mnf_limit_lps": N_("Alarm limit"),
    },
)

DASHBOARD = Dashboard(
    uid="suvnet-alarms",
    title=N_("suvnet · Alarms"),
    description=N_("Active alarms, their history and the ISA-18.2 alarm-system KPIs."),
    variables=(ZONE,),
    time_from="now-7d",
    links=(LINK_ALL,),
    annotations=(ANNOTATION,),
    items=(
        ACTIVE_LIST,
        Row(N_("ISA-18.2 KPIs (whole system, all zones)")),
        KPI_RATE,
        KPI_PEAK,
        KPI_FLOOD,
        KPI_CHATTERING,
        KPI_STALE,
        KPI_ACK_TIME,
        PER_10_MIN,
        TOP_CONTRIBUTORS,
        Row(N_("History")),
        RAISED_OVER_TIME,
        JOURNAL,
    ),
)
