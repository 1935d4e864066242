"""deploy/scheduler/jobs.sh: runs the daily jobs once a day, remembers it, stops on SIGTERM.

The jobs themselves are `suvnet` commands tested in their own packages; here a stand-in
`suvnet` on PATH records the command lines the scheduler runs. The script's clock is pinned
with SUVNET_NOW (as for every suvnet command), so these tests pass on any date; one test
shifts the system clock with faketime instead, for the unpinned path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
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


MAP = "dashboards build --out /var/lib/suvnet/grafana --network"
DAILY = [
    "db maintain",
    "billing dunning --out-dir /var/lib/suvnet/dunning-letters",
    MAP,
]
LIBFAKETIME = next(
    (
        str(p)
        for d in ("/usr/lib", "/usr/local/lib")
        for pattern in ("*/faketime/libfaketime.so.1", "faketime/libfaketime.so.1")
        for p in Path(d).glob(pattern)
    ),
    None,
)
"""libfaketime (Debian package faketime), preloaded into the script to shift its clock."""


def run_once(
    tmp: Path,
    at: str,
    now: str | None,
    extra_env: dict[str, str] | None = None,
    fail: str = "",
) -> tuple[list[str], str]:
    """Start the scheduler with its clock pinned at ``now`` (SUVNET_NOW; None: the clock of
    the process), wait for its first pass, stop it; return the commands it ran and its output.
    The stand-in ``suvnet`` fails for a command line that contains ``fail`` (when given)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp / "calls.log"
    fake = bin_dir / "suvnet"
    fail_line = f'case "$*" in *"{fail}"*) exit 3;; esac\n' if fail else ""
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n{fail_line}')
    fake.chmod(0o755)
    alive = tmp / "alive"
    alive.unlink(missing_ok=True)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TZ": "UTC",
        "SUVNET_SCHEDULER_AT": at,
        "SUVNET_SCHEDULER_STATE": str(tmp / "state"),
        "SUVNET_SCHEDULER_ALIVE": str(alive),
    }
    if now is not None:
        env["SUVNET_NOW"] = now
    env.update(extra_env or {})
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
    return calls, out


@pytest.mark.parametrize(
    ("now", "day", "first_of_month"),
    [
        ("2026-12-01T03:30:00+00:00", "2026-12-01", True),
        ("2026-12-02T08:30:00+05:00", "2026-12-02", False),  # Tashkent time, 03:30 UTC
        ("2026-12-31T23:59:00+00:00", "2026-12-31", False),
        ("2027-01-01T04:00:00+05:00", "2026-12-31", False),  # 23:00 UTC on the 31st
    ],
)
def test_daily_jobs_run_once_a_day(
    tmp_path: Path, now: str, day: str, first_of_month: bool
) -> None:
    calls, _ = run_once(tmp_path, "0300", now)
    assert calls[0] == MAP  # at start-up
    assert calls[1:4] == DAILY
    assert ("billing penalties" in calls) == first_of_month
    assert (tmp_path / "state").read_text().strip() == day

    # a restart on the same day refreshes the map but does not run the daily jobs again
    again, _ = run_once(tmp_path, "0300", now)
    assert again == [MAP]


def test_nothing_before_the_configured_time(tmp_path: Path) -> None:
    calls, _ = run_once(tmp_path, "0300", "2026-12-01T02:59:00+00:00")
    assert calls == [MAP]
    assert not (tmp_path / "state").exists()


def test_a_failing_job_does_not_stop_the_others(tmp_path: Path) -> None:
    calls, out = run_once(tmp_path, "0300", "2026-12-01T03:30:00+00:00", fail="db maintain")
    assert calls[1:4] == DAILY
    assert "billing penalties" in calls
    assert "scheduler: 'suvnet db maintain' failed (exit 3)" in out


def test_a_bad_pinned_clock_is_refused(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SUVNET_NOW": "yesterday-ish",
        "SUVNET_SCHEDULER_STATE": str(tmp_path / "state"),
        "SUVNET_SCHEDULER_ALIVE": str(tmp_path / "alive"),
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "suvnet").write_text("#!/bin/sh\n")
    (bin_dir / "suvnet").chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert SH is not None
    res = subprocess.run(
        [SH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert res.returncode == 1
    assert "cannot read the clock" in res.stdout
    assert not (tmp_path / "state").exists()


@pytest.mark.skipif(LIBFAKETIME is None, reason="faketime is not installed (Debian package)")
def test_the_system_clock_path_under_faketime(tmp_path: Path) -> None:
    """Without SUVNET_NOW the script reads the system clock: shifted here by libfaketime."""
    assert LIBFAKETIME is not None
    fake = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "@2027-03-01 04:00:00"}
    calls, _ = run_once(tmp_path, "0300", None, extra_env=fake)
    assert calls[1:4] == DAILY
    assert "billing penalties" in calls
    assert (tmp_path / "state").read_text().strip() == "2027-03-01"


@pytest.mark.parametrize(
    "script", ["scheduler/jobs.sh", "backup.sh", "postgres/10-grafana-reader.sh"]
)
def test_shell_scripts_parse(script: str) -> None:
    assert SH is not None
    res = subprocess.run(
        [SH, "-n", str(SCRIPT.parents[1] / script)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
