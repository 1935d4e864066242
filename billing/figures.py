"""The money figures of the ledger: the one definition of charged, paid, opening and closing
balance and turnover, shared by the department reports, the documents and the dashboards.

The rule (docs/billing.md, "Money figures"; in SQL: the view ``ledger_turnover`` and the
function ``account_figures(from, to)`` of migration 0202, which every consumer reads):

* every ledger entry counts as its own kind, except a reversal, which counts as the kind of
  the entry it reverses;
* an entry that counts as a ``payment`` is **paid**, by minus its amount (a payment stored
  ``-10000`` is paid ``10000``; its reversal, stored ``+10000``, is paid ``-10000``);
* every other entry is **charged**, by its amount: charges, penalties, adjustments of either
  sign, opening balances carried in from the legacy system, and their reversals;
* over a period ``[date_from, date_to]`` (value dates, both ends included) the **opening**
  balance is the sum of the amounts dated before ``date_from``, and the **closing** balance
  ``opening + charged - paid`` is the sum of the amounts dated up to ``date_to``, to the
  tiyin. The **turnover** is the pair (debit turnover = charged, credit turnover = paid);
  the net turnover is ``charged - paid = closing - opening``;
* the **debit** part of a balance is what the customer owes (``max(balance, 0)``), the
  **credit** part what they paid in advance (``max(-balance, 0)``). A sum over several
  accounts adds the parts account by account: debtors and creditors are never netted.

The pure part (:func:`counts_as`, :func:`split`, :func:`figures_of`, :class:`Figures`,
:class:`GroupFigures`) takes values and returns values; the SQL part runs on a synchronous
connection in the caller's transaction. The async report queries
(:mod:`billing.report_queries`) use the same SQL texts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import psycopg

from billing.errors import BillingError

PAID_KIND = "payment"
"""The entry kind whose entries (and their reversals) make the figure "paid"."""

GroupBy = Literal["account", "street", "mahalla", "district"]

GROUP_COLUMNS: dict[str, tuple[str, str]] = {
    "account": ("account_id", "number"),
    "street": ("street_id", "street_uz"),
    "mahalla": ("mahalla_id", "mahalla_uz"),
    "district": ("district_id", "district_uz"),
}
"""Key and name column of ``account_addresses`` for each roll-up level."""


# ------------------------------------------------------------------------------ pure rule


def check_period(date_from: date, date_to: date) -> None:
    """Refuse a period that ends before it starts."""
    if date_to < date_from:
        raise BillingError(f"the period ends ({date_to}) before it starts ({date_from})")


def counts_as(kind: str, reversed_kind: str | None = None) -> str:
    """The kind an entry counts as: its own, or for a reversal the kind it reverses."""
    if kind == "reversal":
        if reversed_kind is None:
            raise BillingError("a reversal counts as the kind it reverses: name that kind")
        return reversed_kind
    return kind


def split(kind: str, amount_tiyin: int, reversed_kind: str | None = None) -> tuple[int, int]:
    """``(charged, paid)`` of one entry; ``amount_tiyin == charged - paid`` always."""
    if counts_as(kind, reversed_kind) == PAID_KIND:
        return 0, -amount_tiyin
    return amount_tiyin, 0


@dataclass(frozen=True)
class Figures:
    """The figures of one account over a period (tiyin)."""

    opening: int = 0
    charged: int = 0
    paid: int = 0

    @property
    def closing(self) -> int:
        return self.opening + self.charged - self.paid

    @property
    def net_turnover(self) -> int:
        """Debit turnover minus credit turnover: ``charged - paid = closing - opening``."""
        return self.charged - self.paid

    @property
    def opening_debit(self) -> int:
        return max(self.opening, 0)

    @property
    def opening_credit(self) -> int:
        return max(-self.opening, 0)

    @property
    def closing_debit(self) -> int:
        return max(self.closing, 0)

    @property
    def closing_credit(self) -> int:
        return max(-self.closing, 0)


def collection_rate(charged: int, paid: int) -> float | None:
    """Paid as a share of charged, in % with 2 decimals (None when nothing was charged)."""
    return round(100.0 * paid / charged, 2) if charged else None


@dataclass(frozen=True)
class TurnoverEntry:
    """A ledger entry as the rule sees it (``reversed_kind``: for a reversal, the kind of the
    entry it reverses)."""

    value_date: date
    kind: str
    amount_tiyin: int
    reversed_kind: str | None = None


def figures_of(entries: Iterable[TurnoverEntry], date_from: date, date_to: date) -> Figures:
    """The figures of one account's entries over ``[date_from, date_to]`` (pure)."""
    check_period(date_from, date_to)
    opening = charged = paid = 0
    for e in entries:
        if e.value_date < date_from:
            opening += e.amount_tiyin
        elif e.value_date <= date_to:
            c, p = split(e.kind, e.amount_tiyin, e.reversed_kind)
            charged += c
            paid += p
    return Figures(opening, charged, paid)


@dataclass
class GroupFigures:
    """The figures of a group of accounts (a street, mahalla, district or all of them): sums
    of the accounts' figures, the debit and credit parts added account by account."""

    key: int
    name: str
    accounts: int = 0
    opening: int = 0
    charged: int = 0
    paid: int = 0
    closing: int = 0
    opening_debit: int = 0
    opening_credit: int = 0
    closing_debit: int = 0
    closing_credit: int = 0

    def add(self, f: Figures) -> None:
        self.accounts += 1
        self.opening += f.opening
        self.charged += f.charged
        self.paid += f.paid
        self.closing += f.closing
        self.opening_debit += f.opening_debit
        self.opening_credit += f.opening_credit
        self.closing_debit += f.closing_debit
        self.closing_credit += f.closing_credit


# ------------------------------------------------------------------------- address scope


@dataclass(frozen=True)
class AddressScope:
    """Which accounts a report covers: all, or those of one district, mahalla or street."""

    district_id: int | None = None
    mahalla_id: int | None = None
    street_id: int | None = None

    def sql(self, alias: str = "ad") -> str:
        """``AND``-ed conditions on the ``account_addresses`` alias (``true`` when none), with
        named parameters ``%(district_id)s``...; only fixed column names go into the text."""
        if not alias.isidentifier():
            raise BillingError(f"not an SQL alias: {alias!r}")
        conds = [
            f"{alias}.{k} = %({k})s"
            for k in ("district_id", "mahalla_id", "street_id")
            if getattr(self, k) is not None
        ]
        return " AND ".join(conds) or "true"

    def params(self) -> dict[str, Any]:
        return {
            "district_id": self.district_id,
            "mahalla_id": self.mahalla_id,
            "street_id": self.street_id,
        }


# ------------------------------------------------------------------------------------ SQL

FIGURE_COLUMNS = """f.opening_tiyin AS opening, f.charged_tiyin AS charged, f.paid_tiyin AS paid,
       f.closing_tiyin AS closing, f.opening_debit_tiyin AS opening_debit,
       f.opening_credit_tiyin AS opening_credit, f.closing_debit_tiyin AS closing_debit,
       f.closing_credit_tiyin AS closing_credit"""
"""The figures of ``account_figures(...) f`` under their short names."""

ACCOUNT_FIGURES_SQL = (
    "SELECT opening_tiyin, charged_tiyin, paid_tiyin FROM account_figures(%s, %s) "
    "WHERE account_id = %s"
)


def account_figures(
    conn: psycopg.Connection[Any], account_id: int, date_from: date, date_to: date
) -> Figures:
    """The figures of one account over ``[date_from, date_to]``."""
    check_period(date_from, date_to)
    row = conn.execute(ACCOUNT_FIGURES_SQL, (date_from, date_to, account_id)).fetchone()
    if row is None:
        raise BillingError(f"no account {account_id}")
    return Figures(int(row[0]), int(row[1]), int(row[2]))


def figures_by(
    conn: psycopg.Connection[Any],
    by: GroupBy,
    date_from: date,
    date_to: date,
    scope: AddressScope | None = None,
) -> list[GroupFigures]:
    """The figures rolled up per account, street, mahalla or district, ordered by key."""
    check_period(date_from, date_to)
    scope = scope or AddressScope()
    key_col, name_col = GROUP_COLUMNS[by]
    rows = conn.execute(
        f"""SELECT ad.{key_col}, ad.{name_col}, f.opening_tiyin, f.charged_tiyin, f.paid_tiyin
            FROM account_figures(%(from)s, %(to)s) f
            JOIN account_addresses ad ON ad.account_id = f.account_id
            WHERE {scope.sql("ad")}
            ORDER BY 1, f.account_id""",  # noqa: S608 - fixed column names from GROUP_COLUMNS and AddressScope; values are parameters
        {"from": date_from, "to": date_to, **scope.params()},
    ).fetchall()
    out: dict[int, GroupFigures] = {}
    for key, name, opening, charged, paid in rows:
        g = out.setdefault(int(key), GroupFigures(int(key), str(name)))
        g.add(Figures(int(opening), int(charged), int(paid)))
    return list(out.values())
