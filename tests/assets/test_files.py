"""Import and export through GDAL (pyogrio) and EPANET: every format, the CRS rules, and
the bad inputs that must refuse the whole file with an error naming the feature."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyogrio.raw  # type: ignore[import-untyped]
import pytest
import shapely

from assets import service
from assets.crs import from_wgs84, resolve
from assets.errors import ImportRefusedError
from assets.files import ReadOptions, read_assets
from assets.store import load_assets
from suvnet.network import Network, read_inp
from tests.assets.conftest import actor

ROOT = Path(__file__).resolve().parents[2]
VILLAGE_INP = ROOT / "deploy" / "examples" / "village.inp"
HERE = shapely.Point(66.9, 39.65)  # Samarkand region, UTM 42N / SK-42 zone 12


def write(
    path: Path,
    geoms: list[shapely.Geometry],
    fields: dict[str, list[object]],
    *,
    crs: str | None,
    layer: str | None = None,
    driver: str | None = None,
    gtype: str = "Unknown",
    encoding: str | None = None,
) -> None:
    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    data = [np.array(v, dtype=object) for v in fields.values()]
    with warnings.catch_warnings():  # a DXF has no CRS, and pyogrio says so
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        pyogrio.raw.write(
            path,
            wkb,
            data,
            list(fields),
            layer=layer,
            driver=driver,
            geometry_type=gtype,
            crs=crs,
            encoding=encoding,
        )


def local(point: Any, crs: str) -> Any:
    return from_wgs84(point, resolve(crs))


@pytest.fixture
def conn(any_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(any_db_url) as c:
        c.execute("DELETE FROM assets")
        c.commit()
        yield c


def problems(exc: pytest.ExceptionInfo[ImportRefusedError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_shapefile_in_utm_keeps_source_crs_and_text(tmp_path: Path) -> None:
    shp = tmp_path / "valves.shp"
    write(
        shp,
        [local(HERE, "EPSG:32642")],
        {"id": ["V-1"], "name": ["Задвижка"], "dn": [100]},
        crs="EPSG:32642",
        gtype="Point",
        encoding="cp1251",
    )
    got = read_assets(shp, ReadOptions(accuracy_m=0.02))
    a = got.assets[0]
    assert (a.code, a.kind, a.name, a.diameter_mm, a.source_crs, a.accuracy_m) == (
        "V-1",
        "valve",
        "Задвижка",
        100.0,
        "EPSG:32642",
        0.02,
    )
    assert shapely.distance(a.geometry, HERE) < 1e-7  # about a centimetre


def test_a_dbf_in_an_unknown_encoding_is_refused(tmp_path: Path) -> None:
    shp = tmp_path / "valves.shp"
    write(
        shp,
        [local(HERE, "EPSG:32642")],
        {"id": ["V-1"], "name": ["Задвижка"]},
        crs="EPSG:32642",
        gtype="Point",
        encoding="cp1251",
    )
    shp.with_suffix(".cpg").unlink()
    dbf = shp.with_suffix(".dbf")
    raw = bytearray(dbf.read_bytes())
    raw[29] = 0  # no language driver either: nothing says the encoding
    dbf.write_bytes(bytes(raw))
    with pytest.raises(ImportRefusedError) as info:
        read_assets(shp, ReadOptions())
    (msg,) = problems(info)
    assert msg.startswith("valves.shp, layer valves, feature #0, field 'name': text b'")
    assert "--encoding" in msg and "cp1251" in msg
    with pytest.raises(ImportRefusedError, match="is not valid utf-8"):
        read_assets(shp, ReadOptions(encoding="utf-8"))
    assert read_assets(shp, ReadOptions(encoding="cp1251")).assets[0].name == "Задвижка"


def test_missing_unknown_and_wrong_crs(tmp_path: Path) -> None:
    dxf = tmp_path / "plan.dxf"
    write(dxf, [local(HERE, "EPSG:28412")], {"Layer": ["VALVES"]}, crs=None, driver="DXF")
    with pytest.raises(ImportRefusedError, match="coordinate system is missing"):
        read_assets(dxf, ReadOptions())
    with pytest.raises(ImportRefusedError, match="unknown coordinate system 'SK-99'"):
        read_assets(dxf, ReadOptions(crs="SK-99"))
    # metres said to be degrees, degrees said to be metres
    with pytest.raises(ImportRefusedError, match="not longitudes/latitudes in EPSG:4326"):
        read_assets(dxf, ReadOptions(crs="EPSG:4326"))
    csv = tmp_path / "points.csv"
    csv.write_text("code,kind,x,y\nH-1,hydrant,66.9,39.65\n", encoding="utf-8")
    with pytest.raises(ImportRefusedError) as info:
        read_assets(csv, ReadOptions(crs="UTM42N"))
    assert (
        "feature H-1, field 'geometry': the coordinates (66.9, 39.65) look like"
        in (problems(info)[0])
    )
    got = read_assets(dxf, ReadOptions(crs="SK42-GK12"))
    assert got.assets[0].source_crs == "EPSG:28412"
    assert shapely.distance(got.assets[0].geometry, HERE) < 1e-6


def test_dxf_layers(tmp_path: Path) -> None:
    dxf = tmp_path / "plan.dxf"
    pipe = shapely.LineString(
        [local(HERE, "UTM42N").coords[0], local(shapely.Point(66.901, 39.65), "UTM42N").coords[0]]
    )
    write(
        dxf, [pipe, local(HERE, "UTM42N")], {"Layer": ["VODOPROVOD", "0"]}, crs=None, driver="DXF"
    )
    with pytest.raises(ImportRefusedError) as info:
        read_assets(dxf, ReadOptions(crs="UTM42N"))
    (msg,) = problems(info)
    assert "no layer that names a kind of asset (its layers: 0, VODOPROVOD)" in msg
    got = read_assets(dxf, ReadOptions(crs="UTM42N", layer_kinds={"VODOPROVOD": "pipe"}))
    (a,) = got.assets
    assert a.kind == "pipe" and a.code.startswith("VODOPROVOD-")
    assert got.layers[a.code] == "VODOPROVOD"


def test_csv_of_surveyed_points_keeps_elevations(tmp_path: Path) -> None:
    p = local(HERE, "SK42-GK12")
    csv = tmp_path / "survey.csv"
    csv.write_text(
        f"code,kind,x,y,z,accuracy\nMH-1,manhole,{p.x:.3f},{p.y:.3f},702.45,0.03\n",
        encoding="utf-8",
    )
    (a,) = read_assets(csv, ReadOptions(crs="SK42-GK12")).assets
    assert (a.code, a.kind, a.elevation_m, a.accuracy_m, a.source_crs) == (
        "MH-1",
        "manhole",
        702.45,
        0.03,
        "EPSG:28412",
    )


def test_bad_features_name_file_layer_feature_field(tmp_path: Path) -> None:
    gpkg = tmp_path / "net.gpkg"
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    bowtie = shapely.affinity.translate(bowtie, *local(HERE, "UTM42N").coords[0])
    write(
        gpkg,
        [bowtie],
        {"code": ["TANK-1"], "kind": ["tank"]},
        crs="EPSG:32642",
        layer="sites",
        gtype="Polygon",
    )
    write(
        gpkg,
        [local(HERE, "UTM42N")] * 2,
        {"code": ["V-1", "V-1"], "dn": ["100", "DN100"]},
        crs="EPSG:32642",
        layer="valves",
        gtype="Point",
    )
    with pytest.raises(ImportRefusedError) as info:
        read_assets(gpkg, ReadOptions())
    msgs = problems(info)
    assert (
        "net.gpkg, layer sites, feature TANK-1, field 'geometry': is not valid: "
        "Self-intersection" in msgs[0]
    )
    assert (
        "net.gpkg, layer valves, feature V-1, field 'diameter_mm': must be a number, "
        "not 'DN100'" in msgs
    )


def test_duplicate_id_imports_nothing(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    gj = tmp_path / "valves.geojson"
    write(
        gj,
        [HERE, HERE, HERE],
        {"code": ["V-1", "V-2", "V-1"], "kind": ["valve"] * 3},
        crs="EPSG:4326",
        driver="GeoJSON",
    )
    with pytest.raises(ImportRefusedError) as info:
        service.import_file(conn, gj, ReadOptions(), actor())
    assert problems(info) == [
        "valves.geojson, layer valves, feature V-1, field 'code': duplicate asset id in this file"
    ]
    assert load_assets(conn) == []


def test_geopackage_export_and_import_round_trip(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    service.import_file(conn, VILLAGE_INP, ReadOptions(crs="EPSG:4326"), actor())
    before = {a.code: a for a in load_assets(conn)}
    out = tmp_path / "village.gpkg"
    counts = service.export_file(conn, out, crs="UTM42N")
    assert counts == {"water_pipes": 16, "water_points": 17}
    back = read_assets(out, ReadOptions())
    assert back.source_crs == "EPSG:32642"
    assert len(back.assets) == len(before)
    for a in back.assets:
        b = before[a.code]
        assert (a.kind, a.diameter_mm, a.elevation_m) == (b.kind, b.diameter_mm, b.elevation_m)
        assert shapely.hausdorff_distance(a.geometry, b.geometry) < 1e-7
        assert a.attrs.get("from") == b.attrs.get("from")


def test_epanet_round_trip(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    """.inp in, .inp out: the same model (nodes, pipes, valves, their numbers and places)."""
    service.import_file(conn, VILLAGE_INP, ReadOptions(crs="EPSG:4326"), actor())
    out = tmp_path / "out.inp"
    service.export_file(conn, out)
    a, b = read_inp(VILLAGE_INP, crs="EPSG:4326"), read_inp(out, crs="EPSG:4326")

    def nodes(n: Network) -> list[tuple[object, ...]]:
        return sorted(
            (
                x.code,
                x.kind,
                round(x.x or 0, 6),
                round(x.y or 0, 6),
                x.elevation_m,
                round(x.base_demand_lps or 0, 6),
            )
            for x in n.nodes
        )

    def pipes(n: Network) -> list[tuple[object, ...]]:
        return sorted(
            (x.code, x.from_node, x.to_node, x.diameter_mm, x.length_m, x.roughness, x.status)
            for x in n.pipes
        )

    assert nodes(a) == nodes(b) and len(nodes(a)) == 16
    assert pipes(a) == pipes(b) and len(pipes(a)) == 16
    assert [(v.code, v.kind, v.setting, v.from_node, v.to_node) for v in a.valves] == [
        (v.code, v.kind, v.setting, v.from_node, v.to_node) for v in b.valves
    ]
    assert a.info.headloss == b.info.headloss == "H-W"
