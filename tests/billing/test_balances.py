"""Aging with FIFO, roll-ups equal the sum of their parts, penalty off by default."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.accounts import Address, create_account
from billing.balances import (
    Entry,
    age_entries,
    assess_penalties,
    balances_by,
    penalty_amount,
)
from billing.config import BillingConfig, load_billing_config
from billing.demo import generate
from billing.figures import GroupBy
from billing.ledger import balance, post_entry, post_payment
from billing.run import run_billing
from tests.billing.conftest import NOW

AS_OF = date(2026, 12, 31)


def test_fifo_pays_oldest_debt_first() -> None:
    es = [
        Entry(1, "charge", 100, date(2026, 8, 31)),  # 122 days
        Entry(2, "charge", 200, date(2026, 10, 31)),  # 61 days
        Entry(3, "charge", 300, date(2026, 11, 30)),  # 31 days
        Entry(4, "charge", 400, date(2026, 12, 20)),  # 11 days
        Entry(5, "payment", -250, date(2026, 12, 25)),
    ]
    a = age_entries(es, AS_OF)
    # the payment clears the August charge and 150 of October
    assert a.buckets == [400, 300, 50, 0]
    assert a.credit == 0 and a.balance == 750
    assert a.oldest_unpaid == date(2026, 10, 31)


def test_reversal_cancels_its_own_entry_not_fifo() -> None:
    es = [
        Entry(1, "charge", 100, date(2026, 8, 31)),
        Entry(2, "charge", 200, date(2026, 12, 1)),
        Entry(3, "reversal", -100, date(2026, 12, 5), reverses_id=1),
        Entry(4, "payment", -500, date(2026, 12, 6)),
    ]
    a = age_entries(es, AS_OF)
    assert a.buckets == [0, 0, 0, 0] and a.credit == 300 and a.balance == -300


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-50_000, 50_000), st.integers(0, 200)), max_size=30))
def test_aging_balance_equals_sum(items: list[tuple[int, int]]) -> None:
    es = [
        Entry(i, "charge" if amt > 0 else "payment", amt, AS_OF - timedelta(days=age))
        for i, (amt, age) in enumerate(items)
        if amt != 0
    ]
    a = age_entries(es, AS_OF)
    assert a.balance == sum(e.amount_tiyin for e in es)
    assert min(a.buckets) >= 0 and a.credit >= 0
    assert a.debt == 0 or a.credit == 0


def test_penalty_maths() -> None:
    cfg = load_billing_config(penalty_enabled=True, penalty_rate_bp_per_day=4, penalty_cap_bp=50)
    assert penalty_amount(1_000_000, 10, cfg) == 4_000
    assert penalty_amount(1_000_000, 400, cfg) == 5_000  # capped at 0.5 %
    assert penalty_amount(0, 10, cfg) == 0


def test_rollups_and_penalty_on_demo_data(db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        info = generate(conn, 400, period=date(2026, 10, 1), seed=7, tag="Roll")
        conn.commit()
        run_billing(conn, date(2026, 10, 1), cfg, now=NOW - timedelta(days=30))
        for k, acc in enumerate(info.account_ids[:120]):
            post_payment(
                conn,
                account_id=acc,
                amount_tiyin=1_000_000 * (k % 5 + 1),
                paid_at=NOW,
                source="cashier",
                external_ref=f"r-{acc}",
            )
        conn.commit()
        _check_rollups(conn)
        # off by default: nothing posted
        assert assess_penalties(conn, AS_OF, cfg, now=NOW) == (0, 0)
        on = load_billing_config(penalty_enabled=True)
        n, total = assess_penalties(conn, AS_OF, on, now=NOW)
        again = assess_penalties(conn, AS_OF, on, now=NOW)
        conn.commit()
        legal_debtors = conn.execute(
            "SELECT count(*) FROM accounts a JOIN account_balances b ON b.account_id = a.id "
            "WHERE a.kind = 'legal' AND b.balance_tiyin > 0 AND a.id = ANY(%s)",
            (list(info.account_ids),),
        ).fetchone()
        assert legal_debtors is not None
        assert n > 0 and total > 0 and again == (0, 0)
        kinds = conn.execute(
            "SELECT DISTINCT a.kind FROM ledger l JOIN accounts a ON a.id = l.account_id "
            "WHERE l.kind = 'penalty'"
        ).fetchall()
        assert kinds == [("legal",)]


def _check_rollups(conn: psycopg.Connection[Any]) -> None:
    accounts = {g.key: g for g in balances_by(conn, "account", AS_OF)}
    for acc_id, g in list(accounts.items())[:50]:
        assert g.balance == balance(conn, acc_id, as_of=AS_OF)
    total = sum(g.balance for g in accounts.values())
    row = conn.execute(
        "SELECT sum(amount_tiyin) FROM ledger WHERE value_date <= %s", (AS_OF,)
    ).fetchone()
    assert row is not None and total == row[0]
    levels: tuple[GroupBy, ...] = ("street", "mahalla", "district")
    for by in levels:
        groups = balances_by(conn, by, AS_OF)
        assert sum(g.balance for g in groups) == total
        assert sum(g.debt for g in groups) == sum(g.debt for g in accounts.values())
        assert sum(g.credit for g in groups) == sum(g.credit for g in accounts.values())
        assert sum(g.accounts for g in groups) == len(accounts)
        for g in groups:
            assert g.balance == g.debt - g.credit
            assert g.aging.balance == g.balance
    assert any(g.credit > 0 for g in accounts.values()), "some payments exceed the charge"


def test_adjustment_changes_balance(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        acc, _ = create_account(
            conn,
            kind="household",
            name="Adjusted",
            now=NOW,
            address=Address("R", "D", "M", "S", "1"),
        )
        post_entry(conn, account_id=acc, kind="charge", amount_tiyin=1_000, posted_at=NOW)
        post_entry(conn, account_id=acc, kind="adjustment", amount_tiyin=-123, posted_at=NOW)
        conn.commit()
        assert balance(conn, acc) == 877
        a = age_entries(
            [Entry(1, "charge", 1_000, NOW.date()), Entry(2, "adjustment", -123, NOW.date())],
            NOW.date(),
        )
        assert a.buckets == [877, 0, 0, 0]
