"""Pressure regulators (PRVs): setpoint, inlet, outlet and critical-point pressure together,
and what each PRV's controller decided and why (docs/pressure-management.md).

The PRV controller device publishes its own ``setpoint_bar``, ``inlet_bar`` and
``outlet_bar``; the gateway's controller publishes, as readings of the same device, the
lowest critical-point pressure it regulated on (``ctl_cp_bar``), its target
(``ctl_target_bar``: the pressure held at the critical point, or the setpoint asked for in
the other modes), the setpoint it chose (``ctl_setpoint_bar``) and a reason code
(``ctl_reason``).
"""

from __future__ import annotations

from dashboards.boards.common import LINK_ALL, ZONE, columns, rename_series
from dashboards.i18n import N_, Text
from dashboards.model import Dashboard, Override, Panel, QueryVariable, SqlTarget
from dashboards.sql import PRESSURE_TO_BAR, series_source

PRV = QueryVariable(
    name="prv",
    label=N_("Pressure regulator"),
    sql="""
SELECT d.code
FROM devices d
LEFT JOIN zones z ON z.id = d.zone_id
WHERE d.kind = 'prv_controller' AND d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
ORDER BY d.code
""",
)

SERIES: dict[str, Text] = {
    "setpoint_bar": N_("setpoint"),
    "inlet_bar": N_("inlet"),
    "outlet_bar": N_("outlet"),
    "ctl_cp_bar": N_("critical point"),
    "ctl_target_bar": N_("target"),
}
"""The points drawn, and their names on the chart. The query names a series by the device
and the point (``PRV1 inlet_bar``); the chart shows the point's name in words (a Grafana
rename, so the query is the same in every language)."""

_NAMES = ", ".join(f"'{p}'" for p in SERIES)

PRESSURES = Panel(
    type="timeseries",
    title=N_("Setpoint, inlet, outlet and critical-point pressure"),
    description=N_(
        "Per PRV: the setpoint the valve holds, its inlet and outlet pressure, the lowest "
        "critical-point pressure its controller regulated on (lowest of the interval) and the "
        "controller's target (in critical-point mode: the pressure held there)."
    ),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS (
    SELECT p.id, d.code || ' ' || p.name AS label, p.name, {PRESSURE_TO_BAR} AS k
    FROM points p
    JOIN devices d ON d.id = p.device_id
    WHERE d.kind = 'prv_controller' AND d.code IN ($prv) AND p.name IN ({_NAMES})
), src AS (
  {series_source("SELECT id FROM pts")}
)
SELECT $__timeGroupAlias(src.ts, $__interval), pts.label AS metric,
       CASE WHEN min(pts.name) = 'ctl_cp_bar' THEN min(src.min * pts.k)
            ELSE avg(src.avg * pts.k) END AS bar
FROM src JOIN pts ON pts.id = src.point_id
GROUP BY 1, 2
ORDER BY 1
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=10,
    unit="pressurebar",
    transformations=rename_series(SERIES),
)

REASONS: dict[int, Text] = {
    0: N_("holding (critical point within the deadband)"),
    1: N_("fixed setpoint"),
    2: N_("time profile"),
    3: N_("following the inflow"),
    4: N_("stepping to the critical-point target"),
    5: N_("LOW PRESSURE at the critical point: raised"),
    6: N_("critical point silent: safe setpoint"),
    7: N_("link lost: safe setpoint"),
    8: N_("inflow silent: safe setpoint"),
    9: N_("hand"),
    10: N_("local control at the valve"),
    11: N_("PRV not answering"),
}
"""The ``ctl_reason`` codes (edge_agent.control.Reason) as the table shows them."""
MODES: dict[int, Text] = {
    0: N_("none"),
    1: N_("fixed setpoint"),
    2: N_("time profile"),
    3: N_("by inflow"),
    4: N_("critical point"),
}

_LATEST = """
LEFT JOIN LATERAL (
    SELECT r.value, r.ts FROM readings r JOIN points p ON p.id = r.point_id
    WHERE p.device_id = d.id AND p.name = '{point}' AND r.quality = 0
      AND r.ts <= $__timeTo()::timestamptz
    ORDER BY r.ts DESC LIMIT 1
) {alias} ON true"""


def _value_map(codes: dict[int, Text]) -> list[dict[str, object]]:
    return [
        {
            "type": "value",
            "options": {
                str(k): {"text": v, "index": i, **({"color": "red"} if k in (5, 11) else {})}
                for i, (k, v) in enumerate(codes.items())
            },
        }
    ]


CONTROLLER = Panel(
    type="table",
    title=N_("What each controller decided last, and why"),
    targets=(
        SqlTarget(
            sql=f"""
SELECT d.code AS prv, z.code AS zone, mode.value AS mode, auto.value AS auto,
       reason.value AS reason, sp.value AS setpoint_bar, cp.value AS critical_point_bar,
       reason.ts AS decided_at
FROM devices d
LEFT JOIN zones z ON z.id = d.zone_id
{_LATEST.format(point="ctl_reason", alias="reason")}
{_LATEST.format(point="ctl_mode", alias="mode")}
{_LATEST.format(point="ctl_auto", alias="auto")}
{_LATEST.format(point="ctl_setpoint_bar", alias="sp")}
{_LATEST.format(point="ctl_cp_bar", alias="cp")}
WHERE d.kind = 'prv_controller' AND d.code IN ($prv)
ORDER BY d.code
""",  # noqa: S608 - Grafana panel SQL built from this package's constants; Grafana fills its own variables
        ),
    ),
    w=24,
    h=6,
    overrides=(
        Override("reason", {"mappings": _value_map(REASONS)}),
        Override("mode", {"mappings": _value_map(MODES)}),
        Override("auto", {"mappings": _value_map({0: N_("hand"), 1: N_("automatic")})}),
        Override("setpoint_bar", {"unit": "pressurebar", "decimals": 2}),
        Override("critical_point_bar", {"unit": "pressurebar", "decimals": 2}),
    ),
    columns=columns(
        "zone",
        prv=N_("Pressure regulator"),
        mode=N_("Mode"),
        auto=N_("Hand or automatic"),
        reason=N_("Reason"),
        setpoint_bar=N_("Setpoint, bar"),
        critical_point_bar=N_("Critical-point pressure, bar"),
        decided_at=N_("Decided at"),
    ),
)

DASHBOARD = Dashboard(
    uid="suvnet-prv",
    title=N_("suvnet · Pressure regulators"),
    description=N_(
        "PRVs under the gateways' pressure control: setpoint, inlet, outlet and critical-point "
        "pressure together, and each controller's last decision."
    ),
    variables=(ZONE, PRV),
    time_from="now-2d",
    links=(LINK_ALL,),
    items=(PRESSURES, CONTROLLER),
)
