"""Template variables and small pieces shared by several dashboards."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dashboards.i18n import N_, Text
from dashboards.model import QueryVariable

ZONE = QueryVariable(
    name="zone",
    label=N_("Zone / DMA"),
    sql="SELECT code AS __value, code || ' · ' || name AS __text FROM zones ORDER BY code",
)

DEVICE = QueryVariable(
    name="device",
    label=N_("Device"),
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
    label=N_("Gateway"),
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


COLUMNS: dict[str, Text] = {
    # places and things
    "zone": N_("Zone"),
    "name": N_("Name"),
    "device": N_("Device"),
    "gateway": N_("Gateway"),
    "gateways": N_("Gateways"),
    "node": N_("Node"),
    "point": N_("Measuring point"),
    "kind": N_("Kind"),
    "latitude": N_("Latitude"),
    "longitude": N_("Longitude"),
    "elevation_m": N_("Elevation, m"),
    "time": N_("Time"),
    "state": N_("State"),
    "since": N_("In this state since"),
    "last_seen": N_("Last seen"),
    "seen_ago_s": N_("Seen ago"),
    "readings": N_("Readings"),
    "poll_success_pct": N_("Poll success, %"),
    "online": N_("Online"),
    "total": N_("Total"),
    "online_pct": N_("Online, %"),
    "outbox_depth": N_("Readings waiting on the gateway"),
    # pressure
    "pressure_bar": N_("Pressure, bar"),
    "measured_at": N_("Measured at"),
    "min_bar": N_("Lowest pressure, bar"),
    "avg_bar": N_("Average pressure, bar"),
    "max_bar": N_("Highest pressure, bar"),
    "service_min_bar": N_("Service minimum, bar"),
    "service_max_bar": N_("Service maximum, bar"),
    # alarms
    "rule": N_("Rule"),
    "priority": N_("Priority"),
    "message": N_("Message"),
    "raised": N_("Raised"),
    "raised_at": N_("Raised"),
    "alarms": N_("Alarms"),
    # water balance
    "inflow_m3": N_("Inflow, m³"),
    "consumption_m3": N_("Consumption, m³"),
    "losses_m3": N_("Losses, m³"),
    "nrw_pct": N_("Non-revenue water, %"),
    "billed_m3": N_("Billed volume, m³"),
    # money
    "mahalla": N_("Mahalla"),
    "district": N_("District"),
    "debt": N_("Debt"),
    "prepaid": N_("Prepaid"),
    "debtors": N_("Debtors"),
    "collected": N_("Collected"),
}
"""The headers of the columns that several panels show (``Panel.columns``)."""


def columns(*names: str, **more: Text) -> dict[str, Text]:
    """The headers of the named columns (from :data:`COLUMNS`) and of panel-specific ones."""
    return {**{n: COLUMNS[n] for n in names}, **more}


def value_texts(
    texts: Mapping[str, Text], colours: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """A Grafana value mapping that shows each code the database returns as words (and in a
    colour): the query keeps returning the code, so it is the same in every language."""
    colours = colours or {}
    return [
        {
            "type": "value",
            "options": {
                code: {
                    "text": text,
                    "index": i,
                    **({"color": colours[code]} if code in colours else {}),
                }
                for i, (code, text) in enumerate(texts.items())
            },
        }
    ]


PG_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?"
"""A number as PostgreSQL writes a positive ``double precision`` into text (``format('%s',
...)``, ``round()`` of one): ``180``, ``2.5``, ``1e+20``. Not ``\\d``: JavaScript and Python
read it differently."""

_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}])")


def numbers_pattern(written: str) -> str:
    """The anchored regex of a text written with numbers in it, from the ``format()`` string
    that writes it (each ``%s`` a number, captured as ``$1``, ``$2``... in order). Only the
    regex syntax JavaScript (Grafana) and Python (the tests) read alike is used."""
    parts = [_REGEX_SPECIAL.sub(r"\\\1", part) for part in written.split("%s")]
    return "^" + f"({PG_NUMBER})".join(parts) + "$"


def regex_texts(patterns: Mapping[str, Text], first_index: int = 0) -> list[dict[str, Any]]:
    """Grafana regex mappings that show a text the database returns with numbers in it in
    words: ``{pattern: words}``. Grafana shows ``value.replace(pattern, words)`` (JavaScript),
    so ``$1``, ``$2`` in the words are the pattern's groups: build the words with
    :meth:`Text.filled <dashboards.i18n.Text.filled>` (``seconds="$1"``). ``first_index``
    follows the value mappings of the same column (the order Grafana lists them in)."""
    return [
        {
            "type": "regex",
            "options": {"pattern": pattern, "result": {"text": text, "index": first_index + i}},
        }
        for i, (pattern, text) in enumerate(patterns.items())
    ]


def rename_series(names: Mapping[str, Text]) -> tuple[dict[str, Any], ...]:
    """Grafana transformations that show a time series named by a code (``... high``, the
    query's ``metric``) with words instead: ``{code: words}``, the code at the end of the
    series name (what comes before it, a device or zone code, is kept)."""
    out = []
    for code, text in names.items():
        pattern = Text(text)
        pattern.template = "$1{}"
        regex = f"^(.* )?{re.escape(code)}$"
        out.append({"id": "renameByRegex", "options": {"regex": regex, "renamePattern": pattern}})
    return tuple(out)


ALARM_STATES: dict[str, Text] = {
    "normal": N_("normal"),
    "unack": N_("active, not acknowledged"),
    "ack": N_("active, acknowledged"),
    "rtn_unack": N_("cleared, not acknowledged"),
    "shelved": N_("shelved"),
    "suppressed": N_("suppressed"),
    "out_of_service": N_("out of service"),
}
"""The alarm states (``alarms.state``) in words."""

PRIORITIES: dict[str, Text] = {
    "urgent": N_("urgent"),
    "high": N_("high"),
    "medium": N_("medium"),
    "low": N_("low"),
}

LINK_STATES: dict[str, Text] = {
    "online": N_("online"),
    "offline": N_("offline"),
    "unknown": N_("unknown"),
}
"""A gateway's or device's link state."""

NODE_KINDS: dict[str, Text] = {
    "junction": N_("junction"),
    "reservoir": N_("water source"),
    "tank": N_("tank"),
}
"""The kinds of the hydraulic network's nodes (``nodes.kind``, EPANET's junction, reservoir and
tank; suvnet.registry.NodeKind). Not the asset register's kinds (assets.model.KINDS): the
map's nodes are those of the imported network."""
