"""The ``suvnet`` command line.

Sub-commands of the other packages (ingest, billing, alarms, api, dashboards, ...) plug in
through the ``suvnet.commands`` entry-point group, so that this core package imports none of
them.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from suvnet import __version__
from suvnet.errors import SuvnetError
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
    help="Database schema: apply migrations and show status.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging.")] = False,
) -> None:
    s = get_settings()
    setup_logging("DEBUG" if verbose else s.log_level, s.log_format)


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
    console.print(t)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every pending schema migration (safe to run any time; runs each file once)."""
    from suvnet.db import connect, database_source, database_url
    from suvnet.migrate import load_migrations, migrate

    s = get_settings()
    console.print(f"database: {database_source(s)}")
    with connect(database_url(s), autocommit=True) as conn:
        done = migrate(
            conn,
            timescaledb=s.timescaledb,
            on_step=lambda m: console.print(f"  applied {m.version:04d}_{m.name}"),
        )
    total = len(load_migrations())
    if done:
        console.print(
            f"[green]{len(done)} migration(s) applied[/green]; schema is current ({total})."
        )
    else:
        console.print(f"schema is current ({total} migrations), nothing to do.")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@db_app.command("status")
def db_status() -> None:
    """Show the storage mode (TimescaleDB or plain PostgreSQL), versions, migrations and sizes."""
    from suvnet.db import connect, database_source, database_url
    from suvnet.migrate import status

    s = get_settings()
    with connect(database_url(s), autocommit=True) as conn:
        st = status(conn)
    t = Table(show_header=False, box=None)
    t.add_row("database", database_source(s))
    t.add_row("PostgreSQL", st.server_version)
    if st.timescaledb_version:
        ts = f"{st.timescaledb_version} (installed)"
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
