"""The cashier desk: cash and card payments with a numbered receipt, the shift report,
and the void (a reversal in the ledger, never an edit).

Rules of the void: a cashier may void only their own payments and only on the day they were
taken (the office's day, ``PaymentsConfig.timezone``); an accountant or administrator
(``may_void_any=True``) may void any cashier payment of any day. Either way the payment stays
in the ledger and a reversing entry cancels it.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from billing.accountno import clean
from billing.accounts import find_account
from billing.branches import allocate_for_accounts
from billing.config import get_billing_config
from billing.errors import LedgerError
from billing.ledger import balance, post_payment, reverse_entry
from billing.payments.errors import CashierError, RequestKeyReusedError, VoidRefusedError
from suvnet.numfmt import format_som

# Start-up time: the receipt PDF's imports (reportlab, and billing.documents, which loads numba
# and its compiled kernels) are inside _wrap and render_receipt, because the web app imports
# this module when it starts and most requests never print a receipt.
log = logging.getLogger(__name__)
Method = Literal["cash", "card"]
MAX_PAYMENT_TIYIN = 10**13


@dataclass(frozen=True)
class Receipt:
    receipt_no: str
    account_id: int
    account_number: str
    account_name: str
    address: str
    amount_tiyin: int
    method: str
    cashier: str
    taken_at: datetime
    ledger_id: int
    balance_after_tiyin: int
    voided_at: datetime | None = None
    voided_by: str | None = None
    void_reason: str | None = None
    created: bool = True


@dataclass
class ShiftReport:
    cashier: str
    day: date
    payments: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    cash_tiyin: int = 0
    card_tiyin: int = 0
    voided_count: int = 0
    voided_tiyin: int = 0

    @property
    def net_tiyin(self) -> int:
        return self.cash_tiyin + self.card_tiyin


def _local_day(ts: datetime, tz: str) -> date:
    return ts.astimezone(ZoneInfo(tz)).date()


def _day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))
    return start, start + timedelta(days=1)


def _next_receipt_no(conn: psycopg.Connection[Any], year: int, account_id: int) -> str:
    """The next receipt number of the account's branch (``K-URG-2026-0000001``), or of the
    utility's series (``K-2026-0000001``) for an account of no branch; gapless per series
    and year (the counter moves in the payment's own transaction)."""
    return allocate_for_accounts(conn, [account_id], "receipt", year)[0]


_RECEIPT_SQL = """
SELECT c.receipt_no, c.account_id, a.number, a.name,
       concat_ws(', ', ad.street_uz, 'uy ' || ad.house_number,
                 'xonadon ' || ad.apartment_number,
                 ad.mahalla_uz),
       c.amount_tiyin, c.method, c.cashier, c.taken_at, c.ledger_id,
       c.voided_at, c.voided_by, c.void_reason
FROM cashier_payments c
JOIN accounts a ON a.id = c.account_id
LEFT JOIN account_addresses ad ON ad.account_id = a.id
WHERE c.receipt_no = %s
"""


def get_receipt(
    conn: psycopg.Connection[Any], receipt_no: str, *, created: bool = False
) -> Receipt:
    row = conn.execute(_RECEIPT_SQL, (receipt_no,)).fetchone()
    if row is None:
        raise CashierError(f"no cashier receipt {receipt_no!r}")
    bal_row = conn.execute(
        "SELECT coalesce(sum(amount_tiyin), 0) FROM ledger WHERE account_id = %s AND id <= %s",
        (row[1], row[9]),
    ).fetchone()
    assert bal_row is not None
    return Receipt(
        receipt_no=row[0],
        account_id=row[1],
        account_number=row[2],
        account_name=row[3],
        address=row[4] or "",
        amount_tiyin=row[5],
        method=row[6],
        cashier=row[7],
        taken_at=row[8],
        ledger_id=row[9],
        balance_after_tiyin=int(bal_row[0]),
        voided_at=row[10],
        voided_by=row[11],
        void_reason=row[12],
        created=created,
    )


def take_payment(
    conn: psycopg.Connection[Any],
    *,
    account_number: str,
    amount_tiyin: int,
    method: Method,
    cashier: str,
    now: datetime,
    cashier_id: int | None = None,
    request_key: str | None = None,
) -> Receipt:
    """Record a payment at the desk and post it to the ledger (same transaction).

    ``request_key`` (e.g. a UUID made when the form was opened) makes a double submit
    return the first receipt instead of paying twice."""
    if method not in ("cash", "card"):
        raise CashierError(f"payment method must be cash or card, got {method!r}")
    if isinstance(amount_tiyin, bool) or not isinstance(amount_tiyin, int):
        raise CashierError(f"amount must be integer tiyin, got {amount_tiyin!r}")
    if not 0 < amount_tiyin < MAX_PAYMENT_TIYIN:
        raise CashierError(f"amount must be positive and sane, got {amount_tiyin} tiyin")
    if request_key is not None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cashier:{request_key}",))
        row = conn.execute(
            "SELECT receipt_no FROM cashier_payments WHERE request_key = %s", (request_key,)
        ).fetchone()
        if row is not None:
            first = get_receipt(conn, row[0], created=False)
            if (first.account_number, first.amount_tiyin, first.method) != (
                clean(account_number),
                amount_tiyin,
                method,
            ):
                raise RequestKeyReusedError(
                    f"this form was already used for receipt {first.receipt_no} "
                    f"({first.account_number}, {format_som(first.amount_tiyin)}); reload the page "
                    "to take another payment",
                    first.receipt_no,
                )
            return first
    account = find_account(conn, account_number)
    if account is None:
        raise CashierError(f"no account {account_number.strip()!r} (check the number)")
    if account.status == "closed":
        raise CashierError(f"account {account.number} is closed")
    receipt_no = _next_receipt_no(conn, now.year, account.id)
    try:
        entry = post_payment(
            conn,
            amount_tiyin=amount_tiyin,
            paid_at=now,
            source="cashier",
            external_ref=receipt_no,
            account_id=account.id,
            memo=f"{method} at the desk, receipt {receipt_no}",
            created_by=cashier,
        )
    except LedgerError as exc:
        raise CashierError(f"the ledger refused the payment: {exc}") from exc
    conn.execute(
        """INSERT INTO cashier_payments (receipt_no, request_key, account_id, amount_tiyin,
               method, cashier_id, cashier, taken_at, ledger_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            receipt_no,
            request_key,
            account.id,
            amount_tiyin,
            method,
            cashier_id,
            cashier,
            now,
            entry.id,
        ),
    )
    log.info(
        "cashier %s took %s tiyin (%s) for %s: %s",
        cashier,
        amount_tiyin,
        method,
        account.number,
        receipt_no,
    )
    return get_receipt(conn, receipt_no, created=True)


def void_payment(
    conn: psycopg.Connection[Any],
    receipt_no: str,
    *,
    by: str,
    may_void_any: bool,
    reason: str,
    now: datetime,
    tz: str = "Asia/Tashkent",
) -> Receipt:
    """Void a desk payment with a reversing ledger entry. Voiding twice is refused."""
    if not reason.strip():
        raise CashierError("give a reason for the void")
    row = conn.execute(
        "SELECT cashier, taken_at, ledger_id, voided_at FROM cashier_payments "
        "WHERE receipt_no = %s FOR UPDATE",
        (receipt_no,),
    ).fetchone()
    if row is None:
        raise CashierError(f"no cashier receipt {receipt_no!r}")
    cashier, taken_at, ledger_id, voided_at = row
    if voided_at is not None:
        raise VoidRefusedError(f"receipt {receipt_no} was already voided")
    if not may_void_any:
        if cashier != by:
            raise VoidRefusedError(
                f"receipt {receipt_no} was taken by {cashier}; only they, an accountant or an "
                "administrator may void it"
            )
        if _local_day(taken_at, tz) != _local_day(now, tz):
            raise VoidRefusedError(
                f"receipt {receipt_no} is from {_local_day(taken_at, tz)}; a cashier may void only "
                "today's payments (ask an accountant)"
            )
    rev = reverse_entry(
        conn,
        ledger_id,
        posted_at=now,
        memo=f"void of receipt {receipt_no}: {reason.strip()}",
        created_by=by,
    )
    conn.execute(
        """UPDATE cashier_payments SET voided_at = %s, voided_by = %s, void_reason = %s,
                  void_ledger_id = %s WHERE receipt_no = %s""",
        (now, by, reason.strip(), rev.id, receipt_no),
    )
    log.info("receipt %s voided by %s", receipt_no, by)
    return get_receipt(conn, receipt_no)


def shift_report(
    conn: psycopg.Connection[Any], cashier: str, day: date, tz: str = "Asia/Tashkent"
) -> ShiftReport:
    """What a cashier took on a day: every payment, totals per method, voids.

    Also counts cash payments posted by the simple back-office desk (ledger entries with
    source 'cashier' that have no desk receipt row)."""
    start, end = _day_bounds(day, tz)
    rep = ShiftReport(cashier=cashier, day=day)
    rows = conn.execute(
        """SELECT c.receipt_no, a.number, c.amount_tiyin, c.method, c.taken_at, c.voided_at
           FROM cashier_payments c JOIN accounts a ON a.id = c.account_id
           WHERE c.cashier = %s AND c.taken_at >= %s AND c.taken_at < %s
           UNION ALL
           SELECT l.external_ref, a.number, -l.amount_tiyin, 'cash', l.posted_at,
                  (SELECT r.posted_at FROM ledger r WHERE r.reverses_id = l.id)
           FROM ledger l JOIN accounts a ON a.id = l.account_id
           WHERE l.source = 'cashier' AND l.kind = 'payment' AND l.created_by = %s
             AND l.posted_at >= %s AND l.posted_at < %s
             AND NOT EXISTS (SELECT 1 FROM cashier_payments c WHERE c.ledger_id = l.id)
           ORDER BY 5, 1""",
        (cashier, start, end, cashier, start, end),
    ).fetchall()
    for receipt_no, number, amount, method, taken_at, voided_at in rows:
        rep.payments.append(
            {
                "receipt_no": receipt_no,
                "account": number,
                "amount_tiyin": amount,
                "method": method,
                "taken_at": taken_at,
                "voided": voided_at is not None,
            }
        )
        if voided_at is not None:
            rep.voided_count += 1
            rep.voided_tiyin += amount
            continue
        rep.count += 1
        if method == "card":
            rep.card_tiyin += amount
        else:
            rep.cash_tiyin += amount
    return rep


_BREAK = re.compile(r"[ \t\r\n]+")
"""Where a receipt line may break: ordinary spaces only. The narrow no-break space inside a
figure (``15 000,50``) keeps the figure on one line."""


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` points: at spaces, and inside a word that
    is wider than the line by itself."""
    from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]

    out: list[str] = []
    line = ""
    for word in _BREAK.split(text.strip()):
        if not word:
            continue
        candidate = f"{line} {word}" if line else word
        if stringWidth(candidate, font, size) <= width:
            line = candidate
            continue
        if line:
            out.append(line)
        line = ""
        for ch in word:
            if line and stringWidth(line + ch, font, size) > width:
                out.append(line)
                line = ""
            line += ch
    if line:
        out.append(line)
    return out


RECEIPT_WIDTH_MM = 80
RECEIPT_MARGIN_MM = 5
MAX_VALUE_LINES = 8
"""A value longer than this many lines (a very long name) stops with "…"."""
SOM = "soʻm / сум"


def receipt_lines(
    r: Receipt,
    utility_name: str,
    tz: str = "Asia/Tashkent",
    *,
    utility_inn: str = "",
    utility_phone: str = "",
) -> list[tuple[str, str, str]]:
    """What the receipt prints, top to bottom, as ``(style, label, value)``: style ``head``
    (the utility), ``title``, ``sub`` (a small line), ``row`` (a label above its value),
    ``total`` (the amount, large) and ``void``. Uzbek and Russian side by side; money in the
    one format of :mod:`suvnet.numfmt`; the time in the office's zone, named."""
    taken = r.taken_at.astimezone(ZoneInfo(tz))
    out: list[tuple[str, str, str]] = [("head", "", utility_name)]
    contact = " · ".join(
        part
        for part in (
            f"STIR / ИНН {utility_inn}" if utility_inn else "",
            f"Tel. {utility_phone}" if utility_phone else "",
        )
        if part
    )
    if contact:
        out.append(("sub", "", contact))
    out += [
        ("title", "", "Kvitansiya / Квитанция"),
        ("title", "", f"№ {r.receipt_no}"),
        ("sub", "", f"{taken:%d.%m.%Y %H:%M} ({_zone_label(tz)})"),
        ("row", "Hisob raqami / Лицевой счёт", r.account_number),
        ("row", "Abonent / Абонент", r.account_name),
    ]
    if r.address:
        out.append(("row", "Manzil / Адрес", r.address))
    out += [
        (
            "row",
            "Toʻlov turi / Способ оплаты",
            "naqd / наличные" if r.method == "cash" else "karta / карта",
        ),
        ("total", "Summa / Сумма", f"{format_som(r.amount_tiyin)} {SOM}"),
        (
            "row",
            "Qarz toʻlovdan keyin / Долг после оплаты"
            if r.balance_after_tiyin >= 0
            else "Avans toʻlovdan keyin / Аванс после оплаты",
            f"{format_som(abs(r.balance_after_tiyin))} {SOM}",
        ),
        ("row", "Kassir / Кассир", r.cashier),
    ]
    if r.voided_at is not None:
        out.append(("void", "BEKOR QILINGAN / АННУЛИРОВАНО", r.void_reason or ""))
    return out


def _zone_label(tz: str) -> str:
    if tz == "Asia/Tashkent":
        return "Toshkent / Ташкент"
    return tz


def render_receipt(
    r: Receipt,
    utility_name: str,
    tz: str = "Asia/Tashkent",
    *,
    utility_inn: str = "",
    utility_phone: str = "",
) -> bytes:
    """A small printable receipt (80 mm wide), in Uzbek and Russian.

    Each entry is a small label with its value below it, so a long name or address wraps
    onto more lines inside the paper instead of being cut, and a number (the receipt
    number, an amount) always stays whole on one line. The text is drawn as plain strings
    (no markup is parsed, so a name such as ``<a href=...>`` is printed as it is)."""
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

    from billing.documents import fonts

    reg, bold = fonts(get_billing_config())
    styles = {
        "head": (bold, 10.0),
        "title": (bold, 11.0),
        "sub": (reg, 8.0),
        "row": (reg, 9.5),
        "total": (bold, 12.0),
        "void": (bold, 10.0),
    }
    label_font, label_size = reg, 7.0
    width, margin, gap = RECEIPT_WIDTH_MM * mm, RECEIPT_MARGIN_MM * mm, 2.2 * mm
    inner = width - 2 * margin
    # (font, size, lines) blocks; each label is a block of its own above its value
    blocks: list[tuple[str, float, list[str], float]] = []
    for style, label, value in receipt_lines(
        r, utility_name, tz, utility_inn=utility_inn, utility_phone=utility_phone
    ):
        font, size = styles[style]
        if label:
            blocks.append((label_font, label_size, _wrap(label, label_font, label_size, inner), 0))
        parts = _wrap(value, font, size, inner) or [""]
        if len(parts) > MAX_VALUE_LINES:
            last = _wrap(parts[MAX_VALUE_LINES - 1], font, size, inner - size)[0]
            parts = [*parts[: MAX_VALUE_LINES - 1], last + "…"]
        blocks.append((font, size, parts, gap))
    height = 20 * mm + sum(size * 1.25 * len(parts) + after for _, size, parts, after in blocks)
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(width, height))
    c.setTitle(f"Receipt {r.receipt_no}")
    c.setAuthor("suvnet")
    y = height - 8 * mm
    for font, size, parts, after in blocks:
        c.setFont(font, size)
        for part in parts:
            y -= size
            c.drawString(margin, y, part)
            y -= size * 0.25
        y -= after
    c.setFont(reg, 7)
    c.drawString(margin, 6 * mm, "Rahmat! / Спасибо!")
    c.showPage()
    c.save()
    return buf.getvalue()


def account_balance(conn: psycopg.Connection[Any], account_id: int) -> int:
    return balance(conn, account_id)
