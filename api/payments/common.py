"""Shared helpers of the payment endpoints: settings, the audit row, the roles."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import Request

from api.security import Principal, Role
from billing.payments.config import PaymentsConfig, get_payments_config

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
