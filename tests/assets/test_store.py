"""The register in both spatial modes: saving, the checks every write passes (in the
database too), versions with who/when/old/new, the network on a date, conflicts, and how
the migration runner chooses PostGIS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import shapely

from assets.errors import AssetConflictError, AssetInvalidError, ImportRefusedError
from assets.model import Asset
from assets.store import (
    history,
    load_assets,
    network_on,
    save_assets,
    spatial_mode,
    update_asset,
)
from suvnet.errors import MigrationError
from suvnet.migrate import choose_spatial, migrate
from tests.assets.conftest import NOW, actor

PIPE = shapely.LineString([(66.90, 39.60), (66.91, 39.61)])


def pipe(code: str = "P1", **kw: object) -> Asset:
    return Asset(code, "pipe", PIPE, diameter_mm=110.0, material="PE").with_changes(**kw)


@pytest.fixture
def conn(any_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(any_db_url) as c:
        c.execute("DELETE FROM assets")
        c.execute("DELETE FROM asset_versions")
        c.commit()
        yield c


def test_the_mode_is_recorded(any_db_url: str, request: pytest.FixtureRequest) -> None:
    with psycopg.connect(any_db_url) as c:
        mode = spatial_mode(c)
        has_geom = c.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'assets' "
            "AND column_name = 'geom'"
        ).fetchone()
    want = request.node.callspec.params["any_db_url"]
    assert mode == want
    assert (has_geom is not None) == (want == "postgis")


def test_save_version_and_history(conn: psycopg.Connection[Any]) -> None:
    res = save_assets(conn, [pipe(), Asset("V1", "valve", shapely.Point(66.9, 39.6))], actor())
    assert sorted(res.created) == ["P1", "V1"]
    later = NOW + timedelta(days=30)
    out = update_asset(
        conn, "P1", {"diameter_mm": 160.0}, actor(later, "bek", "api"), expected_version=1
    )
    assert out["version"] == 2
    assert out["length_m"] == pytest.approx(1403.7, abs=1.0)
    h = history(conn, "P1")
    assert [(v["version"], v["op"], v["changed_by"], v["source"]) for v in h] == [
        (1, "insert", "tester", "test"),
        (2, "update", "bek", "api"),
    ]
    assert h[1]["changes"] == {"diameter_mm": [110, 160]}
    assert h[1]["changed_at"] == later
    # the network on a date between the two versions has the old diameter
    before = {a.code: a for a in network_on(conn, NOW + timedelta(days=1))}
    assert before["P1"].diameter_mm == 110
    assert {a.code: a.diameter_mm for a in load_assets(conn)}["P1"] == 160
    assert network_on(conn, NOW - timedelta(seconds=1)) == []


def test_a_stale_version_is_a_conflict_and_loses_nothing(conn: psycopg.Connection[Any]) -> None:
    save_assets(conn, [pipe()], actor())
    update_asset(conn, "P1", {"material": "steel"}, actor(who="qgis-user"), expected_version=1)
    with pytest.raises(AssetConflictError, match=r"version 1 .* now at version 2"):
        update_asset(conn, "P1", {"diameter_mm": 200.0}, actor(who="api"), expected_version=1)
    assert load_assets(conn)[0].material == "steel"
    assert load_assets(conn)[0].diameter_mm == 110


def test_an_unchanged_save_makes_no_version(conn: psycopg.Connection[Any]) -> None:
    save_assets(conn, [pipe()], actor())
    res = save_assets(conn, [pipe()], actor(), update=True)
    assert res.unchanged == ["P1"]
    assert len(history(conn, "P1")) == 1


def test_bad_features_refuse_the_whole_batch(conn: psycopg.Connection[Any]) -> None:
    bad = [
        pipe("P1"),
        pipe("P1"),  # duplicate
        Asset("V9", "valve", PIPE),  # a valve is a point
        pipe("P2", diameter_mm=-5.0),
        pipe("P3", zone="NOPE"),
    ]
    with pytest.raises(ImportRefusedError) as info:
        save_assets(conn, bad, actor(), source_file="net.gpkg", layers={"P2": "pipes"})
    msgs = [str(p) for p in info.value.problems]
    assert "net.gpkg, feature P1, field 'code': duplicate asset id in this file" in msgs
    assert any("V9, field 'geometry': must be Point for a valve" in m for m in msgs)
    assert any("layer pipes, feature P2, field 'diameter_mm'" in m for m in msgs)
    assert any("P3, field 'zone': no zone with code 'NOPE'" in m for m in msgs)
    assert load_assets(conn) == []
    # an existing id is a duplicate unless the import updates
    save_assets(conn, [pipe()], actor())
    with pytest.raises(ImportRefusedError, match="already exists"):
        save_assets(conn, [pipe()], actor())


def test_the_database_checks_direct_edits(conn: psycopg.Connection[Any]) -> None:
    """A change that bypasses suvnet (QGIS, plain SQL) meets the same rules."""
    save_assets(conn, [Asset("V1", "valve", shapely.Point(66.9, 39.6))], actor())
    conn.commit()
    with pytest.raises(psycopg.errors.CheckViolation, match="V1: field geometry must be Point"):
        conn.execute("UPDATE assets SET geom_wkb = %s WHERE code = 'V1'", (shapely.to_wkb(PIPE),))
    conn.rollback()
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE assets SET status = 'broken' WHERE code = 'V1'")
    conn.rollback()
    conn.execute("UPDATE assets SET status = 'abandoned' WHERE code = 'V1'")
    h = history(conn, "V1")
    assert h[-1]["changes"] == {"status": ["active", "abandoned"]}
    assert h[-1]["source"].startswith("database: ")  # a direct edit says so
    with pytest.raises(AssetInvalidError, match="field 'status'"):
        update_asset(conn, "V1", {"status": "gone"}, actor(), expected_version=None)


def test_choose_spatial() -> None:
    assert choose_spatial("auto", True) is True
    assert choose_spatial("auto", False) is False
    assert choose_spatial("off", True) is False
    assert choose_spatial("on", True) is True
    with pytest.raises(MigrationError, match="postgresql-15-postgis-3"):
        choose_spatial("on", False)
    with pytest.raises(MigrationError, match="auto, on or off"):
        choose_spatial("maybe", True)


def test_postgis_on_refuses_a_server_without_it_before_writing(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SUVNET_POSTGIS=on on a server without PostGIS stops before any migration runs. (Which
    server lacks it is simulated by the runner's probe; the refusal is the real runner's.)"""
    import suvnet.migrate as m

    monkeypatch.setattr(m, "server_postgis", lambda conn: False)
    monkeypatch.setenv("SUVNET_POSTGIS", "on")
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        with pytest.raises(MigrationError, match="SUVNET_POSTGIS=on"):
            migrate(c)
        assert c.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)


def test_a_service_connection_links_account_house_and_pipe(
    conn: psycopg.Connection[Any],
) -> None:
    from tests.api.conftest import make_account

    account_id, number = make_account(conn, 4242, street="Bog'bon", house="7")
    house = conn.execute("SELECT house_id FROM accounts WHERE id = %s", (account_id,)).fetchone()
    assert house is not None
    sc = Asset(
        "SC-1",
        "service_connection",
        shapely.LineString([(66.905, 39.605), (66.9051, 39.6052)]),
        diameter_mm=25.0,
        account_no=number,
        house_id=int(house[0]),
        feed_pipe="P1",
    )
    save_assets(conn, [pipe(), sc], actor())  # the pipe and its service in one file
    got = {a.code: a for a in load_assets(conn)}["SC-1"]
    assert (got.account_no, got.house_id, got.feed_pipe) == (number, house[0], "P1")
    with pytest.raises(ImportRefusedError, match="no account with number '999'"):
        save_assets(conn, [sc.with_changes(code="SC-2", account_no="999")], actor())
    with pytest.raises(ImportRefusedError, match="only a service connection links"):
        save_assets(conn, [pipe("P7", account_no=number)], actor())
    conn.rollback()
