"""Ledger: append-only in the real database, idempotent postings, reversals, invariants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from billing.accountno import is_valid
from billing.accounts import Address, create_account
from billing.errors import AccountNumberError, LedgerError
from billing.ledger import balance, entries, post_entry, post_payment, reverse_entry
from tests.billing.conftest import NOW

ADDR = Address("Toshkent viloyati", "Chinoz tumani", "Obod MFY", "Navoiy ko'chasi", "12")


def _account(conn: psycopg.Connection[Any], name: str) -> tuple[int, str]:
    acc = create_account(conn, kind="household", name=name, address=ADDR, now=NOW, residents=3)
    conn.commit()
    return acc


def test_account_numbers_carry_a_check_digit(conn: psycopg.Connection[Any]) -> None:
    _, num = _account(conn, "Karimov A.")
    _, num2 = _account(conn, "Karimova B.")
    assert is_valid(num) and is_valid(num2) and num != num2
    wrong = num[:-1] + str((int(num[-1]) + 1) % 10)
    with pytest.raises(AccountNumberError, match="check digit"):
        post_payment(
            conn,
            account_number=wrong,
            amount_tiyin=100,
            paid_at=NOW,
            source="cashier",
            external_ref="x-1",
        )


def test_update_delete_truncate_refused_by_database(conn: psycopg.Connection[Any]) -> None:
    acc, _ = _account(conn, "Append Only")
    e = post_entry(conn, account_id=acc, kind="charge", amount_tiyin=5000, posted_at=NOW)
    conn.commit()
    for sql in (
        "UPDATE ledger SET amount_tiyin = 1 WHERE id = %s",
        "DELETE FROM ledger WHERE id = %s",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege, match="append-only"):
            conn.execute(sql, (e.id,))
        conn.rollback()
    with pytest.raises(pg_errors.InsufficientPrivilege, match="append-only"):
        conn.execute("TRUNCATE ledger CASCADE")
    conn.rollback()
    assert balance(conn, acc) == 5000


def test_payment_is_idempotent_and_signed(conn: psycopg.Connection[Any]) -> None:
    acc, num = _account(conn, "Payer")
    post_entry(conn, account_id=acc, kind="charge", amount_tiyin=1_980_000, posted_at=NOW)
    p1 = post_payment(
        conn,
        account_number=num,
        amount_tiyin=1_000_000,
        paid_at=NOW,
        source="payme",
        external_ref="tx-1",
    )
    p2 = post_payment(
        conn,
        account_number=num,
        amount_tiyin=1_000_000,
        paid_at=NOW,
        source="payme",
        external_ref="tx-1",
    )
    conn.commit()
    assert p1.created and not p2.created and p1.id == p2.id
    assert balance(conn, acc) == 980_000
    with pytest.raises(LedgerError, match="different posting"):
        post_payment(
            conn, account_id=acc, amount_tiyin=5, paid_at=NOW, source="payme", external_ref="tx-1"
        )
    conn.rollback()
    with pytest.raises(LedgerError, match="positive"):
        post_payment(
            conn, account_id=acc, amount_tiyin=0, paid_at=NOW, source="cashier", external_ref="c-0"
        )


def test_payment_commits_with_provider_state(conn: psycopg.Connection[Any]) -> None:
    acc, _ = _account(conn, "Atomic")
    conn.execute("CREATE TABLE IF NOT EXISTS t_provider (id text PRIMARY KEY, state int)")
    conn.commit()

    def provider_fails() -> None:
        with conn.transaction():
            conn.execute("INSERT INTO t_provider VALUES ('p-1', 2)")
            post_payment(
                conn,
                account_id=acc,
                amount_tiyin=700,
                paid_at=NOW,
                source="click",
                external_ref="p-1",
            )
            raise RuntimeError("provider call failed")

    with pytest.raises(RuntimeError):
        provider_fails()
    assert balance(conn, acc) == 0
    assert conn.execute("SELECT count(*) FROM t_provider").fetchone() == (0,)
    with conn.transaction():
        conn.execute("INSERT INTO t_provider VALUES ('p-1', 2)")
        post_payment(
            conn, account_id=acc, amount_tiyin=700, paid_at=NOW, source="click", external_ref="p-1"
        )
    assert balance(conn, acc) == -700  # prepaid


def test_reversal_rules(conn: psycopg.Connection[Any]) -> None:
    acc, _ = _account(conn, "Reversed")
    other, _ = _account(conn, "Other")
    e = post_entry(
        conn, account_id=acc, kind="charge", amount_tiyin=12_345, vat_tiyin=1_322, posted_at=NOW
    )
    r = reverse_entry(conn, e.id, posted_at=NOW + timedelta(days=1), memo="wrong reading")
    again = reverse_entry(conn, e.id, posted_at=NOW + timedelta(days=2))
    conn.commit()
    assert again.id == r.id and not again.created
    assert balance(conn, acc) == 0
    with pytest.raises(LedgerError, match="reversal"):
        reverse_entry(conn, r.id, posted_at=NOW)
    conn.rollback()
    # the database checks the reversal itself: wrong account or amount
    e2 = post_entry(conn, account_id=acc, kind="charge", amount_tiyin=100, posted_at=NOW)
    with pytest.raises(LedgerError, match="must be on account"):
        post_entry(
            conn,
            account_id=other,
            kind="reversal",
            amount_tiyin=-100,
            posted_at=NOW,
            reverses_id=e2.id,
        )
    conn.rollback()
    with pytest.raises(LedgerError, match="already been reversed"):
        post_entry(
            conn,
            account_id=acc,
            kind="reversal",
            amount_tiyin=-12_345,
            vat_tiyin=-1_322,
            posted_at=NOW,
            reverses_id=e.id,
            idem_key="other-key",
        )
    conn.rollback()


def test_bad_postings_are_refused_before_the_database(conn: psycopg.Connection[Any]) -> None:
    acc, _ = _account(conn, "Strict")
    with pytest.raises(LedgerError, match="positive"):
        post_entry(conn, account_id=acc, kind="charge", amount_tiyin=-5, posted_at=NOW)
    with pytest.raises(LedgerError, match="integer tiyin"):
        post_entry(conn, account_id=acc, kind="charge", amount_tiyin=1.5, posted_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="unknown account"):
        post_entry(conn, account_id=999_999, kind="charge", amount_tiyin=5, posted_at=NOW)
    conn.rollback()


def test_balance_equals_sum_of_entries(conn: psycopg.Connection[Any]) -> None:
    acc, _ = _account(conn, "Sum")
    amounts = [
        ("opening_balance", 50_000),
        ("charge", 120_000),
        ("payment", -80_000),
        ("adjustment", -3_000),
        ("penalty", 700),
        ("charge", 99_999),
    ]
    for k, (kind, amt) in enumerate(amounts):
        post_entry(
            conn,
            account_id=acc,
            kind=kind,  # type: ignore[arg-type]
            amount_tiyin=amt,
            posted_at=NOW + timedelta(days=k),
        )
    conn.commit()
    es = entries(conn, acc)
    assert [e.amount_tiyin for e in es] == [a for _, a in amounts]
    assert balance(conn, acc) == sum(a for _, a in amounts) == 187_699
    assert balance(conn, acc, as_of=(NOW + timedelta(days=2)).date()) == 90_000
    view = conn.execute(
        "SELECT balance_tiyin FROM account_balances WHERE account_id = %s", (acc,)
    ).fetchone()
    assert view == (187_699,)


def test_posting_never_commits_for_the_caller(db_url: str) -> None:
    with psycopg.connect(db_url) as setup:
        acc, _ = _account(setup, "Not Committed")
    with psycopg.connect(db_url) as fresh:  # nothing executed yet on this connection
        post_payment(
            fresh,
            account_id=acc,
            amount_tiyin=500,
            paid_at=NOW,
            source="cashier",
            external_ref="nc-1",
        )
        fresh.rollback()
        assert balance(fresh, acc) == 0
