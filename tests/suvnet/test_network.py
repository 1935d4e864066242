"""Network import (EPANET .inp, GeoJSON) and export, on a real PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import Result

from suvnet.errors import FileFormatError
from suvnet.network import (
    ChangeLog,
    Network,
    NetworkConflictError,
    assign_zones,
    export_geojson,
    from_geojson,
    inp_section_ids,
    polygon_contains,
    read_geojson,
    read_inp,
    save_network,
    save_zones,
    to_geojson,
)
from suvnet.registry import UnknownReferenceError, Zone, upsert_zone
from tests.suvnet.conftest import EXAMPLES, WNTR_NETWORKS, snapshot

DATA = Path(__file__).resolve().parents[1] / "data" / "network"
US_UNITS = {"CFS", "GPM", "MGD", "IMGD", "AFD"}


# ---------------------------------------------------------------- an independent .inp reader


def parse_inp(path: Path) -> dict[str, list[list[str]]]:
    """Data lines per section, split on blanks; comments (';') and blank lines dropped."""
    sections: dict[str, list[list[str]]] = {}
    current = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = line.upper()
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line.split())
    return sections


def inp_units(sections: dict[str, list[list[str]]]) -> str:
    for row in sections.get("[OPTIONS]", []):
        if row[0].upper() == "UNITS":
            return row[1].upper()
    return "GPM"  # the EPANET default


def _import(url: str, net: Network, zones: list[Zone] | None = None) -> ChangeLog:
    log = ChangeLog()
    with psycopg.connect(url) as conn, conn.transaction():
        save_zones(conn, zones or [], log)
        save_network(conn, net, log)
    return log


def _rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


# ---------------------------------------------------------------- the wntr example networks


@pytest.mark.parametrize("name", ["Net1", "Net3", "ky10"])
def test_import_wntr_network_matches_inp_file(db_url: str, name: str) -> None:
    path = WNTR_NETWORKS / f"{name}.inp"
    assert path.exists(), f"{path} is not shipped with this wntr"
    sections = parse_inp(path)
    prefix = f"{name}-"
    log = _import(db_url, read_inp(path, code=name, prefix=prefix))

    counts = dict(
        _rows(
            db_url,
            "SELECT kind, count(*) FROM nodes WHERE network_id = "
            "(SELECT id FROM networks WHERE code = %s) GROUP BY kind",
            name,
        )
    )
    assert counts.get("junction", 0) == len(sections.get("[JUNCTIONS]", []))
    assert counts.get("reservoir", 0) == len(sections.get("[RESERVOIRS]", []))
    assert counts.get("tank", 0) == len(sections.get("[TANKS]", []))
    for table, section in (("pipes", "[PIPES]"), ("valves", "[VALVES]"), ("pumps", "[PUMPS]")):
        (n,) = _rows(
            db_url,
            f"SELECT count(*) FROM {table} WHERE network_id = "
            "(SELECT id FROM networks WHERE code = %s)",
            name,
        )[0]
        assert n == len(sections.get(section, [])), table
    assert log.count("nodes", "created") == sum(counts.values())

    # every pipe: end nodes, diameter and length as in the file (US units converted)
    us = inp_units(sections) in US_UNITS
    diameter_mm = 25.4 if us else 1.0
    length_m = 0.3048 if us else 1.0
    pipes = {
        code: (a, b, d, length, status)
        for code, a, b, d, length, status in _rows(
            db_url,
            "SELECT p.code, a.code, b.code, p.diameter_mm, p.length_m, p.status FROM pipes p "
            "JOIN nodes a ON a.id = p.from_node_id JOIN nodes b ON b.id = p.to_node_id "
            "WHERE p.code LIKE %s",
            prefix + "%",
        )
    }
    for row in sections["[PIPES]"]:
        a, b, d, length, status = pipes[prefix + row[0]]
        assert (a, b) == (prefix + row[1], prefix + row[2])
        assert math.isclose(d, float(row[4]) * diameter_mm, rel_tol=1e-6)
        assert math.isclose(length, float(row[3]) * length_m, rel_tol=1e-6)
        if len(row) > 7 and row[7].upper() == "CV":
            assert status == "cv"

    # coordinates and the pipe geometry (end points + [VERTICES])
    xy = {
        code: (x, y)
        for code, x, y in _rows(
            db_url, "SELECT code, x, y FROM nodes WHERE code LIKE %s", prefix + "%"
        )
    }
    for row in sections.get("[COORDINATES]", []):
        assert xy[prefix + row[0]] == (float(row[1]), float(row[2]))
    vertices: dict[str, int] = {}
    for row in sections.get("[VERTICES]", []):
        vertices[row[0]] = vertices.get(row[0], 0) + 1
    geoms = dict(_rows(db_url, "SELECT code, geometry FROM pipes WHERE code LIKE %s", prefix + "%"))
    with_coords = {r[0] for r in sections.get("[COORDINATES]", [])}
    for row in sections["[PIPES]"]:
        geom = geoms[prefix + row[0]]
        if row[1] in with_coords and row[2] in with_coords:
            assert len(geom["coordinates"]) == 2 + vertices.get(row[0], 0)
            assert tuple(geom["coordinates"][0]) == xy[prefix + row[1]]
        else:
            assert geom is None

    # importing again changes nothing
    again = _import(db_url, read_inp(path, code=name, prefix=prefix))
    assert not again.changed
    assert again.count("pipes", "unchanged") == len(sections["[PIPES]"])


def test_inp_valves_pumps_and_units(db_url: str) -> None:
    ky10 = read_inp(WNTR_NETWORKS / "ky10.inp", prefix="units-")
    sections = parse_inp(WNTR_NETWORKS / "ky10.inp")
    file_prv = {r[0]: float(r[5]) for r in sections["[VALVES]"] if r[4].upper() == "PRV"}
    assert file_prv
    for v in ky10.valves:
        assert v.kind == "PRV"
        # GPM model: PRV settings are psi in the file, metres of head in the registry
        assert v.setting is not None
        assert math.isclose(
            v.setting, file_prv[v.code.removeprefix("units-")] * 0.70325, rel_tol=1e-3
        )
    assert {p.kind for p in ky10.pumps} == {"power"}
    assert all(p.power_kw and p.power_kw > 0 for p in ky10.pumps)

    tiny = read_inp(DATA / "tiny.inp", crs="local")
    assert {p.code: p.status for p in tiny.pipes} == {"P1": "open", "P2": "cv", "P3": "closed"}
    (prv,) = tiny.valves
    assert (prv.kind, prv.setting, prv.from_node, prv.to_node) == ("PRV", 30.0, "J3", "J4")
    assert tiny.info.headloss == "H-W"
    j1 = next(n for n in tiny.nodes if n.code == "J1")
    assert j1.base_demand_lps is not None
    assert math.isclose(j1.base_demand_lps, 1.5)
    assert next(p for p in tiny.pipes if p.code == "P2").geometry == (
        (100.0, 0.0),
        (120.0, 50.0),
        (110.0, 100.0),
        (100.0, 150.0),
    )


def test_inp_import_into_a_zone(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn, conn.transaction():
        upsert_zone(conn, Zone("DMA-T", "test zone"))
    _import(fresh_db_url, read_inp(DATA / "tiny.inp", zone="DMA-T"))
    zones = _rows(
        fresh_db_url,
        "SELECT DISTINCT z.code FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id",
    )
    assert zones == [("DMA-T",)]
    (valve_zone,) = _rows(
        fresh_db_url, "SELECT z.code FROM valves v JOIN zones z ON z.id = v.zone_id"
    )
    assert valve_zone == ("DMA-T",)


def test_unknown_zone_rolls_back(fresh_db_url: str) -> None:
    before = snapshot(fresh_db_url)
    with pytest.raises(UnknownReferenceError) as info:
        _import(fresh_db_url, read_inp(DATA / "tiny.inp", zone="NO-SUCH-ZONE"))
    assert info.value.code == "NO-SUCH-ZONE"
    assert snapshot(fresh_db_url) == before


def test_projected_coordinates_are_not_taken_for_lonlat() -> None:
    with pytest.raises(FileFormatError) as info:
        read_inp(WNTR_NETWORKS / "ky10.inp", crs="EPSG:4326")
    assert info.value.field == "crs"
    assert "not a longitude/latitude" in info.value.message
    assert read_inp(WNTR_NETWORKS / "ky10.inp", crs="EPSG:32616").info.crs == "EPSG:32616"
    point = {"type": "Point", "coordinates": [512000, 4478000]}
    utm = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": point, "properties": {"code": "A"}}],
    }
    with pytest.raises(FileFormatError, match="not a longitude/latitude"):
        from_geojson(utm)
    assert from_geojson(utm, crs="EPSG:32642").networks[0].info.crs == "EPSG:32642"


def test_bad_inp_names_file_and_line() -> None:
    with pytest.raises(FileFormatError) as info:
        read_inp(DATA / "bad_section.inp")
    assert info.value.path.endswith("bad_section.inp")
    assert info.value.line == 9
    assert "JUNCTONS" in str(info.value)


def test_same_ids_in_two_networks_are_refused(fresh_db_url: str) -> None:
    _import(fresh_db_url, read_inp(WNTR_NETWORKS / "Net1.inp"))
    before = snapshot(fresh_db_url)
    with pytest.raises(NetworkConflictError, match=r"in Net1"):
        _import(fresh_db_url, read_inp(WNTR_NETWORKS / "Net3.inp"))
    assert snapshot(fresh_db_url) == before
    # with a prefix both live side by side
    log = _import(fresh_db_url, read_inp(WNTR_NETWORKS / "Net3.inp", prefix="n3-"))
    assert log.count("pipes", "created") == len(parse_inp(WNTR_NETWORKS / "Net3.inp")["[PIPES]"])


# ---------------------------------------------------------------- pure helpers


def test_inp_section_ids() -> None:
    text = "[JUNCTIONS]\n;ID Elev\n J1 10 ; comment\n\n J2 11\n[PIPES]\n P1 J1 J2\n"
    assert inp_section_ids(text, "junctions") == ["J1", "J2"]
    assert inp_section_ids(text, "PIPES") == ["P1"]
    assert inp_section_ids(text, "TANKS") == []


def test_polygon_contains_with_hole_and_multipolygon() -> None:
    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    poly = {"type": "Polygon", "coordinates": [square, hole]}
    assert polygon_contains(poly, 1, 1)
    assert not polygon_contains(poly, 5, 5)
    assert not polygon_contains(poly, 11, 5)
    multi = {
        "type": "MultiPolygon",
        "coordinates": [[square], [[[20, 0], [30, 0], [30, 10], [20, 0]]]],
    }
    assert polygon_contains(multi, 29, 5)
    assert not polygon_contains(multi, 15, 5)


def test_assign_zones_picks_the_smallest_polygon() -> None:
    net = read_inp(DATA / "tiny.inp")
    big = Zone(
        "BIG",
        "big",
        kind="supply_zone",
        geometry={
            "type": "Polygon",
            "coordinates": [[[-10, -10], [300, -10], [300, 300], [-10, -10]]],
        },
    )
    small = Zone(
        "SMALL",
        "small",
        geometry={
            "type": "Polygon",
            "coordinates": [[[90, 140], [210, 140], [210, 160], [90, 160]]],
        },
    )
    out = assign_zones(net, [big, small])
    zones = {n.code: n.zone for n in out.nodes}
    assert zones["J2"] == zones["J3"] == zones["J4"] == "SMALL"
    assert zones["J1"] == "BIG"
    assert out.valves[0].zone == "SMALL"  # the zone of its downstream node


# ---------------------------------------------------------------- GeoJSON


def test_geojson_round_trip(db_url: str, make_db: Callable[[], str], tmp_path: Path) -> None:
    from suvnet.site import apply_site, load_site

    with psycopg.connect(db_url) as conn:
        apply_site(conn, load_site(EXAMPLES / "village-site.yaml"))
    _import(db_url, read_inp(WNTR_NETWORKS / "Net3.inp", code="net3", prefix="rt3-"))
    _import(db_url, read_inp(DATA / "tiny.inp", code="tiny", prefix="rtt-"))
    with psycopg.connect(db_url) as conn:
        first = export_geojson(conn, zones=True)
    layers = {f["properties"]["layer"] for f in first["features"]}
    assert layers == {"zone", "node", "pipe", "valve", "pump"}
    assert len(first["features"]) > 250

    file = tmp_path / "export.geojson"
    file.write_text(json.dumps(first), encoding="utf-8")
    geo = read_geojson(file)
    second_url = make_db()
    log = ChangeLog()
    with psycopg.connect(second_url) as conn, conn.transaction():
        save_zones(conn, list(geo.zones), log)
        for net in geo.networks:
            save_network(conn, net, log)
    with psycopg.connect(second_url) as conn:
        second = export_geojson(conn, zones=True)
    assert second == first
    # the exported text, not only the parsed objects, is the same
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_geojson_without_topology_snaps_line_ends_to_nodes(fresh_db_url: str) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
                },
                "properties": {"code": "Z1", "name": "zone one"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [0.1, 0.1]},
                "properties": {"code": "A", "kind": "reservoir"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [0.5, 0.5]},
                "properties": {"code": "B"},
            },
            {
                "type": "Feature",
                "id": "C",
                "geometry": {"type": "Point", "coordinates": [0.9, 0.5]},
                "properties": {},
            },
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[0.1, 0.1], [0.3, 0.2], [0.5, 0.5]],
                },
                "properties": {"code": "L1", "diameter_mm": 110},
            },
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[0.5, 0.5], [0.9000000001, 0.5]],
                },
                "properties": {
                    "code": "L2",
                    "diameter_mm": 90,
                    "material": "PE100",
                    "install_year": 2019,
                },
            },
        ],
    }
    geo = from_geojson(doc, default_network="plain", zone="Z1")
    assert [z.code for z in geo.zones] == ["Z1"]
    (net,) = geo.networks
    assert net.info.crs == "EPSG:4326"
    assert {p.code: (p.from_node, p.to_node) for p in net.pipes} == {
        "L1": ("A", "B"),
        "L2": ("B", "C"),
    }
    _import(fresh_db_url, net, list(geo.zones))
    rows = _rows(
        fresh_db_url,
        "SELECT n.code, n.kind, z.code FROM nodes n JOIN zones z ON z.id = n.zone_id ORDER BY 1",
    )
    assert rows == [("A", "reservoir", "Z1"), ("B", "junction", "Z1"), ("C", "junction", "Z1")]


@pytest.mark.parametrize(
    ("feature", "field", "words"),
    [
        (
            {
                "type": "Feature",
                "geometry": None,
                "properties": {
                    "layer": "pipe",
                    "code": "X",
                    "from": "A",
                    "to": "B",
                    "diameter_mm": "big",
                },
            },
            "features[1].properties.diameter_mm",
            "must be a number",
        ),
        (
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[5, 5], [6, 6]]},
                "properties": {"code": "X"},
            },
            "features[1].properties.from",
            "no node lies at",
        ),
        (
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [1, 1]},
                "properties": {"code": "A"},
            },
            "features[1].properties.code",
            "appears twice",
        ),
        (
            {
                "type": "Feature",
                "geometry": {"type": "MultiPoint", "coordinates": [[1, 1]]},
                "properties": {"code": "Q"},
            },
            "features[1].properties.layer",
            "cannot tell",
        ),
        (
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [1, 1]},
                "properties": {"code": "has space"},
            },
            "features[1].properties.code",
            "not a valid ID",
        ),
    ],
)
def test_bad_geojson_names_the_field(feature: dict[str, Any], field: str, words: str) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [0, 0]},
                "properties": {"code": "A"},
            },
            feature,
        ],
    }
    with pytest.raises(FileFormatError) as info:
        from_geojson(doc, path="bad.geojson")
    assert info.value.field == field
    assert words in info.value.message
    assert "bad.geojson" in str(info.value)


def test_export_is_plain_geojson_with_crs_member() -> None:
    net = read_inp(DATA / "tiny.inp", crs="EPSG:32642")
    doc = to_geojson([net])
    assert doc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32642"
    assert doc["networks"][0]["crs"] == "EPSG:32642"
    for f in doc["features"]:
        assert f["type"] == "Feature"
        assert f["geometry"]["type"] in ("Point", "LineString")
    # the legacy crs member is honoured on import
    again = from_geojson({k: v for k, v in doc.items() if k != "networks"})
    assert again.networks[0].info.crs == "EPSG:32642"


# ---------------------------------------------------------------- the CLI on a real database


def _suvnet(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUVNET_DATABASE_URL": url, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "suvnet.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )


def test_cli_import_and_export(
    fresh_db_url: str, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    from suvnet.network_cli import app

    with psycopg.connect(fresh_db_url) as conn, conn.transaction():
        upsert_zone(conn, Zone("NET1-ZONE", "Net1 zone"))
    inp = WNTR_NETWORKS / "Net1.inp"
    # the real command, in a sub-process
    done = _suvnet(fresh_db_url, "network", "import", str(inp), "--zone", "NET1-ZONE")
    assert done.returncode == 0, done.stderr
    assert "created" in done.stdout
    sections = parse_inp(inp)
    n_nodes = sum(len(sections.get(s, [])) for s in ("[JUNCTIONS]", "[RESERVOIRS]", "[TANKS]"))
    assert _rows(
        fresh_db_url,
        "SELECT z.code, count(*) FROM nodes n JOIN zones z ON z.id = n.zone_id GROUP BY 1",
    ) == [("NET1-ZONE", n_nodes)]

    again = run_cli(app, fresh_db_url, "import", str(inp), "--zone", "NET1-ZONE")
    assert again.exit_code == 0, again.output
    assert "no change" in again.output

    out = tmp_path / "net1.geojson"
    exported = run_cli(app, fresh_db_url, "export", "--out", str(out), "--zones")
    assert exported.exit_code == 0, exported.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    layers = [f["properties"]["layer"] for f in doc["features"]]
    assert layers.count("zone") == 1
    assert layers.count("node") == n_nodes
    assert layers.count("pipe") == len(sections["[PIPES]"])
    assert layers.count("pump") == len(sections["[PUMPS]"])


def test_cli_dry_run_writes_nothing(fresh_db_url: str, run_cli: Callable[..., Result]) -> None:
    from suvnet.network_cli import app

    before = snapshot(fresh_db_url)
    done = run_cli(app, fresh_db_url, "import", str(DATA / "tiny.inp"), "--dry-run")
    assert done.exit_code == 0, done.output
    assert "dry run" in done.output
    assert "pipes created: P1, P2, P3" in done.output
    assert snapshot(fresh_db_url) == before


def test_cli_geojson_copy_under_new_code(
    fresh_db_url: str, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    from suvnet.network_cli import app

    _import(fresh_db_url, read_inp(DATA / "tiny.inp", code="orig"))
    out = tmp_path / "orig.geojson"
    assert run_cli(app, fresh_db_url, "export", "-o", str(out)).exit_code == 0
    done = run_cli(app, fresh_db_url, "import", str(out), "--code", "copy", "--prefix", "c-")
    assert done.exit_code == 0, done.output
    per_network = _rows(
        fresh_db_url,
        "SELECT w.code, count(*), min(n.code) FROM nodes n JOIN networks w ON w.id = n.network_id "
        "GROUP BY 1 ORDER BY 1",
    )
    assert per_network == [("copy", 5, "c-J1"), ("orig", 5, "J1")]


def test_cli_bad_file_fails_cleanly(fresh_db_url: str, run_cli: Callable[..., Result]) -> None:
    from suvnet.network_cli import app

    before = snapshot(fresh_db_url)
    done = _suvnet(fresh_db_url, "network", "import", str(DATA / "bad_section.inp"))
    assert done.returncode == 1
    assert "bad_section.inp:9" in done.stderr
    unknown = run_cli(app, fresh_db_url, "import", str(DATA / "tiny.inp"), "--zone", "NOPE")
    assert unknown.exit_code != 0
    assert isinstance(unknown.exception, FileFormatError)
    assert "unknown zone 'NOPE'" in str(unknown.exception)
    assert snapshot(fresh_db_url) == before
