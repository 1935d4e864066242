"""Network overview: the map of pipes and nodes with live pressure and active alarms, and
the status of every zone."""

from __future__ import annotations

from dashboards.boards import alarms
from dashboards.boards.common import (
    ALARM_STATES,
    LINK_ALL,
    NODE_KINDS,
    PRIORITIES,
    ZONE,
    columns,
    value_texts,
)
from dashboards.i18n import N_, Text
from dashboards.model import Dashboard, Override, Panel, Row, SqlTarget, Threshold
from dashboards.sql import (
    DEVICE_LAT,
    DEVICE_LON,
    DEVICE_PLACE_JOINS,
    IN_ZONES,
    PRESSURE_POINT,
    PRESSURE_TO_BAR,
    WGS84,
    series_source,
)

NETWORK_GEOJSON = "public/maps/suvnet/network.geojson"
"""Where Grafana finds the pipes and zone outlines (written by ``suvnet dashboards build``)."""

NODES = SqlTarget(
    ref_id="nodes",
    sql=f"""
SELECT n.code AS node, n.kind, z.code AS zone, n.y AS latitude, n.x AS longitude,
       n.elevation_m
FROM nodes n
LEFT JOIN networks nw ON nw.id = n.network_id
LEFT JOIN zones z ON z.id = n.zone_id
WHERE {WGS84}
  AND n.y BETWEEN -90 AND 90 AND n.x BETWEEN -180 AND 180
  AND (n.zone_id IS NULL OR z.code IN ($zone))
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
)

LIVE_PRESSURE = SqlTarget(
    ref_id="pressure",
    sql=f"""
SELECT d.code AS device, z.code AS zone, p.name AS point,
       {DEVICE_LAT} AS latitude, {DEVICE_LON} AS longitude,
       last.value * {PRESSURE_TO_BAR} AS pressure_bar, last.ts AS measured_at
FROM points p
JOIN devices d ON d.id = p.device_id
{DEVICE_PLACE_JOINS}
LEFT JOIN zones z ON z.id = d.zone_id
LEFT JOIN LATERAL (
    SELECT r.ts, r.value FROM readings r
    WHERE r.point_id = p.id AND r.quality = 0
      AND r.ts <= $__timeTo()::timestamptz AND r.ts > $__timeTo()::timestamptz - interval '1 day'
    ORDER BY r.ts DESC LIMIT 1
) last ON true
WHERE {PRESSURE_POINT} AND d.enabled
  AND (d.zone_id IS NULL OR z.code IN ($zone))
  AND {DEVICE_LAT} BETWEEN -90 AND 90 AND {DEVICE_LON} BETWEEN -180 AND 180
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
)


def _marker_layer(name: Text, ref_id: str, style: dict[str, object]) -> dict[str, object]:
    return {
        "type": "markers",
        "name": name,
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "filterData": {"id": "byRefId", "options": ref_id},
        "config": {"showLegend": True, "style": style},
        "tooltip": True,
    }


MAP = Panel(
    type="geomap",
    title=N_("Network: live pressure and active alarms"),
    description=N_(
        "Pipes and zone outlines come from the registry (the GeoJSON file written by "
        "`suvnet dashboards build --network`). Dots are pressure sensors coloured by their "
        "latest value (bar) up to the end of the time range; red triangles are active alarms."
    ),
    targets=(NODES, LIVE_PRESSURE, alarms.ACTIVE_ON_MAP),
    columns=columns(
        *("node", "kind", "zone", "latitude", "longitude", "elevation_m", "device", "point"),
        *("pressure_bar", "measured_at", "rule", "priority", "state", "message", "raised_at"),
        alarm_kind=N_("Alarm kind"),
    ),
    overrides=(
        Override("kind", {"mappings": value_texts(NODE_KINDS)}),
        Override("alarm_kind", {"mappings": value_texts(alarms.ALARM_KINDS)}),
        Override("priority", {"mappings": value_texts(PRIORITIES)}),
        Override("state", {"mappings": value_texts(ALARM_STATES)}),
    ),
    w=16,
    h=16,
    unit="pressurebar",
    thresholds=(
        Threshold(None, "red"),
        Threshold(1.5, "orange"),
        Threshold(2.0, "green"),
        Threshold(6.0, "orange"),
    ),
    options={
        "view": {"id": "fit", "allLayers": True, "lat": 41.3, "lon": 64.5, "zoom": 13},
        "controls": {
            "showZoom": True,
            "mouseWheelZoom": True,
            "showAttribution": True,
            "showScale": True,
        },
        "basemap": {"type": "osm-standard", "name": "OpenStreetMap", "config": {}},
        "layers": [
            {
                "type": "geojson",
                "name": N_("Pipes and zones"),
                "config": {
                    "src": NETWORK_GEOJSON,
                    "rules": [],
                    "style": {
                        "color": {"fixed": "blue"},
                        "opacity": 0.6,
                        "lineWidth": 2,
                    },
                },
            },
            _marker_layer(
                N_("Nodes"),
                "nodes",
                {"color": {"fixed": "text"}, "size": {"fixed": 3}, "opacity": 0.5},
            ),
            _marker_layer(
                N_("Pressure (bar)"),
                "pressure",
                {
                    "color": {"field": "pressure_bar", "fixed": "green"},
                    "size": {"fixed": 8},
                    "text": {"field": "pressure_bar", "mode": "field"},
                    "textConfig": {"fontSize": 10, "offsetY": -12},
                },
            ),
            _marker_layer(
                N_("Active alarms"),
                "alarms",
                {
                    "color": {"fixed": "red"},
                    "size": {"fixed": 14},
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/triangle.svg"},
                },
            ),
        ],
        "tooltip": {"mode": "details"},
    },
)

ZONE_STATUS = Panel(
    type="table",
    title=N_("Zone status (last hour of the range)"),
    description=N_(
        "Pressure over the last hour before the end of the time range against the zone's "
        "service band, and how many of the zone's gateways are online."
    ),
    targets=(
        SqlTarget(
            sql=f"""
WITH pr AS (
    SELECT d.zone_id,
           min(r.value * {PRESSURE_TO_BAR}) AS pmin,
           avg(r.value * {PRESSURE_TO_BAR}) AS pavg,
           max(r.value * {PRESSURE_TO_BAR}) AS pmax,
           max(r.ts) AS last_ts
    FROM readings r
    JOIN points p ON p.id = r.point_id
    JOIN devices d ON d.id = p.device_id
    WHERE {PRESSURE_POINT} AND r.quality = 0
      AND r.ts > $__timeTo()::timestamptz - interval '1 hour'
      AND r.ts <= $__timeTo()::timestamptz
    GROUP BY d.zone_id
), gw AS (
    SELECT g.zone_id, count(*) AS gateways,
           count(*) FILTER (WHERE gs.state = 'online') AS online
    FROM gateways g LEFT JOIN gateway_state gs ON gs.gateway_id = g.id
    GROUP BY g.zone_id
)
SELECT z.code AS zone, z.name,
       CASE WHEN pr.last_ts IS NULL THEN 'no data'
            WHEN pr.pmin < z.min_service_pressure_bar THEN 'low pressure'
            WHEN pr.pmax > z.max_service_pressure_bar THEN 'high pressure'
            ELSE 'ok' END AS status,
       pr.pmin AS min_bar, pr.pavg AS avg_bar, pr.pmax AS max_bar,
       z.min_service_pressure_bar AS service_min_bar,
       z.max_service_pressure_bar AS service_max_bar,
       coalesce(gw.online, 0) AS gateways_online, coalesce(gw.gateways, 0) AS gateways,
       pr.last_ts AS last_reading
FROM zones z
LEFT JOIN pr ON pr.zone_id = z.id
LEFT JOIN gw ON gw.zone_id = z.id
WHERE z.code IN ($zone)
ORDER BY z.code
"""  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=8,
    h=16,
    decimals=2,
    columns=columns(
        *("zone", "name", "min_bar", "avg_bar", "max_bar", "service_min_bar"),
        *("service_max_bar", "gateways"),
        status=N_("Status"),
        gateways_online=N_("Gateways online"),
        last_reading=N_("Last reading"),
    ),
    overrides=(
        Override(
            "status",
            {
                "custom.cellOptions": {"type": "color-background"},
                "mappings": value_texts(
                    {
                        "ok": N_("normal"),
                        "low pressure": N_("low pressure"),
                        "high pressure": N_("high pressure"),
                        "no data": N_("no data"),
                    },
                    {
                        "ok": "green",
                        "low pressure": "red",
                        "high pressure": "orange",
                        "no data": "gray",
                    },
                ),
            },
        ),
    ),
)

GATEWAYS_ONLINE = Panel(
    type="stat",
    title=N_("Gateways online"),
    targets=(
        SqlTarget(
            sql="""
SELECT count(*) FILTER (WHERE gs.state = 'online') AS online, count(*) AS total
FROM gateways g
LEFT JOIN gateway_state gs ON gs.gateway_id = g.id
LEFT JOIN zones z ON z.id = g.zone_id
WHERE g.allowed AND (g.zone_id IS NULL OR z.code IN ($zone))
"""
        ),
    ),
    w=6,
    h=4,
    columns=columns("online", "total"),
)

DEVICES_ONLINE = Panel(
    type="stat",
    title=N_("Devices online"),
    targets=(
        SqlTarget(
            sql="""
SELECT count(*) FILTER (WHERE ds.state = 'online') AS online, count(*) AS total
FROM devices d
LEFT JOIN device_state ds ON ds.device_id = d.id
LEFT JOIN zones z ON z.id = d.zone_id
WHERE d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
"""
        ),
    ),
    w=6,
    h=4,
    columns=columns("online", "total"),
)

READINGS_RATE = Panel(
    type="stat",
    title=N_("Readings stored in the time range"),
    targets=(
        SqlTarget(
            sql="""
SELECT count(*) AS readings FROM readings r WHERE $__timeFilter(r.ts)
"""
        ),
    ),
    w=6,
    h=4,
    unit="short",
    columns=columns("readings"),
)

DEAD_LETTERS = Panel(
    type="stat",
    title=N_("Dead letters in the time range"),
    description=N_("Messages ingest could not store; see the Devices and gateways dashboard."),
    targets=(
        SqlTarget(
            sql="SELECT count(*) AS dead_letters FROM dead_letters WHERE $__timeFilter(received_at)"
        ),
    ),
    w=6,
    h=4,
    thresholds=(Threshold(None, "green"), Threshold(1, "orange")),
    columns={"dead_letters": N_("Dead letters")},
)

PRESSURE_BY_ZONE = Panel(
    type="timeseries",
    title=N_("Average pressure by zone"),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS (
    SELECT p.id, d.zone_id, {PRESSURE_TO_BAR} AS k
    FROM points p
    JOIN devices d ON d.id = p.device_id
    JOIN zones z ON z.id = d.zone_id
    WHERE {PRESSURE_POINT} AND {IN_ZONES}
), src AS (
  {series_source("SELECT id FROM pts")}
)
SELECT $__timeGroupAlias(src.ts, $__interval), z.code AS metric, avg(src.avg * pts.k) AS pressure
FROM src
JOIN pts ON pts.id = src.point_id
JOIN zones z ON z.id = pts.zone_id
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=8,
    unit="pressurebar",
)

DASHBOARD = Dashboard(
    uid="suvnet-network",
    title=N_("suvnet · Network overview"),
    description=N_("The network map with live pressure and active alarms, and zone status."),
    variables=(ZONE,),
    time_from="now-6h",
    links=(LINK_ALL,),
    annotations=(alarms.ANNOTATION,),
    items=(
        GATEWAYS_ONLINE,
        DEVICES_ONLINE,
        READINGS_RATE,
        DEAD_LETTERS,
        MAP,
        ZONE_STATUS,
        Row(N_("Active alarms")),
        alarms.ACTIVE_BY_ZONE,
        alarms.ACTIVE_LIST_SHORT,
        Row(N_("Pressure")),
        PRESSURE_BY_ZONE,
    ),
)
