"""Template variables and small pieces shared by several dashboards."""

from __future__ import annotations

from dashboards.model import QueryVariable

ZONE = QueryVariable(
    name="zone",
    label="Zone / DMA",
    sql="SELECT code AS __value, code || ' · ' || name AS __text FROM zones ORDER BY code",
)

DEVICE = QueryVariable(
    name="device",
    label="Device",
    sql="""
SELECT d.code
FROM devices d
LEFT JOIN zones z ON z.id = d.zone_id
WHERE d.enabled AND (d.zone_id IS NULL OR z.code IN ($zone))
ORDER BY d.code
""",
)

GATEWAY = QueryVariable(
    name="gateway",
    label="Gateway",
    sql="""
SELECT g.code
FROM gateways g
LEFT JOIN zones z ON z.id = g.zone_id
WHERE g.zone_id IS NULL OR z.code IN ($zone)
ORDER BY g.code
""",
)

LINK_ALL = {
    "title": "suvnet",
    "type": "dashboards",
    "tags": ["suvnet"],
    "asDropdown": True,
    "includeVars": True,
    "keepTime": True,
}
