"""Bank statement readers: MT940, CSV and the 1C "Client-Bank" exchange text.

Each reader turns a file into a :class:`Statement` of typed :class:`StatementLine` s, or
raises :class:`StatementError` naming the line and the problem. Nothing here touches the
database. Formats (docs/payments.md has examples):

* **MT940** (SWIFT), read with the ``mt-940`` library. The payer is read from the ``:86:``
  text when it carries ``/NAME/``, ``/INN/``, ``/ACC/``, ``/MFO/`` and ``/PURP/`` sub-fields;
  otherwise the whole ``:86:`` text is the purpose.
* **CSV** (UTF-8 or Windows-1251, ``;`` or ``,``): ``key;value`` header rows ``account``,
  ``number``, ``date_from``, ``date_to``, ``opening_balance``, ``closing_balance``, then a
  row of column names and one row per movement with the columns ``date``, ``doc_no``,
  ``credit``, ``debit``, ``payer_name``, ``payer_inn``, ``payer_account``, ``payer_mfo``,
  ``purpose``.
* **1C** (``1CClientBankExchange``, usually Windows-1251): the ``СекцияРасчСчет`` gives the
  opening and closing balances; every ``СекцияДокумент=...`` ... ``КонецДокумента`` block is
  one movement; a document whose ``ПолучательСчет`` is our account is a credit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import mt940

from billing.payments.errors import PaymentsError, StatementError, StatementUnbalancedError
from billing.payments.money import som_to_tiyin, tiyin_to_som
from suvnet.textfile import FileEncodingError, bom_encoding, decode_text

Format = Literal["mt940", "csv", "1c"]


@dataclass(frozen=True)
class StatementLine:
    line_no: int
    value_date: date
    amount_tiyin: int  # always > 0; ``credit`` says the direction
    credit: bool
    doc_no: str = ""
    payer_name: str = ""
    payer_inn: str = ""
    payer_account: str = ""
    payer_mfo: str = ""
    purpose: str = ""


@dataclass(frozen=True)
class Statement:
    format: Format
    bank_account: str
    number: str
    date_from: date | None
    date_to: date | None
    opening_tiyin: int
    closing_tiyin: int
    lines: tuple[StatementLine, ...] = field(default_factory=tuple)

    @property
    def identity(self) -> str:
        """The same statement, exported again, has the same identity."""
        base = f"{self.format}:{self.bank_account}:{self.number}:{self.date_from}:{self.date_to}"
        if self.number or self.date_from:
            return base
        digest = hashlib.sha256(repr(self.lines).encode()).hexdigest()[:16]
        return f"{base}:{digest}"

    @property
    def credits_tiyin(self) -> int:
        return sum(ln.amount_tiyin for ln in self.lines if ln.credit)

    @property
    def debits_tiyin(self) -> int:
        return sum(ln.amount_tiyin for ln in self.lines if not ln.credit)

    def check_balance(self) -> None:
        """Opening + credits - debits must equal closing, to the tiyin."""
        computed = self.opening_tiyin + self.credits_tiyin - self.debits_tiyin
        diff = self.closing_tiyin - computed
        if diff != 0:
            raise StatementUnbalancedError(
                f"the statement does not balance: opening {tiyin_to_som(self.opening_tiyin)} + "
                f"credits {tiyin_to_som(self.credits_tiyin)} - debits "
                f"{tiyin_to_som(self.debits_tiyin)} = {tiyin_to_som(computed)}, but the closing "
                f"balance is {tiyin_to_som(self.closing_tiyin)} (difference "
                f"{tiyin_to_som(diff)}); the file is incomplete or edited, nothing was imported",
                diff,
            )


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1251 (1C and most bank exports)."""
    try:
        return decode_text(data, "", fallback="cp1251", option=None)[0]
    except FileEncodingError as exc:
        raise StatementError(str(exc)) from exc


def _money(text: str, where: str, *, allow_zero: bool = True, allow_negative: bool = True) -> int:
    try:
        return som_to_tiyin(text, allow_zero=allow_zero, allow_negative=allow_negative)
    except PaymentsError as exc:
        raise StatementError(f"{where}: {exc}") from exc


def _date(text: str, where: str) -> date:
    t = text.strip()
    for fmt in ("%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%y"):
        try:
            return datetime.strptime(t, fmt).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    raise StatementError(f"{where}: not a date: {text!r} (use DD.MM.YYYY or YYYY-MM-DD)")


# ------------------------------------------------------------------ MT940
_SUBFIELD = re.compile(r"/(NAME|INN|ACC|MFO|PURP)/")


def _mt940_details(text: str) -> dict[str, str]:
    # continuation lines of :86: are glued on verbatim (a word may be cut by the 65-char wrap)
    flat = " ".join(text.replace("\r", "").replace("\n", "").split())
    parts = _SUBFIELD.split(flat)
    if len(parts) < 3:
        return {"PURP": flat}
    out: dict[str, str] = {}
    for key, value in zip(parts[1::2], parts[2::2], strict=True):
        out[key] = value.strip()
    return out


def _plain(d: date) -> date:
    return date(d.year, d.month, d.day)


MT940_FIELDS = {
    "13D": "date and time",
    "20": "transaction reference",
    "21": "related reference",
    "25": "account",
    "28": "statement number",
    "28C": "statement number",
    "34F": "floor limit",
    "60F": "opening balance",
    "60M": "intermediate opening balance",
    "61": "movement",
    "62F": "closing balance",
    "62M": "intermediate closing balance",
    "64": "available balance",
    "65": "forward available balance",
    "86": "movement details",
    "90C": "sum of credits",
    "90D": "sum of debits",
}
_BALANCE_FORMAT = "D or C, the date YYMMDD, the currency and the amount, e.g. C261117UZS2535000,00"
MT940_FORMATS = {
    "60F": _BALANCE_FORMAT,
    "60M": _BALANCE_FORMAT,
    "62F": _BALANCE_FORMAT,
    "62M": _BALANCE_FORMAT,
    "64": _BALANCE_FORMAT,
    "65": _BALANCE_FORMAT,
    "61": "the value date YYMMDD, optionally the entry date MMDD, D or C, the amount with a "
    "decimal comma, a type and a reference, e.g. 2611181118C45000,00NTRFDOC701//B701",
    "28C": "the statement number and optionally /sequence, e.g. 00045/001",
}


def _mt940_where(text: str, tag: str, occurrence: int, movements: int) -> str:
    """'MT940 line 5, field :61: (movement 2)' for the ``occurrence``-th ``:tag:``."""
    starts = [
        m.start() for m in re.finditer(rf"^[ \t]*:{re.escape(tag)}:", text, flags=re.MULTILINE)
    ]
    line = text.count("\n", 0, starts[occurrence]) + 1 if occurrence < len(starts) else None
    name = MT940_FIELDS.get(tag, "field")
    if tag in ("61", "86") and movements:
        name = f"{name} {movements}"
    return f"MT940 {f'line {line}, ' if line else ''}field :{tag}: ({name})"


class _Located(mt940.models.Transactions):
    """MT940 transactions that remember the field being parsed, to name it in an error (if a
    future version of the library renames the method, only the line and field are lost from
    the message)."""

    tag = ""
    value = ""
    occurrence = 0
    movements = 0

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def _process_match(self, match: Any, i: int, valid: Any, data: str) -> None:
        tag = str(match.group("full_tag"))
        self.tag, self.occurrence = tag, self.seen.get(tag, 0)
        self.seen[tag] = self.occurrence + 1
        nxt = valid[i + 1].start() if i + 1 < len(valid) else len(data)
        self.value = data[match.end() : nxt].strip()
        self.movements += tag == "61"
        super()._process_match(match, i, valid, data)


def _mt940_parse(text: str) -> Any:
    """Parse with the ``mt-940`` library; its errors become a :class:`StatementError` naming
    the line, the field and the text that could not be read (never a Python object)."""
    # the library logs its own errors with its regular expressions: the StatementError says it
    logging.getLogger("mt940").setLevel(logging.CRITICAL)
    trs = _Located()
    try:
        trs.parse(text)
    except Exception as exc:  # the library raises RuntimeError, ValueError, KeyError...
        tag, value = trs.tag, trs.value
        if not tag:
            raise StatementError(f"MT940: the file cannot be read ({type(exc).__name__})") from exc
        where = _mt940_where(text, tag, trs.occurrence, trs.movements)
        shown = value if len(value) <= 80 else value[:77] + "..."
        if isinstance(exc, RuntimeError) and len(exc.args) == 3:  # "Unable to parse <tag>"
            why = "not in the expected form"
        else:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fmt = MT940_FORMATS.get(tag)
        raise StatementError(
            f"{where}: {why}: {shown!r}" + (f"; expected {fmt}" if fmt else "")
        ) from exc
    return trs


def parse_mt940(data: bytes) -> Statement:
    text = _decode(data)
    if ":20:" not in text or ":60" not in text:
        raise StatementError("not an MT940 statement (no :20: / :60F: fields)")
    trs = _mt940_parse(text)
    d = trs.data
    opening = d.get("final_opening_balance")
    closing = d.get("final_closing_balance")
    if opening is None or closing is None:
        raise StatementError("MT940: the opening (:60F:) or closing (:62F:) balance is missing")
    lines: list[StatementLine] = []
    for i, tr in enumerate(trs, start=1):
        t = tr.data
        if "amount" not in t or "date" not in t:
            raise StatementError(f"MT940 movement {i}: the :61: field has no amount or date")
        amount = Decimal(t["amount"].amount)
        details = _mt940_details(str(t.get("transaction_details") or ""))
        status = str(t.get("status", ""))
        credit = status in ("C", "RD")
        tiyin = _money(str(abs(amount)), f"MT940 movement {i}")
        if tiyin == 0:
            raise StatementError(f"MT940 movement {i}: zero amount")
        lines.append(
            StatementLine(
                line_no=i,
                value_date=date(t["date"].year, t["date"].month, t["date"].day),
                amount_tiyin=tiyin,
                credit=credit,
                doc_no=str(t.get("customer_reference") or ""),
                payer_name=details.get("NAME", ""),
                payer_inn=details.get("INN", ""),
                payer_account=details.get("ACC", ""),
                payer_mfo=details.get("MFO", ""),
                purpose=details.get("PURP", ""),
            )
        )
    return Statement(
        format="mt940",
        bank_account=str(d.get("account_identification") or ""),
        number=f"{d.get('statement_number') or ''}/{d.get('sequence_number') or ''}",
        date_from=_plain(opening.date),
        date_to=_plain(closing.date),
        opening_tiyin=_money(str(opening.amount.amount), "MT940 :60F:"),
        closing_tiyin=_money(str(closing.amount.amount), "MT940 :62F:"),
        lines=tuple(lines),
    )


# ------------------------------------------------------------------ CSV
_CSV_COLUMNS = (
    "date",
    "doc_no",
    "credit",
    "debit",
    "payer_name",
    "payer_inn",
    "payer_account",
    "payer_mfo",
    "purpose",
)
_CSV_HEADER_KEYS = (
    "account",
    "number",
    "date_from",
    "date_to",
    "opening_balance",
    "closing_balance",
)


def parse_csv(data: bytes) -> Statement:
    text = _decode(data)
    first = text.splitlines()[0] if text.strip() else ""
    delim = ";" if first.count(";") >= first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    head: dict[str, str] = {}
    columns: list[str] | None = None
    lines: list[StatementLine] = []
    for row_no, raw in enumerate(rows, start=1):
        row = [c.strip() for c in raw]
        if not any(row):
            continue
        key = row[0].lower()
        if columns is None:
            if key in _CSV_HEADER_KEYS:
                head[key] = row[1] if len(row) > 1 else ""
                continue
            if key == "date":
                columns = [c.lower() for c in row]
                missing = [c for c in _CSV_COLUMNS if c not in columns]
                if missing:
                    raise StatementError(f"CSV row {row_no}: missing columns {', '.join(missing)}")
                continue
            raise StatementError(
                f"CSV row {row_no}: expected a header row ({', '.join(_CSV_HEADER_KEYS)}) or the "
                f"column names row starting with 'date', got {row[0]!r}"
            )
        rec = dict(zip(columns, row, strict=False))
        where = f"CSV row {row_no}"
        credit = _money(rec.get("credit", "") or "0", f"{where} credit", allow_negative=False)
        debit = _money(rec.get("debit", "") or "0", f"{where} debit", allow_negative=False)
        if (credit > 0) == (debit > 0):
            raise StatementError(f"{where}: exactly one of credit and debit must be filled in")
        lines.append(
            StatementLine(
                line_no=len(lines) + 1,
                value_date=_date(rec.get("date", ""), f"{where} date"),
                amount_tiyin=credit or debit,
                credit=credit > 0,
                doc_no=rec.get("doc_no", ""),
                payer_name=rec.get("payer_name", ""),
                payer_inn=rec.get("payer_inn", ""),
                payer_account=rec.get("payer_account", ""),
                payer_mfo=rec.get("payer_mfo", ""),
                purpose=rec.get("purpose", ""),
            )
        )
    for need in ("account", "opening_balance", "closing_balance"):
        if not head.get(need):
            raise StatementError(f"CSV: the header row {need!r} is missing")
    if columns is None:
        raise StatementError("CSV: no column names row (date;doc_no;credit;debit;...)")
    return Statement(
        format="csv",
        bank_account=head["account"],
        number=head.get("number", ""),
        date_from=_date(head["date_from"], "CSV date_from") if head.get("date_from") else None,
        date_to=_date(head["date_to"], "CSV date_to") if head.get("date_to") else None,
        opening_tiyin=_money(head["opening_balance"], "CSV opening_balance"),
        closing_tiyin=_money(head["closing_balance"], "CSV closing_balance"),
        lines=tuple(lines),
    )


# ------------------------------------------------------------------ 1C Client-Bank
def _kv(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.strip(), value.strip()


def parse_1c(data: bytes) -> Statement:
    text = _decode(data)
    lines_in = text.splitlines()
    if not lines_in or lines_in[0].strip().lstrip("\ufeff") != "1CClientBankExchange":
        raise StatementError(
            "not a 1C Client-Bank file (the first line must be 1CClientBankExchange)"
        )
    header: dict[str, str] = {}
    acc_section: dict[str, str] = {}
    docs: list[tuple[int, dict[str, str]]] = []
    current: dict[str, str] | None = None
    start_no = 0
    in_acc = False
    for no, raw in enumerate(lines_in[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if line == "КонецФайла":
            break
        if line == "СекцияРасчСчет":
            in_acc = True
            continue
        if line == "КонецРасчСчет":
            in_acc = False
            continue
        if line.startswith("СекцияДокумент"):
            if current is not None:
                raise StatementError(f"1C line {no}: a document starts before КонецДокумента")
            current = {"СекцияДокумент": _kv(line)[1]}
            start_no = no
            continue
        if line == "КонецДокумента":
            if current is None:
                raise StatementError(f"1C line {no}: КонецДокумента without СекцияДокумент")
            docs.append((start_no, current))
            current = None
            continue
        if "=" not in line:
            raise StatementError(f"1C line {no}: expected Key=Value, got {line[:60]!r}")
        k, v = _kv(line)
        if current is not None:
            current[k] = v
        elif in_acc:
            acc_section[k] = v
        else:
            header[k] = v
    if current is not None:
        raise StatementError(f"1C line {start_no}: the document has no КонецДокумента")
    account = acc_section.get("РасчСчет") or header.get("РасчСчет", "")
    if not account:
        raise StatementError("1C: no РасчСчет (our bank account) in the file")
    for need in ("НачальныйОстаток", "КонечныйОстаток"):
        if need not in acc_section:
            raise StatementError(f"1C: СекцияРасчСчет has no {need}")
    out: list[StatementLine] = []
    for start, doc in docs:
        where = f"1C document at line {start}"
        amount = _money(
            doc.get("Сумма", ""), f"{where} Сумма", allow_zero=False, allow_negative=False
        )
        credit = doc.get("ПолучательСчет", "") == account
        if not credit and doc.get("ПлательщикСчет", "") != account:
            raise StatementError(
                f"{where}: neither ПлательщикСчет nor ПолучательСчет is our account {account}"
            )
        when = doc.get("ДатаПоступило") if credit else doc.get("ДатаСписано")
        out.append(
            StatementLine(
                line_no=len(out) + 1,
                value_date=_date(when or doc.get("Дата", ""), f"{where} Дата"),
                amount_tiyin=amount,
                credit=credit,
                doc_no=doc.get("Номер", ""),
                payer_name=doc.get("Плательщик1") or doc.get("Плательщик", ""),
                payer_inn=doc.get("ПлательщикИНН", ""),
                payer_account=doc.get("ПлательщикСчет", ""),
                payer_mfo=doc.get("ПлательщикБИК") or doc.get("ПлательщикМФО", ""),
                purpose=doc.get("НазначениеПлатежа", ""),
            )
        )
    df = acc_section.get("ДатаНачала") or header.get("ДатаНачала")
    dt = acc_section.get("ДатаКонца") or header.get("ДатаКонца")
    return Statement(
        format="1c",
        bank_account=account,
        number=header.get("Номер", ""),
        date_from=_date(df, "1C ДатаНачала") if df else None,
        date_to=_date(dt, "1C ДатаКонца") if dt else None,
        opening_tiyin=_money(acc_section["НачальныйОстаток"], "1C НачальныйОстаток"),
        closing_tiyin=_money(acc_section["КонечныйОстаток"], "1C КонечныйОстаток"),
        lines=tuple(out),
    )


# ------------------------------------------------------------------ dispatch
def detect_format(data: bytes, filename: str = "") -> Format:
    head = data[:4096].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"1CClientBankExchange"):
        return "1c"
    if b":20:" in head and (b":60F:" in head or b":60M:" in head):
        return "mt940"
    suffix = Path(filename).suffix.lower()
    if suffix in (".sta", ".mt940", ".940"):
        return "mt940"
    if suffix == ".csv" or head.lower().startswith((b"account;", b"account,")):
        return "csv"
    raise StatementError(
        "cannot tell the statement format: expected MT940, CSV (starting with 'account;') "
        "or 1C Client-Bank (starting with 1CClientBankExchange)"
    )


def parse_statement(
    data: bytes, filename: str = "", fmt: Format | None = None, encoding: str | None = None
) -> Statement:
    """Read and check a statement: a file that does not balance is refused here.

    The file is UTF-8 or Windows-1251 (recognised), or has a byte order mark (UTF-16 from
    Excel's "Unicode text" too), or is in ``encoding``."""
    if encoding is not None or bom_encoding(data[:4]) not in (None, "utf-8-sig"):
        try:
            text, _ = decode_text(data, "", encoding=encoding, option=None)
        except FileEncodingError as exc:
            raise StatementError(str(exc)) from exc
        data = text.encode("utf-8")
    kind = fmt or detect_format(data, filename)
    parser = {"mt940": parse_mt940, "csv": parse_csv, "1c": parse_1c}[kind]
    try:
        stmt = parser(data)
    except (InvalidOperation, KeyError, ValueError) as exc:
        raise StatementError(f"{kind} statement: {exc}") from exc
    stmt.check_balance()
    return stmt
