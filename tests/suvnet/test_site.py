"""The site file: validation with file/line/field, idempotent apply, dry run, CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import Result

from edge_agent.decode import decode_point
from edge_agent.profiles import default_profiles_dir, load_profiles
from suvnet.errors import FileFormatError
from suvnet.network import ChangeLog
from suvnet.profiles import CONTROLLER_POINTS, Profile, published_points
from suvnet.registry import list_devices, list_points, list_zones, record_gateway_config
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
    n_points = sum(
        len(published_points(site.profiles[d.profile]))
        for g in site.spec.gateways
        for d in g.devices
    )
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
    assert prv == ("PRV", 40.0)
    assert p201 is not None
    assert 105 < p201[0] < 115  # measured along the line: 0.001 degree of latitude


def _sent_by_gateway(profile: Profile) -> set[str]:
    """The point ids a gateway sends for a device of ``profile``: what its decoder makes of
    the device's registers (a bitfield gives its value and one 0/1 point per named bit),
    and for a regulated PRV what its controller publishes."""
    out: set[str] = set()
    for p in profile.points:
        if p.publish:
            regs: list[int] | list[bool] = (
                [False] * p.count if p.table in ("coil", "discrete") else [0] * p.count
            )
            out |= {v.point for v in decode_point(p, regs)}
    if profile.controller is not None:
        out |= {c.name for c in CONTROLLER_POINTS}
    return out


def test_every_point_a_gateway_sends_is_registered(fresh_db_url: str) -> None:
    """The contract of docs/site.md: a reading never dead-letters for want of a point that
    the office itself configured - bit sub-points (alarm_flags.tamper) included."""
    _apply(fresh_db_url, EXAMPLE)
    profiles = load_profiles(default_profiles_dir())  # what the gateways load
    site = load_site(EXAMPLE)
    with psycopg.connect(fresh_db_url) as conn:
        for g in site.spec.gateways:
            for d in g.devices:
                registered = {p.name for p in list_points(conn, d.code)}
                sent = _sent_by_gateway(profiles[d.profile])
                assert sent <= registered, f"{d.code}: {sorted(sent - registered)}"
        flags = {p.name: p for p in list_points(conn, "dm-south")}
    # the tamper rule of the example has data to work on
    assert {"alarm_flags", "alarm_flags.tamper", "alarm_flags.reverse_flow"} <= set(flags)
    assert flags["alarm_flags"].kind == "bitfield"
    assert flags["alarm_flags.tamper"].kind == "status"


def test_file_settings_go_over_the_profile(fresh_db_url: str) -> None:
    _apply(fresh_db_url, EXAMPLE)
    with psycopg.connect(fresh_db_url) as conn:
        pt = {p.name: p for p in list_points(conn, "pt-n4")}
        cm = list_points(conn, "cm-000101")
    # points: one point's settings; the others keep the profile's
    assert (pt["pressure_bar"].unit, pt["pressure_bar"].poll_period_s) == ("bar", 15.0)
    assert pt["converter_status.open_loop"].poll_period_s == 10.0  # the profile's poll_s
    assert pt["converter_status"].kind == "bitfield"
    # poll_period_s of the device: every point of it
    assert {p.poll_period_s for p in cm} == {3600.0}
    assert {p.name for p in cm} >= {"volume_m3", "alarm_flags.leak", "alarm_flags.tamper"}


def test_a_flag_registers_poll_period_goes_to_its_bits(fresh_db_url: str, site_dir: Path) -> None:
    path = site_dir / "site.yaml"
    _edit(
        path,
        "        node: N1\n        poll_period_s: 15\n",
        "        node: N1\n        points:\n"
        "          - {name: converter_status, poll_period_s: 120}\n",
    )
    _apply(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        periods = {p.name: p.poll_period_s for p in list_points(conn, "pt-n1")}
    assert periods == {
        "pressure_bar": 10.0,  # the profile's
        "converter_status": 120.0,
        "converter_status.open_loop": 120.0,  # read with the register it is a bit of
        "converter_status.over_range": 120.0,
    }


def test_profiles_dir_of_the_site(fresh_db_url: str, site_dir: Path) -> None:
    own = site_dir / "my-profiles"
    own.mkdir()
    for f in default_profiles_dir().glob("*.yaml"):
        shutil.copy(f, own / f.name)
    pt = own / "pressure_transmitter.yaml"
    pt.write_text(
        pt.read_text().replace("{open_loop: 0, over_range: 1}", "{open_loop: 0, loop_drift: 2}")
    )
    path = site_dir / "site.yaml"
    _edit(path, "site: Yangiobod\n", "site: Yangiobod\nprofiles_dir: my-profiles\n")
    _apply(fresh_db_url, path)
    with psycopg.connect(fresh_db_url) as conn:
        names = {p.name for p in list_points(conn, "pt-s6")}
    assert "converter_status.loop_drift" in names
    assert "converter_status.over_range" not in names
    (own / "district_flow_meter.yaml").unlink()
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    assert info.value.field == "gateways[0].devices[0].profile"
    assert f"no device profile 'district_flow_meter' in {own}" in info.value.message


def test_site_apply_checks_what_the_gateways_announced(
    fresh_db_url: str, site_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway announced a device the registry lacks; once the site file adds it, site
    apply finds the two agree again (and says so)."""
    path = site_dir / "site.yaml"
    _apply(fresh_db_url, path)
    profiles = load_profiles(default_profiles_dir())
    site = load_site(path)
    announced = {
        d.code: sorted(_sent_by_gateway(profiles[d.profile])) for d in site.spec.gateways[1].devices
    }
    announced["pt-s9"] = sorted(_sent_by_gateway(profiles["pressure_transmitter"]))
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    with psycopg.connect(fresh_db_url) as conn:
        check, news = record_gateway_config(
            conn, "gw-south", announced, boot="b1", announced_at=at, now=at
        )
        conn.commit()
    assert news
    assert check.unknown_devices == ("pt-s9",)
    assert "pt-s9" in check.describe()
    _edit(
        path,
        "      - code: cm-000201\n",
        "      - {code: pt-s9, kind: pressure_sensor, profile: pressure_transmitter, "
        "unit_id: 9, node: S5}\n\n      - code: cm-000201\n",
    )
    with (
        caplog.at_level(logging.INFO, logger="suvnet.site"),
        psycopg.connect(fresh_db_url) as conn,
    ):
        apply_site(conn, load_site(path), now=at + timedelta(hours=1))
    assert "gateway gw-south: its devices and points match the registry" in caplog.text
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute(
            "SELECT c.status, c.unknown_devices, c.checked_at FROM gateway_config c "
            "JOIN gateways g ON g.id = c.gateway_id WHERE g.code = 'gw-south'"
        ).fetchone()
    assert row == ("ok", [], at + timedelta(hours=1))


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
            "profile: pressure_transmitter\n        unit_id: 2",
            "profile: no_such\n        unit_id: 2",
            "gateways[0].devices[1].profile",
            "no device profile 'no_such'",
        ),
        (
            (
                "kind: pressure_sensor\n        profile: pressure_transmitter\n        unit_id: 3\n"
                "        node: N1"
            ),
            (
                "kind: customer_meter\n        profile: pressure_transmitter\n        unit_id: 3\n"
                "        node: N1"
            ),
            "gateways[0].devices[2].kind",
            "is for a pressure_sensor, not a customer_meter",
        ),
        (
            "- {name: pressure_bar, unit: bar",
            "- {name: alarm_flags, unit: bar",
            "gateways[0].devices[1].points[0].name",
            "publishes no point 'alarm_flags'",
        ),
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


# ---------------------------------------------------------------- PRV control


def _control_row(url: str, device: str) -> tuple[dict[str, object], str] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT c.config, c.source FROM prv_controls c JOIN devices d ON d.id = c.device_id "
            "WHERE d.code = %s",
            (device,),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def test_a_prv_control_is_stored_with_its_signals_resolved(
    fresh_db_url: str, site_dir: Path
) -> None:
    path = site_dir / "site.yaml"
    # a second critical point in DMA-S, polled by the other gateway (gw-north)
    _edit(
        path,
        "      - code: cm-000101\n",
        "      - {code: pt-s9, kind: pressure_sensor, profile: pressure_transmitter, "
        "unit_id: 9, node: S4}\n\n      - code: cm-000101\n",
    )
    _edit(path, "sensors: [{device: pt-s6}]", "sensors: [{device: pt-s6}, {device: pt-s9}]")
    first = _apply(fresh_db_url, path)
    assert first.names("prv controls", "created") == ["prv-1-ctl"]
    assert first.names("profiles", "created") == sorted(load_site(path).profiles)
    stored = _control_row(fresh_db_url, "prv-1-ctl")
    assert stored is not None
    config, source = stored
    assert source == "site"
    assert config["critical_point"]["sensors"] == [  # type: ignore[index]
        {"device": "pt-s6", "point": "pressure_bar"},  # same gateway: no source
        {"device": "pt-s9", "point": "pressure_bar", "source": "gw-north"},
    ]
    with psycopg.connect(fresh_db_url) as conn:
        body = conn.execute(
            "SELECT body FROM device_profiles WHERE name = 'prv_controller'"
        ).fetchone()
        ctl_poll = conn.execute(
            "SELECT p.poll_period_s FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.code = 'prv-1-ctl' AND p.name = 'ctl_setpoint_bar'"
        ).fetchone()
    assert body is not None and body[0]["controller"]["setpoint"] == "setpoint_bar"
    assert ctl_poll == (300.0,)  # one reading per decision (interval_s)
    again = _apply(fresh_db_url, path)
    assert not again.changed
    assert again.names("prv controls", "unchanged") == ["prv-1-ctl"]
    _edit(path, "          margin_bar: 0.2\n", "          margin_bar: 0.3\n")
    third = _apply(fresh_db_url, path)
    assert third.names("prv controls", "updated") == ["prv-1-ctl"]
    stored = _control_row(fresh_db_url, "prv-1-ctl")
    assert stored is not None
    assert stored[0]["critical_point"]["margin_bar"] == 0.3  # type: ignore[index]


CONTROL_ERRORS = [
    ("          min_bar: 2.0 ", "          min_bar: 5.0 ", "control.min_bar", "the limits cross"),
    ("          max_bar: 4.5\n", "          max_bar: 9.5\n", "control.max_bar",
     "outside the device's setpoint range [0.5, 8]"),
    ("          safe_bar: 3.92", "          safe_bar: 4.92", "control.safe_bar",
     "outside the limits [2, 4.5]"),
    ("          mode: critical_point\n",
     ("          mode: time\n          profile:\n"
     "            - {from: '00:00', to: '06:00', setpoint_bar: 2.5}\n"
     "            - {from: '07:00', to: '24:00', setpoint_bar: 3.5}\n"),
     "control.profile[1].from", "leaves mon 06:00-07:00 without a setpoint"),
    ("          mode: critical_point\n",
     ("          mode: time\n          profile:\n"
     "            - {from: '00:00', to: '06:30', setpoint_bar: 2.5}\n"
     "            - {from: '06:00', to: '24:00', setpoint_bar: 3.5}\n"),
     "control.profile[1].from", "overlaps step 0"),
    ("            margin_bar: 0.2\n", "            margni_bar: 0.2\n",
     "control.critical_point.margni_bar", "unknown key"),
    ("sensors: [{device: pt-s6}]", "sensors: [{device: pt-s6, point: nope}]",
     "control.critical_point.sensors[0].point", "publishes no point 'nope'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "field", "words"), CONTROL_ERRORS)
def test_bad_control_names_file_line_and_field(
    site_dir: Path, old: str, new: str, field: str, words: str
) -> None:
    path = site_dir / "site.yaml"
    line = _edit(path, old, new)
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    err = info.value
    assert err.field == "gateways[1].devices[1]." + field
    assert words in err.message
    assert err.line is not None and line <= err.line <= line + 4


def test_a_sensor_of_another_zone_is_refused_and_nothing_is_written(
    fresh_db_url: str, site_dir: Path
) -> None:
    path = site_dir / "site.yaml"
    _edit(path, "sensors: [{device: pt-s6}]", "sensors: [{device: pt-n4}]")
    before = snapshot(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(path))
    err = info.value
    assert err.field == "gateways[1].devices[1].control.critical_point.sensors[0].device"
    assert "pt-n4 is in zone DMA-N but the PRV prv-1-ctl is in DMA-S" in err.message
    assert err.line == _line_of(path, "sensors: [{device: pt-n4}]")
    assert snapshot(fresh_db_url) == before


def test_control_on_a_device_without_a_controller_is_refused(site_dir: Path) -> None:
    path = site_dir / "site.yaml"
    _edit(
        path,
        "        node: S6              # critical point",
        "        control: {mode: fixed, min_bar: 1, max_bar: 5, setpoint_bar: 3}\n"
        "        node: S6              # critical point",
    )
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    assert info.value.field == "gateways[1].devices[2].control"
    assert "has no controller section" in info.value.message
