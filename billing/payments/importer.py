"""Importing bank statements into the ledger: the match cascade, suspense, the review queue.

For every credit of a statement, in order:

1. **Account numbers in the purpose** (check digit verified; a number with a wrong check digit
   is ignored and noted). One number takes the whole amount. Several numbers each followed by
   an amount ("000000018 - 150000.00; 000000026 - 50000.00") split the credit; what the parts
   do not cover stays in suspense (``partial``). Several numbers without amounts go to review.
2. **The payer's INN or bank account** linked to a legal or budget account: one such account
   takes the whole amount; several go to review.
3. **Names and addresses**: accounts whose name looks like the payer's name (or whose street
   and house are in the purpose) become suggestions in the review queue.

Whatever is not allocated sits in **suspense** (``bank_suspense`` view) until a person
allocates it or :func:`rematch` finds the account later (e.g. after an INN was added).
Every allocation is one ledger payment (source ``bank``) posted in the same transaction as
the allocation row. Re-importing a statement adds nothing: statements are unique by identity
and lines by (statement, line number).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from billing.ledger import post_payment
from billing.payments.errors import AllocationError
from billing.payments.matching import (
    AccountIndex,
    Candidate,
    NameMatcher,
    address_in,
    find_numbers,
)
from billing.payments.statements import Statement, StatementLine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Allocation:
    account_id: int
    number: str
    amount_tiyin: int
    method: str


@dataclass(frozen=True)
class Suggestion:
    account_id: int
    number: str
    score: float
    reason: str


@dataclass
class MatchResult:
    allocations: list[Allocation] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    review: bool = False


@dataclass
class ImportSummary:
    statement_id: int
    identity: str
    format: str
    already_imported: bool
    lines_total: int = 0
    lines_new: int = 0
    credits: int = 0
    debits: int = 0
    matched: int = 0
    partial: int = 0
    review: int = 0
    suspense: int = 0
    duplicate: int = 0
    allocated_tiyin: int = 0
    suspense_tiyin: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ------------------------------------------------------------------ the cascade
def _open_accounts_by_number(
    conn: psycopg.Connection[Any], numbers: Sequence[str]
) -> dict[str, int]:
    if not numbers:
        return {}
    rows = conn.execute(
        "SELECT number, id FROM accounts WHERE number = ANY(%s) AND status <> 'closed'",
        (list(numbers),),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def match_line(
    conn: psycopg.Connection[Any],
    line: StatementLine,
    *,
    fuzzy_min_score: float = 0.55,
    index: Callable[[], AccountIndex] | None = None,
) -> MatchResult:
    """Decide where a credit goes (reads the database, writes nothing). ``index`` gives the
    account index for name suggestions (loaded from the database when not given)."""
    res = MatchResult()
    amount = line.amount_tiyin
    hits = find_numbers(line.purpose)
    for h in hits:
        if not h.valid:
            res.notes.append(f"{h.number} in the purpose has a wrong check digit; ignored")
    known = _open_accounts_by_number(conn, [h.number for h in hits if h.valid])
    for h in hits:
        if h.valid and h.number not in known:
            res.notes.append(f"{h.number} in the purpose is not an open account")
    found = [h for h in hits if h.valid and h.number in known]
    # 1. account numbers in the purpose
    if len(found) == 1 and (found[0].amount_tiyin is None or found[0].amount_tiyin >= amount):
        h = found[0]
        if h.amount_tiyin is not None and h.amount_tiyin > amount:
            res.notes.append(f"the purpose names {h.amount_tiyin} tiyin, more than was paid")
        res.allocations.append(Allocation(known[h.number], h.number, amount, "number"))
        return res
    if found and all(h.amount_tiyin is not None for h in found):
        parts = sum(h.amount_tiyin or 0 for h in found)
        if parts <= amount:
            for h in found:
                res.allocations.append(
                    Allocation(known[h.number], h.number, h.amount_tiyin or 0, "number")
                )
            if parts < amount:
                res.notes.append(
                    f"the parts named in the purpose cover {parts} of {amount} tiyin; "
                    "the rest is in suspense"
                )
            return res
        res.notes.append(f"the parts named in the purpose ({parts} tiyin) exceed the credit")
    if found:
        res.review = True
        res.suggestions = [
            Suggestion(known[h.number], h.number, 1.0, "account number in the purpose")
            for h in found
        ]
        if len(found) > 1:
            res.notes.append("several account numbers without amounts; split it by hand")
        return res
    # 2. the payer's INN / bank account linked to a legal entity
    if line.payer_inn or line.payer_account:
        rows = conn.execute(
            """SELECT id, number, (inn = %s) AS by_inn FROM accounts
               WHERE status <> 'closed' AND kind IN ('legal', 'budget')
                 AND ((%s <> '' AND inn = %s) OR (%s <> '' AND bank_account = %s))
               ORDER BY number""",
            (
                line.payer_inn,
                line.payer_inn,
                line.payer_inn,
                line.payer_account,
                line.payer_account,
            ),
        ).fetchall()
        if len(rows) == 1:
            method = "inn" if rows[0][2] else "bank_account"
            res.allocations.append(Allocation(int(rows[0][0]), rows[0][1], amount, method))
            return res
        if rows:
            res.review = True
            res.suggestions = [
                Suggestion(int(r[0]), r[1], 0.9, "payer INN / bank account of this account")
                for r in rows
            ]
            res.notes.append(f"the payer has {len(rows)} accounts; split it by hand")
            return res
    # 3. fuzzy name / address suggestions
    res.suggestions = _fuzzy(line, fuzzy_min_score, (index or _LazyIndex(conn))())
    res.review = bool(res.suggestions)
    return res


def load_index(conn: psycopg.Connection[Any]) -> AccountIndex:
    """Every open account with its street and house, for name/address suggestions."""
    rows = conn.execute(
        """SELECT a.id, a.number, a.name, coalesce(s.name_uz, ''), h.number
           FROM accounts a JOIN houses h ON h.id = a.house_id
           LEFT JOIN streets s ON s.id = h.street_id
           WHERE a.status <> 'closed'"""
    ).fetchall()
    return AccountIndex([Candidate(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows])


class _LazyIndex:
    """Loads the account index the first time a line needs name suggestions."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.index: AccountIndex | None = None

    def __call__(self) -> AccountIndex:
        if self.index is None:
            self.index = load_index(self.conn)
        return self.index


def _fuzzy(line: StatementLine, min_score: float, index: AccountIndex) -> list[Suggestion]:
    found = index.candidates(f"{line.payer_name} {line.purpose}")
    matcher = NameMatcher(line.payer_name, floor=min_score)
    out: list[Suggestion] = []
    for c in found:
        score = matcher.score(c.name) if line.payer_name else 0.0
        reason = f"name like {c.name!r}"
        if address_in(line.purpose, c.street, c.house):
            score = max(score, 0.6) + 0.2
            reason = f"address {c.street} {c.house} in the purpose; {reason}"
        if score >= min_score:
            out.append(Suggestion(c.account_id, c.number, round(min(score, 1.0), 3), reason))
    out.sort(key=lambda s: (-s.score, s.number))
    return out[:5]


# ------------------------------------------------------------------ writing
def _allocate(
    conn: psycopg.Connection[Any],
    *,
    line_id: int,
    identity: str,
    line_no: int,
    a: Allocation,
    now: datetime,
    by: str,
    value_date: Any,
) -> None:
    entry = post_payment(
        conn,
        amount_tiyin=a.amount_tiyin,
        paid_at=now,
        source="bank",
        external_ref=f"{identity}#{line_no}#{a.number}",
        account_id=a.account_id,
        memo=f"bank statement {identity} line {line_no} ({a.method}), value date {value_date}",
        created_by=by,
    )
    conn.execute(
        """INSERT INTO bank_allocations (line_id, account_id, amount_tiyin, method, ledger_id,
               allocated_at, allocated_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (line_id, a.account_id, a.amount_tiyin, a.method, entry.id, now, by),
    )


def _apply(
    conn: psycopg.Connection[Any],
    *,
    line_id: int,
    identity: str,
    line: StatementLine,
    res: MatchResult,
    now: datetime,
    by: str,
) -> str:
    allocated = 0
    for a in res.allocations:
        _allocate(
            conn,
            line_id=line_id,
            identity=identity,
            line_no=line.line_no,
            a=a,
            now=now,
            by=by,
            value_date=line.value_date,
        )
        allocated += a.amount_tiyin
    conn.execute("DELETE FROM bank_match_suggestions WHERE line_id = %s", (line_id,))
    if allocated == line.amount_tiyin:
        status = "matched"
    elif allocated > 0:
        status = "partial"
    elif res.review:
        status = "review"
    else:
        status = "suspense"
    if status in ("review", "partial", "suspense"):
        for s in res.suggestions:
            conn.execute(
                """INSERT INTO bank_match_suggestions (line_id, account_id, score, reason)
                   VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (line_id, s.account_id, s.score, s.reason),
            )
    conn.execute(
        """UPDATE bank_statement_lines SET status = %s, allocated_tiyin = allocated_tiyin + %s,
                  note = %s, updated_at = %s WHERE id = %s""",
        (status, allocated, "; ".join(res.notes), now, line_id),
    )
    return status


def _same_document(
    conn: psycopg.Connection[Any], statement_id: int, bank_account: str, line: StatementLine
) -> str | None:
    """The same bank document (date, number, amount, payer account) in another statement of
    the same bank account, e.g. an overlapping or extended re-export."""
    if not line.doc_no:
        return None
    row = conn.execute(
        """SELECT s.identity, l.line_no FROM bank_statement_lines l
           JOIN bank_statements s ON s.id = l.statement_id
           WHERE l.credit AND l.value_date = %s AND l.doc_no = %s AND l.amount_tiyin = %s
             AND l.payer_account = %s AND s.bank_account = %s AND s.id <> %s
             AND l.status <> 'duplicate'
           LIMIT 1""",
        (
            line.value_date,
            line.doc_no,
            line.amount_tiyin,
            line.payer_account,
            bank_account,
            statement_id,
        ),
    ).fetchone()
    return None if row is None else f"line {row[1]} of statement {row[0]}"


def import_statement(
    conn: psycopg.Connection[Any],
    stmt: Statement,
    *,
    now: datetime,
    by: str = "",
    filename: str = "",
    fuzzy_min_score: float = 0.55,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Store the statement, match its credits and post them (caller's transaction)."""
    stmt.check_balance()
    row = conn.execute(
        """INSERT INTO bank_statements (identity, format, bank_account, number, date_from,
               date_to, opening_tiyin, closing_tiyin, filename, imported_at, imported_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (identity) DO NOTHING RETURNING id""",
        (
            stmt.identity,
            stmt.format,
            stmt.bank_account,
            stmt.number,
            stmt.date_from,
            stmt.date_to,
            stmt.opening_tiyin,
            stmt.closing_tiyin,
            filename,
            now,
            by,
        ),
    ).fetchone()
    already = row is None
    if row is None:
        row = conn.execute(
            "SELECT id FROM bank_statements WHERE identity = %s", (stmt.identity,)
        ).fetchone()
        assert row is not None
    sid = int(row[0])
    summary = ImportSummary(sid, stmt.identity, stmt.format, already, lines_total=len(stmt.lines))
    lazy = _LazyIndex(conn)
    for i, line in enumerate(stmt.lines, start=1):
        inserted = conn.execute(
            """INSERT INTO bank_statement_lines (statement_id, line_no, value_date, amount_tiyin,
                   credit, doc_no, payer_name, payer_inn, payer_account, payer_mfo, purpose,
                   status, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (statement_id, line_no) DO NOTHING RETURNING id""",
            (
                sid,
                line.line_no,
                line.value_date,
                line.amount_tiyin,
                line.credit,
                line.doc_no,
                line.payer_name,
                line.payer_inn,
                line.payer_account,
                line.payer_mfo,
                line.purpose,
                "suspense" if line.credit else "debit",
                now,
            ),
        ).fetchone()
        if progress is not None:
            progress(i, len(stmt.lines))
        if inserted is None:
            continue
        summary.lines_new += 1
        if not line.credit:
            summary.debits += 1
            continue
        summary.credits += 1
        twin = _same_document(conn, sid, stmt.bank_account, line)
        if twin is not None:
            conn.execute(
                "UPDATE bank_statement_lines SET status = 'duplicate', note = %s WHERE id = %s",
                (f"the same bank document as {twin}; not posted again", inserted[0]),
            )
            summary.duplicate += 1
            continue
        res = match_line(conn, line, fuzzy_min_score=fuzzy_min_score, index=lazy)
        status = _apply(
            conn,
            line_id=int(inserted[0]),
            identity=stmt.identity,
            line=line,
            res=res,
            now=now,
            by=by,
        )
        allocated = sum(a.amount_tiyin for a in res.allocations)
        summary.allocated_tiyin += allocated
        summary.suspense_tiyin += line.amount_tiyin - allocated
        setattr(summary, status, getattr(summary, status) + 1)
    log.info(
        "statement %s imported: %s new lines, %s matched, %s partial, %s review, %s suspense",
        stmt.identity,
        summary.lines_new,
        summary.matched,
        summary.partial,
        summary.review,
        summary.suspense,
    )
    return summary


def rematch(
    conn: psycopg.Connection[Any], *, now: datetime, by: str = "", fuzzy_min_score: float = 0.55
) -> dict[str, int]:
    """Run the cascade again over credits in suspense or review that nothing was allocated
    from yet (e.g. after an account or an INN was added). Returns counts per new status."""
    rows = conn.execute(
        """SELECT l.id, s.identity, l.line_no, l.value_date, l.amount_tiyin, l.doc_no,
                  l.payer_name, l.payer_inn, l.payer_account, l.payer_mfo, l.purpose
           FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id
           WHERE l.credit AND l.status IN ('suspense', 'review') AND l.allocated_tiyin = 0
           ORDER BY l.id FOR UPDATE OF l"""
    ).fetchall()
    counts = {"matched": 0, "partial": 0, "review": 0, "suspense": 0}
    lazy = _LazyIndex(conn)
    for r in rows:
        line = StatementLine(
            line_no=r[2],
            value_date=r[3],
            amount_tiyin=r[4],
            credit=True,
            doc_no=r[5],
            payer_name=r[6],
            payer_inn=r[7],
            payer_account=r[8],
            payer_mfo=r[9],
            purpose=r[10],
        )
        res = match_line(conn, line, fuzzy_min_score=fuzzy_min_score, index=lazy)
        status = _apply(conn, line_id=int(r[0]), identity=r[1], line=line, res=res, now=now, by=by)
        counts[status] += 1
    return counts


def allocate_manual(
    conn: psycopg.Connection[Any],
    line_id: int,
    parts: Sequence[tuple[str, int]],
    *,
    now: datetime,
    by: str,
) -> str:
    """A person allocates (part of) a credit from suspense/review to accounts. Returns the
    line's new status."""
    row = conn.execute(
        """SELECT l.credit, l.amount_tiyin, l.allocated_tiyin, s.identity, l.line_no,
                  l.value_date, l.status
           FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id
           WHERE l.id = %s FOR UPDATE OF l""",
        (line_id,),
    ).fetchone()
    if row is None:
        raise AllocationError(f"no statement line {line_id}")
    credit, amount, allocated, identity, line_no, value_date, _status = row
    if not credit:
        raise AllocationError(f"statement line {line_id} is a debit, not a customer payment")
    if not parts:
        raise AllocationError("name at least one account and amount")
    total = 0
    allocs: list[Allocation] = []
    for number, tiyin in parts:
        if isinstance(tiyin, bool) or not isinstance(tiyin, int) or tiyin <= 0:
            raise AllocationError(f"amount for {number} must be positive tiyin, got {tiyin!r}")
        acc = _open_accounts_by_number(conn, [number.strip()])
        if not acc:
            raise AllocationError(f"no open account {number!r}")
        total += tiyin
        allocs.append(Allocation(acc[number.strip()], number.strip(), tiyin, "manual"))
    open_tiyin = amount - allocated
    if total > open_tiyin:
        raise AllocationError(
            f"the parts ({total} tiyin) exceed what is open on the line ({open_tiyin} tiyin)"
        )
    done = conn.execute(
        "SELECT number FROM bank_allocations b JOIN accounts a ON a.id = b.account_id "
        "WHERE b.line_id = %s",
        (line_id,),
    ).fetchall()
    already = {r[0] for r in done}
    for a in allocs:
        if a.number in already:
            raise AllocationError(f"line {line_id} was already allocated to {a.number}")
        _allocate(
            conn,
            line_id=line_id,
            identity=identity,
            line_no=line_no,
            a=a,
            now=now,
            by=by,
            value_date=value_date,
        )
    new_alloc = allocated + total
    status = "matched" if new_alloc == amount else "partial"
    conn.execute(
        "UPDATE bank_statement_lines SET status = %s, allocated_tiyin = %s, updated_at = %s "
        "WHERE id = %s",
        (status, new_alloc, now, line_id),
    )
    if status == "matched":
        conn.execute("DELETE FROM bank_match_suggestions WHERE line_id = %s", (line_id,))
    log.info("statement line %s allocated by %s: %s tiyin", line_id, by, total)
    return status


def review_queue(
    conn: psycopg.Connection[Any], *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Credits waiting for a person (review, partial, suspense), oldest first, with suggestions."""
    rows = conn.execute(
        """SELECT l.id, s.identity, l.line_no, l.value_date, l.amount_tiyin, l.allocated_tiyin,
                  l.status, l.payer_name, l.payer_inn, l.payer_account, l.purpose, l.note,
                  coalesce((SELECT json_agg(json_build_object('account', a.number,
                                 'name', a.name, 'score', g.score, 'reason', g.reason)
                                 ORDER BY g.score DESC, a.number)
                            FROM bank_match_suggestions g JOIN accounts a ON a.id = g.account_id
                            WHERE g.line_id = l.id), '[]'::json)
           FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id
           WHERE l.credit AND l.status IN ('review', 'partial', 'suspense')
           ORDER BY (l.status = 'review') DESC, l.value_date, l.id
           LIMIT %s OFFSET %s""",
        (limit, offset),
    ).fetchall()
    keys = (
        "line_id",
        "statement",
        "line_no",
        "value_date",
        "amount_tiyin",
        "allocated_tiyin",
        "status",
        "payer_name",
        "payer_inn",
        "payer_account",
        "purpose",
        "note",
        "suggestions",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def suspense_total(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(sum(open_tiyin), 0) FROM bank_suspense").fetchone()
    assert row is not None
    return int(row[0])
