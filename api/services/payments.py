"""Payments at the office: the cashier desk (take, void) and bank statements (read an
upload, import, allocate by hand, match again), each with its audit row; and the payment
settings of a request. Used by :mod:`api.routes.cashier`, :mod:`api.routes.statements`,
:mod:`api.routes.billing` and the desk and statement pages (:mod:`api.web.staff_payments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request, UploadFile
from psycopg import AsyncConnection

from api.audit import audit_sync, list_audit
from api.deps import client_ip, get_state
from api.security import VOID_ANY, Principal
from api.syncdb import run_sync
from billing import queries as bq
from billing.payments import cashier as desk
from billing.payments import importer
from billing.payments.config import PaymentsConfig, get_payments_config
from billing.payments.errors import AllocationError, StatementError
from billing.payments.statements import Statement, parse_statement
from suvnet.listing import Page

MAX_STATEMENT_BYTES = 20 * 1024 * 1024
"""The largest bank statement file taken (20 MB)."""
StatementFormat = Literal["mt940", "csv", "1c"]


def payments_config(request: Request) -> PaymentsConfig:
    """``app.state.payments_config`` when set (tests, embedding), else the environment."""
    cfg = getattr(request.app.state, "payments_config", None)
    if isinstance(cfg, PaymentsConfig):
        return cfg
    return get_payments_config()


# ------------------------------------------------------------------------------ cashier desk


async def take_payment(
    request: Request,
    who: Principal,
    *,
    account_number: str,
    amount_tiyin: int,
    method: Literal["cash", "card"],
    request_key: str | None,
) -> desk.Receipt:
    """A desk payment, posted to the ledger at once, and (when it is new: the request key
    was not used before) its audit row. CashierError when it is refused."""
    st, ip = get_state(request), client_ip(request)
    now = st.clock()

    def work(conn: Any) -> desk.Receipt:
        r = desk.take_payment(
            conn,
            account_number=account_number,
            amount_tiyin=amount_tiyin,
            method=method,
            cashier=who.username,
            cashier_id=who.user_id,
            now=now,
            request_key=request_key,
        )
        if r.created:
            audit_sync(
                conn,
                who=who,
                ip=ip,
                now=now,
                action="payment",
                entity="cashier_receipt",
                entity_id=r.receipt_no,
                after={
                    "account": r.account_number,
                    "amount_tiyin": amount_tiyin,
                    "method": r.method,
                },
            )
        return r

    return await run_sync(st, work)


async def void_payment(
    request: Request, who: Principal, receipt_no: str, *, reason: str
) -> desk.Receipt:
    """Void a desk payment with a reversal, and its audit row. A cashier voids their own
    payments of the same day (in the office's time zone); an accountant or admin any
    (VoidRefusedError otherwise)."""
    st, ip = get_state(request), client_ip(request)
    tz = payments_config(request).timezone
    now = st.clock()

    def work(conn: Any) -> desk.Receipt:
        r = desk.void_payment(
            conn,
            receipt_no,
            by=who.username,
            may_void_any=who.role in VOID_ANY,
            reason=reason,
            now=now,
            tz=tz,
        )
        audit_sync(
            conn,
            who=who,
            ip=ip,
            now=now,
            action="void",
            entity="cashier_receipt",
            entity_id=receipt_no,
            after={"reason": reason, "amount_tiyin": r.amount_tiyin},
        )
        return r

    return await run_sync(st, work)


# --------------------------------------------------------------------------- bank statements


async def read_statement(file: UploadFile, fmt: StatementFormat | None = None) -> Statement:
    """Read an uploaded bank statement (at most :data:`MAX_STATEMENT_BYTES`) and check it
    (StatementError, StatementUnbalancedError)."""
    data = await file.read(MAX_STATEMENT_BYTES + 1)
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementError("the file is larger than 20 MB")
    return parse_statement(data, file.filename or "", fmt)


async def import_statement(
    request: Request, who: Principal, stmt: Statement, *, filename: str
) -> importer.ImportSummary:
    """Import a checked statement (credits matched to accounts where sure) and its audit row."""
    st, ip = get_state(request), client_ip(request)
    fuzzy_min_score = payments_config(request).fuzzy_min_score
    now = st.clock()

    def work(conn: Any) -> importer.ImportSummary:
        summary = importer.import_statement(
            conn,
            stmt,
            now=now,
            by=who.username,
            filename=filename,
            fuzzy_min_score=fuzzy_min_score,
        )
        audit_sync(
            conn,
            who=who,
            ip=ip,
            now=now,
            action="import",
            entity="bank_statement",
            entity_id=summary.statement_id,
            after=summary.as_dict(),
        )
        return summary

    return await run_sync(st, work)


@dataclass(frozen=True)
class Allocated:
    """The answer to a manual allocation: the line's new status, and whether this was the
    same form sent again (``repeated``: nothing new was posted, the first answer is given)."""

    line_id: int
    status: str
    repeated: bool = False


async def _first_answer(
    conn: AsyncConnection[Any] | None, line_id: int, request_key: str | None
) -> Allocated | None:
    """The allocation this form (``request_key``) already made on the line, from its audit
    row, or None."""
    if conn is None or not request_key:
        return None
    rows = await list_audit(
        conn, Page(limit=500, offset=0), entity="bank_statement_line", entity_id=str(line_id)
    )
    for row in rows["items"]:
        after = row.get("after") or {}
        if isinstance(after, dict) and after.get("request_key") == request_key:
            return Allocated(line_id, str(after.get("status", "")), repeated=True)
    return None


async def allocate(
    request: Request,
    who: Principal,
    line_id: int,
    parts: Sequence[tuple[str, int]],
    *,
    request_key: str | None = None,
    conn: AsyncConnection[Any] | None = None,
) -> Allocated:
    """Allocate a bank credit (or part of it) to accounts by hand, with its audit row; the
    line's new status. AllocationError when it is refused.

    ``request_key`` is the form's idempotency key (kept in the audit row): the same form
    sent again (Back, then submit) answers with the first allocation's status and posts
    nothing (``repeated``). ``conn`` (the request's pooled connection) reads the audit."""
    first = await _first_answer(conn, line_id, request_key)
    if first is not None:
        return first
    st, ip = get_state(request), client_ip(request)
    now = st.clock()

    def work(sync: Any) -> str:
        status = importer.allocate_manual(sync, line_id, parts, now=now, by=who.username)
        after: dict[str, Any] = {"parts": list(parts), "status": status}
        if request_key:
            after["request_key"] = request_key
        audit_sync(
            sync,
            who=who,
            ip=ip,
            now=now,
            action="allocate",
            entity="bank_statement_line",
            entity_id=line_id,
            after=after,
        )
        return status

    try:
        return Allocated(line_id, await run_sync(st, work))
    except AllocationError:
        # the same form sent twice at once: the first one won, answer with its status
        again = await _first_answer(conn, line_id, request_key)
        if again is not None:
            return again
        raise


async def review_queue(
    request: Request, *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int, int]:
    """The credits waiting for a person (a page of them), how many there are, and the total
    in suspense (tiyin), read in one transaction."""

    def work(conn: Any) -> tuple[list[dict[str, Any]], int, int]:
        items = importer.review_queue(conn, limit=limit, offset=offset)
        return items, bq.review_total(conn), importer.suspense_total(conn)

    return await run_sync(get_state(request), work)


async def rematch(request: Request, who: Principal) -> dict[str, int]:
    """Match the suspense and review credits again; counts per new status."""
    st = get_state(request)
    fuzzy_min_score = payments_config(request).fuzzy_min_score
    now = st.clock()
    return await run_sync(
        st,
        lambda conn: importer.rematch(
            conn, now=now, by=who.username, fuzzy_min_score=fuzzy_min_score
        ),
    )
