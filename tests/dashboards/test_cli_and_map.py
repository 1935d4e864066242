"""The build command end to end (with the network map from the registry) and the GeoJSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.boards import all_dashboards
from dashboards.network_map import PipeShape, ZoneShape, fetch_network, network_geojson
from suvnet.cli import main


def test_build_command_with_network_map(
    village: dict[str, int], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from suvnet.settings import get_settings

    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        code = main(
            ["dashboards", "build", "--out", str(tmp_path), "--network", "--no-timescaledb"]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    geo = json.loads((tmp_path / "maps" / "network.geojson").read_text())
    pipes = {
        f["properties"]["code"]: f for f in geo["features"] if f["properties"]["kind"] == "pipe"
    }
    assert set(pipes) == {"P1", "P2"}
    assert len(pipes["P1"]["geometry"]["coordinates"]) == 3  # its own drawn geometry
    assert pipes["P2"]["geometry"]["coordinates"] == [[64.502, 41.301], [64.498, 41.302]]
    assert pipes["P1"]["properties"]["zone"] == "Z1"
    assert len(list((tmp_path / "dashboards").glob("*.json"))) == len(all_dashboards())


def test_network_map_skips_what_cannot_be_drawn() -> None:
    square = {"type": "Polygon", "coordinates": [[[64, 41], [65, 41], [65, 42], [64, 41]]]}
    geo = network_geojson(
        [ZoneShape("Z1", "Markaz", square), ZoneShape("Z2", "No outline", None)],
        [
            PipeShape("A", "Z1", 110, "PE", "open", None, (64.1, 41.1), (64.2, 41.2)),
            PipeShape("B", None, None, None, "open", None, (64.1, 41.1), None),
            PipeShape("C", None, None, None, "open", None, (1200.0, 41.1), (64.2, 41.2)),
        ],
    )
    kinds = [(f["properties"]["kind"], f["properties"]["code"]) for f in geo["features"]]
    assert kinds == [("zone", "Z1"), ("pipe", "A")]


def test_fetch_network_reads_the_registry(vdb: psycopg.Connection[Any]) -> None:
    geo = fetch_network(vdb)
    assert geo["type"] == "FeatureCollection"
    assert {f["properties"]["code"] for f in geo["features"]} == {"P1", "P2"}


def test_push_without_grafana_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from suvnet.settings import get_settings

    monkeypatch.delenv("SUVNET_GRAFANA_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["dashboards", "push"]) == 1
    finally:
        get_settings.cache_clear()
