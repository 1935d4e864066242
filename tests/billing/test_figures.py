"""The money figures (billing.figures): the pure rule on hand-made entries, the SQL view and
function of migration 0202 agreeing with it entry by entry, and the roll-ups adding up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.accounts import Address, create_account
from billing.balances import balances_by
from billing.errors import BillingError
from billing.figures import (
    AddressScope,
    Figures,
    GroupBy,
    TurnoverEntry,
    account_figures,
    collection_rate,
    counts_as,
    figures_by,
    figures_of,
    split,
)
from billing.ledger import KINDS, post_entry, post_payment, reverse_entry
from tests.billing.conftest import NOW

FROM, TO = date(2026, 10, 1), date(2026, 10, 31)


# ------------------------------------------------------------------------------ pure rule


@pytest.mark.parametrize(
    ("kind", "reversed_kind", "amount", "expected"),
    [
        ("charge", None, 1_000, (1_000, 0)),
        ("penalty", None, 50, (50, 0)),
        ("adjustment", None, -300, (-300, 0)),
        ("adjustment", None, 300, (300, 0)),
        ("opening_balance", None, 12_345, (12_345, 0)),
        ("opening_balance", None, -500, (-500, 0)),
        ("payment", None, -2_000, (0, 2_000)),
        ("reversal", "payment", 2_000, (0, -2_000)),  # a cancelled payment lowers paid
        ("reversal", "charge", -1_000, (-1_000, 0)),  # a cancelled charge lowers charged
        ("reversal", "penalty", -50, (-50, 0)),
        ("reversal", "adjustment", 300, (300, 0)),
        ("reversal", "opening_balance", -12_345, (-12_345, 0)),
    ],
)
def test_split_by_kind(
    kind: str, reversed_kind: str | None, amount: int, expected: tuple[int, int]
) -> None:
    charged, paid = split(kind, amount, reversed_kind)
    assert (charged, paid) == expected
    assert charged - paid == amount  # every tiyin lands in exactly one figure


def test_a_reversal_must_name_what_it_reverses() -> None:
    assert counts_as("payment") == "payment"
    assert counts_as("reversal", "payment") == "payment"
    with pytest.raises(BillingError, match="kind it reverses"):
        counts_as("reversal")


def test_figures_and_their_parts() -> None:
    f = Figures(opening=-500, charged=2_000, paid=700)
    assert f.closing == 800 and f.net_turnover == 1_300
    assert (f.opening_debit, f.opening_credit) == (0, 500)
    assert (f.closing_debit, f.closing_credit) == (800, 0)
    g = Figures(opening=100, charged=0, paid=400)
    assert (g.closing, g.closing_debit, g.closing_credit) == (-300, 0, 300)
    assert collection_rate(6_000, 3_500) == 58.33 and collection_rate(0, 10) is None


def test_figures_of_a_month() -> None:
    entries = [
        TurnoverEntry(date(2026, 9, 30), "charge", 3_000),
        TurnoverEntry(date(2026, 9, 30), "payment", -1_000),
        TurnoverEntry(date(2026, 10, 1), "opening_balance", 700),
        TurnoverEntry(date(2026, 10, 5), "payment", -2_500),
        TurnoverEntry(date(2026, 10, 9), "reversal", 2_500, "payment"),
        TurnoverEntry(date(2026, 10, 20), "penalty", 40),
        TurnoverEntry(date(2026, 10, 31), "charge", 4_000),
        TurnoverEntry(date(2026, 10, 31), "reversal", -4_000, "charge"),
        TurnoverEntry(date(2026, 10, 31), "charge", 3_900),
        TurnoverEntry(date(2026, 11, 1), "payment", -9_999),  # after the period
    ]
    f = figures_of(entries, FROM, TO)
    assert f == Figures(opening=2_000, charged=700 + 40 + 3_900, paid=0)
    assert f.closing == 6_640
    with pytest.raises(BillingError, match="before it starts"):
        figures_of(entries, TO, FROM)


KIND = st.sampled_from(KINDS)
DAY = st.integers(0, 120).map(lambda d: date(2026, 8, 1) + timedelta(days=d))


@st.composite
def ledgers(draw: st.DrawFn) -> list[TurnoverEntry]:
    out: list[TurnoverEntry] = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(KIND)
        amount = draw(st.integers(1, 10**9))
        if kind == "payment" or (kind in ("adjustment", "opening_balance") and draw(st.booleans())):
            amount = -amount
        if kind == "reversal":
            orig = draw(st.sampled_from([k for k in KINDS if k != "reversal"]))
            out.append(TurnoverEntry(draw(DAY), kind, amount, orig))
        else:
            out.append(TurnoverEntry(draw(DAY), kind, amount))
    return out


@settings(max_examples=300, deadline=None)
@given(ledgers(), DAY, DAY)
def test_closing_is_opening_plus_charged_minus_paid(
    entries: list[TurnoverEntry], d1: date, d2: date
) -> None:
    date_from, date_to = min(d1, d2), max(d1, d2)
    f = figures_of(entries, date_from, date_to)
    assert f.opening == sum(e.amount_tiyin for e in entries if e.value_date < date_from)
    assert f.closing == sum(e.amount_tiyin for e in entries if e.value_date <= date_to)
    assert f.closing == f.opening + f.charged - f.paid
    assert f.closing_debit - f.closing_credit == f.closing
    assert min(f.closing_debit, f.closing_credit) == 0
    # consecutive periods chain: this period's closing is the next one's opening
    nxt = figures_of(entries, date_to + timedelta(days=1), date_to + timedelta(days=30))
    assert nxt.opening == f.closing


def test_address_scope_sql() -> None:
    assert AddressScope().sql() == "true"
    s = AddressScope(mahalla_id=3, street_id=9)
    assert s.sql("x") == "x.mahalla_id = %(mahalla_id)s AND x.street_id = %(street_id)s"
    assert s.params() == {"district_id": None, "mahalla_id": 3, "street_id": 9}
    with pytest.raises(BillingError):
        s.sql("ad; DROP TABLE ledger")


# --------------------------------------------------------------- the SQL agrees with it


def _account(conn: psycopg.Connection[Any], name: str, mahalla: str, street: str) -> int:
    acc, _ = create_account(
        conn,
        kind="household",
        name=name,
        now=NOW,
        opened_on=date(2025, 1, 1),
        address=Address("Xorazm viloyati", "Xiva tumani", mahalla, street, "1"),
    )
    return acc


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 7, tzinfo=UTC)


@pytest.fixture(scope="module")
def ledger_of_every_kind(db_url: str) -> dict[str, int]:
    """Three accounts on two streets of two mahallas, with every entry kind and a reversal of
    every kind that can be reversed, before, inside and after October 2026."""
    with psycopg.connect(db_url) as c:
        a = _account(c, "Ali", "Gulshan", "Bahor")
        b = _account(c, "Vali", "Gulshan", "Bahor")
        z = _account(c, "Zarina", "Navro'z", "Tong")

        def post(acc: int, kind: Any, amount: int, day: date) -> int:
            return post_entry(
                c, account_id=acc, kind=kind, amount_tiyin=amount, posted_at=_at(day)
            ).id

        def pay(acc: int, amount: int, day: date, ref: str) -> int:
            return post_payment(
                c,
                account_id=acc,
                amount_tiyin=amount,
                paid_at=_at(day),
                source="bank",
                external_ref=ref,
            ).id

        post(a, "opening_balance", 500_000, date(2026, 9, 1))
        post(a, "charge", 300_000, date(2026, 9, 30))
        post(a, "penalty", 7_000, date(2026, 10, 2))
        p1 = pay(a, 200_000, date(2026, 10, 5), "a-1")
        reverse_entry(c, p1, posted_at=_at(date(2026, 10, 6)))
        pay(a, 250_000, date(2026, 10, 7), "a-2")
        ch = post(a, "charge", 310_000, date(2026, 10, 31))
        reverse_entry(c, ch, posted_at=_at(date(2026, 10, 31)))
        post(a, "charge", 290_000, date(2026, 10, 31))
        adj = post(a, "adjustment", -20_000, date(2026, 10, 15))
        reverse_entry(c, adj, posted_at=_at(date(2026, 10, 16)))
        pay(a, 999_000, date(2026, 11, 3), "a-3")  # after the period

        ob = post(b, "opening_balance", -80_000, date(2026, 10, 1))  # prepaid, carried in
        reverse_entry(c, ob, posted_at=_at(date(2026, 10, 2)))
        post(b, "opening_balance", -90_000, date(2026, 10, 2))
        post(b, "charge", 60_000, date(2026, 10, 31))
        pen = post(b, "penalty", 3_000, date(2026, 10, 31))
        reverse_entry(c, pen, posted_at=_at(date(2026, 10, 31)))
        post(b, "adjustment", 4_000, date(2026, 10, 31))

        post(z, "charge", 100_000, date(2026, 8, 31))
        pay(z, 150_000, date(2026, 9, 10), "z-1")
        p2 = pay(z, 40_000, date(2026, 9, 20), "z-2")
        reverse_entry(c, p2, posted_at=_at(date(2026, 10, 3)))  # last month's payment bounced
        c.commit()
    return {"a": a, "b": b, "z": z}


# hand-computed from the fixture above
EXPECTED = {
    # opening 500 000 + 300 000; charged 7 000 + 310 000 - 310 000 + 290 000 - 20 000
    # + 20 000; paid 200 000 - 200 000 + 250 000
    "a": Figures(opening=800_000, charged=297_000, paid=250_000),
    # charged -80 000 + 80 000 - 90 000 + 60 000 + 3 000 - 3 000 + 4 000
    "b": Figures(opening=0, charged=-26_000, paid=0),
    # opening 100 000 - 150 000 - 40 000; the bounced payment: paid -40 000
    "z": Figures(opening=-90_000, charged=0, paid=-40_000),
}


def test_the_view_splits_every_entry_as_the_rule_does(
    ledger_of_every_kind: dict[str, int], db: psycopg.Connection[Any]
) -> None:
    rows = db.execute(
        """SELECT t.kind, t.amount_tiyin, o.kind, t.counts_as, t.charged_tiyin, t.paid_tiyin
           FROM ledger_turnover t LEFT JOIN ledger o ON o.id = t.reverses_id"""
    ).fetchall()
    kinds = {(r[0], r[2]) for r in rows}
    assert {k for k, _ in kinds} == set(KINDS)  # every kind is in the fixture
    assert {o for k, o in kinds if k == "reversal"} == set(KINDS) - {"reversal"}
    for kind, amount, reversed_kind, counted, charged, paid in rows:
        assert counted == counts_as(kind, reversed_kind)
        assert (charged, paid) == split(kind, amount, reversed_kind), (kind, reversed_kind)


def test_account_figures_match_the_pure_rule(
    ledger_of_every_kind: dict[str, int], db: psycopg.Connection[Any]
) -> None:
    for key, acc in ledger_of_every_kind.items():
        got = account_figures(db, acc, FROM, TO)
        assert got == EXPECTED[key], key
        entries = [
            TurnoverEntry(*r)
            for r in db.execute(
                """SELECT l.value_date, l.kind, l.amount_tiyin, o.kind FROM ledger l
                   LEFT JOIN ledger o ON o.id = l.reverses_id WHERE l.account_id = %s""",
                (acc,),
            ).fetchall()
        ]
        assert figures_of(entries, FROM, TO) == got, key
        # the SQL function's own closing and debit/credit columns follow the same rule
        row = db.execute(
            "SELECT closing_tiyin, opening_debit_tiyin, opening_credit_tiyin, "
            "closing_debit_tiyin, closing_credit_tiyin FROM account_figures(%s, %s) "
            "WHERE account_id = %s",
            (FROM, TO, acc),
        ).fetchone()
        assert row == (
            got.closing,
            got.opening_debit,
            got.opening_credit,
            got.closing_debit,
            got.closing_credit,
        )
    with pytest.raises(BillingError, match="no account"):
        account_figures(db, 10**12, FROM, TO)


def test_rollups_add_the_accounts_and_never_net(
    ledger_of_every_kind: dict[str, int], db: psycopg.Connection[Any]
) -> None:
    accounts = {g.key: g for g in figures_by(db, "account", FROM, TO)}
    for key, acc in ledger_of_every_kind.items():
        e = EXPECTED[key]
        g = accounts[acc]
        assert (g.opening, g.charged, g.paid, g.closing) == (
            e.opening,
            e.charged,
            e.paid,
            e.closing,
        )
    by_mahalla = {g.name: g for g in figures_by(db, "mahalla", FROM, TO)}
    gulshan = by_mahalla["Gulshan"]
    a, b = EXPECTED["a"], EXPECTED["b"]
    assert gulshan.accounts == 2
    assert gulshan.closing == a.closing + b.closing
    # a owes 847 000, b paid 26 000 in advance: both parts are kept, not netted
    assert (gulshan.closing_debit, gulshan.closing_credit) == (847_000, 26_000)
    levels: tuple[GroupBy, ...] = ("street", "district")
    for by in levels:
        groups = figures_by(db, by, FROM, TO)
        for k in ("opening", "charged", "paid", "closing", "closing_debit", "closing_credit"):
            assert sum(getattr(g, k) for g in groups) == sum(
                getattr(g, k) for g in accounts.values()
            ), (by, k)
    only = figures_by(db, "account", FROM, TO, AddressScope(mahalla_id=gulshan.key))
    assert {g.key for g in only} == {ledger_of_every_kind["a"], ledger_of_every_kind["b"]}
    # the balances' roll-up (FIFO aging) has the same closing balance, debt and credit
    for bal in balances_by(db, "mahalla", TO):
        f = by_mahalla[bal.name]
        assert (bal.balance, bal.debt, bal.credit) == (
            f.closing,
            f.closing_debit,
            f.closing_credit,
        )
