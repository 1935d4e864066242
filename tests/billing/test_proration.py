"""Proration by days of service (billing/proration.py): hand-computed cases on the real database.

November 2026 has 30 days. Household tariff 1 500 so'm/m³ (150 000 tiyin) until 15 Nov and
1 800 so'm/m³ (180 000 tiyin) from 16 Nov; norm 4.5 m³ per person and month, so 3 residents
have 13 500 litres a month (450 litres a day).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import errors as pg_errors
from pypdf import PdfReader

from billing.accounts import Address, add_reading, create_account, install_meter, set_status
from billing.config import BillingConfig
from billing.documents import mahalla_accounts, render_invoice, render_slips, slip_data
from billing.proration import ACTIVE, CLOSED, NONE, SUSPENDED, service_days
from billing.run import run_billing
from billing.tariffs import Norm, Tariff, norm_charge
from tests.billing.conftest import NOW

TZ = ZoneInfo("Asia/Tashkent")
NOV = date(2026, 11, 1)
NOV_LAST = date(2026, 11, 30)
EARLY = datetime(2025, 1, 1, 9, 0, tzinfo=TZ)  # when the old accounts were entered


def local(y: int, m: int, d: int, hour: int = 0) -> datetime:
    return datetime.combine(date(y, m, d), time(hour), TZ)


def addr(house: str) -> Address:
    return Address("Sirdaryo viloyati", "Guliston tumani", "Bahor MFY", "Nurli yo'l", house)


@dataclass
class World:
    closed_12th: int
    opened_20th: int
    suspended_5: int
    closed_before: int
    opened_after: int
    metered_closed: int
    metered_opened: int
    legal_closed: int
    full_month: int
    metered_no_close_reading: int


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url) as c:
        c.execute(
            """INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp) VALUES
               ('household', '2026-01-01', 150000, 0), ('household', '2026-11-16', 180000, 0),
               ('legal', '2026-01-01', 500000, 1200)"""
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', 4.5)")

        def norm_acc(name: str, house: str, **kw: Any) -> int:
            kw.setdefault("now", EARLY)
            kw.setdefault("opened_on", date(2025, 1, 1))
            return create_account(
                c, kind="household", name=name, address=addr(house), residents=3,
                metered=False, **kw,
            )[0]  # fmt: skip

        closed_12th = norm_acc("Closed 12th", "1")
        set_status(c, closed_12th, "closed", now=local(2026, 11, 12, 15), reason="moved out")

        opened_20th = norm_acc(
            "Opened 20th", "2", now=local(2026, 11, 20, 10), opened_on=date(2026, 11, 20)
        )

        suspended_5 = norm_acc("Suspended", "3")
        set_status(c, suspended_5, "suspended", now=local(2026, 11, 14), reason="leak")
        set_status(c, suspended_5, "active", now=local(2026, 11, 19), reason="repaired")

        closed_before = norm_acc("Closed October", "4")
        set_status(c, closed_before, "closed", now=local(2026, 10, 20, 11), reason="demolished")

        opened_after = norm_acc(
            "Opened December", "5", now=local(2026, 11, 28, 10), opened_on=date(2026, 12, 5)
        )

        full_month = norm_acc("Whole Month", "6")

        # metered, closed on 12 Nov 15:00 with a closing reading; the meter stays in place and
        # somebody keeps using water: the 1 Dec reading must not count
        metered_closed = create_account(
            c, kind="household", name="Metered Closed", address=addr("7"), now=EARLY,
            opened_on=date(2025, 1, 1), residents=2,
        )[0]  # fmt: skip
        m1 = install_meter(c, metered_closed, "PR-1", installed_at=local(2025, 1, 1))
        add_reading(c, m1, local(2026, 11, 1), 100.0, "inspector")
        add_reading(c, m1, local(2026, 11, 12, 15), 106.0, "inspector")
        add_reading(c, m1, local(2026, 12, 1), 130.0, "inspector")
        set_status(c, metered_closed, "closed", now=local(2026, 11, 12, 15), reason="moved out")

        # metered, opened on 20 Nov with the meter installed at 10:00 reading 50 m³
        metered_opened = create_account(
            c, kind="household", name="Metered Opened", address=addr("8"),
            now=local(2026, 11, 20, 10), opened_on=date(2026, 11, 20), residents=2,
        )[0]  # fmt: skip
        m2 = install_meter(
            c, metered_opened, "PR-2", installed_at=local(2026, 11, 20, 10), initial_reading=50.0
        )
        add_reading(c, m2, local(2026, 12, 1), 54.0, "inspector")

        # legal entity, metered, closed on 10 Nov at midnight (so 1-9 Nov are served)
        legal_closed = create_account(
            c, kind="legal", name="Closed MChJ", address=addr("9"), now=EARLY,
            opened_on=date(2025, 1, 1), inn="301234568",
        )[0]  # fmt: skip
        m3 = install_meter(c, legal_closed, "PR-3", installed_at=local(2025, 1, 1), digits=6)
        add_reading(c, m3, local(2026, 11, 1), 1000.0, "telemetry")
        add_reading(c, m3, local(2026, 11, 10), 1009.0, "telemetry")
        add_reading(c, m3, local(2026, 11, 20), 1500.0, "telemetry")
        set_status(c, legal_closed, "closed", now=local(2026, 11, 10), reason="contract ended")

        # metered, closed at 00:00 on 11 Nov without a reading that day; 1 m³/day before, the
        # next reading (1 Dec) is 200 m³ higher: the run estimates the end from the history
        # (1 m³/day) instead of interpolating towards a reading taken after the closing
        no_close_reading = create_account(
            c, kind="household", name="No Closing Reading", address=addr("10"), now=EARLY,
            opened_on=date(2025, 1, 1), residents=2,
        )[0]  # fmt: skip
        m4 = install_meter(c, no_close_reading, "PR-4", installed_at=local(2025, 1, 1))
        add_reading(c, m4, local(2026, 10, 7), 170.0, "inspector")
        add_reading(c, m4, local(2026, 11, 6), 200.0, "inspector")
        add_reading(c, m4, local(2026, 12, 1), 400.0, "inspector")
        set_status(c, no_close_reading, "closed", now=local(2026, 11, 11), reason="moved out")
        c.commit()
        return World(
            closed_12th,
            opened_20th,
            suspended_5,
            closed_before,
            opened_after,
            metered_closed,
            metered_opened,
            legal_closed,
            full_month,
            no_close_reading,
        )


def _invoice(conn: psycopg.Connection[Any], account: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT amount_tiyin, vat_tiyin, volume_m3, estimated, lines FROM invoices "
        "WHERE account_id = %s AND period = %s AND kind = 'regular'",
        (account, NOV),
    ).fetchone()
    if row is None:
        return None
    lines = row[4] if isinstance(row[4], dict) else json.loads(row[4])
    return {"amount": row[0], "vat": row[1], "volume": row[2], "estimated": row[3], **lines}


def _charges(conn: psycopg.Connection[Any], account: int) -> list[int]:
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT amount_tiyin FROM ledger WHERE account_id = %s AND kind = 'charge' ORDER BY id",
            (account,),
        ).fetchall()
    ]


def test_run_prorates_by_days_of_service(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    s = run_billing(conn, NOV, cfg, now=NOW)
    # closed_before and opened_after get nothing
    assert s.invoices_created == 8

    # closed on 12 Nov (15:00): 1-12 Nov served, 13 500 l × 12/30 = 5 400 l at 1 500 so'm
    inv = _invoice(conn, world.closed_12th)
    assert inv is not None
    assert inv["amount"] == 5_400 * 150 == 810_000
    assert inv["service"]["days"] == 12 and inv["service"]["period_days"] == 30
    assert [(ln["from"], ln["to"], ln["days"], ln["litres"]) for ln in inv["charge"]] == [
        ("2026-11-01", "2026-11-12", 12, 5_400)
    ]
    assert _charges(conn, world.closed_12th) == [810_000]

    # opened on 20 Nov: 20-30 Nov = 11 days, 13 500 × 11/30 = 4 950 l at 1 800 so'm
    inv = _invoice(conn, world.opened_20th)
    assert inv is not None
    assert inv["amount"] == 4_950 * 180 == 891_000
    assert inv["service"]["days"] == 11
    assert [(ln["from"], ln["to"], ln["days"]) for ln in inv["charge"]] == [
        ("2026-11-20", "2026-11-30", 11)
    ]

    # suspended 14 Nov 00:00 - 19 Nov 00:00 = 14-18 Nov (5 days) not charged: 25 days,
    # 13 500 × 25/30 = 11 250 l; 1-13 Nov (13 days) at 1 500, 19-30 Nov (12 days) at 1 800:
    # 11 250 × 13/25 = 5 850 l and 5 400 l
    inv = _invoice(conn, world.suspended_5)
    assert inv is not None
    assert inv["service"] == {
        "days": 25,
        "period_days": 30,
        "active_days": 25,
        "suspended_days": 5,
    }
    assert [(ln["days"], ln["litres"], ln["net_tiyin"]) for ln in inv["charge"]] == [
        (13, 5_850, 877_500),
        (12, 5_400, 972_000),
    ]
    assert inv["amount"] == 1_849_500

    # the whole month is not prorated (and carries no service block)
    inv = _invoice(conn, world.full_month)
    assert inv is not None
    assert inv["amount"] == 6_750 * 150 + 6_750 * 180
    assert "service" not in inv

    # closed before the month / opened after it: no invoice, no charge
    for acc in (world.closed_before, world.opened_after):
        assert _invoice(conn, acc) is None
        assert _charges(conn, acc) == []

    # metered, closed at the closing reading 106 m³: 6 m³, the later 130 m³ is not used
    inv = _invoice(conn, world.metered_closed)
    assert inv is not None
    assert inv["volume"] == pytest.approx(6.0) and inv["estimated"] is False
    assert inv["amount"] == 6_000 * 150 == 900_000
    assert inv["service"]["days"] == 12
    pc = conn.execute(
        "SELECT start_m3, end_m3, end_ts FROM period_consumption WHERE account_id = %s",
        (world.metered_closed,),
    ).fetchone()
    assert pc is not None
    assert pc[0] == pytest.approx(100.0) and pc[1] == pytest.approx(106.0)
    assert pc[2] == local(2026, 11, 12, 15)

    # metered, opened on 20 Nov from the opening reading 50 m³: 4 m³, all at 1 800 so'm
    inv = _invoice(conn, world.metered_opened)
    assert inv is not None
    assert inv["volume"] == pytest.approx(4.0)
    assert inv["amount"] == 4_000 * 180 == 720_000
    assert inv["service"]["days"] == 11

    # legal, closed at 00:00 on 10 Nov: 9 days, 9 m³ × 5 000 so'm + 12 % VAT
    inv = _invoice(conn, world.legal_closed)
    assert inv is not None
    assert inv["volume"] == pytest.approx(9.0)
    assert (inv["amount"], inv["vat"]) == (5_040_000, 540_000)
    assert inv["service"]["days"] == 9

    # closed at 00:00 on 11 Nov, last reading 6 Nov: 5 days (gap share) + 5 days estimated
    # at 1 m³/day = 10 m³; the 1 Dec reading, after the closing, is not used
    inv = _invoice(conn, world.metered_no_close_reading)
    assert inv is not None
    assert inv["volume"] == pytest.approx(10.0) and inv["estimated"] is True
    assert inv["amount"] == 10_000 * 150
    assert inv["service"]["days"] == 10

    # the ledger carries exactly the invoice amounts
    tot = conn.execute(
        "SELECT (SELECT sum(amount_tiyin) FROM ledger WHERE period = %s AND kind = 'charge'), "
        "(SELECT sum(amount_tiyin) FROM invoices WHERE period = %s)",
        (NOV, NOV),
    ).fetchone()
    assert tot is not None and tot[0] == tot[1]


def test_rerun_is_idempotent_and_ledger_append_only(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    before = conn.execute("SELECT count(*), sum(amount_tiyin), max(id) FROM ledger").fetchone()
    invoices = conn.execute("SELECT count(*) FROM invoices").fetchone()
    s = run_billing(conn, NOV, cfg, now=NOW)
    assert s.invoices_created == 0 and s.accounts_billed == 0
    assert s.accounts_skipped_done == 8
    assert conn.execute("SELECT count(*), sum(amount_tiyin), max(id) FROM ledger").fetchone() == (
        before
    )
    assert conn.execute("SELECT count(*) FROM invoices").fetchone() == invoices
    with pytest.raises(pg_errors.InsufficientPrivilege):
        conn.execute(
            "UPDATE ledger SET amount_tiyin = 1 WHERE account_id = %s", (world.closed_12th,)
        )
    conn.rollback()
    # December: the accounts closed in November are not billed any more
    s = run_billing(conn, date(2026, 12, 1), cfg, now=NOW, dry_run=True)
    assert s.accounts_billed == 5  # 10 accounts minus the 5 closed ones (opened_after included)


def test_slip_and_invoice_show_service_days(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    def text(pdf: bytes) -> str:
        reader = PdfReader(io.BytesIO(pdf))
        return re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in reader.pages))

    run_billing(conn, NOV, cfg, now=NOW)  # November is billed (a no-op after the tests above)
    slip = slip_data(conn, world.closed_12th, NOV, cfg)
    assert (slip.service_days, slip.period_days) == (12, 30)
    uz = text(render_slips([slip], cfg, "uz"))
    assert "Xizmat kunlari: 12/30 kun" in uz
    assert "2026-11-01 – 2026-11-12" in uz
    assert "8 100,00" in uz  # 810 000 tiyin
    ru = text(render_slips([slip_data(conn, world.suspended_5, NOV, cfg)], cfg, "ru"))
    assert "Дни обслуживания: 25/30 дн.; приостановлено: 5 дн." in ru
    full = text(render_slips([slip_data(conn, world.full_month, NOV, cfg)], cfg, "uz"))
    assert "Xizmat kunlari" not in full
    inv = text(render_invoice(slip_data(conn, world.legal_closed, NOV, cfg), cfg, "uz"))
    assert "Xizmat kunlari: 9/30 kun" in inv
    # the mahalla batch of November carries the last slip of an account closed in November
    nov_batch = mahalla_accounts(conn, "Bahor MFY", NOV)
    assert world.closed_12th in nov_batch and world.closed_before not in nov_batch
    assert world.closed_12th not in mahalla_accounts(conn, "Bahor MFY")


def test_service_days_rules() -> None:
    def days(initial: str, changes: list[tuple[datetime, str]], opened: date) -> tuple[str, ...]:
        return service_days(NOV, NOV_LAST, "Asia/Tashkent", opened, initial, changes).days

    old = date(2025, 1, 1)
    # closed during the 12th: the 12th is served; closed at 00:00 of the 12th: it is not
    d = days(ACTIVE, [(local(2026, 11, 12, 15), CLOSED)], old)
    assert d.count(ACTIVE) == 12 and d[11] == ACTIVE and d[12] == CLOSED
    d = days(ACTIVE, [(local(2026, 11, 12), CLOSED)], old)
    assert d.count(ACTIVE) == 11 and d[11] == CLOSED
    # suspended at noon on the 14th, back at noon on the 19th: both partial days are served
    d = days(ACTIVE, [(local(2026, 11, 14, 12), SUSPENDED), (local(2026, 11, 19, 12), ACTIVE)], old)
    assert d.count(SUSPENDED) == 4 and d[13] == ACTIVE and d[18] == ACTIVE
    # opened on the 20th: nothing exists before
    d = days(ACTIVE, [], date(2026, 11, 20))
    assert d[:19] == (NONE,) * 19 and d[19:] == (ACTIVE,) * 11
    # closed, then reopened within the month
    svc = service_days(
        NOV,
        NOV_LAST,
        "Asia/Tashkent",
        old,
        ACTIVE,
        [(local(2026, 11, 5), CLOSED), (local(2026, 11, 25), ACTIVE)],
    )
    assert svc.active_days == 4 + 6 and svc.billable
    assert svc.start == local(2026, 11, 1) and svc.end == local(2026, 12, 1)
    # closed all month: not billable
    svc = service_days(NOV, NOV_LAST, "Asia/Tashkent", old, CLOSED, [])
    assert not svc.billable and svc.active_days == 0
    # opened after the month: not billable
    svc = service_days(NOV, NOV_LAST, "Asia/Tashkent", date(2026, 12, 5), ACTIVE, [])
    assert not svc.billable


def test_norm_proration_rounds_half_up_once_per_line() -> None:
    tariffs = [Tariff("household", date(2020, 1, 1), 100_001)]
    # 15 litres a month, one day of 30: 0.5 l -> 1 l; 1 l × 1 000,01 so'm = 100.001 -> 100
    one_day = tuple(i == 0 for i in range(30))
    ch = norm_charge(1, "household", NOV, tariffs, [Norm(date(2020, 1, 1), 0.015)], service=one_day)
    assert [(ln.days, ln.litres, ln.net_tiyin) for ln in ch.lines] == [(1, 1, 100)]
    # 3 × 4.5 m³, 7 days of 30: 13 500 × 7/30 = 3 150 l × 1 000,01 so'm = 315 003.15 -> 315 003
    seven = tuple(i < 7 for i in range(30))
    ch = norm_charge(3, "household", NOV, tariffs, [Norm(date(2020, 1, 1), 4.5)], service=seven)
    assert ch.total_tiyin == 315_003 and ch.litres == 3_150
    # half a tiyin goes up: 5 l at 1 000,10 so'm = 500.5 tiyin -> 501
    ch = norm_charge(
        1,
        "household",
        NOV,
        [Tariff("household", date(2020, 1, 1), 100_100)],
        [Norm(date(2020, 1, 1), 0.15)],
        service=tuple(i == 0 for i in range(30)),
    )
    assert [(ln.litres, ln.net_tiyin) for ln in ch.lines] == [(5, 501)]
    # no service day: no line, nothing to pay
    assert norm_charge(3, "household", NOV, tariffs, [Norm(date(2020, 1, 1), 4.5)],
                       service=(False,) * 30).lines == ()  # fmt: skip


def test_status_change_entered_late(
    world: World, conn: psycopg.Connection[Any], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from billing.cli import app
    from billing.config import get_billing_config
    from billing.errors import AccountDataError
    from billing.proration import fetch_services
    from suvnet.settings import get_settings

    # entered on 1 Dec (NOW) although the account exists since 2025
    acc, number = create_account(
        conn, kind="household", name="Late Entry", address=addr("11"), now=NOW,
        opened_on=date(2025, 1, 1), residents=1, metered=False,
    )  # fmt: skip
    conn.commit()
    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    get_settings.cache_clear()
    get_billing_config.cache_clear()
    try:
        runner = CliRunner()
        bad = runner.invoke(app, ["set-status", "--account", number, "--status", "closed",
                                  "--at", "12.11.2026"])  # fmt: skip
        assert bad.exit_code != 0 and "--at must look like" in str(bad.output) + str(bad.exception)
        r = runner.invoke(
            app,
            ["set-status", "--account", number, "--status", "closed", "--at", "2026-11-12T15:00"],
        )
        assert r.exit_code == 0, r.output
        again = runner.invoke(app, ["set-status", "--account", number, "--status", "closed"])
        assert again.exit_code == 0 and "already closed: nothing changed" in again.output
    finally:
        get_settings.cache_clear()
        get_billing_config.cache_clear()
    row = conn.execute(
        "SELECT since FROM account_status_history WHERE account_id = %s AND status = 'closed'",
        (acc,),
    ).fetchone()
    assert row is not None and row[0] == local(2026, 11, 12, 15)
    nov = fetch_services(conn, [acc], NOV, NOV_LAST, "Asia/Tashkent")[acc]
    assert nov.active_days == 12
    # later months stay closed although the row written on entry (1 Dec) is younger
    months = [(date(2026, 12, 1), date(2026, 12, 31)), (date(2027, 1, 1), date(2027, 1, 31))]
    for first, last in months:
        assert not fetch_services(conn, [acc], first, last, "Asia/Tashkent")[acc].billable
    # a change cannot be dated before the previous one
    with pytest.raises(AccountDataError, match="cannot take effect before"):
        set_status(conn, acc, "active", now=local(2026, 11, 10))
    conn.rollback()


def test_closing_entered_after_the_run_is_billed_by_a_correction(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    from billing.run import correct_account

    # the whole-month account turns out to have been closed on 25 Nov at 18:00
    set_status(conn, world.full_month, "closed", now=local(2026, 11, 25, 18), reason="late")
    corr = correct_account(conn, world.full_month, NOV, cfg, now=NOW, reason="closed 25 Nov")
    conn.commit()
    # 25 days: 13 500 × 25/30 = 11 250 l; 15 days at 1 500 and 10 days at 1 800 so'm
    assert corr.old_tiyin == 2_227_500
    assert corr.new_tiyin == 6_750 * 150 + 4_500 * 180 == 1_822_500
    rows = conn.execute(
        "SELECT kind, amount_tiyin FROM ledger WHERE account_id = %s ORDER BY id",
        (world.full_month,),
    ).fetchall()
    assert rows == [("charge", 2_227_500), ("reversal", -2_227_500), ("charge", 1_822_500)]
    assert slip_data(conn, world.full_month, NOV, cfg).service_days == 25
