"""Shared helpers of the payment endpoints: settings, the audit row, the roles."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import Request

from api.security import Principal, Role
from billing.payments import cashier as desk
from billing.payments import importer
from billing.payments.config import PaymentsConfig, get_payments_config
from billing.payments.statements import Statement

CASHIER_DESK = frozenset({Role.CASHIER, Role.ACCOUNTANT, Role.ADMIN})
VOID_ANY = frozenset({Role.ACCOUNTANT, Role.ADMIN})
STATEMENTS = frozenset({Role.ACCOUNTANT, Role.ADMIN, Role.BILLING_CLERK})


def payments_config(request: Request) -> PaymentsConfig:
    """``app.state.payments_config`` when set (tests, embedding), else the environment."""
    cfg = getattr(request.app.state, "payments_config", None)
    if isinstance(cfg, PaymentsConfig):
        return cfg
    return get_payments_config()


def audit_sync(
    conn: Any,
    *,
    who: Principal,
    ip: str,
    now: datetime,
    action: str,
    entity: str,
    entity_id: object,
    after: Any,
) -> None:
    """One audit row on a synchronous connection (commits with the change)."""
    from psycopg.types.json import Jsonb

    conn.execute(
        "INSERT INTO audit_log (ts, actor_id, actor, role, action, entity, entity_id, after, ip) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            now,
            who.user_id,
            who.username,
            who.role.value,
            action,
            entity,
            str(entity_id),
            Jsonb(json.loads(json.dumps(after, default=str))),
            ip,
        ),
    )


def take_payment_audited(
    conn: Any,
    *,
    who: Principal,
    ip: str,
    now: datetime,
    account_number: str,
    amount_tiyin: int,
    method: Literal["cash", "card"],
    request_key: str | None,
) -> desk.Receipt:
    """A desk payment and, when it is new, its audit row, in the caller's transaction.
    Shared by the JSON API and the desk page."""
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
            after={"account": r.account_number, "amount_tiyin": amount_tiyin, "method": r.method},
        )
    return r


def import_statement_audited(
    conn: Any,
    stmt: Statement,
    *,
    who: Principal,
    ip: str,
    now: datetime,
    filename: str,
    fuzzy_min_score: float,
) -> importer.ImportSummary:
    """Import a parsed bank statement and write its audit row, in the caller's transaction.
    Shared by the upload API and the statements page."""
    summary = importer.import_statement(
        conn, stmt, now=now, by=who.username, filename=filename, fuzzy_min_score=fuzzy_min_score
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
