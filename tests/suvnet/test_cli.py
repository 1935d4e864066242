from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from suvnet.migrate import server_timescaledb


def _run(args: list[str], db_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url, "COLUMNS": "200", **extra}
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


def test_db_maintain_and_the_status_of_its_last_run(empty_db_url: str) -> None:
    assert _run(["db", "migrate"], empty_db_url).returncode == 0
    res = _run(["db", "status"], empty_db_url)
    assert "maintenance: retention" in res.stdout
    assert "never run (suvnet db maintain)" in res.stdout
    pinned = {"SUVNET_NOW": "2026-12-02T08:00:00+05:00", "SUVNET_READINGS_RETENTION_DAYS": "30"}
    for _ in range(2):  # idempotent: the second run succeeds too
        res = _run(["db", "maintain"], empty_db_url, **pinned)
        assert res.returncode == 0, res.stderr
        assert "retention" in res.stdout and "FAILED" not in res.stdout
        assert "readings before 2026-11-02 03:00 UTC (30 days)" in res.stdout
    res = _run(["db", "status"], empty_db_url, **pinned)
    assert res.returncode == 0, res.stderr
    assert "30 days (raw readings)" in res.stdout
    assert "maintenance: retention" in res.stdout
    assert "2026-12-02 08:00 (Asia/Tashkent) ok" in res.stdout
    assert "never run" not in res.stdout


@pytest.mark.timescaledb
def test_db_migrate_sets_the_timescaledb_retention_policy(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        if server_timescaledb(c) != (True, True):
            pytest.skip("this server has no usable TimescaleDB (installed and preloaded)")
    res = _run(["db", "migrate"], empty_db_url, SUVNET_READINGS_RETENTION_DAYS="30")
    assert res.returncode == 0, res.stderr
    assert "TimescaleDB retention policy set to 30 days" in res.stdout
    query = (
        "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
    )
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        assert c.execute(query).fetchone() == ("30 days",)
    res = _run(["db", "migrate"], empty_db_url, SUVNET_READINGS_RETENTION_DAYS="0")
    assert "TimescaleDB retention policy removed" in res.stdout
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        assert c.execute(query).fetchone() is None


def test_db_maintain_before_migrate_is_a_clear_error(empty_db_url: str) -> None:
    res = _run(["db", "maintain"], empty_db_url, SUVNET_NOW="2026-12-02T08:00:00+05:00")
    assert res.returncode == 1
    assert "run: suvnet db migrate" in res.stderr
    assert "Traceback" not in res.stderr


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
