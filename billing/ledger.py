"""The append-only ledger: the only way money moves on an account.

Sign convention: ``amount_tiyin > 0`` increases what the customer owes (charge, penalty,
positive adjustment), ``amount_tiyin < 0`` decreases it (payment, negative adjustment). The
balance of an account is the sum of its entries: positive = debtor, negative = prepaid.

Every function here runs inside the caller's transaction and never commits, so a payment
provider's state change (table ``provider_transactions``) and its ledger entry commit (or roll
back) together, as :func:`billing.payments.provider_transactions.perform` does::

    with conn.transaction():
        entry = post_payment(conn, account_id=acc, amount_tiyin=amount, paid_at=now,
                             source="payme", external_ref=ext_id)
        conn.execute(
            "UPDATE provider_transactions SET state = 2, perform_time = %s, ledger_id = %s"
            " WHERE provider = 'payme' AND ext_id = %s",
            (now, entry.id, ext_id),
        )

Postings are idempotent through ``idem_key``: posting the same key twice returns the first
entry (``created=False``) and adds nothing. A key reused for a different amount or account is
refused. The database refuses UPDATE, DELETE and TRUNCATE on the ledger; a mistake is undone
with :func:`reverse_entry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from billing.accountno import normalize
from billing.errors import LedgerError

EntryKind = Literal["charge", "payment", "adjustment", "reversal", "penalty", "opening_balance"]
KINDS: tuple[str, ...] = (
    "charge",
    "payment",
    "adjustment",
    "reversal",
    "penalty",
    "opening_balance",
)


@dataclass(frozen=True)
class PostedEntry:
    """Result of a posting: the entry id and whether this call created it."""

    id: int
    created: bool


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    account_id: int
    kind: str
    amount_tiyin: int
    vat_tiyin: int
    value_date: date
    period: date | None
    posted_at: datetime
    source: str
    external_ref: str | None
    invoice_id: int | None
    reverses_id: int | None
    memo: str


# the column list of the entry queries: a constant, no outside text goes into the SQL
_COLS = (
    "id, account_id, kind, amount_tiyin, vat_tiyin, value_date, period, posted_at, source, "
    "external_ref, invoice_id, reverses_id, memo"
)


def _check_amount(kind: str, amount_tiyin: int) -> None:
    if kind not in KINDS:
        raise LedgerError(f"unknown ledger entry kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(amount_tiyin, int) or isinstance(amount_tiyin, bool):
        raise LedgerError(f"amounts are integer tiyin, got {amount_tiyin!r}")
    if kind in ("charge", "penalty") and amount_tiyin <= 0:
        raise LedgerError(f"a {kind} must be a positive amount, got {amount_tiyin} tiyin")
    if kind == "payment" and amount_tiyin >= 0:
        raise LedgerError(f"a payment is stored negative, got {amount_tiyin} tiyin")
    if kind not in ("opening_balance",) and amount_tiyin == 0:
        raise LedgerError(f"a {kind} of 0 tiyin is not allowed")
    if abs(amount_tiyin) >= 2**62:
        raise LedgerError(f"amount {amount_tiyin} tiyin is out of range")


def post_entry(
    conn: psycopg.Connection[Any],
    *,
    account_id: int,
    kind: EntryKind,
    amount_tiyin: int,
    posted_at: datetime,
    value_date: date | None = None,
    period: date | None = None,
    vat_tiyin: int = 0,
    source: str = "billing",
    external_ref: str | None = None,
    idem_key: str | None = None,
    invoice_id: int | None = None,
    reverses_id: int | None = None,
    memo: str = "",
    created_by: str = "",
) -> PostedEntry:
    """Append one entry; idempotent on ``idem_key``. Runs in the caller's transaction."""
    _check_amount(kind, amount_tiyin)
    if (kind == "reversal") != (reverses_id is not None):
        raise LedgerError("a reversal (and only a reversal) names the entry it reverses")
    if posted_at.tzinfo is None:
        raise LedgerError("posted_at must be timezone-aware")
    vd = value_date or posted_at.date()
    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        # open the caller's transaction first, so that the block below is only a savepoint
        # and nothing is committed behind the caller's back
        conn.execute("SELECT 1")
    try:
        with conn.transaction():  # a savepoint: a refused posting leaves the caller usable
            row = conn.execute(
                """INSERT INTO ledger (account_id, kind, amount_tiyin, vat_tiyin, value_date,
                       period, posted_at, source, external_ref, idem_key, invoice_id,
                       reverses_id, memo, created_by)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (idem_key) DO NOTHING
                   RETURNING id""",
                (
                    account_id,
                    kind,
                    amount_tiyin,
                    vat_tiyin,
                    vd,
                    period,
                    posted_at,
                    source,
                    external_ref,
                    idem_key,
                    invoice_id,
                    reverses_id,
                    memo,
                    created_by,
                ),
            ).fetchone()
    except pg_errors.ForeignKeyViolation as exc:
        raise LedgerError(f"unknown account {account_id} or referenced entry/invoice") from exc
    except pg_errors.UniqueViolation as exc:
        raise LedgerError(f"ledger entry {reverses_id} has already been reversed") from exc
    except (pg_errors.RaiseException, pg_errors.CheckViolation) as exc:
        raise LedgerError(f"ledger refused the entry: {exc.diag.message_primary}") from exc
    if row is not None:
        return PostedEntry(int(row[0]), True)
    existing = conn.execute(
        "SELECT id, account_id, kind, amount_tiyin FROM ledger WHERE idem_key = %s", (idem_key,)
    ).fetchone()
    assert existing is not None
    if (existing[1], existing[2], existing[3]) != (account_id, kind, amount_tiyin):
        raise LedgerError(
            f"idempotency key {idem_key!r} was already used for a different posting "
            f"(entry {existing[0]}: account {existing[1]}, {existing[2]}, {existing[3]} tiyin)"
        )
    return PostedEntry(int(existing[0]), False)


def account_id_for_number(conn: psycopg.Connection[Any], number: str) -> int:
    """The account id of an account number (check digit verified first)."""
    num = normalize(number)
    row = conn.execute("SELECT id FROM accounts WHERE number = %s", (num,)).fetchone()
    if row is None:
        raise LedgerError(f"no account with number {num}")
    return int(row[0])


def post_payment(
    conn: psycopg.Connection[Any],
    *,
    amount_tiyin: int,
    paid_at: datetime,
    source: str,
    external_ref: str,
    account_id: int | None = None,
    account_number: str | None = None,
    idem_key: str | None = None,
    memo: str = "",
    created_by: str = "",
) -> PostedEntry:
    """Post a payment of ``amount_tiyin`` (> 0, as received) on an account.

    ``source`` is the channel (cashier, bank, payme, click...), ``external_ref`` its unique
    transaction id; the idempotency key defaults to ``payment:<source>:<external_ref>`` so a
    provider retry never pays twice. Runs in the caller's transaction.
    """
    if amount_tiyin <= 0:
        raise LedgerError(f"a payment must be a positive amount, got {amount_tiyin} tiyin")
    if account_id is None:
        if account_number is None:
            raise LedgerError("post_payment needs account_id or account_number")
        account_id = account_id_for_number(conn, account_number)
    return post_entry(
        conn,
        account_id=account_id,
        kind="payment",
        amount_tiyin=-amount_tiyin,
        posted_at=paid_at,
        value_date=paid_at.date(),
        source=source,
        external_ref=external_ref,
        idem_key=idem_key or f"payment:{source}:{external_ref}",
        memo=memo,
        created_by=created_by,
    )


def get_entry(conn: psycopg.Connection[Any], entry_id: int) -> LedgerEntry:
    sql = f"SELECT {_COLS} FROM ledger WHERE id = %s"  # noqa: S608 - _COLS is a constant
    row = conn.execute(sql, (entry_id,)).fetchone()
    if row is None:
        raise LedgerError(f"no ledger entry {entry_id}")
    return LedgerEntry(*row)


def reverse_entry(
    conn: psycopg.Connection[Any],
    entry_id: int,
    *,
    posted_at: datetime,
    memo: str = "",
    idem_key: str | None = None,
    created_by: str = "",
) -> PostedEntry:
    """Cancel an entry by posting its exact opposite (never an edit). Idempotent."""
    orig = get_entry(conn, entry_id)
    if orig.kind == "reversal":
        raise LedgerError(f"entry {entry_id} is a reversal; post a new entry instead")
    if orig.amount_tiyin == 0:
        raise LedgerError(f"entry {entry_id} has no amount to reverse")
    return post_entry(
        conn,
        account_id=orig.account_id,
        kind="reversal",
        amount_tiyin=-orig.amount_tiyin,
        vat_tiyin=-orig.vat_tiyin,
        posted_at=posted_at,
        value_date=posted_at.date(),
        period=orig.period,
        source=orig.source,
        external_ref=orig.external_ref,
        idem_key=idem_key or f"reversal:{entry_id}",
        invoice_id=orig.invoice_id,
        reverses_id=entry_id,
        memo=memo or f"reversal of entry {entry_id}",
        created_by=created_by,
    )


def balance(conn: psycopg.Connection[Any], account_id: int, *, as_of: date | None = None) -> int:
    """Balance in tiyin (positive = owes), optionally counting entries up to ``as_of``."""
    if as_of is None:
        row = conn.execute(
            "SELECT coalesce(sum(amount_tiyin), 0) FROM ledger WHERE account_id = %s",
            (account_id,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT coalesce(sum(amount_tiyin), 0) FROM ledger "
            "WHERE account_id = %s AND value_date <= %s",
            (account_id, as_of),
        ).fetchone()
    assert row is not None
    return int(row[0])


def entries(
    conn: psycopg.Connection[Any],
    account_id: int,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[LedgerEntry]:
    """Entries of an account in value-date order (optionally within [date_from, date_to])."""
    rows = conn.execute(
        f"""SELECT {_COLS} FROM ledger WHERE account_id = %s
              AND (%s::date IS NULL OR value_date >= %s::date)
              AND (%s::date IS NULL OR value_date <= %s::date)
            ORDER BY value_date, id""",  # noqa: S608 - _COLS is a constant column list
        (account_id, date_from, date_from, date_to, date_to),
    ).fetchall()
    return [LedgerEntry(*r) for r in rows]
