"""The network checks on small networks built for each finding (pure), and the demo
village's register (both spatial modes) where the checks find the one planted fault."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely

from assets.checks import ZoneShape, run_checks
from assets.demo import seed_register
from assets.geo import metres_to_degrees
from assets.model import Asset
from assets.store import history, load_assets
from suvnet.site import apply_site_file

LON, LAT = 66.9, 39.65
DX, DY = metres_to_degrees(1.0, LAT)
SITE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "village-site.yaml"


def xy(east_m: float, north_m: float) -> tuple[float, float]:
    return (LON + east_m * DX, LAT + north_m * DY)


def pipe(code: str, *pts: tuple[float, float], kind: str = "pipe", **kw: Any) -> Asset:
    return Asset(code, kind, shapely.LineString([xy(*p) for p in pts]), **kw)


def point(code: str, kind: str, at: tuple[float, float], **kw: Any) -> Asset:
    return Asset(code, kind, shapely.Point(xy(*at)), **kw)


def kinds(findings: list[Any]) -> list[tuple[str, str]]:
    return sorted((f.check_kind, f.asset_code) for f in findings)


def test_a_clean_network_has_no_findings() -> None:
    net = [
        point("T1", "tank", (0, 0)),
        pipe("P1", (0, 0), (100, 0)),
        pipe("P2", (100, 0), (200, 0)),
        pipe("P3", (100, 0), (100, 80)),  # a T at the end of P1
        point("H1", "hydrant", (200, 0)),
        point("H2", "hydrant", (100, 80)),
    ]
    assert run_checks(net) == []


def test_dangling_unsnapped_and_disconnected() -> None:
    net = [
        point("T1", "tank", (0, 0)),
        pipe("P1", (0, 0), (100, 0)),
        pipe("P2", (100.5, 0), (200, 0)),  # a 0.5 m gap: not snapped
        point("H1", "hydrant", (200, 0)),
        pipe("P9", (500, 500), (600, 500)),  # far away: dangling twice, and on its own
    ]
    found = run_checks(net)
    assert kinds(found) == [
        ("dangling_end", "P9"),
        ("dangling_end", "P9"),
        ("disconnected", "P2"),
        ("disconnected", "P9"),
        ("unsnapped_end", "P1"),
        ("unsnapped_end", "P2"),
    ]
    gap = next(f for f in found if f.asset_code == "P2" and f.check_kind == "unsnapped_end")
    assert gap.detail["gap_m"] == pytest.approx(0.5, abs=0.01)
    assert (gap.lon, gap.lat) == pytest.approx(xy(100.5, 0))


def test_zone_boundary_needs_a_valve_or_meter() -> None:
    zone = ZoneShape("DMA-1", shapely.box(*xy(50, -50), *xy(300, 50)))
    net = [
        point("T1", "tank", (0, 0)),
        pipe("P1", (0, 0), (100, 0)),
        point("H1", "hydrant", (100, 0)),
    ]
    (f,) = run_checks(net, [zone])
    assert (f.check_kind, f.asset_code, f.detail) == ("zone_cut", "P1", {"zone": "DMA-1"})
    assert (f.lon, f.lat) == pytest.approx(xy(50, 0))
    metered = [*net, point("MC-1", "meter_chamber", (55, 3))]
    assert run_checks(metered, [zone]) == []


def test_sewer_sloping_uphill() -> None:
    net = [
        point("TW", "treatment_works", (0, 0)),
        pipe(
            "S1", (100, 0), (0, 0), kind="gravity_sewer", invert_start_m=498.0, invert_end_m=497.5
        ),
        pipe("S2", (200, 0), (100, 0), kind="gravity_sewer"),  # inverts from the manholes
        point("MH1", "manhole", (100, 0), elevation_m=500.0, depth_m=2.0),
        point("MH2", "manhole", (200, 0), invert_start_m=497.0),
    ]
    (f,) = run_checks(net)
    assert (f.check_kind, f.asset_code) == ("uphill_sewer", "S2")
    assert f.detail == {"invert_start_m": 497.0, "invert_end_m": 498.0, "rise_m": 1.0}


def test_abandoned_assets_are_left_out() -> None:
    net = [point("T1", "tank", (0, 0)), pipe("P9", (500, 500), (600, 500), status="abandoned")]
    assert run_checks(net) == []


def test_demo_register(any_db_url: str) -> None:
    apply_site_file(any_db_url, SITE)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with psycopg.connect(any_db_url) as conn:
        got = seed_register(conn, now=now)
        conn.commit()
        assert got.local_crs == 4
        assert got.findings == 1  # the sewer laid the wrong way round
        items = {a.code: a for a in load_assets(conn)}
        assert {a.system for a in items.values()} == {"water", "sewer"}
        assert {"EPSG:28412", "EPSG:32642", "SK63-DEMO"} <= {a.source_crs for a in items.values()}
        assert items["P-101"].material and items["P-101"].install_year
        assert items["MC-dm-north"].kind == "meter_chamber"
        row = conn.execute(
            "SELECT f.check_kind, f.asset_code FROM asset_check_findings f"
        ).fetchall()
        assert row == [("uphill_sewer", "S-004")]
        corrected = history(conn, next(iter(sorted(c for c in items if c.startswith("P-")))))
        assert [v["op"] for v in corrected][:1] == ["insert"]
        assert seed_register(conn, now=now).water == 0  # a second demo adds nothing
