"""The site file: validation with file/line/field, idempotent apply, dry run, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from typer.testing import Result

from suvnet.errors import FileFormatError
from suvnet.network import ChangeLog
from suvnet.registry import list_devices, list_points, list_zones
from suvnet.site import BAR_TO_M, apply_site, load_site
from tests.suvnet.conftest import EXAMPLES, snapshot

EXAMPLE = EXAMPLES / "village-site.yaml"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A copy of the example site (YAML + .inp) that a test may edit."""
    shutil.copy(EXAMPLE, tmp_path / "site.yaml")
    shutil.copy(EXAMPLES / "village.inp", tmp_path / "village.inp")
    return tmp_path


def _apply(url: str, path: Path, *, dry_run: bool = False) -> ChangeLog:
    with psycopg.connect(url) as conn:
        return apply_site(conn, load_site(path), dry_run=dry_run)


def _edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) and return the 1-based line where the replacement starts."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    at = text.index(old)
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[:at].count("\n") + 1


def _line_of(path: Path, needle: str, after: int = 0) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if i > after and needle in line:
            return i
    raise AssertionError(needle)


# ---------------------------------------------------------------- apply


def test_example_applies_and_second_apply_changes_nothing(fresh_db_url: str) -> None:
    first = _apply(fresh_db_url, EXAMPLE)
    assert first.count("zones", "created") == 3
    assert first.count("gateways", "created") == 2
    assert first.count("nodes", "created") == 17  # 16 from village.inp + 1 inline
    assert first.count("pipes", "created") == 17
    assert first.count("valves", "created") == 2
    assert first.changed
    site = load_site(EXAMPLE)
    n_devices = sum(len(g.devices) for g in site.spec.gateways)
    n_points = sum(len(d.points) for g in site.spec.gateways for d in g.devices)
    assert first.count("devices", "created") == n_devices
    assert first.count("points", "created") == n_points
    before = snapshot(fresh_db_url)

    second = _apply(fresh_db_url, EXAMPLE)
    assert not second.changed
    assert second.count("devices", "unchanged") == n_devices
    assert second.count("points", "unchanged") == n_points
    # identical rows AND identical xmin: not a single row was rewritten
    assert snapshot(fresh_db_url) == before


def test_example_content_lands_where_the_file_says(fresh_db_url: str) -> None:
    _apply(fresh_db_url, EXAMPLE)
    with psycopg.connect(fresh_db_url) as conn:
        zones = {z.code: z for z in list_zones(conn)}
        devices = {d.code: d for d in list_devices(conn)}
        points = list_points(conn, "prv-1-ctl")
        node_zone: dict[str, str] = dict(
            conn.execute(
                "SELECT n.code, z.code FROM nodes n JOIN zones z ON z.id = n.zone_id"
            ).fetchall()
        )
        prv = conn.execute("SELECT kind, setting FROM valves WHERE code = 'PRV-1'").fetchone()
        p201 = conn.execute("SELECT length_m FROM pipes WHERE code = 'P-201'").fetchone()
    assert zones["DMA-N"].parent == "YANGIOBOD"
    assert zones["DMA-S"].max_service_pressure_bar == 5.0
    assert node_zone["N4"] == "DMA-N"
    assert node_zone["S6"] == "DMA-S"
    assert node_zone["R1"] == "YANGIOBOD"  # outside both DMAs, inside the supply zone
    assert devices["pt-n4"].zone == "DMA-N"  # from its node
    assert devices["dm-north"].pipe == "P-102"
    assert devices["dm-north"].flow_sign == 1
    assert devices["cm-000101"].x == 71.5972
    assert devices["cm-000101"].gateway == "gw-north"
    assert {p.name: p.kind for p in points}["setpoint_bar"] == "setpoint"
    assert prv == ("PRV", 35.0)
    assert p201 is not None
    assert 105 < p201[0] < 115  # measured along the line: 0.001 degree of latitude


def test_changed_file_updates_only_what_changed(fresh_db_url: str, site_dir: Path) -> None:
    path = site_dir / "site.yaml"
    _apply(fresh_db_url, path)
    _edit(path, "max_service_pressure_bar: 5.0", "max_service_pressure_bar: 5.5")
    _edit(
        path,
        "- {name: pressure_bar, unit: bar, kind: analog, poll_period_s: 15}\n\n      - code: pt-n1",
        "- {name: pressure_bar, unit: bar, kind: analog, poll_period_s: 5}\n\n      - code: pt-n1",
    )
    log = _apply(fresh_db_url, path)
    assert log.names("zones", "updated") == ["DMA-S"]
    assert log.names("points", "updated") == ["pt-n4/pressure_bar"]
    changed = {
        (kind, change)
        for kind, per in log.entries.items()
        for change, names in per.items()
        if names and change != "unchanged"
    }
    assert changed == {("zones", "updated"), ("points", "updated")}


def test_dry_run_reports_and_writes_nothing(fresh_db_url: str) -> None:
    before = snapshot(fresh_db_url)
    log = _apply(fresh_db_url, EXAMPLE, dry_run=True)
    assert log.count("devices", "created") > 0
    assert snapshot(fresh_db_url) == before


def test_inline_network_and_geojson_zone(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "inline.yaml"
    path.write_text(
        """
site: Tiny
zones:
  - code: Z-B
    name: child first
    parent: Z-A
  - code: Z-A
    name: parent after
    kind: pressure_zone
    geometry: {type: Polygon, coordinates: [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}
network:
  crs: local
  nodes:
    - {code: R, kind: reservoir, x: 1, y: 1, elevation_m: 50}
    - {code: A, x: 4, y: 5, elevation_m: 10}
  pipes:
    - {code: RA, from: R, to: A, diameter_mm: 110, vertices: [[4, 1]]}
  valves:
    - {code: V, kind: PRV, from: A, to: R, setting_bar: 3}
""",
        encoding="utf-8",
    )
    log = _apply(fresh_db_url, path)
    assert log.names("zones", "created") == ["Z-A", "Z-B"]
    assert log.names("networks", "created") == ["site"]
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute("SELECT length_m, geometry FROM pipes WHERE code = 'RA'").fetchone()
        zone = conn.execute(
            "SELECT z.code FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.code = 'A'"
        ).fetchone()
        setting = conn.execute("SELECT setting FROM valves WHERE code = 'V'").fetchone()
    assert row is not None
    assert row[0] == 7.0  # 3 along x, then 4 along y
    assert row[1]["coordinates"] == [[1, 1], [4, 1], [4, 5]]
    assert zone == ("Z-A",)
    assert setting is not None
    assert setting[0] == pytest.approx(3 * BAR_TO_M)
    assert not _apply(fresh_db_url, path).changed


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "unit_id: 12",
            "unit_id: 300",
            "gateways[0].devices[4].unit_id",
            "less than or equal to 247",
        ),
        (
            "profile: pressure_transmitter\n        unit_id: 2",
            "profil: pressure_transmitter\n        unit_id: 2",
            "gateways[0].devices[1].profil",
            "unknown key",
        ),
        (
            "kind: prv_controller",
            "kind: prv_control",
            "gateways[1].devices[1].kind",
            "Input should be",
        ),
        ("code: pt-s6", "code: pt-n4", "gateways[1].devices[2].code", "appears twice"),
        (
            "flow_sign: 1          # forward",
            "flow_sign: 2          # forward",
            "gateways[0].devices[0].flow_sign",
            "Input should be",
        ),
        (
            "      - [71.6042, 40.4585]\n",
            "      - [71.6042, north]\n",
            "zones[1].polygon[1][1]",
            "valid number",
        ),
    ],
)
def test_bad_field_names_file_line_and_field(
    fresh_db_url: str, site_dir: Path, old: str, new: str, field: str, words: str
) -> None:
    path = site_dir / "site.yaml"
    line = _edit(path, old, new)
    before = snapshot(fresh_db_url)
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    err = info.value
    assert err.path == str(path)
    assert err.field == field
    assert err.line == line
    assert words in err.message
    assert f"{path}:{line}:" in str(err)
    assert snapshot(fresh_db_url) == before


def test_yaml_syntax_error_has_a_line(site_dir: Path) -> None:
    path = site_dir / "site.yaml"
    line = _edit(path, "    name: North DMA meter chamber", "    name: [North DMA meter chamber")
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    assert info.value.line is not None
    assert line <= info.value.line <= line + 2
    assert "not valid YAML" in info.value.message


def test_unknown_reference_rolls_everything_back(fresh_db_url: str, site_dir: Path) -> None:
    path = site_dir / "site.yaml"
    line = _edit(path, "node: S6              # critical", "node: S99             # critical")
    before = snapshot(fresh_db_url)
    site = load_site(path)  # the file itself is well-formed
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, site)
    assert info.value.line == line
    assert info.value.field == "gateways[1].devices[2].node"
    assert "S99" in info.value.message
    # zones, network, gateways and the first devices had been written: all rolled back
    assert snapshot(fresh_db_url) == before


def test_unknown_zone_on_inline_node(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "site: x\nnetwork:\n  nodes:\n    - {code: A, x: 1, y: 1}\n"
        "    - {code: B, x: 2, y: 2, zone: NOWHERE}\n",
        encoding="utf-8",
    )
    before = snapshot(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(path))
    assert (info.value.line, info.value.field) == (5, "network.nodes[1].zone")
    assert snapshot(fresh_db_url) == before


def test_network_from_geojson_file_with_prefix(fresh_db_url: str, tmp_path: Path) -> None:
    from suvnet.network import read_inp, to_geojson

    tiny = Path(__file__).resolve().parents[1] / "data" / "network" / "tiny.inp"
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "tiny.geojson").write_text(
        json.dumps(to_geojson([read_inp(tiny, crs="local")])), encoding="utf-8"
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        "site: g\nzones:\n  - {code: GZ}\nnetwork:\n  code: gnet\n"
        "  geojson: maps/tiny.geojson\n  prefix: g-\n  zone: GZ\n",
        encoding="utf-8",
    )
    log = _apply(fresh_db_url, path)
    assert log.names("networks", "created") == ["gnet"]
    assert log.count("nodes", "created") == 5
    assert sorted(log.names("valves", "created")) == ["g-V1"]
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT p.code, a.code, b.code, w.code, w.crs FROM pipes p "
            "JOIN nodes a ON a.id = p.from_node_id JOIN nodes b ON b.id = p.to_node_id "
            "JOIN networks w ON w.id = p.network_id ORDER BY 1"
        ).fetchall()
        zones = conn.execute(
            "SELECT DISTINCT z.code FROM nodes n JOIN zones z ON z.id = n.zone_id"
        ).fetchall()
    assert rows[1] == ("g-P2", "g-J1", "g-J2", "gnet", "local")
    assert zones == [("GZ",)]
    assert not _apply(fresh_db_url, path).changed


def test_projected_coordinates_under_lonlat_crs(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "site: x\nnetwork:\n  crs: EPSG:4326\n  nodes:\n    - {code: A, x: 512000, y: 4478000}\n",
        encoding="utf-8",
    )
    before = snapshot(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(path))
    assert (info.value.line, info.value.field) == (3, "network.crs")
    assert "not a longitude/latitude" in info.value.message
    assert snapshot(fresh_db_url) == before


def test_bad_inp_named_by_site_file(site_dir: Path, fresh_db_url: str) -> None:
    inp = site_dir / "village.inp"
    inp.write_text(inp.read_text().replace("[PIPES]", "[PIPEZ]"), encoding="utf-8")
    site = load_site(site_dir / "site.yaml")
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, site)
    assert info.value.path == str(inp.resolve())
    assert info.value.line == _line_of(inp, "[PIPEZ]")
    assert f"site.yaml:{_line_of(site_dir / 'site.yaml', 'inp: village.inp')}" in str(info.value)


# ---------------------------------------------------------------- CLI


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


def test_cli_site_apply(fresh_db_url: str, site_dir: Path, run_cli: Callable[..., Result]) -> None:
    from suvnet.network_cli import site_app

    path = site_dir / "site.yaml"
    dry = run_cli(site_app, fresh_db_url, "apply", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert snapshot(fresh_db_url)["devices"] == []

    # the real command, in a sub-process
    done = _suvnet(fresh_db_url, "site", "apply", str(path))
    assert done.returncode == 0, done.stderr
    assert "devices created: dm-north" in done.stdout
    again = run_cli(site_app, fresh_db_url, "apply", str(path))
    assert again.exit_code == 0, again.output
    assert "no change" in again.output

    line = _edit(path, "unit_id: 12", "unit_id: -1")
    before = snapshot(fresh_db_url)
    bad = _suvnet(fresh_db_url, "site", "apply", str(path))
    assert bad.returncode == 1
    assert f"site.yaml:{line}" in bad.stderr
    assert "gateways[0].devices[4].unit_id" in bad.stderr
    assert snapshot(fresh_db_url) == before


def test_docs_show_the_shipped_example() -> None:
    doc = (EXAMPLES.parents[1] / "docs" / "site.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == EXAMPLE.read_text(encoding="utf-8")
