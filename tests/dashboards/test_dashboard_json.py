"""The generated dashboard JSON holds what Grafana requires, and the build command writes it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from dashboards.boards import all_dashboards
from dashboards.i18n import render
from dashboards.model import GRID_COLUMNS, Dashboard, Panel, SqlTarget
from dashboards.provisioning import DatasourceConfig, build

DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"type": "string", "minLength": 1}, "uid": {"type": "string"}},
}
GRID_POS = {
    "type": "object",
    "required": ["x", "y", "w", "h"],
    "properties": {
        "x": {"type": "integer", "minimum": 0, "maximum": GRID_COLUMNS - 1},
        "y": {"type": "integer", "minimum": 0},
        "w": {"type": "integer", "minimum": 1, "maximum": GRID_COLUMNS},
        "h": {"type": "integer", "minimum": 1},
    },
}
TARGET = {
    "type": "object",
    "required": ["refId", "rawSql", "format", "datasource"],
    "properties": {
        "refId": {"type": "string", "minLength": 1},
        "rawSql": {"type": "string", "minLength": 1},
        "rawQuery": {"const": True},
        "format": {"enum": ["time_series", "table"]},
        "datasource": DATASOURCE,
    },
}
PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {
            "enum": [
                "row",
                "timeseries",
                "stat",
                "gauge",
                "bargauge",
                "table",
                "geomap",
                "barchart",
                "piechart",
                "text",
            ]
        },
        "title": {"type": "string"},
        "gridPos": GRID_POS,
        "datasource": DATASOURCE,
        "targets": {"type": "array", "items": TARGET},
        "fieldConfig": {
            "type": "object",
            "required": ["defaults", "overrides"],
            "properties": {"overrides": {"type": "array"}},
        },
        "options": {"type": "object"},
    },
    "if": {"properties": {"type": {"const": "row"}}},
    "then": {"required": ["collapsed", "panels"]},
    "else": {
        "required": ["datasource", "targets", "fieldConfig", "options"],
        "properties": {"targets": {"minItems": 1}},
    },
}
VARIABLE = {
    "type": "object",
    "required": ["type", "name", "query", "datasource", "refresh", "hide"],
    "properties": {
        "type": {"const": "query"},
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "query": {"type": "string", "minLength": 1},
        "datasource": DATASOURCE,
        "refresh": {"enum": [0, 1, 2]},
        "hide": {"enum": [0, 1, 2]},
        "multi": {"type": "boolean"},
        "includeAll": {"type": "boolean"},
    },
}
ANNOTATION = {
    "type": "object",
    "required": ["name", "datasource", "enable", "iconColor"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "datasource": DATASOURCE,
        "enable": {"type": "boolean"},
        "target": {
            "type": "object",
            "required": ["refId", "rawSql", "format"],
            "properties": {
                "rawSql": {"type": "string", "minLength": 1},
                "format": {"const": "table"},
            },
        },
    },
}
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "panels", "templating", "schemaVersion", "time", "annotations"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": VARIABLE}},
        },
        "annotations": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": ANNOTATION}},
        },
        "panels": {"type": "array", "minItems": 1, "items": PANEL},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
VALIDATOR = jsonschema_rs.validator_for(DASHBOARD_SCHEMA)
_VAR_USE = re.compile(r"\$\{?([A-Za-z]\w*)|\[\[(\w+)")


def _ids(d: Dashboard) -> str:
    return d.uid


@pytest.mark.parametrize("lang", ["uz", "uz_Cyrl", "ru", "en"])
@pytest.mark.parametrize("dashboard", all_dashboards(), ids=_ids)
def test_schema(dashboard: Dashboard, lang: str) -> None:
    doc = json.loads(json.dumps(render(dashboard, lang)))  # exactly what is written to disk
    errors = [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []


def test_schema_catches_a_broken_dashboard() -> None:
    doc = render(all_dashboards()[0])
    del doc["panels"][1]["gridPos"]
    doc["panels"][2]["targets"] = []
    doc["templating"]["list"][0]["refresh"] = 9
    messages = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert len(messages) == 3, messages


@pytest.mark.parametrize("dashboard", all_dashboards(), ids=_ids)
def test_layout_ids_and_variables(dashboard: Dashboard) -> None:
    doc = dashboard.to_json()
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
    defined = {v["name"] for v in doc["templating"]["list"]}
    annotation_targets = [a["target"] for a in doc["annotations"]["list"] if "target" in a]
    for p in [*doc["panels"], {"title": "annotations", "targets": annotation_targets}]:
        for t in p.get("targets", []):
            used = {a or b for a, b in _VAR_USE.findall(t["rawSql"])} - {""}
            used = {u for u in used if not u.startswith("__")}
            assert used <= defined, f"{p['title']!r} uses undefined variables {used - defined}"
    for v in doc["templating"]["list"]:
        used = {a or b for a, b in _VAR_USE.findall(v["query"])} - {""}
        earlier = {
            w["name"] for w in doc["templating"]["list"][: doc["templating"]["list"].index(v)]
        }
        assert {u for u in used if not u.startswith("__")} <= earlier, v["name"]


@pytest.mark.parametrize(
    "panel",
    [p for d in all_dashboards() for p in d.panels if p.type == "geomap"],
    ids=lambda p: p.title,
)
def test_geomap_layers_point_at_their_queries(panel: Panel) -> None:
    refs = {t.ref_id for t in panel.targets}
    layers = panel.options["layers"]
    for layer in layers:
        if layer["type"] == "markers":
            assert layer["filterData"]["options"] in refs
            assert layer["location"] == {
                "mode": "coords",
                "latitude": "latitude",
                "longitude": "longitude",
            }
    assert {ly["filterData"]["options"] for ly in layers if "filterData" in ly} == refs


def test_uids_and_titles_are_unique() -> None:
    boards = all_dashboards()
    assert len({d.uid for d in boards}) == len(boards)
    assert len({d.title for d in boards}) == len(boards)


def test_builders_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="width"):
        Panel("stat", "x", (SqlTarget("SELECT 1"),), w=25)
    with pytest.raises(ValueError, match="duplicate refId"):
        Panel("stat", "x", (SqlTarget("SELECT 1"), SqlTarget("SELECT 2")))
    with pytest.raises(ValueError, match="needs a query"):
        Panel("table", "x")


def test_build_writes_dashboards_and_provisioning(tmp_path: Path) -> None:
    boards = all_dashboards()
    res = build(tmp_path, boards, DatasourceConfig(timescaledb=False))
    assert len(res.written) == len(boards) + 2
    for d in boards:
        written = json.loads((tmp_path / "dashboards" / f"{d.uid}.json").read_text())
        assert written == render(d)  # the default language (uz), with the usual uids
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/suvnet.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == "suvnet-pg"
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["jsonData"]["timescaledb"] is False
    assert source["url"] == "${SUVNET_GRAFANA_DB_HOST}"
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/suvnet.yaml").read_text())
    assert prov["providers"][0]["folderUid"] == "suvnet"
    again = build(tmp_path, boards, DatasourceConfig(timescaledb=False))
    assert again.written == () and len(again.unchanged) == len(boards) + 2


def test_committed_deploy_files_are_current(tmp_path: Path) -> None:
    """deploy/grafana holds the build output; rebuild it when a dashboard changes:
    suvnet dashboards build --out deploy/grafana"""
    root = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
    if not root.is_dir():
        pytest.fail("deploy/grafana is missing: run suvnet dashboards build --out deploy/grafana")
    res = build(tmp_path, all_dashboards(), DatasourceConfig())
    for fresh in res.written:
        rel = fresh.relative_to(tmp_path)
        committed = root / rel
        assert committed.is_file(), f"deploy/grafana/{rel} is missing"
        assert committed.read_text() == fresh.read_text(), f"deploy/grafana/{rel} is stale"
    on_disk: Any = sorted(p.name for p in (root / "dashboards").glob("*.json"))
    assert on_disk == sorted(f"{d.uid}.json" for d in all_dashboards())
