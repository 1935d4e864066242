"""Small typed builders for Grafana dashboards (frozen dataclasses in, Grafana JSON out).

Only what suvnet's dashboards use is modelled: SQL targets on the PostgreSQL datasource,
panels of a handful of types, rows, query variables and the dashboard itself. Layout is
automatic: panels flow left to right in a 24-column grid and wrap, rows start a new line.
Panel ids are numbered in order, so the JSON of a dashboard is the same on every build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dashboards.i18n import Text

JSON = dict[str, Any]

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "suvnet-pg"
DATASOURCE_NAME = "suvnet PostgreSQL"
GRID_COLUMNS = 24
SCHEMA_VERSION = 39

PanelType = Literal[
    "timeseries", "stat", "gauge", "bargauge", "table", "geomap", "barchart", "piechart", "text"
]
TargetFormat = Literal["time_series", "table"]


@dataclass(frozen=True)
class DatasourceRef:
    """Which datasource a panel or variable queries."""

    uid: str = DATASOURCE_UID
    type: str = DATASOURCE_TYPE

    def to_json(self) -> JSON:
        return {"type": self.type, "uid": self.uid}


POSTGRES = DatasourceRef()


@dataclass(frozen=True)
class SqlTarget:
    """One raw-SQL query of a panel.

    ``requires`` names the tables the query reads that belong to other packages' migrations
    (alarms, billing); it is not written to Grafana, the tests use it to tell a missing table
    from a broken query.
    """

    sql: str
    ref_id: str = "A"
    format: TargetFormat = "table"
    requires: tuple[str, ...] = ()
    hide: bool = False

    def to_json(self, ds: DatasourceRef) -> JSON:
        doc: JSON = {
            "refId": self.ref_id,
            "datasource": ds.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.sql.strip(),
        }
        if self.hide:
            doc["hide"] = True
        return doc


@dataclass(frozen=True)
class Threshold:
    """A colour step: from ``value`` upwards (``None`` = the base step) the colour applies."""

    value: float | None
    color: str

    def to_json(self) -> JSON:
        return {"color": self.color, "value": self.value}


@dataclass(frozen=True)
class Override:
    """A field override: properties applied to the field named ``field_name``."""

    field_name: str
    properties: Mapping[str, Any]

    def to_json(self) -> JSON:
        return {
            "matcher": {"id": "byName", "options": self.field_name},
            "properties": [{"id": k, "value": v} for k, v in self.properties.items()],
        }


@dataclass(frozen=True)
class Panel:
    """A panel; ``w``/``h`` are its size in grid units (24 columns wide)."""

    type: PanelType
    title: str
    targets: tuple[SqlTarget, ...] = ()
    w: int = 12
    h: int = 8
    description: str = ""
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: tuple[Threshold, ...] = ()
    overrides: tuple[Override, ...] = ()
    custom: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    transformations: tuple[Mapping[str, Any], ...] = ()
    datasource: DatasourceRef = POSTGRES
    columns: Mapping[str, str] = field(default_factory=dict)
    series_label: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.w <= GRID_COLUMNS:
            raise ValueError(f"panel {self.title!r}: width must be 1..{GRID_COLUMNS}")
        if self.h < 1:
            raise ValueError(f"panel {self.title!r}: height must be at least 1")
        refs = [t.ref_id for t in self.targets]
        if len(set(refs)) != len(refs):
            raise ValueError(f"panel {self.title!r}: duplicate refId in {refs}")
        if self.type != "text" and not self.targets:
            raise ValueError(f"panel {self.title!r}: a {self.type} panel needs a query")

    def to_json(self, panel_id: int, x: int, y: int) -> JSON:
        defaults: JSON = {"custom": dict(self.custom)}
        if self.unit is not None:
            defaults["unit"] = self.unit
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.thresholds:
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [t.to_json() for t in self.thresholds],
            }
        doc: JSON = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "datasource": self.datasource.to_json(),
            "targets": [t.to_json(self.datasource) for t in self.targets],
            "fieldConfig": {
                "defaults": defaults,
                "overrides": [o.to_json() for o in self.field_overrides()],
            },
            "options": dict(self.options),
        }
        if self.description:
            doc["description"] = self.description
        if self.transformations:
            doc["transformations"] = [dict(t) for t in self.transformations]
        return doc

    def field_overrides(self) -> tuple[Override, ...]:
        """The overrides, with each column's header (``displayName``) from ``columns``.

        The query names its columns in English snake_case and stays the same in every
        language; the header a person reads is the override's display name (translated
        with the dashboard, see :mod:`dashboards.i18n`), never an SQL alias. With
        ``series_label`` (a label column of a time series, e.g. ``zone``) the legend name
        is followed by that label's value."""
        names: dict[str, Any] = {}
        for col, label in self.columns.items():
            if self.series_label:
                names[col] = Text(label).joined(f" ${{__field.labels.{self.series_label}}}")
            else:
                names[col] = label
        out = [
            Override(o.field_name, {**o.properties, "displayName": names.pop(o.field_name)})
            if o.field_name in names
            else o
            for o in self.overrides
        ]
        out += [Override(col, {"displayName": label}) for col, label in names.items()]
        return tuple(out)


@dataclass(frozen=True)
class Row:
    """A row header; the panels after it (up to the next row) belong to it."""

    title: str
    collapsed: bool = False

    def to_json(self, panel_id: int, y: int) -> JSON:
        return {
            "id": panel_id,
            "type": "row",
            "title": self.title,
            "collapsed": self.collapsed,
            "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y},
            "panels": [],
        }


@dataclass(frozen=True)
class QueryVariable:
    """A template variable filled by a SQL query (``__value``/``__text`` columns allowed).

    ``refresh``: 1 = when the dashboard loads, 2 = whenever the time range changes.
    """

    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True
    refresh: Literal[1, 2] = 1
    hide: Literal[0, 1, 2] = 0
    requires: tuple[str, ...] = ()
    datasource: DatasourceRef = POSTGRES

    def to_json(self) -> JSON:
        current: JSON = (
            {"selected": True, "text": ["All"], "value": ["$__all"]} if self.include_all else {}
        )
        return {
            "type": "query",
            "name": self.name,
            "label": self.label,
            "datasource": self.datasource.to_json(),
            "definition": self.sql.strip(),
            "query": self.sql.strip(),
            "refresh": self.refresh,
            "multi": self.multi,
            "includeAll": self.include_all,
            "hide": self.hide,
            "sort": 1,
            "current": current,
            "options": [],
            "skipUrlSync": False,
        }


@dataclass(frozen=True)
class SqlAnnotation:
    """Events drawn on every time-series panel, from a query returning ``time`` (and optionally
    ``timeend``), ``text`` and ``tags`` (comma-separated)."""

    name: str
    sql: str
    icon_color: str = "red"
    enable: bool = True
    requires: tuple[str, ...] = ()
    datasource: DatasourceRef = POSTGRES

    def to_json(self) -> JSON:
        return {
            "name": self.name,
            "datasource": self.datasource.to_json(),
            "enable": self.enable,
            "hide": False,
            "iconColor": self.icon_color,
            "target": {
                "refId": "Anno",
                "editorMode": "code",
                "format": "table",
                "rawQuery": True,
                "rawSql": self.sql.strip(),
            },
        }


@dataclass(frozen=True)
class Dashboard:
    """A whole dashboard; ``uid`` is stable, so pushing again updates it in place."""

    uid: str
    title: str
    items: tuple[Panel | Row, ...]
    variables: tuple[QueryVariable, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ("suvnet",)
    time_from: str = "now-24h"
    time_to: str = "now"
    refresh: str = "1m"
    timezone: str = "browser"
    links: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    annotations: tuple[SqlAnnotation, ...] = ()

    def __post_init__(self) -> None:
        if not self.uid or len(self.uid) > 40:
            raise ValueError("a dashboard uid must be 1..40 characters")
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"dashboard {self.uid}: duplicate variable in {names}")

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for p in self.items if isinstance(p, Panel))

    def to_json(self) -> JSON:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": self.timezone,
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": self.time_to},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "links": [dict(link) for link in self.links],
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    },
                    *(a.to_json() for a in self.annotations),
                ]
            },
            "templating": {"list": [v.to_json() for v in self.variables]},
            "panels": layout(self.items),
        }


def layout(items: Sequence[Panel | Row]) -> list[JSON]:
    """Place panels in the grid: left to right, wrapping at 24 columns; rows on a new line."""
    out: list[JSON] = []
    x = y = 0
    line_h = 0
    for n, item in enumerate(items, start=1):
        if isinstance(item, Row):
            if x:
                y += line_h
            out.append(item.to_json(n, y))
            y += 1
            x = line_h = 0
            continue
        if x + item.w > GRID_COLUMNS:
            y += line_h
            x = line_h = 0
        out.append(item.to_json(n, x, y))
        x += item.w
        line_h = max(line_h, item.h)
    return out
