"""``suvnet ingest ...`` and ``suvnet readings ...`` commands."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from ingest.config import load_ingest_config
from suvnet.db import database_url
from suvnet.errors import ConfigError
from suvnet.settings import get_settings

# Start-up time: `suvnet ingest|readings <command>` imports this module for every command, so
# the heavy module each command needs is imported inside that command only: ingest.service for
# `run` (paho and the whole worker, about 90 ms), ingest.store for `status` (numpy and the
# numba scanner's declarations, about 65 ms), ingest.csvio for `import` and `export` (about
# 50 ms); measured after psycopg, which every command needs, is loaded.

log = logging.getLogger("ingest")
console = Console()

app = typer.Typer(
    help="Ingest: take telemetry from the MQTT broker and store it in the database.",
    no_args_is_help=True,
)
readings_app = typer.Typer(
    help="Readings history: import from an old SCADA (CSV) and export.", no_args_is_help=True
)


def _db_url() -> str:
    return database_url(get_settings())


_RUN_HELP = (
    "Run an ingest worker until stopped (Ctrl-C or SIGTERM).\n\n"
    "Start several workers, each with its own --client-id, to share the load: they split the "
    "telemetry through an MQTT shared subscription. Every setting can also be given as an "
    "environment variable SUVNET_INGEST_<NAME>; see docs/ingest.md."
)
_IMPORT_HELP = (
    "Import a readings history (e.g. from an old SCADA) from a CSV file.\n\n"
    "The rows pass the same checks as live telemetry (device and point known, value a finite "
    "number, quality 0-3, timestamp not in the future). Readings already in the database (same "
    "point and timestamp) are skipped, so a file can be imported twice safely. Refused lines "
    "are counted by reason and kept in the dead_letters table. See docs/readings-csv.md."
)


@app.command("run", help=_RUN_HELP)
def run(
    client_id: Annotated[
        str | None,
        typer.Option(
            help="MQTT client id of this worker: unique per worker and the same after a "
            "restart (the broker keeps unacknowledged messages under it). "
            "Default: suvnet-ingest-<hostname>."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of the Prometheus /metrics endpoint (0 turns it off)."),
    ] = None,
    metrics_addr: Annotated[
        str | None, typer.Option(help="Address the /metrics endpoint listens on.")
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option(help="Most readings written in one database commit.")
    ] = None,
    batch_ms: Annotated[
        int | None, typer.Option(help="Longest wait (milliseconds) to fill one commit.")
    ] = None,
) -> None:
    """Run an ingest worker (help text: _RUN_HELP)."""
    from ingest.service import IngestWorker

    s = get_settings()
    if not s.mqtt_url:
        raise ConfigError(
            "ingest needs a broker: set SUVNET_MQTT_URL (for example mqtt://127.0.0.1:1883)"
        )
    cfg = load_ingest_config(
        client_id=client_id,
        metrics_port=metrics_port,
        metrics_addr=metrics_addr,
        batch_max_rows=batch_rows,
        batch_max_delay_s=None if batch_ms is None else batch_ms / 1000,
    )
    worker = IngestWorker(_db_url(), s.mqtt_url, cfg, topic_root=s.topic_root)
    # The writer thread waits on the database many times per commit; with the default 5 ms
    # GIL switch interval each reply can wait that long behind the decoder thread.
    sys.setswitchinterval(0.0005)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        log.info("stopping (signal %d): finishing the commit in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info(
        "ingest worker starting",
        extra={"client_id": cfg.client_id, "topic_root": s.topic_root, "broker": s.mqtt_url},
    )
    worker.run_until(stop)
    log.info("ingest worker stopped")


def _when(dt: datetime | None) -> str:
    return "-" if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("status")
def status() -> None:
    """Show gateways (online/offline, last seen, batches in the last hour), the rollup backlog
    and the dead letters of the last 24 hours."""
    from ingest.store import ingest_status

    with psycopg.connect(_db_url(), autocommit=True) as conn:
        st = ingest_status(conn)
    t = Table(
        "gateway", "allowed", "state", "since", "last seen", "batches (1 h)", "readings (1 h)"
    )
    for g in st.gateways:
        t.add_row(
            g.code,
            "yes" if g.allowed else "[red]no[/red]",
            {"online": "[green]online[/green]", "offline": "[red]offline[/red]"}.get(
                g.state, g.state
            ),
            _when(g.since),
            _when(g.last_seen),
            f"{g.batches_1h:,}",
            f"{g.readings_1h:,}",
        )
    console.print(t)
    console.print(
        f"rollups: {st.dirty_buckets:,} 5-minute bucket(s) waiting; last run "
        f"{_when(st.rollups_ran_at) if st.rollups_ran_at else 'never'}"
    )
    if st.dead_letters_24h:
        t = Table("reason", "dead letters (24 h)")
        for reason, n in st.dead_letters_24h:
            t.add_row(reason, f"{n:,}")
        console.print(t)
    else:
        console.print("no dead letters in the last 24 hours")


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option(help="How many of the newest to show.")] = 20,
) -> None:
    """Show dead letters by reason, and the newest ones."""
    with psycopg.connect(_db_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT reason, count(*), max(received_at) FROM dead_letters GROUP BY reason "
            "ORDER BY 2 DESC"
        ).fetchall()
        t = Table("reason", "count", "newest")
        for reason, n, newest in rows:
            t.add_row(str(reason), f"{n:,}", str(newest))
        console.print(t)
        recent = conn.execute(
            "SELECT received_at, reason, topic, detail FROM dead_letters ORDER BY id DESC LIMIT %s",
            (limit,),
        ).fetchall()
        t = Table("received", "reason", "topic", "detail")
        for r in recent:
            t.add_row(str(r[0]), str(r[1]), str(r[2]), str(r[3])[:80])
        console.print(t)


def _parse_when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{what} must be a date or time like 2025-01-31 or 2025-01-31T08:00:00+05:00"
        ) from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@readings_app.command("import", help=_IMPORT_HELP)
def import_cmd(  # noqa: PLR0917 - typer options
    file: Annotated[Path, typer.Argument(help="CSV file: ts, device, point, value[, quality].")],
    max_age_days: Annotated[
        float | None,
        typer.Option(help="Refuse readings older than this many days (default: no limit)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Check the file and report, but write nothing.")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Write the refused lines with their reason to this CSV file."),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(help="Time zone of timestamps written without an offset, e.g. Asia/Tashkent."),
    ] = "UTC",
    encoding: Annotated[
        str | None,
        typer.Option(
            help="The file's encoding when it is not UTF-8, e.g. cp1251. A file with a byte "
            "order mark (Excel's CSV UTF-8 or Unicode text) needs none."
        ),
    ] = None,
) -> None:
    """Import a readings CSV file (help text: _IMPORT_HELP)."""
    from ingest.csvio import import_csv, print_summary

    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise typer.BadParameter(
            f"unknown time zone {timezone!r}", param_hint="--timezone"
        ) from exc
    summary = import_csv(
        _db_url(),
        file,
        max_age_s=None if max_age_days is None else max_age_days * 86400,
        dry_run=dry_run,
        rejects_path=rejects,
        default_tz=tz,
        console=console,
        encoding=encoding,
    )
    print_summary(summary, console)
    if summary.rejected and not summary.inserted and not summary.duplicates:
        raise typer.Exit(1)


@readings_app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write ('-' = screen).")],
    since: Annotated[str | None, typer.Option("--from", help="First instant (ISO date).")] = None,
    until: Annotated[str | None, typer.Option(help="End instant, not included.")] = None,
    device: Annotated[
        list[str] | None, typer.Option(help="Only this device code (repeatable).")
    ] = None,
    point: Annotated[
        list[str] | None, typer.Option(help="Only this point name (repeatable).")
    ] = None,
) -> None:
    """Export readings to CSV in the same format that `suvnet readings import` reads."""
    from ingest.csvio import export_csv

    n = export_csv(
        _db_url(),
        out,
        since=_parse_when(since, "--from"),
        until=_parse_when(until, "--until"),
        devices=device or [],
        points=point or [],
        console=console if str(out) != "-" else None,
    )
    if str(out) != "-":
        console.print(f"exported {n:,} reading(s) to {out}")
