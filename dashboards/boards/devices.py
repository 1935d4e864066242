"""Devices and gateways: online share, last seen, poll success, outbox depth, dead letters.

Gateway health comes from the retained state message (``gateway_state.health``): the outbox
depth (``outbox_depth`` or ``queue_depth``), the dropped count (``dropped``) and the poll
success rate (``poll_success`` or ``poll_success_rate``, 0..1). A device's poll success in the
time range is the share of its readings stored with good quality.
"""

from __future__ import annotations

from dashboards.boards.common import (
    GATEWAY,
    LINK_ALL,
    LINK_STATES,
    ZONE,
    columns,
    numbers_pattern,
    regex_texts,
    rename_series,
    value_texts,
)
from dashboards.i18n import N_, Text
from dashboards.model import Dashboard, Override, Panel, Row, SqlTarget, Threshold
from dashboards.sql import health_number
from ingest.reasons import DeadLetterReason, StaleReason, StateReason

_STATE_COLOURS = {
    "custom.cellOptions": {"type": "color-text"},
    "mappings": value_texts(LINK_STATES, {"online": "green", "offline": "red", "unknown": "gray"}),
}

DEVICE_KINDS: dict[str, Text] = {
    "pressure_sensor": N_("pressure sensor"),
    "prv_controller": N_("pressure regulator"),
    "district_meter": N_("district flow meter"),
    "customer_meter": N_("customer meter"),
}
WHAT: dict[str, Text] = {"gateway": N_("gateway"), "device": N_("device")}

_DEAD_LETTER_WORDS: dict[DeadLetterReason, Text] = {
    # a message refused as a whole (suvnet.protocol's decoder, ingest/validate.py)
    DeadLetterReason.TOO_LARGE: N_("message too large"),
    DeadLetterReason.BAD_JSON: N_("message is not JSON"),
    DeadLetterReason.BAD_SHAPE: N_("message is not a JSON object"),
    DeadLetterReason.BAD_VERSION: N_("unsupported protocol version"),
    DeadLetterReason.BAD_FIELD: N_("a field of the message is missing or wrong"),
    DeadLetterReason.BAD_TOPIC: N_("wrong MQTT topic"),
    DeadLetterReason.UNEXPECTED_TOPIC: N_("message on an unexpected MQTT topic"),
    DeadLetterReason.GATEWAY_MISMATCH: N_("the message names another gateway than its topic"),
    DeadLetterReason.UNKNOWN_GATEWAY: N_("unknown gateway"),
    DeadLetterReason.GATEWAY_NOT_ALLOWED: N_("gateway not allowed"),
    # one reading (the decoder, ingest/validate.py, the CSV import in ingest/csvio.py)
    DeadLetterReason.BAD_READING_SHAPE: N_("malformed reading"),
    DeadLetterReason.BAD_DEVICE_ID: N_("invalid device id"),
    DeadLetterReason.BAD_POINT_ID: N_("invalid point id"),
    DeadLetterReason.BAD_TIMESTAMP: N_("invalid timestamp"),
    DeadLetterReason.BAD_QUALITY: N_("invalid quality code"),
    DeadLetterReason.MISSING_VALUE: N_("no value"),
    DeadLetterReason.BAD_VALUE_TYPE: N_("value is not a number"),
    DeadLetterReason.NON_FINITE_VALUE: N_("infinite or undefined value"),
    DeadLetterReason.UNKNOWN_DEVICE: N_("unknown device"),
    DeadLetterReason.DEVICE_NOT_ON_GATEWAY: N_("device belongs to another gateway"),
    DeadLetterReason.UNKNOWN_POINT: N_("unknown measuring point"),
    DeadLetterReason.TS_TOO_OLD: N_("timestamp too old"),
    DeadLetterReason.TS_IN_FUTURE: N_("timestamp in the future"),
    DeadLetterReason.BAD_ENCODING: N_("wrong text encoding"),
    # the database refused the message (ingest/writer.py)
    DeadLetterReason.DB_REJECTED: N_("refused by the database"),
}

DEAD_LETTER_REASONS: dict[str, Text] = {
    r.value: _DEAD_LETTER_WORDS[r] for r in DeadLetterReason if r in _DEAD_LETTER_WORDS
}
"""The reasons ingest records a dead letter for (``dead_letters.reason``; the table
:class:`ingest.reasons.DeadLetterReason`, in its order), in words.
tests/dashboards/test_languages.py fails on a reason of the table without words here."""

_STATE_CHANGE_WORDS: dict[StateReason, Text] = {
    # a gateway's state message (ingest/state.py, decide_gateway_message)
    StateReason.BIRTH: N_("the gateway connected (birth message)"),
    StateReason.HEALTH: N_("gateway health message"),  # keeps a gateway online: not written today
    StateReason.LAST_WILL: N_("the gateway went offline (last will or offline message)"),
    # fresh data brought a device or gateway online (ingest/store.py, flush_seen)
    StateReason.DATA_RECEIVED: N_("fresh data received"),
}

STATE_CHANGE_REASONS: dict[str, Text] = {
    r.value: _STATE_CHANGE_WORDS[r] for r in StateReason if r in _STATE_CHANGE_WORDS
}
"""The reasons ingest writes for a gateway's or device's online/offline change
(``gateway_state_history.reason``, ``device_state_history.reason``; the table
:class:`ingest.reasons.StateReason`), in words."""

_STALE_WORDS: dict[StaleReason, Text] = {
    # no fresh data for OFFLINE_FACTOR x the poll period (ingest/store.py, mark_stale)
    StaleReason.NO_GOOD_DATA: N_(
        "no good data for %(seconds)s s (%(factor)s × poll period)"
    ).filled(seconds="$1", factor="$2"),
    StaleReason.NO_MESSAGES: N_("no messages for %(seconds)s s (%(factor)s × poll period)").filled(
        seconds="$1", factor="$2"
    ),
}

STATE_CHANGE_REASONS_WITH_NUMBERS: dict[str, Text] = {
    numbers_pattern(t): _STALE_WORDS[t] for t in StaleReason if t in _STALE_WORDS
}
"""The reasons written with numbers in them (:class:`ingest.reasons.StaleReason`: the seconds
and the factor, as PostgreSQL's ``format()`` writes them), by the regex built from ingest's
template, in words that keep the numbers. tests/dashboards/test_languages.py runs
``mark_stale`` on PostgreSQL and fails on a reason without words."""

_OUTBOX = health_number("outbox_depth", "queue_depth")
_DROPPED = health_number("dropped", "dropped_count")
_POLL = health_number("poll_success", "poll_success_rate")

GATEWAYS_ONLINE_PCT = Panel(
    type="gauge",
    title=N_("Gateways online"),
    targets=(
        SqlTarget(
            sql="""
SELECT 100.0 * count(*) FILTER (WHERE gs.state = 'online') / nullif(count(*), 0)
           AS online_pct
FROM gateways g
LEFT JOIN gateway_state gs ON gs.gateway_id = g.id
LEFT JOIN zones z ON z.id = g.zone_id
WHERE g.allowed AND (g.zone_id IS NULL OR z.code IN ($zone))
"""
        ),
    ),
    w=6,
    h=6,
    unit="percent",
    min=0,
    max=100,
    thresholds=(Threshold(None, "red"), Threshold(80, "orange"), Threshold(95, "green")),
    columns=columns("online_pct"),
)

DEVICES_ONLINE_PCT = Panel(
    type="gauge",
    title=N_("Devices online"),
    targets=(
        SqlTarget(
            sql="""
SELECT 100.0 * count(*) FILTER (WHERE ds.state = 'online') / nullif(count(*), 0)
           AS online_pct
FROM devices d
LEFT JOIN device_state ds ON ds.device_id = d.id
LEFT JOIN zones z ON z.id = d.zone_id
WHERE d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
"""
        ),
    ),
    w=6,
    h=6,
    unit="percent",
    min=0,
    max=100,
    thresholds=(Threshold(None, "red"), Threshold(80, "orange"), Threshold(95, "green")),
    columns=columns("online_pct"),
)

OUTBOX = Panel(
    type="bargauge",
    title=N_("Outbox depth (readings waiting on the gateway)"),
    description=N_("Grows while a gateway cannot reach the broker or ingest does not ack."),
    targets=(
        SqlTarget(
            sql=f"""
SELECT g.code AS gateway, coalesce({_OUTBOX}, 0) AS outbox_depth
FROM gateways g
LEFT JOIN gateway_state gs ON gs.gateway_id = g.id
WHERE g.code IN ($gateway)
ORDER BY 2 DESC, 1
"""  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=12,
    h=6,
    thresholds=(Threshold(None, "green"), Threshold(1000, "orange"), Threshold(10000, "red")),
    options={"orientation": "horizontal", "displayMode": "gradient"},
    columns=columns("gateway", "outbox_depth"),
)

GATEWAYS = Panel(
    type="table",
    title=N_("Gateways"),
    targets=(
        SqlTarget(
            sql=f"""
SELECT g.code AS gateway, g.name, z.code AS zone,
       coalesce(gs.state, 'unknown') AS state, gs.since, gs.last_seen,
       extract(epoch FROM $__timeTo()::timestamptz - gs.last_seen) AS seen_ago_s,
       {_OUTBOX} AS outbox_depth, {_DROPPED} AS dropped,
       100.0 * {_POLL} AS poll_success_pct, gs.boot,
       (SELECT count(*) FROM devices d WHERE d.gateway_id = g.id) AS devices
FROM gateways g
LEFT JOIN gateway_state gs ON gs.gateway_id = g.id
LEFT JOIN zones z ON z.id = g.zone_id
WHERE g.code IN ($gateway)
ORDER BY g.code
"""  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=8,
    overrides=(
        Override("state", _STATE_COLOURS),
        Override("seen_ago_s", {"unit": "s"}),
        Override("poll_success_pct", {"unit": "percent", "decimals": 1}),
    ),
    columns=columns(
        *("gateway", "name", "zone", "state", "since", "last_seen", "seen_ago_s"),
        *("outbox_depth", "poll_success_pct"),
        dropped=N_("Readings dropped"),
        boot=N_("Started at"),
        devices=N_("Devices"),
    ),
)

DEVICES = Panel(
    type="table",
    title=N_("Devices: state and poll success in the time range"),
    targets=(
        SqlTarget(
            sql="""
WITH q AS (
    SELECT p.device_id,
           count(*) AS readings,
           count(*) FILTER (WHERE r.quality = 0) AS good
    FROM readings r JOIN points p ON p.id = r.point_id
    WHERE $__timeFilter(r.ts)
    GROUP BY p.device_id
)
SELECT d.code AS device, d.kind, g.code AS gateway, z.code AS zone,
       coalesce(ds.state, 'unknown') AS state, ds.since, ds.last_seen,
       extract(epoch FROM $__timeTo()::timestamptz - ds.last_seen) AS seen_ago_s,
       coalesce(q.readings, 0) AS readings,
       100.0 * q.good / nullif(q.readings, 0) AS poll_success_pct,
       ds.last_error
FROM devices d
LEFT JOIN gateways g ON g.id = d.gateway_id
LEFT JOIN zones z ON z.id = d.zone_id
LEFT JOIN device_state ds ON ds.device_id = d.id
LEFT JOIN q ON q.device_id = d.id
WHERE d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
  AND (g.id IS NULL OR g.code IN ($gateway))
ORDER BY (ds.state = 'online') NULLS FIRST, d.code
"""
        ),
    ),
    w=24,
    h=10,
    overrides=(
        Override("state", _STATE_COLOURS),
        Override("seen_ago_s", {"unit": "s"}),
        Override("poll_success_pct", {"unit": "percent", "decimals": 1}),
        Override("kind", {"mappings": value_texts(DEVICE_KINDS)}),
    ),
    columns=columns(
        *("device", "kind", "gateway", "zone", "state", "since", "last_seen", "seen_ago_s"),
        *("readings", "poll_success_pct"),
        last_error=N_("Last error"),
    ),
)

VALUES_RECEIVED = Panel(
    type="timeseries",
    title=N_("Values received per hour, by gateway"),
    description=N_("From the hourly rollup: a drop means polling or the link has trouble."),
    targets=(
        SqlTarget(
            format="time_series",
            sql="""
SELECT $__timeGroupAlias(b.bucket, 1h), g.code AS metric, sum(b.count) AS values_received
FROM readings_1h b
JOIN points p ON p.id = b.point_id
JOIN devices d ON d.id = p.device_id
JOIN gateways g ON g.id = d.gateway_id
WHERE $__timeFilter(b.bucket) AND g.code IN ($gateway)
GROUP BY 1, 2
ORDER BY 1
""",
        ),
    ),
    w=12,
    h=8,
)

DEAD_LETTERS = Panel(
    type="timeseries",
    title=N_("Dead letters by reason"),
    targets=(
        SqlTarget(
            format="time_series",
            sql="""
SELECT $__timeGroupAlias(received_at, $__interval), reason AS metric, count(*) AS messages
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1
""",
        ),
    ),
    w=12,
    h=8,
    custom={"drawStyle": "bars"},
    transformations=rename_series(DEAD_LETTER_REASONS),
)

STATE_CHANGES = Panel(
    type="table",
    title=N_("Online/offline changes"),
    targets=(
        SqlTarget(
            sql="""
SELECT * FROM (
    SELECT h.ts AS time, 'gateway' AS what, g.code AS name, h.state, h.reason
    FROM gateway_state_history h JOIN gateways g ON g.id = h.gateway_id
    WHERE $__timeFilter(h.ts) AND g.code IN ($gateway)
    UNION ALL
    SELECT h.ts, 'device', d.code, h.state, h.reason
    FROM device_state_history h
    JOIN devices d ON d.id = h.device_id
    LEFT JOIN zones z ON z.id = d.zone_id
    WHERE $__timeFilter(h.ts) AND (d.zone_id IS NULL OR z.code IN ($zone))
) changes
ORDER BY time DESC
LIMIT 500
"""
        ),
    ),
    w=24,
    h=8,
    overrides=(
        Override("state", _STATE_COLOURS),
        Override("what", {"mappings": value_texts(WHAT)}),
        Override(
            "reason",
            {
                "mappings": [
                    *value_texts(STATE_CHANGE_REASONS),
                    *regex_texts(STATE_CHANGE_REASONS_WITH_NUMBERS, len(STATE_CHANGE_REASONS)),
                ]
            },
        ),
    ),
    columns=columns("time", "name", "state", what=N_("What"), reason=N_("Reason")),
)

DASHBOARD = Dashboard(
    uid="suvnet-devices",
    title=N_("suvnet · Devices and gateways"),
    description=N_("Gateway and device health: online share, last seen, poll success, outbox."),
    variables=(ZONE, GATEWAY),
    time_from="now-24h",
    links=(LINK_ALL,),
    items=(
        GATEWAYS_ONLINE_PCT,
        DEVICES_ONLINE_PCT,
        OUTBOX,
        GATEWAYS,
        DEVICES,
        Row(N_("Traffic")),
        VALUES_RECEIVED,
        DEAD_LETTERS,
        STATE_CHANGES,
    ),
)
