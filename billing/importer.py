"""Import of accounts from a legacy billing system (CSV or XLSX).

Columns (header row, names case-insensitive; only ``name``, ``kind`` and the address are
required)::

    legacy_id, number, kind, name, inn, mfo, bank_account, phone, region, district, mahalla,
    street, house, apartment, residents, metered, meter_serial, meter_digits,
    initial_reading, installed_on, opening_balance

``kind`` is household / legal / budget (also accepted: jismoniy, yuridik, byudjet);
``opening_balance`` is in so'm with up to two decimals, positive = the customer owes.

The whole file is imported in ONE transaction. Each row (account, address, meter and opening
balance) goes in completely or not at all; rejected rows are reported with their line number
and reason. With ``strict=True`` any rejected row rolls the whole file back. Rows whose
``legacy_id`` was imported before are skipped, so a file can be imported again safely.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import errors as pg_errors

from billing.accountno import normalize
from billing.accounts import READING_SOURCES, Address, add_reading, create_account, install_meter
from billing.errors import BillingError, ImportRejectedError
from billing.ledger import post_entry
from suvnet.textfile import FileEncodingError, decode_text
from suvnet.textsafe import csv_row

# Start-up time: openpyxl (about 0.2 s to import) is imported inside read_rows, only when the
# file is XLSX, so that importing a CSV file does not wait for it.

KIND_ALIASES = {
    "household": "household",
    "jismoniy": "household",
    "aholi": "household",
    "физ": "household",
    "население": "household",
    "legal": "legal",
    "yuridik": "legal",
    "юр": "legal",
    "юридическое": "legal",
    "budget": "budget",
    "byudjet": "budget",
    "бюджет": "budget",
}
REQUIRED = ("kind", "name", "region", "district", "mahalla", "street", "house")


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    committed: bool = False

    def write_csv(self, path: Path) -> None:
        """The rejected rows as CSV (line, reason); a reason that quotes the file's text is
        neutralised for spreadsheets (suvnet.textsafe)."""
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["line", "reason"])
            w.writerows(csv_row(r) for r in self.rejected)


class RowError(BillingError):
    pass


def read_rows(path: Path, encoding: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) for every data row of a CSV or XLSX file.

    A CSV file is read as UTF-8 unless it starts with a byte order mark (UTF-8, UTF-16:
    Excel's "Unicode text") or ``encoding`` names another one; a file in another encoding
    is refused with a message naming the likely one (suvnet.textfile). The separator is
    the most frequent of ``;``, ``,`` and tab on the header line."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl  # type: ignore[import-untyped]

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a bad file
            raise BillingError(f"{path}: not a readable XLSX workbook: {exc}") from exc
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = [str(h or "").strip().lower() for h in next(it, ())]
        for n, row in enumerate(it, start=2):
            if row is None or all(v is None or str(v).strip() == "" for v in row):
                continue
            yield (
                n,
                {h: "" if v is None else _cell(v) for h, v in zip(header, row, strict=False) if h},
            )
        wb.close()
        return
    if suffix not in (".csv", ".txt"):
        raise BillingError(f"{path}: unsupported file type {suffix!r}; use .csv or .xlsx")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BillingError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        text, _ = decode_text(data, str(path), encoding=encoding)
    except FileEncodingError as exc:
        raise BillingError(str(exc)) from exc
    first = text.split("\n", 1)[0]
    delim = max(",;\t", key=first.count) if first.strip() else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = [h.strip().lower().lstrip("\ufeff") for h in next(reader, [])]
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            yield reader.line_num, {h: c.strip() for h, c in zip(header, row, strict=False) if h}
    except csv.Error as exc:
        raise BillingError(f"{path}:{reader.line_num}: not a readable CSV line: {exc}") from exc


def _cell(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v).strip()


def _opt(row: dict[str, str], key: str) -> str | None:
    v = row.get(key, "").strip()
    return v or None


def _digits(row: dict[str, str], key: str) -> str | None:
    v = _opt(row, key)
    return None if v is None else v.replace(" ", "").replace("-", "")


def _tiyin(text: str) -> int:
    try:
        d = Decimal(text.replace(" ", "").replace(",", "."))
    except InvalidOperation as exc:
        raise RowError(f"opening_balance {text!r} is not a number") from exc
    if d != d.quantize(Decimal("0.01")):
        raise RowError(f"opening_balance {text!r} has more than 2 decimals")
    return int(d * 100)


def _import_row(
    conn: psycopg.Connection[Any], row: dict[str, str], *, now: datetime, as_of: date, tz: str
) -> bool:
    missing = [k for k in REQUIRED if not row.get(k, "").strip()]
    if missing:
        raise RowError(f"missing {', '.join(missing)}")
    legacy = _opt(row, "legacy_id")
    if (
        legacy
        and conn.execute("SELECT 1 FROM accounts WHERE legacy_ref = %s", (legacy,)).fetchone()
    ):
        return False
    kind = KIND_ALIASES.get(row["kind"].strip().lower())
    if kind is None:
        raise RowError(f"kind {row['kind']!r} is not household, legal or budget")
    try:
        residents = int(row.get("residents") or 0)
    except ValueError as exc:
        raise RowError(f"residents {row.get('residents')!r} is not a whole number") from exc
    metered_text = (row.get("metered") or "").strip().lower()
    metered = metered_text not in ("0", "no", "false", "yo'q", "нет") and (
        metered_text != "" or bool(_opt(row, "meter_serial"))
    )
    address = Address(
        row["region"],
        row["district"],
        row["mahalla"],
        row["street"],
        row["house"],
        _opt(row, "apartment"),
    )
    acc_id, number = create_account(
        conn,
        kind=kind,
        name=row["name"],
        address=address,
        now=now,
        residents=residents,
        inn=_digits(row, "inn"),
        mfo=_digits(row, "mfo"),
        bank_account=_digits(row, "bank_account"),
        phone=_digits(row, "phone"),
        metered=metered,
        number=_opt(row, "number"),
        opened_on=as_of,
        legacy_ref=legacy,
    )
    serial = _opt(row, "meter_serial")
    if serial:
        try:
            initial = float((row.get("initial_reading") or "0").replace(",", "."))
            digits = int(row.get("meter_digits") or 5)
            inst = date.fromisoformat(row["installed_on"]) if _opt(row, "installed_on") else as_of
        except ValueError as exc:
            raise RowError(f"meter fields: {exc}") from exc
        if not 3 <= digits <= 9:
            raise RowError(f"meter_digits must be 3..9, got {digits}")
        install_meter(
            conn,
            acc_id,
            serial,
            installed_at=datetime.combine(inst, time(0), ZoneInfo(tz)),
            initial_reading=initial,
            digits=digits,
        )
    ob = _opt(row, "opening_balance")
    if ob:
        amount = _tiyin(ob)
        if amount:
            post_entry(
                conn,
                account_id=acc_id,
                kind="opening_balance",
                amount_tiyin=amount,
                posted_at=now,
                value_date=as_of,
                source="import",
                idem_key=f"opening:{number}",
                memo="opening balance from legacy system",
            )
    return True


def import_accounts(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    now: datetime,
    as_of: date | None = None,
    strict: bool = False,
    dry_run: bool = False,
    tz: str = "Asia/Tashkent",
    progress: Callable[[int, int], None] | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import a file in one transaction (see the module doc). Commits unless rejected/dry.
    ``encoding`` is the CSV file's, when it is not UTF-8 (see :func:`read_rows`)."""
    as_of = as_of or now.date()
    report = ImportReport()
    seen: dict[str, int] = {}
    rows = list(read_rows(path, encoding))
    with conn.transaction(force_rollback=dry_run):
        for line, row in rows:
            report.rows += 1
            legacy = _opt(row, "legacy_id")
            if legacy and legacy in seen:
                report.rejected.append((line, f"legacy_id {legacy} repeats line {seen[legacy]}"))
                continue
            if legacy:
                seen[legacy] = line
            try:
                with conn.transaction():  # savepoint: the row goes in whole or not at all
                    if _import_row(conn, row, now=now, as_of=as_of, tz=tz):
                        report.imported += 1
                    else:
                        report.skipped += 1
            except (BillingError, pg_errors.IntegrityError, pg_errors.DataError) as exc:
                reason = (
                    exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
                ) or str(exc).strip()
                report.rejected.append((line, reason or type(exc).__name__))
            if progress:
                progress(report.rows, len(rows))
        if strict and report.rejected:
            raise ImportRejectedError(
                f"{path.name}: {len(report.rejected)} row(s) rejected; nothing imported",
                report.rejected,
            )
    report.committed = not dry_run
    if not conn.autocommit:
        conn.commit()
    return report


def import_readings(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    source: str = "inspector",
    entered_by: str = "",
    tz: str = "Asia/Tashkent",
    progress: Callable[[int, int], None] | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import register readings (an inspector's route sheet) in one transaction.

    Columns: ``meter_serial`` (or ``account`` number when the account has one meter), ``date``
    (YYYY-MM-DD, read at local midnight) or ``ts`` (ISO date-time), ``value`` (m³, decimal
    comma accepted) and optionally ``source`` (inspector, manual, customer). Bad rows are
    reported and skipped; the others are committed together.
    """
    report = ImportReport()
    rows = list(read_rows(path, encoding))
    with conn.transaction():
        for line, row in rows:
            report.rows += 1
            try:
                with conn.transaction():
                    serial = _opt(row, "meter_serial")
                    if serial:
                        m = conn.execute(
                            "SELECT id FROM meters WHERE serial_no = %s", (serial,)
                        ).fetchone()
                        if m is None:
                            raise RowError(f"unknown meter {serial}")
                    else:
                        number = normalize(row.get("account", ""))
                        ms = conn.execute(
                            """SELECT sc.meter_id FROM service_connections sc
                               JOIN accounts a ON a.id = sc.account_id
                               WHERE a.number = %s AND sc.removed_at IS NULL""",
                            (number,),
                        ).fetchall()
                        if len(ms) != 1:
                            raise RowError(
                                f"account {number} has {len(ms)} installed meters; "
                                "give meter_serial"
                            )
                        m = ms[0]
                    if _opt(row, "ts"):
                        ts = datetime.fromisoformat(row["ts"])
                        if ts.tzinfo is None:
                            ts = ts.replace(tzinfo=ZoneInfo(tz))
                    elif _opt(row, "date"):
                        ts = datetime.combine(
                            date.fromisoformat(row["date"]), time(0), ZoneInfo(tz)
                        )
                    else:
                        raise RowError("missing date or ts")
                    try:
                        value = float((row.get("value") or "").replace(",", "."))
                    except ValueError as exc:
                        raise RowError(f"value {row.get('value')!r} is not a number") from exc
                    src = _opt(row, "source") or source
                    if src not in READING_SOURCES:
                        raise RowError(f"source must be one of {', '.join(READING_SOURCES)}")
                    add_reading(conn, int(m[0]), ts, value, src, entered_by=entered_by)
                    report.imported += 1
            except (BillingError, ValueError, pg_errors.IntegrityError, pg_errors.DataError) as exc:
                report.rejected.append((line, str(exc)))
            if progress:
                progress(report.rows, len(rows))
    report.committed = True
    if not conn.autocommit:
        conn.commit()
    return report
