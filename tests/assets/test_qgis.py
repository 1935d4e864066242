"""QGIS as the editor, with QGIS's own Python API (headless) and its postgres provider: a
user opens the published layer, edits a pipe's attribute and geometry, draws a new pipe and
commits; suvnet sees the change, its history (who, from where, old and new values) and the
new pipe; an edit the register refuses is refused in QGIS with the reason, and nothing of it
is saved. Skipped where QGIS (python3-qgis) or PostGIS is not installed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely

from assets.errors import AssetConflictError
from assets.model import Asset
from assets.qgis import install_styles
from assets.store import history, load_assets, save_assets, update_asset
from tests.assets.conftest import actor

SYSTEM_PYTHON = Path("/usr/bin/python3")
HERE = Path(__file__).resolve().parent
STYLE = HERE.parents[1] / "deploy" / "qgis" / "water_pipes.qml"


def qgis_available() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    r = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import qgis.core"], capture_output=True, check=False, timeout=60
    )
    return r.returncode == 0


pytestmark = pytest.mark.skipif(
    not qgis_available(),
    reason="QGIS's Python API is not installed (apt-get install qgis python3-qgis)",
)


def conninfo(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return (
        f"dbname='{u.path.lstrip('/')}' host={u.hostname} port={u.port or 5432} "
        f"user='{u.username or 'postgres'}' sslmode=disable"
    )


def test_edit_in_qgis_is_checked_and_versioned(postgis_db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(postgis_db_url) as conn:
        conn.execute("DELETE FROM assets")
        save_assets(
            conn,
            [
                Asset(
                    "QP-1",
                    "pipe",
                    shapely.LineString([(71.600, 40.460), (71.601, 40.460)]),
                    diameter_mm=110.0,
                    material="PE100",
                ),
                Asset(
                    "QP-2",
                    "pipe",
                    shapely.LineString([(71.601, 40.460), (71.602, 40.460)]),
                    diameter_mm=110.0,
                ),
                Asset("QV-1", "valve", shapely.Point(71.601, 40.460)),
            ],
            actor(),
        )
        assert install_styles(conn) == 8
        conn.commit()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run(
        [str(SYSTEM_PYTHON), str(HERE / "qgis_edit.py"), conninfo(postgis_db_url), str(STYLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["valid"] and out["crs"] == "EPSG:4326" and out["count"] == 2
    assert out["style"] is True
    assert out["default_renderer"] == "graduatedSymbol", out["log"]
    assert out["commit"] is True, out["errors"]
    assert out["commit_new"] is True, out["errors_new"]
    assert out["commit_bad"] is False
    assert "QP-2: field status" in out["errors_bad"] or "assets_status_check" in out["errors_bad"]
    assert out["valves_valid"] and out["valves"] == 1
    with psycopg.connect(postgis_db_url) as conn:
        items = {a.code: a for a in load_assets(conn)}
        assert items["QP-1"].diameter_mm == 250
        assert shapely.get_coordinates(items["QP-1"].geometry).tolist() == [
            [71.6, 40.46],
            [71.602, 40.461],
        ]
        assert items["QP-NEW"].kind == "pipe" and items["QP-NEW"].system == "water"
        assert items["QP-2"].status == "active"  # the refused edit left nothing
        h = history(conn, "QP-1")
        assert [v["version"] for v in h] == [1, 2] or [v["version"] for v in h] == [1, 2, 3]
        changed = {k for v in h[1:] for k in v["changes"]}
        assert {"diameter_mm", "geom_wkb"} <= changed
        assert all(v["source"].startswith("database: ") for v in h[1:])
        assert h[-1]["changed_by"] == "postgres"  # the QGIS user's database login
        # an API client that read QP-1 before the QGIS edit gets a conflict, not an overwrite
        with pytest.raises(AssetConflictError, match="since version 1"):
            update_asset(
                conn, "QP-1", {"diameter_mm": 160.0}, actor(who="api-user"), expected_version=1
            )
        conn.rollback()
        length = conn.execute("SELECT length_m FROM assets WHERE code = 'QP-1'").fetchone()
        assert length is not None and 190 < length[0] < 210  # recomputed from the new line
