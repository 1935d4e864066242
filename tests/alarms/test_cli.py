"""`suvnet alarms ...` end to end: the installed CLI against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.alarms.conftest import add_readings, one

SUVNET = str(Path(sys.executable).parent / "suvnet")
NOW = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)
"""The CLI's clock in these tests (``SUVNET_NOW``): fixed, so they pass on any date."""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _run(db_url: str, *args: str) -> Result:
    """Run ``suvnet alarms ...`` in-process (typer) with the database of this test module.

    Errors are reported the way the ``suvnet`` entry point does: "error: ..." and exit 1.
    """
    from typer.testing import CliRunner

    from alarms.cli import app
    from suvnet.errors import SuvnetError
    from suvnet.settings import get_settings

    env = {
        "SUVNET_DATABASE_URL": db_url,
        "SUVNET_ALARMS_LOOKBACK_H": "2",
        "COLUMNS": "200",
        "SUVNET_NOW": NOW.isoformat(),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, list(args))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    if isinstance(r.exception, SuvnetError):
        return Result(1, r.stdout, f"error: {r.exception}")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr if r.stderr_bytes else r.output)


def test_entry_point_lists_rules(db_url: str) -> None:
    env = dict(os.environ, SUVNET_DATABASE_URL=db_url, COLUMNS="200")
    r = subprocess.run(
        [SUVNET, "alarms", "rules", "load", "/nonexistent.yaml"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_cli_rules_run_ack_shelve_kpi_replay(
    db_url: str, db: psycopg.Connection[Any], site_factory: Any, tmp_path: Path
) -> None:
    site = site_factory()
    dev = one(db, "SELECT code FROM devices WHERE id = %s", (site.device_id,))[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"rules:\n  - code: x\n    kind: high\n    point: {dev}/pressure\n")
    r = _run(db_url, "rules", "load", str(bad))
    assert r.returncode == 1 and "needs a limit" in r.stderr
    good = tmp_path / "rules.yaml"
    good.write_text(
        "positions:\n  - {code: west, name: West desk}\n"
        f"rules:\n  - {{code: {dev}-low, kind: low, point: {dev}/pressure, limit: 2.0,\n"
        "     unit: bar, priority: urgent, position: west, deadband: 0.1}\n"
    )
    r = _run(db_url, "rules", "load", str(good))
    assert r.returncode == 0, r.stderr
    assert f"{dev}-low" in _run(db_url, "rules", "list").stdout
    now = NOW
    add_readings(
        db,
        site.pressure_point,
        [(now - timedelta(minutes=10), 3.0, 0), (now - timedelta(minutes=5), 1.2, 0)],
    )
    r = _run(db_url, "run", "--once")
    assert r.returncode == 0, r.stderr
    r = _run(db_url, "list", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert [(x["rule"], x["state"], x["priority"]) for x in rows] == [
        (f"{dev}-low", "unack", "urgent")
    ]
    alarm_id = str(rows[0]["id"])
    r = _run(db_url, "ack", alarm_id, "--user", "kamola", "--comment", "crew sent")
    assert r.returncode == 0 and "unack -> ack" in r.stdout
    r = _run(db_url, "ack", alarm_id, "--user", "kamola")
    assert r.returncode == 1 and "only an unacknowledged alarm can be acknowledged" in r.stderr
    r = _run(db_url, "shelve", f"{dev}-low", "--user", "kamola", "--for", "30h", "--comment", "x")
    assert r.returncode == 1 and "maximum of 8 h" in r.stderr
    r = _run(
        db_url, "shelve", f"{dev}-low", "--user", "kamola", "--for", "2h", "--comment", "works"
    )
    assert r.returncode == 0 and "-> shelved" in r.stdout
    r = _run(db_url, "kpi", "--period", "1d", "--json")
    k = json.loads(r.stdout)
    assert k["alarms"] == 1 and k["alarms_per_position_max_per_10min"] == {"west": 1}
    r = _run(
        db_url, "replay", "--from", (now - timedelta(hours=1)).isoformat(), "--to", now.isoformat()
    )
    assert r.returncode == 0, r.stderr
    rep = one(db, "SELECT count(*), bool_and(replayed) FROM alarms WHERE run_id > 0")
    assert rep == (1, True)
    r = _run(db_url, "replay", "--from", "yesterday", "--to", now.isoformat())
    assert r.returncode != 0 and "is not a date/time" in r.stderr
