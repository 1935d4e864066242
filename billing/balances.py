"""Balances, roll-ups, aging (FIFO) and the optional late-payment penalty.

* Balance of an account = sum of its ledger entries (positive = debtor, negative = creditor).
* Roll-ups per street, mahalla and district are sums of the account balances; debtors (what
  is owed) and creditors (what is prepaid) are reported apart, never netted.
* Aging: debits (charges, penalties, positive adjustments and opening balances) are aged from
  their value date; credits (payments, negative adjustments) pay the oldest debt first (FIFO).
  A reversal cancels the very entry it names before FIFO is applied.

The balance here is the closing balance of :mod:`billing.figures` (the sum of the entries up
to the as-of date); its debit part is the debt, its credit part the prepayment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg

from billing.config import BillingConfig
from billing.figures import GROUP_COLUMNS, GroupBy
from billing.ledger import post_entry
from billing.tariffs import div_round

BUCKETS = ("0-30", "31-60", "61-90", "90+")


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    amount_tiyin: int
    value_date: date
    reverses_id: int | None = None


@dataclass
class Aging:
    """Unpaid debt per age bucket (tiyin), and prepaid credit."""

    buckets: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    credit: int = 0
    oldest_unpaid: date | None = None

    @property
    def debt(self) -> int:
        return sum(self.buckets)

    @property
    def balance(self) -> int:
        return self.debt - self.credit

    def add(self, other: Aging) -> None:
        for i in range(4):
            self.buckets[i] += other.buckets[i]
        self.credit += other.credit


def bucket_of(age_days: int) -> int:
    if age_days <= 30:
        return 0
    if age_days <= 60:
        return 1
    if age_days <= 90:
        return 2
    return 3


def unpaid_debits(entries: Iterable[Entry], as_of: date) -> tuple[list[tuple[date, int]], int]:
    """FIFO: the unpaid rest of every debit (oldest first) and the credit left over."""
    es = [e for e in entries if e.value_date <= as_of]
    reversed_ids = {e.reverses_id for e in es if e.reverses_id is not None}
    live = [e for e in es if e.id not in reversed_ids and e.reverses_id is None]
    debits = sorted((e for e in live if e.amount_tiyin > 0), key=lambda e: (e.value_date, e.id))
    credit = -sum(e.amount_tiyin for e in live if e.amount_tiyin < 0)
    out: list[tuple[date, int]] = []
    for d in debits:
        pay = min(credit, d.amount_tiyin)
        credit -= pay
        if d.amount_tiyin - pay > 0:
            out.append((d.value_date, d.amount_tiyin - pay))
    return out, credit


def age_entries(entries: Iterable[Entry], as_of: date) -> Aging:
    """FIFO aging of one account's entries (value dates up to ``as_of``)."""
    unpaid, credit = unpaid_debits(entries, as_of)
    out = Aging(credit=credit)
    for vd, rest in unpaid:
        out.buckets[bucket_of((as_of - vd).days)] += rest
        if out.oldest_unpaid is None:
            out.oldest_unpaid = vd
    return out


ENTRIES_SQL = """SELECT account_id, id, kind, amount_tiyin, value_date, reverses_id FROM ledger
   WHERE value_date <= %(as_of)s
     AND (%(ids)s::bigint[] IS NULL OR account_id = ANY(%(ids)s::bigint[]))
   ORDER BY account_id, value_date, id"""
"""The entries that :func:`entries_by_account` turns into aging input (parameters ``as_of``
and ``ids``, None for every account); the async report queries run the same text."""


def entries_by_account(rows: Iterable[Sequence[Any]]) -> dict[int, list[Entry]]:
    """Rows of :data:`ENTRIES_SQL` grouped per account (pure)."""
    out: dict[int, list[Entry]] = defaultdict(list)
    for acc, entry_id, kind, amount, value_date, reverses_id in rows:
        out[int(acc)].append(Entry(int(entry_id), kind, int(amount), value_date, reverses_id))
    return out


def load_entries(
    conn: psycopg.Connection[Any], as_of: date, account_ids: list[int] | None = None
) -> dict[int, list[Entry]]:
    rows = conn.execute(ENTRIES_SQL, {"as_of": as_of, "ids": account_ids}).fetchall()
    return entries_by_account(rows)


def aging_by_account(
    conn: psycopg.Connection[Any], as_of: date, account_ids: list[int] | None = None
) -> dict[int, Aging]:
    return {a: age_entries(es, as_of) for a, es in load_entries(conn, as_of, account_ids).items()}


@dataclass
class GroupBalance:
    key: int
    name: str
    accounts: int = 0
    balance: int = 0
    debtors: int = 0
    debt: int = 0
    creditors: int = 0
    credit: int = 0
    aging: Aging = field(default_factory=Aging)


def balances_by(conn: psycopg.Connection[Any], by: GroupBy, as_of: date) -> list[GroupBalance]:
    """Balances rolled up per account, street, mahalla or district (with FIFO aging)."""
    key_col, name_col = GROUP_COLUMNS[by]
    groups = conn.execute(
        f"SELECT account_id, {key_col}, {name_col} FROM account_addresses ORDER BY 2, 1"  # noqa: S608 - fixed column names from GROUP_COLUMNS
    ).fetchall()
    ages = aging_by_account(conn, as_of)
    out: dict[int, GroupBalance] = {}
    for acc, key, name in groups:
        g = out.setdefault(int(key), GroupBalance(int(key), str(name)))
        a = ages.get(int(acc), Aging())
        g.accounts += 1
        bal = a.balance
        g.balance += bal
        if bal > 0:
            g.debtors += 1
            g.debt += bal
        elif bal < 0:
            g.creditors += 1
            g.credit += -bal
        g.aging.add(a)
    return list(out.values())


def penalty_amount(overdue_tiyin: int, days: int, cfg: BillingConfig) -> int:
    """Penalty for ``overdue_tiyin`` overdue for ``days``: rate per day, capped."""
    if overdue_tiyin <= 0 or days <= 0:
        return 0
    raw = div_round(overdue_tiyin * cfg.penalty_rate_bp_per_day * days, 10000)
    cap = div_round(overdue_tiyin * cfg.penalty_cap_bp, 10000)
    return min(raw, cap)


def assess_penalties(
    conn: psycopg.Connection[Any], as_of: date, cfg: BillingConfig, *, now: datetime
) -> tuple[int, int]:
    """Post the monthly late-payment penalty for legal entities (only if enabled).

    The debt older than ``penalty_grace_days`` pays ``penalty_rate_bp_per_day`` for each day
    of the month of ``as_of`` it stayed overdue (capped at ``penalty_cap_bp`` of the debt).
    Idempotent per account and month. Returns (accounts charged, total tiyin).
    """
    if not cfg.penalty_enabled:
        return 0, 0
    legal = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM accounts WHERE kind = 'legal' AND status <> 'closed'"
        ).fetchall()
    ]
    entries = load_entries(conn, as_of, legal)
    month_start = as_of.replace(day=1)
    days_in_month_so_far = (as_of - month_start).days + 1
    n = total = 0
    for acc in legal:
        unpaid, _ = unpaid_debits(entries.get(acc, []), as_of)
        amount = 0
        for vd, rest in unpaid:
            late = (as_of - vd).days - cfg.penalty_grace_days
            amount += penalty_amount(rest, min(late, days_in_month_so_far), cfg)
        if amount <= 0:
            continue
        res = post_entry(
            conn,
            account_id=acc,
            kind="penalty",
            amount_tiyin=amount,
            posted_at=now,
            value_date=as_of,
            idem_key=f"penalty:{as_of:%Y-%m}:{acc}",
            memo=f"late payment penalty {as_of:%Y-%m}",
        )
        if res.created:
            n += 1
            total += amount
    return n, total
