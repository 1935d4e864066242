"""``suvnet assets ...`` as a user runs it (the installed command, a real database): import
with a refused file and a good one, history, the check report, export, the CRS list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.assets.test_files import VILLAGE_INP

SUVNET = Path(sys.executable).parent / "suvnet"


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url, "COLUMNS": "200"}
    return subprocess.run(
        [str(SUVNET), "assets", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_command_line(portable_db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(portable_db_url, autocommit=True) as c:
        c.execute("DELETE FROM assets")
    r = run(portable_db_url, "import", str(VILLAGE_INP))
    assert r.returncode == 1
    assert "coordinate system is missing" in r.stderr and "nothing was imported" in r.stderr
    r = run(portable_db_url, "import", str(VILLAGE_INP), "--crs", "EPSG:4326", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "33 created" in r.stdout and "would be" in r.stdout
    r = run(portable_db_url, "import", str(VILLAGE_INP), "--crs", "EPSG:4326")
    assert r.returncode == 0 and "33 created" in r.stdout and "were written" in r.stdout
    r = run(portable_db_url, "history", "P-101")
    assert r.returncode == 0 and "import: village.inp" in r.stdout
    r = run(portable_db_url, "check")
    assert r.returncode == 0 and "finding(s)" in r.stdout
    out = tmp_path / "v.gpkg"
    r = run(portable_db_url, "export", str(out), "--crs", "SK42-GK13")
    assert r.returncode == 0 and out.exists() and "water_pipes 16" in r.stdout
    r = run(portable_db_url, "crs", "list")
    assert r.returncode == 0 and "EPSG:28412" in r.stdout
