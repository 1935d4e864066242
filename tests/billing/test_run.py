"""Billing run on the real database: hand-computed cases, idempotence, corrections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from billing import consumption as cons
from billing.accounts import (
    Address,
    add_reading,
    create_account,
    install_meter,
    replace_meter,
)
from billing.config import BillingConfig
from billing.ledger import balance, post_payment
from billing.run import RunRefusedError, check_period, correct_account, refusal, run_billing
from tests.billing.conftest import NOW

TZ = ZoneInfo("Asia/Tashkent")
NOV = date(2026, 11, 1)


def local(y: int, m: int, d: int) -> datetime:
    return datetime.combine(date(y, m, d), time(0), TZ)


def addr(house: str) -> Address:
    return Address("Sirdaryo viloyati", "Guliston tumani", "Bahor MFY", "Chinor ko'chasi", house)


@dataclass
class World:
    tariff_change: int
    replaced: int
    rollover: int
    gap: int
    norm: int
    legal: int
    missing_end: int


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url) as c:
        c.execute(
            """INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp) VALUES
               ('household', '2026-01-01', 150000, 0), ('household', '2026-11-16', 180000, 0),
               ('legal', '2026-01-01', 500000, 1200), ('budget', '2026-01-01', 400000, 1200)"""
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', 4.5)")
        opened = date(2025, 1, 1)

        def acc(name: str, house: str, **kw: Any) -> int:
            return create_account(
                c, name=name, address=addr(house), now=NOW, opened_on=opened, **kw
            )[0]

        a1 = acc("Tariff Change", "1", kind="household", residents=2)
        m1 = install_meter(c, a1, "TC-1", installed_at=local(2025, 1, 1))
        add_reading(c, m1, local(2026, 11, 1), 100.0, "inspector")
        add_reading(c, m1, local(2026, 12, 1), 112.0, "inspector")

        a2 = acc("Replaced Meter", "2", kind="household", residents=2)
        m2 = install_meter(c, a2, "RM-old", installed_at=local(2025, 1, 1))
        add_reading(c, m2, local(2026, 11, 1), 500.0, "inspector")
        m2b = replace_meter(c, a2, m2, "RM-new", at=local(2026, 11, 11), final_reading=505.0)
        add_reading(c, m2b, local(2026, 12, 1), 7.0, "inspector")

        a3 = acc("Rollover", "3", kind="household", residents=1)
        m3 = install_meter(c, a3, "RO-1", installed_at=local(2025, 1, 1), digits=4)
        add_reading(c, m3, local(2026, 11, 1), 9995.0, "manual")
        add_reading(c, m3, local(2026, 12, 1), 5.0, "manual")

        a4 = acc("Gap", "4", kind="household", residents=1)
        m4 = install_meter(c, a4, "GP-1", installed_at=local(2025, 1, 1))
        add_reading(c, m4, local(2026, 10, 21), 100.0, "customer")
        add_reading(c, m4, local(2026, 12, 1), 141.0, "customer")

        a5 = acc("Norm", "5", kind="household", residents=3, metered=False)

        a6 = acc(
            "Legal MChJ",
            "6",
            kind="legal",
            inn="301234567",
            mfo="00873",
            bank_account="20208000900123456001",
        )
        m6 = install_meter(c, a6, "LG-1", installed_at=local(2025, 1, 1), digits=6)
        add_reading(c, m6, local(2026, 11, 1), 1000.0, "telemetry")
        add_reading(c, m6, local(2026, 12, 1), 1100.0, "telemetry")

        a7 = acc("Missing End", "7", kind="household", residents=1)
        m7 = install_meter(c, a7, "ME-1", installed_at=local(2025, 1, 1))
        # 0.5 m³/day since 1 Sep, last reading 21 Nov -> 10 days of Nov estimated
        add_reading(c, m7, local(2026, 9, 1), 0.0, "inspector")
        add_reading(c, m7, local(2026, 11, 21), 40.5, "inspector")
        c.commit()
        return World(a1, a2, a3, a4, a5, a6, a7)


def _invoice(conn: psycopg.Connection[Any], account: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT amount_tiyin, vat_tiyin, volume_m3, estimated, number FROM invoices "
        "WHERE account_id = %s AND period = %s AND kind = 'regular'",
        (account, NOV),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_dry_run_posts_nothing(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    s = run_billing(conn, NOV, cfg, now=NOW, dry_run=True)
    assert s.accounts_billed == 7
    assert s.total_tiyin > 0
    assert conn.execute("SELECT count(*) FROM invoices").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM billing_runs").fetchone() == (0,)


def test_hand_computed_cases(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    dry = run_billing(conn, NOV, cfg, now=NOW, dry_run=True)
    s = run_billing(conn, NOV, cfg, now=NOW)
    assert s.invoices_created == 7 and s.total_tiyin == dry.total_tiyin
    # 12 m³, tariff 1 500 so'm until 15 Nov and 1 800 from 16 Nov: 6 m³ each
    assert _invoice(conn, world.tariff_change)[:4] == (900_000 + 1_080_000, 0, 12.0, False)
    # replaced on 11 Nov: old 500 -> 505, new 0 -> 7: 12 m³ continuous
    assert _invoice(conn, world.replaced)[:4] == (1_980_000, 0, 12.0, False)
    meters = conn.execute(
        "SELECT volume_m3 FROM period_consumption WHERE account_id = %s ORDER BY start_ts",
        (world.replaced,),
    ).fetchall()
    assert [round(v[0], 6) for v in meters] == [5.0, 7.0]
    # 4-digit register 9 995 -> 5: 10 m³
    assert _invoice(conn, world.rollover)[:4] == (750_000 + 900_000, 0, 10.0, False)
    flags = conn.execute(
        "SELECT flags FROM period_consumption WHERE account_id = %s", (world.rollover,)
    ).fetchone()
    assert flags is not None and flags[0] & cons.ROLLOVER
    # 41 m³ over 41 days (21 Oct - 1 Dec), gap across the period start: 30 days -> 30 m³
    assert _invoice(conn, world.gap)[:4] == (15 * 150_000 + 15 * 180_000, 0, 30.0, True)
    # norm: 3 people × 4.5 m³ = 13.5 m³, half at each tariff
    assert _invoice(conn, world.norm)[:4] == (6_750 * 150 + 6_750 * 180, 0, 13.5, False)
    # legal: 100 m³ × 5 000 so'm + 12 % VAT
    assert _invoice(conn, world.legal)[:4] == (56_000_000, 6_000_000, 100.0, False)
    # 0.5 m³/day: 20 days measured + 10 days estimated from history = 15 m³
    inv = _invoice(conn, world.missing_end)
    assert inv[2] == pytest.approx(15.0) and inv[3] is True
    assert inv[0] == 7_500 * 150 + 7_500 * 180
    # the ledger carries exactly the invoice amounts
    total = conn.execute(
        "SELECT sum(amount_tiyin), count(*) FROM ledger WHERE period = %s AND kind = 'charge'",
        (NOV,),
    ).fetchone()
    inv_total = conn.execute(
        "SELECT sum(amount_tiyin) FROM invoices WHERE period = %s", (NOV,)
    ).fetchone()
    assert total == (inv_total[0] if inv_total else None, 7)
    numbers = sorted(r[0] for r in conn.execute("SELECT number FROM invoices").fetchall())
    assert numbers == [f"2026-{i:07d}" for i in range(1, 8)]


def test_second_run_adds_nothing(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    before = conn.execute("SELECT count(*), sum(amount_tiyin) FROM ledger").fetchone()
    s = run_billing(conn, NOV, cfg, now=NOW)
    assert s.accounts_billed == 0 and s.invoices_created == 0 and s.accounts_skipped_done == 7
    assert conn.execute("SELECT count(*), sum(amount_tiyin) FROM ledger").fetchone() == before
    assert conn.execute("SELECT count(*) FROM invoices").fetchone() == (7,)


def test_correction_is_reversal_plus_new_charge(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    post_payment(
        conn,
        account_id=world.tariff_change,
        amount_tiyin=500_000,
        paid_at=NOW,
        source="cashier",
        external_ref="k-1",
    )
    # the inspector corrects the end reading: 112 -> 110 (10 m³)
    m = conn.execute("SELECT id FROM meters WHERE serial_no = 'TC-1'").fetchone()
    assert m is not None
    add_reading(conn, m[0], local(2026, 12, 1), 110.0, "inspector")
    corr = correct_account(conn, world.tariff_change, NOV, cfg, now=NOW, reason="reading fixed")
    conn.commit()
    assert corr.old_tiyin == 1_980_000 and corr.new_tiyin == 750_000 + 900_000
    assert len(corr.reversed_entries) == 1 and corr.new_entry is not None
    kinds = conn.execute(
        "SELECT kind, amount_tiyin FROM ledger WHERE account_id = %s ORDER BY id",
        (world.tariff_change,),
    ).fetchall()
    assert kinds == [
        ("charge", 1_980_000),
        ("payment", -500_000),
        ("reversal", -1_980_000),
        ("charge", 1_650_000),
    ]
    assert balance(conn, world.tariff_change) == 1_650_000 - 500_000
    # the regular run still adds nothing
    assert run_billing(conn, NOV, cfg, now=NOW).invoices_created == 0


def test_month_order_and_unfinished_month(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    """With November billed (the tests above), October is out of order: refused unless
    forced, a dry run only warns and posts nothing. A month that has not ended at the injected
    clock is reported as unfinished (the office's front ends refuse it unless forced)."""
    octo = date(2026, 10, 1)
    check = check_period(conn, octo, cfg.timezone, now=NOW)
    assert (check.unfinished, check.later_billed, check.codes) == (False, NOV, ["out_of_order"])
    before = conn.execute("SELECT count(*) FROM ledger").fetchone()
    with pytest.raises(RunRefusedError, match="2026-11 is already billed"):
        run_billing(conn, octo, cfg, now=NOW)
    dry = run_billing(conn, octo, cfg, now=NOW, dry_run=True)
    assert dry.warnings == check.warnings and dry.accounts_billed > 0
    assert conn.execute("SELECT count(*) FROM ledger").fetchone() == before
    assert conn.execute(
        "SELECT count(*) FROM billing_runs WHERE period = %s", (octo,)
    ).fetchone() == (0,)
    # December on 20 December (Tashkent): not ended; on 1 January 00:00 Tashkent it has
    dec = date(2026, 12, 1)
    mid = check_period(conn, dec, cfg.timezone, now=local(2026, 12, 20))
    assert mid.unfinished and mid.codes == ["unfinished"]
    assert "2026-12 has not ended yet (it ends 2027-01-01 00:00 +05)" in mid.warnings[0]
    assert refusal(mid, dry_run=False, force=False, unfinished=True) is not None
    assert refusal(mid, dry_run=False, force=False, unfinished=False) is None
    assert refusal(mid, dry_run=True, force=False, unfinished=True) is None
    assert refusal(mid, dry_run=False, force=True, unfinished=True) is None
    assert not check_period(conn, dec, cfg.timezone, now=local(2027, 1, 1)).unfinished
    forced = run_billing(conn, octo, cfg, now=NOW, force=True)
    assert forced.invoices_created == forced.accounts_billed > 0
