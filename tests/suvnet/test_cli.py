from __future__ import annotations

import os
import subprocess
import sys


def _run(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "suvnet.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_migrate_and_status(empty_db_url: str) -> None:
    res = _run(["db", "status"], empty_db_url)
    assert res.returncode == 0, res.stderr
    assert "not migrated" in res.stdout
    assert "pending" in res.stdout
    res = _run(["db", "migrate"], empty_db_url)
    assert res.returncode == 0, res.stderr
    assert "applied 0001_registry" in res.stdout
    res = _run(["db", "migrate"], empty_db_url)
    assert "nothing to do" in res.stdout
    res = _run(["db", "status"], empty_db_url)
    assert res.returncode == 0, res.stderr
    assert "plain PostgreSQL" in res.stdout or "timescaledb" in res.stdout
    assert "up to date" in res.stdout
    assert "PostgreSQL" in res.stdout


def test_unreachable_database_is_a_clear_error() -> None:
    res = _run(["db", "status"], "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert res.returncode == 1
    assert "cannot connect to the database" in res.stderr
    assert "Traceback" not in res.stderr


def test_usage_errors_are_explained_not_tracebacks() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "suvnet.cli", "nosuch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    assert "No such command 'nosuch'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_named_group_loads_and_the_full_help_lists_every_group() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "suvnet.cli", "site", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "apply" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "suvnet.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for group in ("db", "site", "ingest", "billing", "alarms", "api", "demo"):
        assert f" {group} " in res.stdout, group
