"""``suvnet payments ...``: import bank statements, re-match suspense, list the review queue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from psycopg import errors as pg_errors
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from billing.payments.config import get_payments_config
from billing.payments.errors import PaymentsError, StatementError, StatementUnbalancedError
from billing.payments.importer import import_statement, rematch, review_queue, suspense_total
from billing.payments.statements import parse_statement
from suvnet.clock import utcnow
from suvnet.db import connect
from suvnet.db import database_url as settings_url
from suvnet.numfmt import format_count, format_som
from suvnet.settings import get_settings

console = Console()


def som(tiyin: int) -> str:
    """Money as every page, document and command shows it: ``15 000,50 so'm``."""
    return f"{format_som(tiyin)} so'm"


app = typer.Typer(
    help="Payments: import bank statements (MT940, CSV, 1C Client-Bank), re-match suspense, "
    "see the review queue. Payme, Click and the cashier desk work through the web app.",
    no_args_is_help=True,
)


@contextmanager
def _connect(database_url: str | None) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(database_url or settings_url(get_settings()))
    try:
        yield conn
    except pg_errors.UndefinedTable as exc:
        raise PaymentsError(
            f"the payment tables are missing ({exc.diag.message_primary}); run: suvnet db migrate"
        ) from exc
    finally:
        conn.close()


DbOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="PostgreSQL URL (default: SUVNET_DATABASE_URL)."),
]


@app.command(
    "import-statement",
    help="Import a bank statement (MT940, CSV or 1C Client-Bank): check that it balances, "
    "match every credit to an account and post it. Credits that cannot be matched go to "
    "suspense and the review queue. Importing the same file again adds nothing.",
)
def import_statement_cmd(
    file: Annotated[Path, typer.Argument(help="The statement file from the bank.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="mt940, csv or 1c (default: recognised from the file)."),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who imports (kept with the statement).")] = "cli",
    encoding: Annotated[
        str | None,
        typer.Option(
            help="The file's encoding when it is neither UTF-8 nor Windows-1251 (both are "
            "recognised), e.g. cp866. A file with a byte order mark needs none."
        ),
    ] = None,
    database_url: DbOpt = None,
) -> None:
    if fmt is not None and fmt not in ("mt940", "csv", "1c"):
        raise typer.BadParameter("--format must be mt940, csv or 1c")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PaymentsError(f"cannot read {file}: {exc.strerror}") from exc
    cfg = get_payments_config()
    try:
        stmt = parse_statement(data, file.name, fmt, encoding)  # type: ignore[arg-type]
    except StatementUnbalancedError as exc:
        raise StatementUnbalancedError(
            f"{file.name} rejected: {exc}", exc.difference_tiyin
        ) from exc
    except StatementError as exc:
        raise StatementError(f"cannot read {file.name}: {exc}") from exc
    with (
        _connect(database_url) as conn,
        conn.transaction(),
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar,
    ):
        task = bar.add_task(f"Importing {file.name}", total=len(stmt.lines))
        summary = import_statement(
            conn,
            stmt,
            now=utcnow(),
            by=by,
            filename=file.name,
            fuzzy_min_score=cfg.fuzzy_min_score,
            progress=lambda i, _n: bar.update(task, completed=i),
        )
    table = Table(title=f"Statement {summary.identity}")
    table.add_column("")
    table.add_column("", justify="right")
    if summary.already_imported and summary.lines_new == 0:
        console.print("[yellow]This statement was imported before; nothing new was added.[/]")
    for label, value in (
        ("lines in the file", summary.lines_total),
        ("new lines", summary.lines_new),
        ("credits", summary.credits),
        ("debits (not payments)", summary.debits),
        ("matched", summary.matched),
        ("partly matched", summary.partial),
        ("to review", summary.review),
        ("in suspense", summary.suspense),
        ("already imported in another statement", summary.duplicate),
        ("posted to accounts", som(summary.allocated_tiyin)),
        ("left in suspense", som(summary.suspense_tiyin)),
    ):
        table.add_row(label, value if isinstance(value, str) else format_count(value))
    console.print(table)


@app.command(
    "rematch",
    help="Try the matching again for every credit in suspense or review, e.g. after new "
    "accounts or INNs were entered.",
)
def rematch_cmd(database_url: DbOpt = None) -> None:
    cfg = get_payments_config()
    with _connect(database_url) as conn, conn.transaction():
        counts = rematch(conn, now=utcnow(), by="cli", fuzzy_min_score=cfg.fuzzy_min_score)
    console.print(
        f"matched {counts['matched']}, partly {counts['partial']}, to review {counts['review']}, "
        f"still in suspense {counts['suspense']}"
    )


@app.command("review", help="List the bank credits waiting for a person, with suggested accounts.")
def review_cmd(
    limit: Annotated[int, typer.Option(help="How many lines to show.")] = 50,
    database_url: DbOpt = None,
) -> None:
    with _connect(database_url) as conn:
        rows = review_queue(conn, limit=limit)
        total = suspense_total(conn)
    table = Table(title=f"Review queue (suspense total {som(total)})")
    for col in ("line", "date", "amount", "status", "payer", "purpose", "suggestions"):
        table.add_column(col)
    for r in rows:
        sugg = ", ".join(f"{s['account']} ({s['score']:.2f})" for s in r["suggestions"])
        table.add_row(
            str(r["line_id"]),
            r["value_date"].strftime("%d.%m.%Y"),
            som(r["amount_tiyin"] - r["allocated_tiyin"]),
            r["status"],
            r["payer_name"],
            r["purpose"][:60],
            sugg,
        )
    console.print(table)
