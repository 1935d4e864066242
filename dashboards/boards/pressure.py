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

from dashboards.boards.common import LINK_ALL, ZONE
from dashboards.model import Dashboard, Override, Panel, QueryVariable, SqlTarget
from dashboards.sql import PRESSURE_TO_BAR, series_source

PRV = QueryVariable(
    name="prv",
    label="Pressure regulator",
    sql="""
SELECT d.code
FROM devices d
LEFT JOIN zones z ON z.id = d.zone_id
WHERE d.kind = 'prv_controller' AND d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
ORDER BY d.code
""",
)

SERIES = {
    "setpoint_bar": "setpoint",
    "inlet_bar": "inlet",
    "outlet_bar": "outlet",
    "ctl_cp_bar": "critical point",
    "ctl_target_bar": "target",
}
"""The points drawn, and their names on the chart."""

_NAMES = ", ".join(f"'{p}'" for p in SERIES)
_LABEL = "CASE p.name " + " ".join(f"WHEN '{p}' THEN '{n}'" for p, n in SERIES.items()) + " END"

PRESSURES = Panel(
    type="timeseries",
    title="Setpoint, inlet, outlet and critical-point pressure",
    description=(
        "Per PRV: the setpoint the valve holds, its inlet and outlet pressure, the lowest "
        "critical-point pressure its controller regulated on (lowest of the interval) and the "
        "controller's target (in critical-point mode: the pressure held there)."
    ),
    targets=(
        SqlTarget(
            format="time_series",
            sql=f"""
WITH pts AS (
    SELECT p.id, d.code || ' ' || {_LABEL} AS label, p.name, {PRESSURE_TO_BAR} AS k
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
)

REASONS = {
    0: "holding (critical point within the deadband)",
    1: "fixed setpoint",
    2: "time profile",
    3: "following the inflow",
    4: "stepping to the critical-point target",
    5: "LOW PRESSURE at the critical point: raised",
    6: "critical point silent: safe setpoint",
    7: "link lost: safe setpoint",
    8: "inflow silent: safe setpoint",
    9: "hand",
    10: "local control at the valve",
    11: "PRV not answering",
}
"""The ``ctl_reason`` codes (edge_agent.control.Reason) as the table shows them."""
MODES = {0: "none", 1: "fixed", 2: "time", 3: "flow", 4: "critical point"}

_LATEST = """
LEFT JOIN LATERAL (
    SELECT r.value, r.ts FROM readings r JOIN points p ON p.id = r.point_id
    WHERE p.device_id = d.id AND p.name = '{point}' AND r.quality = 0
      AND r.ts <= $__timeTo()::timestamptz
    ORDER BY r.ts DESC LIMIT 1
) {alias} ON true"""


def _value_map(codes: dict[int, str]) -> list[dict[str, object]]:
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
    title="What each controller decided last, and why",
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
        Override("auto", {"mappings": _value_map({0: "hand", 1: "auto"})}),
        Override("setpoint_bar", {"unit": "pressurebar", "decimals": 2}),
        Override("critical_point_bar", {"unit": "pressurebar", "decimals": 2}),
    ),
)

DASHBOARD = Dashboard(
    uid="suvnet-prv",
    title="suvnet · Pressure regulators",
    description=(
        "PRVs under the gateways' pressure control: setpoint, inlet, outlet and critical-point "
        "pressure together, and each controller's last decision."
    ),
    variables=(ZONE, PRV),
    time_from="now-2d",
    links=(LINK_ALL,),
    items=(PRESSURES, CONTROLLER),
)
