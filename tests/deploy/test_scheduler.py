"""deploy/scheduler/jobs.sh: runs the daily jobs once a day, remembers it, stops on SIGTERM.

The jobs themselves are `suvnet` commands tested in their own packages; here a stand-in
`suvnet` on PATH records the command lines the scheduler runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "scheduler" / "jobs.sh"
SH = shutil.which("sh")
pytestmark = pytest.mark.skipif(SH is None, reason="no POSIX shell")


def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_once(tmp: Path, at: str) -> list[str]:
    """Start the scheduler, wait for its first pass, stop it; return the commands it ran."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp / "calls.log"
    fake = bin_dir / "suvnet"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    alive = tmp / "alive"
    alive.unlink(missing_ok=True)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SUVNET_SCHEDULER_AT": at,
        "SUVNET_SCHEDULER_STATE": str(tmp / "state"),
        "SUVNET_SCHEDULER_ALIVE": str(alive),
    }
    assert SH is not None
    proc = subprocess.Popen([SH, str(SCRIPT)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(alive.exists)
        time.sleep(0.3)  # the pass that follows the heartbeat
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0, out
    assert "scheduler: stopping" in out
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_daily_jobs_run_once_a_day(tmp_path: Path) -> None:
    first_of_month = datetime.now(UTC).strftime("%d") == "01"
    calls = run_once(tmp_path, "0000")
    assert calls[0] == "dashboards build --out /var/lib/suvnet/grafana --network"
    assert "billing dunning --out-dir /var/lib/suvnet/dunning-letters" in calls
    assert ("billing penalties" in calls) == first_of_month
    assert (tmp_path / "state").read_text().strip() == datetime.now(UTC).strftime("%Y-%m-%d")

    # a restart on the same day refreshes the map but does not run the daily jobs again
    again = run_once(tmp_path, "0000")
    assert again == ["dashboards build --out /var/lib/suvnet/grafana --network"]


def test_nothing_before_the_configured_time(tmp_path: Path) -> None:
    calls = run_once(tmp_path, "2400")  # never reached
    assert calls == ["dashboards build --out /var/lib/suvnet/grafana --network"]
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    "script", ["scheduler/jobs.sh", "backup.sh", "postgres/10-grafana-reader.sh"]
)
def test_shell_scripts_parse(script: str) -> None:
    assert SH is not None
    res = subprocess.run(
        [SH, "-n", str(SCRIPT.parents[1] / script)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
