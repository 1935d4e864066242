"""The ``suvnet`` command line.

Sub-commands of the other packages (ingest, billing, alarms, api, dashboards, ...) plug in
through the ``suvnet.commands`` entry-point group, so that this core package imports none of
them.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
from datetime import datetime
from importlib.metadata import entry_points
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from suvnet import __version__
from suvnet.errors import DatabaseError, SuvnetError
from suvnet.logs import setup_logging
from suvnet.settings import get_settings

log = logging.getLogger(__name__)
console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="suvnet",
    help=(
        "suvnet: telemetry, SCADA monitoring and billing for a village water utility.\n\n"
        "Settings come from SUVNET_* environment variables or a YAML file named by "
        "SUVNET_CONFIG. With no SUVNET_DATABASE_URL an embedded PostgreSQL is used, and with "
        "no SUVNET_MQTT_URL an in-process MQTT broker."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema and upkeep: apply migrations, run maintenance, show status.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging.")] = False,
) -> None:
    s = get_settings()
    setup_logging("DEBUG" if verbose else s.log_level, s.log_format)
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` writes where every thread of a stuck process is, to stderr
        # (not where stderr is no file, as under a test runner that captures it)
        with contextlib.suppress(AttributeError, ValueError, OSError):
            faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


@app.command()
def version() -> None:
    """Print the suvnet version."""
    console.print(f"suvnet {__version__}")


@app.command()
def info() -> None:
    """Show the effective settings and which database and MQTT broker would be used."""
    from suvnet.db import database_source

    s = get_settings()
    t = Table(show_header=False, box=None)
    t.add_row("mode", s.mode)
    t.add_row("home", str(s.home))
    t.add_row("database", database_source(s))
    t.add_row("mqtt", s.mqtt_url or "embedded in-process broker (amqtt)")
    t.add_row("topic root", s.topic_root)
    t.add_row("timescaledb", s.timescaledb)
    t.add_row("postgis", s.postgis)
    console.print(t)
    # the parts' own settings are theirs to show (the core imports none of them)
    console.print("billing settings and the utility's requisites: suvnet billing info")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every pending schema migration (safe to run any time; runs each file once)."""
    from suvnet.db import connect, database_source, database_url
    from suvnet.maintain import storage_mode, sync_retention_policy
    from suvnet.migrate import load_migrations, migrate

    s = get_settings()
    console.print(f"database: {database_source(s)}")
    with connect(database_url(s), autocommit=True) as conn:
        done = migrate(
            conn,
            timescaledb=s.timescaledb,
            postgis=s.postgis,
            on_step=lambda m: console.print(f"  applied {m.version:04d}_{m.name}"),
            on_warning=lambda w: err_console.print(f"[yellow]warning:[/yellow] {w}"),
        )
        if storage_mode(conn) == "timescaledb":  # the policy follows the setting at once
            changed = sync_retention_policy(conn, s.readings_retention_days)
            if changed:
                console.print(changed.removeprefix("; "))
    total = len(load_migrations())
    if done:
        console.print(
            f"[green]{len(done)} migration(s) applied[/green]; schema is current ({total})."
        )
    else:
        console.print(f"schema is current ({total} migrations), nothing to do.")


@db_app.command("maintain")
def db_maintain() -> None:
    """Run the database upkeep now: readings partitions ahead (plain PostgreSQL), retention
    of raw readings (SUVNET_READINGS_RETENTION_DAYS; rollups stay) and compression
    (TimescaleDB). Safe to run any time; the scheduler runs it daily."""
    from suvnet.clock import utcnow
    from suvnet.db import connect, database_source, database_url
    from suvnet.maintain import TaskResult, maintain

    s = get_settings()
    console.print(f"database: {database_source(s)}")

    def show(r: TaskResult) -> None:
        mark = "[green]ok[/green]" if r.ok else "[red]FAILED[/red]"
        console.print(f"  {r.task:<12} {mark}  {r.detail}  ({r.duration_ms} ms)")

    with connect(database_url(s), autocommit=True) as conn:
        results = maintain(
            conn, now=utcnow(), retention_days=s.readings_retention_days, on_task=show
        )
    failed = [r.task for r in results if not r.ok]
    if failed:
        raise DatabaseError(f"maintenance task(s) failed: {', '.join(failed)}")


DISPLAY_TZ = ZoneInfo("Asia/Tashkent")


def _when(at: datetime | None) -> str:
    """An instant as the office reads it: Tashkent time, the zone named."""
    if at is None:
        return "never"
    return f"{at.astimezone(DISPLAY_TZ):%Y-%m-%d %H:%M} (Asia/Tashkent)"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _replica_rows(primary: Any, read_url: str | None, max_lag_s: float) -> list[tuple[str, str]]:
    """The read replica's state (SUVNET_DATABASE_READ_URL), and the primary's view of its
    replicas (pg_stat_replication; the details need a superuser or pg_monitor)."""
    import psycopg

    from suvnet.replica import check_once

    rows: list[tuple[str, str]] = []
    if read_url:
        try:
            with psycopg.connect(read_url, autocommit=True, connect_timeout=5) as rep:
                state = check_once(primary, rep, max_lag_s)
        except psycopg.Error as exc:
            from suvnet.replica import LagEstimator

            state = LagEstimator(max_lag_s).down(exc)
        rows.append(("read replica", state.describe(max_lag_s)))
    else:
        rows.append(("read replica", "none (SUVNET_DATABASE_READ_URL is not set)"))
    for r in primary.execute(
        "SELECT coalesce(application_name, ''), coalesce(host(client_addr), 'local'), "
        "coalesce(state, '?'), extract(epoch FROM replay_lag)::float8, "
        "pg_wal_lsn_diff(pg_current_wal_flush_lsn(), replay_lsn)::bigint "
        "FROM pg_stat_replication ORDER BY 1, 2"
    ).fetchall():
        lag = "" if r[3] is None else f", replay lag {r[3]:.1f} s"
        behind = "" if r[4] is None else f", {r[4]:,} bytes behind"
        rows.append((f"replication to {r[1]}", f"{r[0] or '?'}: {r[2]}{lag}{behind}"))
    return rows


@db_app.command("status")
def db_status() -> None:
    """Show the storage mode (TimescaleDB or plain PostgreSQL), versions, migrations and sizes."""
    from suvnet.db import connect, database_source, database_url
    from suvnet.maintain import last_runs, tasks_for, timescaledb_jobs
    from suvnet.migrate import server_timescaledb, status

    s = get_settings()
    with connect(database_url(s), autocommit=True) as conn:
        st = status(conn)
        _, preloaded = server_timescaledb(conn)
        runs = {r.task: r for r in last_runs(conn)}
        jobs = timescaledb_jobs(conn)
        replica = _replica_rows(conn, s.database_read_url, s.read_max_lag_s)
    t = Table(show_header=False, box=None)
    t.add_row("database", database_source(s))
    t.add_row("PostgreSQL", st.server_version)
    if st.timescaledb_version:
        ts = f"{st.timescaledb_version} (installed)"
    elif st.timescaledb_available and not preloaded:
        ts = (
            "available but not preloaded (shared_preload_libraries lacks timescaledb), "
            "so it cannot be used"
        )
    elif st.timescaledb_available:
        ts = "available, not installed"
    else:
        ts = "not available on this server"
    t.add_row("TimescaleDB", ts)
    t.add_row(
        "storage mode",
        {
            "timescaledb": "timescaledb (readings is a compressed hypertable)",
            "partitioned": "plain PostgreSQL (readings partitioned by month)",
        }.get(st.storage_mode, st.storage_mode),
    )
    last = st.applied[-1] if st.applied else None
    t.add_row(
        "schema",
        f"{len(st.applied)} applied"
        + (f", last {last.version:04d}_{last.name}" if last else "")
        + (f", [yellow]{len(st.pending)} pending[/yellow]" if st.pending else ", up to date"),
    )
    t.add_row("database size", _size(st.database_size_bytes))
    t.add_row(
        "readings",
        f"{_size(st.readings_size_bytes)}, ~{st.readings_rows_estimate:,} rows, "
        f"{st.partitions} {'chunks' if st.storage_mode == 'timescaledb' else 'partitions'}",
    )
    days = s.readings_retention_days
    t.add_row("retention", f"{days} days (raw readings)" if days else "keep every reading")
    if st.storage_mode in ("timescaledb", "partitioned"):
        for task in tasks_for(st.storage_mode):
            run = runs.get(task)
            if run is None:
                text = "never run (suvnet db maintain)"
            else:
                state = "ok" if run.ok else "[red]FAILED[/red]"
                text = f"{_when(run.last_run_at)} {state}: {run.detail}"
                if not run.ok:
                    text += f"; last success {_when(run.last_ok_at)}"
            t.add_row(f"maintenance: {task}", text)
    for job in jobs:
        text = (
            f"job {job.job_id}, last run {_when(job.last_run_started_at)}: "
            f"{job.last_run_status or 'not yet'}"
        )
        if job.total_failures:
            text += f", {job.total_failures} failure(s)"
        if job.last_error and job.last_run_status == "Failed":
            text += f' ("{job.last_error}"; suvnet db maintain does this work)'
        t.add_row(f"TimescaleDB {job.proc_name}", text)
    for name, text in replica:
        t.add_row(name, text)
    console.print(t)
    for p in st.pending:
        console.print(f"  pending: {p.version:04d}_{p.name}  (run: suvnet db migrate)")


def _load_plugins(argv: list[str]) -> None:
    """Register the other packages' command groups. When the command line names one of them,
    only that one is imported (the others pull in numba, reportlab, ...: a slow start)."""
    eps = list(entry_points(group="suvnet.commands"))
    words = [a for a in argv if not a.startswith("-")]
    core = {g.name for g in app.registered_groups} | {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    if words and words[0] in core:
        return
    named = [ep for ep in eps if words and ep.name == words[0]]
    for ep in named or eps:
        module = ep.value.split(":", 1)[0]
        try:
            sub = ep.load()
        except ModuleNotFoundError as exc:
            # a package that is not part of this install (e.g. a gateway-only install)
            if exc.name is not None and module.startswith(exc.name):
                log.debug("command group %s is not available: %s", ep.name, exc)
                continue
            raise
        app.add_typer(sub, name=ep.name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``suvnet`` command."""
    _load_plugins(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=argv, standalone_mode=False)
    except SuvnetError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        return 1
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except Exception as exc:
        # usage errors (unknown command, bad option): typer may carry its own copy of click,
        # so recognise them by shape rather than by class
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        raise
    # in non-standalone mode click returns the code of typer.Exit(code) instead of exiting
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
