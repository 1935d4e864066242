"""``suvnet billing ...``: import accounts, run the monthly billing, print slips and reports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import psycopg
import typer
from psycopg import errors as pg_errors
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from billing.accountno import check_digit, clean, normalize
from billing.accounts import months_billed_since, set_status
from billing.balances import assess_penalties, balances_by
from billing.config import BillingConfig, get_billing_config, requisites_problems
from billing.demo import generate
from billing.documents import (
    mahalla_accounts,
    money,
    render_invoice,
    render_slips,
    render_statement,
    slip_data,
    statement_data,
)
from billing.errors import BillingError
from billing.ledger import account_id_for_number
from billing.tariffs import parse_period
from suvnet.clock import utcnow
from suvnet.db import connect, database_url
from suvnet.numfmt import format_count, format_volume
from suvnet.settings import get_settings

if TYPE_CHECKING:
    from billing.importer import ImportReport

# Start-up time: `suvnet billing <command>` imports this module for every command, so the
# modules that only one or two commands use and that take 10 ms or more to import are imported
# inside those commands: billing.dunning (httpx, about 30 ms), billing.importer (about 20 ms),
# billing.run (about 10 ms).

log = logging.getLogger(__name__)
console = Console()

app = typer.Typer(
    help="Billing: subscriber accounts, the monthly billing run, slips, balances and dunning.",
    no_args_is_help=True,
)

PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="Billing month, e.g. 2026-11.")]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        help="The CSV file's encoding when it is not UTF-8, e.g. cp1251 (Excel's plain CSV on "
        "a Russian Windows) or cp866. A file with a byte order mark needs none."
    ),
]
LangOpt = Annotated[
    str, typer.Option("--lang", help="Document language: uz (Uzbek Latin) or ru (Russian).")
]


def _lang(text: str | None, cfg: BillingConfig) -> Literal["uz", "ru"]:
    v = (text or cfg.default_language).lower()
    if v not in ("uz", "ru"):
        raise BillingError(f"--lang must be uz or ru, got {text!r}")
    return "uz" if v == "uz" else "ru"


@contextmanager
def _connect() -> Iterator[psycopg.Connection[Any]]:
    conn = connect(database_url(get_settings()))
    try:
        yield conn
    except pg_errors.UndefinedTable as exc:
        raise BillingError(
            f"the billing tables are missing ({exc.diag.message_primary}); run: suvnet db migrate"
        ) from exc
    finally:
        conn.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _now() -> datetime:
    """The wall clock, or the instant pinned by SUVNET_NOW (suvnet.clock)."""
    return utcnow()


def _account_id(conn: psycopg.Connection[Any], number: str) -> int:
    return account_id_for_number(conn, number)


def _warn(text: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {text}", highlight=False)


def _warn_requisites(cfg: BillingConfig) -> None:
    """The seller's requisites the documents would print blank (and a slip without QR)."""
    for _, text in requisites_problems(cfg):
        _warn(text)


@app.command("import-accounts")
def import_accounts_cmd(  # noqa: PLR0917 - typer options
    file: Annotated[Path, typer.Argument(help="CSV or XLSX export of the legacy billing.")],
    as_of: Annotated[
        str | None, typer.Option(help="Opening date of the accounts and balances (YYYY-MM-DD).")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Reject the whole file if any row is rejected.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Check every row, import nothing.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write the rejected rows (line, reason) to this CSV.")
    ] = None,
    encoding: EncodingOpt = None,
) -> None:
    """Import accounts (with address, meter and opening balance) in one transaction."""
    from billing.importer import import_accounts

    if not file.is_file():
        raise BillingError(f"file not found: {file}")
    cfg = get_billing_config()
    with _connect() as conn, _progress() as prog:
        task = prog.add_task(f"importing {file.name}", total=None)
        rep = import_accounts(
            conn,
            file,
            now=_now(),
            as_of=date.fromisoformat(as_of) if as_of else None,
            strict=strict,
            dry_run=dry_run,
            tz=cfg.timezone,
            progress=lambda done, total: prog.update(task, completed=done, total=total),
            encoding=encoding,
        )
    console.print(
        f"rows: {rep.rows}, imported: {rep.imported}, already imported: {rep.skipped}, "
        f"rejected: {len(rep.rejected)}" + (" (dry run: nothing written)" if dry_run else "")
    )
    _show_rejected(rep, report)


def _show_rejected(rep: ImportReport, report: Path | None) -> None:
    """The first 20 rejected rows of an import, and all of them in ``report`` when asked."""
    for line, reason in rep.rejected[:20]:
        console.print(f"  line {line}: {reason}")
    if len(rep.rejected) > 20:
        console.print(f"  ... {len(rep.rejected) - 20} more")
    if report:
        rep.write_csv(report)
        console.print(f"rejected rows written to {report}")


@app.command("import-readings")
def import_readings_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX route sheet with readings.")],
    source: Annotated[
        str, typer.Option(help="Default source: inspector, manual or customer.")
    ] = "inspector",
    entered_by: Annotated[str, typer.Option(help="Who read the meters.")] = "",
    report: Annotated[
        Path | None, typer.Option(help="Write the rejected rows (line, reason) to this CSV.")
    ] = None,
    encoding: EncodingOpt = None,
) -> None:
    """Import meter register readings (meter_serial or account, date, value)."""
    from billing.importer import import_readings

    if not file.is_file():
        raise BillingError(f"file not found: {file}")
    cfg = get_billing_config()
    with _connect() as conn, _progress() as prog:
        task = prog.add_task(f"importing {file.name}", total=None)
        rep = import_readings(
            conn,
            file,
            source=source,
            entered_by=entered_by,
            tz=cfg.timezone,
            progress=lambda done, total: prog.update(task, completed=done, total=total),
            encoding=encoding,
        )
    console.print(f"rows: {rep.rows}, imported: {rep.imported}, rejected: {len(rep.rejected)}")
    _show_rejected(rep, report)


@app.command("set-status")
def set_status_cmd(
    account: Annotated[str, typer.Option(help="Account number.")],
    status: Annotated[str, typer.Option(help="active, suspended or closed.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the status history).")] = "",
    at: Annotated[
        str | None,
        typer.Option(
            help="When the change took effect, local time: 2026-11-12T15:00 (a date alone "
            "means 00:00 of that day). Default: now. Billing counts the days of service from it."
        ),
    ] = None,
) -> None:
    """Change an account's status; the history keeps the time and reason."""
    cfg = get_billing_config()
    now = _now()
    when = now
    if at is not None:
        try:
            when = datetime.fromisoformat(at.strip())
        except ValueError as exc:
            raise BillingError(
                f"--at must look like 2026-11-12 or 2026-11-12T15:00: {at!r}"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(cfg.timezone))
        if when > now:
            raise BillingError(f"--at {at} is in the future")
    with _connect() as conn:
        acc = _account_id(conn, account)
        if not set_status(conn, acc, status, now=when, reason=reason):
            console.print(f"account {account} is already {status}: nothing changed")
            return
        billed = months_billed_since(conn, acc, when, cfg.timezone)
        conn.commit()
    console.print(f"account {account}: status {status} from {when.isoformat()}")
    for ym in billed:
        console.print(
            f"  {ym} is already billed: to bill it by the new days of service run "
            f"suvnet billing correct --account {account} --period {ym}"
        )


@app.command("run")
def run_cmd(
    period: PeriodOpt,
    dry_run: Annotated[
        bool, typer.Option(help="Compute and show the totals; post nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Accounts per transaction.")] = 5000,
    force: Annotated[
        bool,
        typer.Option(
            help="Bill the month even though it has not ended yet, or a later month is already "
            "billed (out of order)."
        ),
    ] = False,
) -> None:
    """Bill every active account for a month. Safe to repeat; resumes after a crash.

    A month that has not ended yet, or one before a month already billed (October after
    November), is refused unless --force; a dry run only warns."""
    from billing.run import check_period, refusal, run_billing

    cfg = get_billing_config()
    p = parse_period(period)
    _warn_requisites(cfg)
    with _connect() as conn:
        check = check_period(conn, p, cfg.timezone, now=_now())
        conn.rollback()
        for text in check.warnings:
            _warn(text)
        why = refusal(check, dry_run=dry_run, force=force, unfinished=True)
        if why is not None:
            raise BillingError(f"billing run {p:%Y-%m} refused: {why} (--force)")
        with _progress() as prog:
            task = prog.add_task(f"billing {p:%Y-%m}" + (" (dry run)" if dry_run else ""))
            s = run_billing(
                conn,
                p,
                cfg,
                now=_now(),
                dry_run=dry_run,
                batch_size=batch_size,
                progress=lambda done, total: prog.update(task, completed=done, total=total),
                force=force,
            )
    t = Table(title=f"billing {p:%Y-%m}" + (" - DRY RUN, nothing posted" if dry_run else ""))
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("accounts billed now", format_count(s.accounts_billed))
    t.add_row("already billed before", format_count(s.accounts_skipped_done))
    t.add_row("metered / by norm", f"{format_count(s.metered)} / {format_count(s.by_norm)}")
    t.add_row("with estimated consumption", format_count(s.estimated))
    t.add_row("volume, m³", format_volume(s.volume_m3))
    t.add_row("charged, so'm (incl. VAT)", money(s.total_tiyin))
    t.add_row("of which VAT, so'm", money(s.vat_tiyin))
    t.add_row("invoices created", format_count(s.invoices_created))
    for name, n in sorted(s.flagged.items()):
        t.add_row(f"flag: {name}", format_count(n))
    console.print(t)


@app.command("correct")
def correct_cmd(
    account: Annotated[str, typer.Option(help="Account number.")],
    period: PeriodOpt,
    reason: Annotated[str, typer.Option(help="Why the month is corrected.")] = "",
) -> None:
    """Re-bill one account for a closed month: reversal of its charge plus a new charge."""
    from billing.run import correct_account

    cfg = get_billing_config()
    with _connect() as conn:
        c = correct_account(
            conn, _account_id(conn, account), parse_period(period), cfg, now=_now(), reason=reason
        )
        conn.commit()
    console.print(
        f"reversed {len(c.reversed_entries)} entr(ies) of {money(c.old_tiyin)} so'm; "
        f"new charge {money(c.new_tiyin)} so'm (correction invoice id {c.invoice_id})"
    )


@app.command("slips")
def slips_cmd(
    period: PeriodOpt,
    mahalla: Annotated[str | None, typer.Option(help="Mahalla name (Uzbek) or id.")] = None,
    account: Annotated[str | None, typer.Option(help="One account number.")] = None,
    lang: LangOpt = "",
    out: Annotated[Path | None, typer.Option(help="Output PDF file.")] = None,
) -> None:
    """Payment slips (PDF) for one account or a whole mahalla (batch for printing)."""
    if (mahalla is None) == (account is None):
        raise BillingError("give exactly one of --mahalla or --account")
    cfg = get_billing_config()
    lg = _lang(lang, cfg)
    p = parse_period(period)
    with _connect() as conn:
        ids = mahalla_accounts(conn, mahalla, p) if mahalla else [_account_id(conn, account or "")]
        slips = []
        with _progress() as prog:
            task = prog.add_task("slips", total=len(ids))
            for acc in ids:
                slips.append(slip_data(conn, acc, p, cfg))
                prog.advance(task)
    _warn_requisites(cfg)
    target = out or Path(f"slips-{p:%Y-%m}-{(mahalla or account or '').replace(' ', '_')}.pdf")
    target.write_bytes(render_slips(slips, cfg, lg))
    console.print(f"{len(slips)} slip(s) written to {target}")


@app.command("invoice")
def invoice_cmd(
    account: Annotated[str, typer.Option(help="Account number (legal entity).")],
    period: PeriodOpt,
    lang: LangOpt = "",
    out: Annotated[Path | None, typer.Option(help="Output PDF file.")] = None,
) -> None:
    """Monthly invoice with VAT for a legal entity (PDF)."""
    cfg = get_billing_config()
    p = parse_period(period)
    with _connect() as conn:
        s = slip_data(conn, _account_id(conn, account), p, cfg)
    _warn_requisites(cfg)
    target = out or Path(f"invoice-{s.number}-{p:%Y-%m}.pdf")
    target.write_bytes(render_invoice(s, cfg, _lang(lang, cfg)))
    console.print(f"invoice written to {target}")


@app.command("statement")
def statement_cmd(
    account: Annotated[str, typer.Option(help="Account number.")],
    date_from: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD).")],
    lang: LangOpt = "",
    out: Annotated[Path | None, typer.Option(help="Output PDF file.")] = None,
) -> None:
    """Reconciliation statement (akt sverki) of an account for any period (PDF)."""
    cfg = get_billing_config()
    lg = _lang(lang, cfg)
    try:
        d0, d1 = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError as exc:
        raise BillingError(f"dates must be YYYY-MM-DD: {exc}") from exc
    with _connect() as conn:
        sd = statement_data(conn, _account_id(conn, account), d0, d1, lg)
    target = out or Path(f"akt-{sd.number}-{d0}-{d1}.pdf")
    target.write_bytes(render_statement(sd, cfg, lg))
    console.print(
        f"statement written to {target}: opening {money(sd.opening_tiyin)} so'm, "
        f"closing {money(sd.closing_tiyin)} so'm"
    )


@app.command("balances")
def balances_cmd(
    by: Annotated[str, typer.Option(help="account, street, mahalla or district.")] = "mahalla",
    as_of: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")] = None,
    top: Annotated[int, typer.Option(help="Show at most this many rows (largest debt).")] = 50,
) -> None:
    """Balances rolled up by street/mahalla/district: debtors, creditors and debt aging."""
    if by not in ("account", "street", "mahalla", "district"):
        raise BillingError("--by must be account, street, mahalla or district")
    day = date.fromisoformat(as_of) if as_of else _now().date()
    with _connect() as conn:
        groups = balances_by(conn, by, day)  # type: ignore[arg-type]
    groups.sort(key=lambda g: -g.debt)
    t = Table(title=f"balances by {by} on {day} (so'm)")
    for col in (
        "name",
        "accounts",
        "debtors",
        "debt",
        "creditors",
        "prepaid",
        "0-30",
        "31-60",
        "61-90",
        "90+",
    ):
        t.add_column(col, justify="left" if col == "name" else "right")
    for g in groups[:top]:
        t.add_row(
            g.name,
            format_count(g.accounts),
            format_count(g.debtors),
            money(g.debt),
            format_count(g.creditors),
            money(g.credit),
            *(money(b) for b in g.aging.buckets),
        )
    tot_debt = sum(g.debt for g in groups)
    tot_credit = sum(g.credit for g in groups)
    t.add_row(
        "TOTAL",
        format_count(sum(g.accounts for g in groups)),
        format_count(sum(g.debtors for g in groups)),
        money(tot_debt),
        format_count(sum(g.creditors for g in groups)),
        money(tot_credit),
        *(money(sum(g.aging.buckets[i] for g in groups)) for i in range(4)),
    )
    console.print(t)


@app.command("consumption")
def consumption_cmd(
    period: PeriodOpt,
    by: Annotated[
        str, typer.Option(help="zone (DMA), street, mahalla, district or account.")
    ] = "zone",
) -> None:
    """Billed consumption of a month rolled up per zone (DMA), street, mahalla or district."""
    from billing.run import consumption_rollups

    if by not in ("account", "street", "mahalla", "district", "zone"):
        raise BillingError("--by must be zone, street, mahalla, district or account")
    p = parse_period(period)
    with _connect() as conn:
        rows = consumption_rollups(conn, p, by)  # type: ignore[arg-type]
    t = Table(title=f"billed consumption {p:%Y-%m} by {by}")
    for col in ("name", "accounts", "volume m³", "of which estimated m³"):
        t.add_column(col, justify="left" if col == "name" else "right")
    for r in sorted(rows, key=lambda r: r.name):
        t.add_row(
            r.name,
            format_count(r.accounts),
            format_volume(r.volume_m3),
            format_volume(r.estimated_m3),
        )
    t.add_row(
        "TOTAL",
        format_count(sum(r.accounts for r in rows)),
        format_volume(sum(r.volume_m3 for r in rows)),
        format_volume(sum(r.estimated_m3 for r in rows)),
    )
    console.print(t)


@app.command("penalties")
def penalties_cmd(
    as_of: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")] = None,
) -> None:
    """Post the monthly late-payment penalty for legal entities (if enabled in settings)."""
    cfg = get_billing_config()
    if not cfg.penalty_enabled:
        console.print("penalties are off (set SUVNET_BILLING_PENALTY_ENABLED=true to enable)")
        return
    day = date.fromisoformat(as_of) if as_of else _now().date()
    with _connect() as conn:
        n, total = assess_penalties(conn, day, cfg, now=_now())
        conn.commit()
    console.print(f"penalties posted on {n} account(s): {money(total)} so'm")


@app.command("dunning")
def dunning_cmd(
    as_of: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for the letters (PDF).")] = Path(
        "dunning-letters"
    ),
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent.")] = False,
) -> None:
    """Send reminders/warnings/orders to debtors by their stage; records every step."""
    from billing.dunning import channels_from_config, run_dunning

    cfg = get_billing_config()
    day = date.fromisoformat(as_of) if as_of else _now().date()
    with _connect() as conn:
        res = run_dunning(
            conn, day, channels_from_config(cfg, out_dir), cfg, now=_now(), dry_run=dry_run
        )
        if not dry_run:
            conn.commit()
    console.print(
        f"stages reached: {res.actions}, messages sent: {res.sent}, failed: {res.failed}, "
        f"stopped (debt paid): {res.stopped}" + (" (dry run)" if dry_run else "")
    )
    for why in res.refused.values():
        # the other debtors were served; these wait until the branch's requisites are set
        console.print(f"[red]error:[/red] {escape(why)}; its debtors' letters wait")
    if res.refused:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    subscribers: Annotated[int, typer.Option(min=1, help="How many subscribers.")] = 1000,
    period: PeriodOpt = "2026-11",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
) -> None:
    """Create demo addresses, accounts, meters and readings (for trying things out)."""
    cfg = get_billing_config()
    with _connect() as conn:
        info = generate(
            conn,
            subscribers,
            period=parse_period(period),
            seed=seed,
            tag=f"Demo{seed}",
            tz=cfg.timezone,
        )
        conn.commit()
    console.print(
        f"created {len(info.account_ids)} accounts in {len(info.mahalla_ids)} mahallas with "
        f"{len(info.meter_ids)} meters; now run: suvnet billing run --period {period}"
    )


@app.command("info")
def info_cmd() -> None:
    """Check the billing settings: the utility's requisites printed on every slip and invoice
    (name, STIR, bank account, MFO, address, phone) and what the slips' QR code opens."""
    cfg = get_billing_config()
    t = Table(show_header=False, box=None)
    t.add_row("utility", cfg.utility_name)
    for label, value in (
        ("STIR (INN)", cfg.utility_inn),
        ("bank", cfg.utility_bank),
        ("bank account", cfg.utility_bank_account),
        ("MFO", cfg.utility_mfo),
        ("address", cfg.utility_address),
        ("phone", cfg.utility_phone),
        ("customer cabinet", cfg.cabinet_url or ""),
        ("time zone", cfg.timezone),
        ("payment due", f"day {cfg.payment_due_day} of the next month"),
    ):
        t.add_row(label, value or "[red](not set)[/red]")
    console.print(t)
    problems = requisites_problems(cfg)
    for _, text in problems:
        _warn(text)
    if not problems:
        console.print("[green]the documents' requisites are complete[/green]")


@app.command("check-number")
def check_number_cmd(number: Annotated[str, typer.Argument(help="Account number.")]) -> None:
    """Check the check digit of an account number (or compute it for an 8-digit serial)."""
    digits = clean(number)
    if len(digits) == 8 and digits.isascii() and digits.isdigit():
        console.print(f"{digits}{check_digit(digits)}")
        return
    console.print(f"{normalize(digits)} is valid")
