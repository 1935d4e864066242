"""The state of the payment providers' transactions (Payme, Click) and their ledger postings.

A provider transaction is a row of ``provider_transactions``: state 1 (created), 2 (performed:
the payment is in the ledger), -1 (cancelled before it was performed) or -2 (cancelled after:
the payment is reversed). The providers' callbacks (:mod:`billing.payments.payme`,
:mod:`billing.payments.click`, served over HTTP by ``api/``) answer the provider; this module
changes the state, and the ledger entry commits with it.

Every function runs inside the caller's transaction and never commits. The row of a
provider transaction is locked (``FOR UPDATE``) before its state changes, so two identical
callbacks arriving at the same moment are serialized: the second one sees the first one's
result and posts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from billing.accounts import AccountRef
from billing.ledger import post_payment, reverse_entry

# the column list of every query below: a constant, no outside text goes into the SQL
_COLS = (
    "id, provider, ext_id, account_id, account_number, amount_tiyin, state, reason, "
    "provider_time_ms, create_time, perform_time, cancel_time, ledger_id, reversal_id, details"
)


@dataclass(frozen=True)
class ProviderTx:
    id: int
    provider: str
    ext_id: str
    account_id: int
    account_number: str
    amount_tiyin: int
    state: int
    reason: int | None
    provider_time_ms: int | None
    create_time: datetime
    perform_time: datetime | None
    cancel_time: datetime | None
    ledger_id: int | None
    reversal_id: int | None
    details: dict[str, Any]


def ms(dt: datetime | None) -> int:
    """Milliseconds since the epoch (0 for "not set", as Payme expects)."""
    return 0 if dt is None else int(dt.timestamp() * 1000)


def lock_tx(conn: psycopg.Connection[Any], provider: str, ext_id: str) -> ProviderTx | None:
    row = conn.execute(
        f"SELECT {_COLS} FROM provider_transactions "  # noqa: S608 - _COLS is a constant
        "WHERE provider = %s AND ext_id = %s FOR UPDATE",
        (provider, ext_id),
    ).fetchone()
    return None if row is None else ProviderTx(*row)


def insert_tx(
    conn: psycopg.Connection[Any],
    *,
    provider: str,
    ext_id: str,
    account: AccountRef,
    amount_tiyin: int,
    provider_time_ms: int | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> tuple[ProviderTx, bool]:
    """Create the transaction in state 1, or lock the one a concurrent call just created.
    Returns (transaction, created)."""
    row = conn.execute(
        f"""INSERT INTO provider_transactions (provider, ext_id, account_id, account_number,
                amount_tiyin, state, provider_time_ms, create_time, details)
            VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s)
            ON CONFLICT (provider, ext_id) DO NOTHING
            RETURNING {_COLS}""",  # noqa: S608 - _COLS is a constant column list
        (
            provider,
            ext_id,
            account.id,
            account.number,
            amount_tiyin,
            provider_time_ms,
            now,
            Jsonb(details or {}),
        ),
    ).fetchone()
    if row is not None:
        return ProviderTx(*row), True
    existing = lock_tx(conn, provider, ext_id)
    assert existing is not None, "a conflicting insert must be visible once it committed"
    return existing, False


def perform(conn: psycopg.Connection[Any], tx: ProviderTx, now: datetime) -> ProviderTx:
    """State 1 -> 2 and the payment in the ledger, in the caller's transaction."""
    assert tx.state == 1, tx
    entry = post_payment(
        conn,
        amount_tiyin=tx.amount_tiyin,
        paid_at=now,
        source=tx.provider,
        external_ref=tx.ext_id,
        account_id=tx.account_id,
        memo=f"{tx.provider} transaction {tx.ext_id}",
        created_by=tx.provider,
    )
    row = conn.execute(
        f"""UPDATE provider_transactions SET state = 2, perform_time = %s, ledger_id = %s
            WHERE id = %s RETURNING {_COLS}""",  # noqa: S608 - _COLS is a constant
        (now, entry.id, tx.id),
    ).fetchone()
    assert row is not None
    return ProviderTx(*row)


def cancel(
    conn: psycopg.Connection[Any], tx: ProviderTx, now: datetime, reason: int | None
) -> ProviderTx:
    """State 1 -> -1, or 2 -> -2 with a reversing ledger entry."""
    reversal_id: int | None = None
    if tx.state == 2:
        assert tx.ledger_id is not None
        reversal_id = reverse_entry(
            conn,
            tx.ledger_id,
            posted_at=now,
            memo=f"{tx.provider} transaction {tx.ext_id} cancelled (reason {reason})",
            created_by=tx.provider,
        ).id
        new_state = -2
    elif tx.state == 1:
        new_state = -1
    else:
        return tx
    row = conn.execute(
        f"""UPDATE provider_transactions SET state = %s, cancel_time = %s, reason = %s,
                   reversal_id = %s
            WHERE id = %s RETURNING {_COLS}""",  # noqa: S608 - _COLS is a constant
        (new_state, now, reason, reversal_id, tx.id),
    ).fetchone()
    assert row is not None
    return ProviderTx(*row)
