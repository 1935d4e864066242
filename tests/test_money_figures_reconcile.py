"""One definition of each money figure (issue 14): the department reports, the documents
(slip, reconciliation statement) and the Grafana billing panels (their SQL with the macros
expanded, run on PostgreSQL) give the same opening balance, charged, paid and closing
balance, to the tiyin, on one ledger that holds every entry kind: charges, penalties,
payments, reversals of each, adjustments of both signs, a correction and opening balances
carried in before and inside the period.

The expected figures are worked out by hand below, from the postings; each consumer is then
checked against them, and closing = opening + charged - paid against the raw ledger sums.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pypdf import PdfReader

from api.reports import builders
from api.reports.model import Report
from billing.accounts import Address, create_account, set_status
from billing.config import load_billing_config
from billing.documents import money, render_statement, slip_data, statement_data
from billing.figures import Figures, figures_by
from billing.ledger import post_entry, post_payment, reverse_entry
from dashboards.boards import billing as board
from dashboards.macros import QueryContext, Variable, expand

FROM, TO = date(2026, 10, 1), date(2026, 10, 31)
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _at(d: date, hour: int = 7) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def village(db_url: str) -> dict[str, int]:
    """Four accounts in two mahallas; every entry kind before, inside and after October."""
    with psycopg.connect(db_url) as c:

        def account(name: str, mahalla: str, street: str, kind: str = "household") -> int:
            acc, _ = create_account(
                c,
                kind=kind,
                name=name,
                now=NOW - timedelta(days=700),
                opened_on=date(2025, 1, 1),
                inn="301234567" if kind == "legal" else None,
                address=Address("Xorazm viloyati", "Xiva tumani", mahalla, street, "1"),
            )
            return acc

        def post(acc: int, kind: Any, amount: int, day: date) -> int:
            return post_entry(
                c, account_id=acc, kind=kind, amount_tiyin=amount, posted_at=_at(day)
            ).id

        def pay(acc: int, amount: int, day: date, source: str, ref: str) -> int:
            return post_payment(
                c,
                account_id=acc,
                amount_tiyin=amount,
                paid_at=_at(day),
                source=source,
                external_ref=ref,
            ).id

        hh = account("Yusupov Ali", "Gulshan", "Bahor")
        pre = account("Karimova Lola", "Gulshan", "Bahor")
        org = account("Xiva Non MChJ", "Navro'z", "Tong", kind="legal")
        old = account("Rahimov Bek", "Navro'z", "Tong")

        # hh: a legacy debt, September's bill; in October a penalty, a bounced payment, a
        # real one, a goodwill credit, and a corrected bill (reversed and billed again)
        post(hh, "opening_balance", 500_000, date(2026, 8, 31))
        post(hh, "charge", 300_000, date(2026, 9, 30))
        post(hh, "penalty", 7_000, date(2026, 10, 2))
        bounced = pay(hh, 200_000, date(2026, 10, 5), "payme", "pm-1")
        reverse_entry(c, bounced, posted_at=_at(date(2026, 10, 6)))
        pay(hh, 250_000, date(2026, 10, 7), "cashier", "k-1")
        post(hh, "adjustment", -20_000, date(2026, 10, 15))
        bill = post(hh, "charge", 310_000, date(2026, 10, 31))
        reverse_entry(c, bill, posted_at=_at(date(2026, 10, 31)))
        post(hh, "charge", 290_000, date(2026, 10, 31))
        pay(hh, 999_000, date(2026, 11, 3), "cashier", "k-2")  # after the period

        # pre: imported mid-October with money paid in advance (a wrong import reversed)
        wrong = post(pre, "opening_balance", -80_000, date(2026, 10, 10))
        reverse_entry(c, wrong, posted_at=_at(date(2026, 10, 11)))
        post(pre, "opening_balance", -90_000, date(2026, 10, 11))
        post(pre, "charge", 60_000, date(2026, 10, 31))

        # org: September's bill paid in part; October a penalty (cancelled), a positive
        # adjustment, a bank payment and the bill
        post(org, "charge", 1_456_000, date(2026, 9, 30))
        pay(org, 1_000_000, date(2026, 9, 25), "bank", "pp-1")
        pen = post(org, "penalty", 15_000, date(2026, 10, 3))
        reverse_entry(c, pen, posted_at=_at(date(2026, 10, 4)))
        post(org, "adjustment", 12_000, date(2026, 10, 20))
        pay(org, 456_000, date(2026, 10, 22), "bank", "pp-2")
        post(org, "charge", 1_500_000, date(2026, 10, 31))

        # old: a closed account that still owes, and last month's payment bounced
        post(old, "charge", 100_000, date(2026, 8, 31))
        p = pay(old, 40_000, date(2026, 9, 20), "click", "cl-1")
        reverse_entry(c, p, posted_at=_at(date(2026, 10, 3)))
        set_status(c, old, "closed", now=_at(date(2026, 10, 20)))
        c.commit()
    return {"hh": hh, "pre": pre, "org": org, "old": old}


# Worked out by hand from the postings above (tiyin).
EXPECTED = {
    # opening 500 000 + 300 000
    # charged 7 000 - 20 000 + 310 000 - 310 000 + 290 000 = 277 000
    # paid 200 000 - 200 000 (bounced) + 250 000 = 250 000
    "hh": Figures(opening=800_000, charged=277_000, paid=250_000),  # closing 827 000
    # charged -80 000 + 80 000 - 90 000 + 60 000 = -30 000 (prepaid, carried in)
    "pre": Figures(opening=0, charged=-30_000, paid=0),  # closing -30 000
    # opening 1 456 000 - 1 000 000; charged 15 000 - 15 000 + 12 000 + 1 500 000
    "org": Figures(opening=456_000, charged=1_512_000, paid=456_000),  # closing 1 512 000
    # opening 100 000 - 40 000; the bounced payment is paid -40 000
    "old": Figures(opening=60_000, charged=0, paid=-40_000),  # closing 100 000
}
MAHALLA = {"hh": "Gulshan", "pre": "Gulshan", "org": "Navro'z", "old": "Navro'z"}


def raw_sum(conn: psycopg.Connection[Any], acc: int, before: date | None, upto: date) -> int:
    """The plain sum of an account's ledger amounts (no figure rule involved)."""
    row = conn.execute(
        "SELECT coalesce(sum(amount_tiyin), 0) FROM ledger WHERE account_id = %s "
        "AND value_date <= %s AND (%s::date IS NULL OR value_date < %s)",
        (acc, upto, before, before),
    ).fetchone()
    assert row is not None
    return int(row[0])


def account_numbers(conn: psycopg.Connection[Any]) -> dict[int, str]:
    return {int(i): str(n) for i, n in conn.execute("SELECT id, number FROM accounts")}


def test_expected_figures_hold_on_the_raw_ledger(
    village: dict[str, int], db: psycopg.Connection[Any]
) -> None:
    for key, acc in village.items():
        e = EXPECTED[key]
        assert raw_sum(db, acc, FROM, TO) == e.opening, key
        assert raw_sum(db, acc, None, TO) == e.closing == e.opening + e.charged - e.paid, key


async def _report(db_url: str, name: str) -> Report:
    f = builders.Filters(FROM, TO)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        if name == "accounting":
            return await builders.accounting(aconn, f)
        if name == "finance":
            return await builders.finance(aconn, f)
        return await builders.legal(aconn, f)


async def test_reports(village: dict[str, int], db_url: str) -> None:
    rep = await _report(db_url, "accounting")
    rows = rep.tables[0].rows
    detail = {r.values["number"]: r.values for r in rows if r.level == 0}
    with psycopg.connect(db_url) as c:
        numbers = account_numbers(c)
    for key, acc in village.items():
        r, e = detail[numbers[acc]], EXPECTED[key]
        got = (r["opening"], r["charged"], r["paid"], r["closing"])
        assert got == (e.opening, e.charged, e.paid, e.closing), key
        assert (r["opening_debit"], r["opening_credit"]) == (e.opening_debit, e.opening_credit)
        assert (r["closing_debit"], r["closing_credit"]) == (e.closing_debit, e.closing_credit)
    total = next(r.values for r in rows if r.level == 9)
    assert total["closing_debit"] == sum(e.closing_debit for e in EXPECTED.values())
    assert total["closing_credit"] == 30_000  # pre's prepayment is not netted with the debts
    # finance: charged and paid per category are the same figures
    fin = await _report(db_url, "finance")
    cats = {r.values["category"]: r.values for r in fin.tables[1].rows if r.level == 0}
    hh = [EXPECTED[k] for k in ("hh", "pre", "old")]
    assert cats["household"]["charged"] == sum(e.charged for e in hh)
    assert cats["household"]["paid"] == sum(e.paid for e in hh)
    assert (cats["legal"]["charged"], cats["legal"]["paid"]) == (1_512_000, 456_000)
    # legal: the FIFO debt is the closing balance's debit part
    leg = await _report(db_url, "legal")
    debts = {
        r.values["number"]: r.values["debt"] for t in leg.tables for r in t.rows if r.level == 0
    }
    for key, acc in village.items():
        assert debts.get(numbers[acc], 0) == EXPECTED[key].closing_debit, key


def test_documents(village: dict[str, int], db: psycopg.Connection[Any]) -> None:
    cfg = load_billing_config()
    for key, acc in village.items():
        e = EXPECTED[key]
        s = slip_data(db, acc, FROM, cfg)  # the October slip
        got = (s.opening_tiyin, s.charges_tiyin, s.payments_tiyin, s.closing_tiyin)
        assert got == (e.opening, e.charged, e.paid, e.closing), key
        assert s.due_tiyin == e.closing_debit
        sd = statement_data(db, acc, FROM, TO, "ru")
        assert sd.figures == e, key
        assert (sd.opening_tiyin, sd.debit, sd.credit, sd.closing_tiyin) == (
            e.opening,
            e.charged,
            e.paid,
            e.closing,
        )
    # the printed statement of hh: the opening and closing debit, the turnover, and the
    # bounced payment in the credit column as a storno (negative)
    sd = statement_data(db, village["hh"], FROM, TO, "ru")
    pdf = render_statement(sd, cfg, "ru")
    text = re.sub(
        r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    )

    # the PDF's text is flattened: the narrow space between thousands reads as a plain one
    def flat(tiyin: int) -> str:
        return re.sub(r"\s+", " ", money(tiyin))

    assert f"Сальдо на начало периода {flat(800_000)} {flat(0)}" in text
    assert f"Обороты {flat(277_000)} {flat(250_000)}" in text
    assert f"Сальдо на конец периода {flat(827_000)} {flat(0)}" in text
    assert f"Сторно: Оплата (pm-1) {flat(-200_000)}" in text


def _panel(db: psycopg.Connection[Any], sql: str) -> list[dict[str, Any]]:
    ctx = QueryContext(
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC),
        timedelta(hours=3),
        {"zone": Variable.of("Z1")},
    )
    with db.cursor() as cur:
        cur.execute(expand(sql, ctx).encode())
        assert cur.description is not None
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def tiyin(som: Decimal | None) -> int:
    assert som is not None
    cents = Decimal(som) * 100
    assert cents == cents.to_integral_value(), som
    return int(cents)


def test_dashboard_panels(village: dict[str, int], db: psycopg.Connection[Any]) -> None:
    charged = sum(e.charged for e in EXPECTED.values())
    paid = sum(e.paid for e in EXPECTED.values())
    (month,) = _panel(db, board.MONTHLY.targets[0].sql)
    assert (tiyin(month["charged"]), tiyin(month["collected"])) == (charged, paid)
    (rate,) = _panel(db, board.COLLECTION_RATE.targets[0].sql)
    assert float(rate["collection_pct"]) == pytest.approx(100 * paid / charged)
    (totals,) = _panel(db, board.TOTALS.targets[0].sql)
    assert tiyin(totals["debt"]) == sum(e.closing_debit for e in EXPECTED.values())
    assert tiyin(totals["prepaid"]) == sum(e.closing_credit for e in EXPECTED.values())
    assert totals["debtors"] == 3
    by_mahalla = {r["mahalla"]: r for r in _panel(db, board.DEBT_BY_MAHALLA.targets[0].sql)}
    bars = {r["mahalla"]: tiyin(r["debt"]) for r in _panel(db, board.DEBT_BAR.targets[0].sql)}
    for g in figures_by(db, "mahalla", FROM, TO):
        row = by_mahalla[g.name]
        mine = [EXPECTED[k] for k, m in MAHALLA.items() if m == g.name]
        assert tiyin(row["debt"]) == g.closing_debit == sum(e.closing_debit for e in mine)
        assert tiyin(row["prepaid"]) == g.closing_credit == sum(e.closing_credit for e in mine)
        assert tiyin(row["net_balance"]) == g.closing
        assert bars[g.name] == g.closing_debit
    assert by_mahalla["Navro'z"]["accounts"] == 1  # the closed account's debt still counts
    channels = {
        r["channel"]: tiyin(r["collected"])
        for r in _panel(db, board.PAYMENTS_BY_CHANNEL.targets[0].sql)
    }
    # the bounced Payme payment nets to 0; Click's bounce of September's payment is -400 so'm
    assert channels == {"cashier": 250_000, "bank": 456_000, "payme": 0, "click": -40_000}
    assert sum(channels.values()) == paid
    top = {r["account"]: tiyin(r["debt"]) for r in _panel(db, board.TOP_DEBTORS.targets[0].sql)}
    numbers = account_numbers(db)
    assert top == {
        numbers[acc]: EXPECTED[key].closing_debit
        for key, acc in village.items()
        if EXPECTED[key].closing_debit
    }
