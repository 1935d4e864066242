"""Cash payments taken at the office: posted through billing, audited in the same
transaction (runs in a worker thread on a synchronous connection, see api.syncdb)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.security import Principal


@dataclass(frozen=True)
class CashPayment:
    number: str
    amount_tiyin: int
    receipt: str
    who: Principal
    ip: str
    now: datetime


def post_cash(conn: Any, p: CashPayment) -> tuple[int, bool]:
    """Post the payment (idempotent on the receipt number) and audit it; (entry id, created)."""
    from psycopg.types.json import Jsonb

    from billing.ledger import account_id_for_number, post_payment

    account_id = account_id_for_number(conn, p.number)
    entry = post_payment(
        conn,
        amount_tiyin=p.amount_tiyin,
        paid_at=p.now,
        source="cashier",
        external_ref=p.receipt,
        account_id=account_id,
        created_by=p.who.username,
    )
    after = {
        "ledger_id": entry.id,
        "amount_tiyin": p.amount_tiyin,
        "receipt": p.receipt,
        "created": entry.created,
    }
    conn.execute(
        "INSERT INTO audit_log (ts, actor_id, actor, role, action, entity, entity_id, after, ip) "
        "VALUES (%s, %s, %s, %s, 'payment', 'account', %s, %s, %s)",
        (
            p.now,
            p.who.user_id,
            p.who.username,
            p.who.role.value,
            p.number,
            Jsonb(json.loads(json.dumps(after))),
            p.ip,
        ),
    )
    return entry.id, entry.created
