"""Slip, invoice and statement PDFs: text extracted with pypdf carries the figures."""

from __future__ import annotations

import base64
import io
import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pypdf import PdfReader

from billing.accounts import Address, add_reading, create_account, install_meter
from billing.config import BillingConfig
from billing.documents import (
    mahalla_accounts,
    money,
    render_invoice,
    render_slips,
    render_statement,
    slip_data,
    statement_data,
)
from billing.errors import DocumentError
from billing.ledger import post_entry, post_payment
from billing.run import run_billing
from tests.billing.conftest import NOW

TZ = ZoneInfo("Asia/Tashkent")
NOV = date(2026, 11, 1)


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(p.extract_text() for p in reader.pages)


def flat(s: str) -> str:
    return re.sub(r"\s+", " ", s)


@pytest.fixture(scope="module")
def billed(db_url: str) -> dict[str, Any]:
    with psycopg.connect(db_url) as c:
        c.execute(
            """INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp) VALUES
               ('household', '2026-01-01', 165000, 0), ('legal', '2026-01-01', 520000, 1200),
               ('budget', '2026-01-01', 410000, 1200)"""
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', 4.5)")
        addr = Address(
            "Xorazm viloyati", "Urganch tumani", "Navbahor MFY", "Gulzor ko'chasi", "7", "3"
        )
        hh, hh_no = create_account(
            c,
            kind="household",
            name="Yusupova Dilnoza",
            address=addr,
            now=NOW,
            residents=4,
            opened_on=date(2025, 1, 1),
            phone="998901234567",
        )
        m = install_meter(c, hh, "SL-1", installed_at=datetime(2025, 1, 1, tzinfo=TZ))
        add_reading(c, m, datetime.combine(date(2026, 9, 1), time(0), TZ), 300.0, "inspector")
        add_reading(c, m, datetime.combine(NOV, time(0), TZ), 320.0, "inspector")
        add_reading(c, m, datetime.combine(date(2026, 11, 21), time(0), TZ), 327.0, "customer")
        post_entry(
            c,
            account_id=hh,
            kind="opening_balance",
            amount_tiyin=1_234_500,
            posted_at=NOW,
            value_date=date(2026, 10, 31),
        )
        lg, lg_no = create_account(
            c,
            kind="legal",
            name="Xorazm Non MChJ",
            now=NOW,
            inn="305123456",
            mfo="00444",
            bank_account="20208000100200300400",
            opened_on=date(2025, 1, 1),
            address=Address(
                "Xorazm viloyati", "Urganch tumani", "Navbahor MFY", "Gulzor ko'chasi", "9"
            ),
        )
        m2 = install_meter(c, lg, "SL-2", installed_at=datetime(2025, 1, 1, tzinfo=TZ), digits=6)
        add_reading(c, m2, datetime.combine(NOV, time(0), TZ), 1000.0, "telemetry")
        add_reading(c, m2, datetime.combine(date(2026, 12, 1), time(0), TZ), 1250.0, "telemetry")
        c.commit()
        return {"hh": hh, "hh_no": hh_no, "lg": lg, "lg_no": lg_no}


def test_slip_pdf_figures_uz(billed: dict[str, Any], db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        run_billing(conn, NOV, cfg, now=NOW)
        post_payment(
            conn,
            account_id=billed["hh"],
            amount_tiyin=1_000_000,
            paid_at=datetime(2026, 11, 15, 10, tzinfo=TZ),
            source="cashier",
            external_ref="kassa-77",
        )
        conn.commit()
        s = slip_data(conn, billed["hh"], NOV, cfg)
    # 7 m³ measured 1-21 Nov; the last 10 days estimated at the history rate, 27 m³ over
    # the 81 days from 1 Sep to 21 Nov
    expected_m3 = 7.0 + 27.0 / 81 * 10
    litres = round(expected_m3 * 1000)
    charge = (litres * 165000 + 500) // 1000
    assert s.charges_tiyin == charge
    assert s.closing_tiyin == 1_234_500 + charge - 1_000_000
    raw = text_of(render_slips([s], cfg, "uz"))
    txt = flat(raw)
    assert "Ichimlik suvi uchun toʻlov varaqasi" in txt
    assert billed["hh_no"] in txt
    assert "Navbahor MFY" in txt and "7-uy" in txt and "3-xonadon" in txt
    assert money(1_234_500) in txt  # opening balance 12 345,00
    assert money(charge) in txt
    assert money(1_000_000) in txt
    assert f"Toʻlash kerak {money(s.closing_tiyin)}" in txt
    assert f"{litres / 1000:.3f} *" in txt and "taxminiy" in txt
    assert "320.000" in txt
    # the printed payment link is the Payme checkout link with the amount due
    # (the link is printed last, wrapped over lines)
    link = re.search(r"https://checkout\.example\.test/([A-Za-z0-9+/=\s]+)$", raw)
    assert link is not None
    payload = base64.b64decode(re.sub(r"\s", "", link.group(1))).decode()
    assert payload == f"m=5e730e8e0b852a417aa49ceb;ac.account={billed['hh_no']};a={s.due_tiyin}"


def test_slip_pdf_russian_and_batch(
    billed: dict[str, Any], db_url: str, cfg: BillingConfig
) -> None:
    with psycopg.connect(db_url) as conn:
        ids = mahalla_accounts(conn, "Navbahor MFY")
        slips = [slip_data(conn, a, NOV, cfg) for a in ids]
    pdf = render_slips(slips, cfg, "ru")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    first = flat(reader.pages[0].extract_text())
    assert "Квитанция на оплату питьевой воды" in first and "ноябрь 2026" in first
    assert "кв. 3" in first


def test_legal_invoice_with_vat(billed: dict[str, Any], db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        s = slip_data(conn, billed["lg"], NOV, cfg)
    txt = flat(text_of(render_invoice(s, cfg, "uz")))
    # 250 m³ × 5 200 so'm = 1 300 000 so'm + 12 % VAT 156 000 so'm
    assert money(130_000_000) in txt and money(15_600_000) in txt
    assert money(145_600_000) in txt
    assert "305123456" in txt and "20208000100200300400" in txt
    assert "Hisob-faktura" in txt and "(imzo)" in txt


def test_reconciliation_statement(billed: dict[str, Any], db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        post_payment(
            conn,
            account_id=billed["lg"],
            amount_tiyin=100_000_000,
            paid_at=datetime(2026, 12, 5, 11, tzinfo=TZ),
            source="bank",
            external_ref="pp-1209",
        )
        conn.commit()
        sd = statement_data(conn, billed["lg"], date(2026, 11, 1), date(2026, 12, 31), "ru")
        with pytest.raises(DocumentError):
            statement_data(conn, billed["lg"], date(2026, 12, 31), date(2026, 1, 1), "ru")
    assert sd.opening_tiyin == 0 and sd.debit == 145_600_000 and sd.credit == 100_000_000
    assert sd.closing_tiyin == 45_600_000
    txt = flat(text_of(render_statement(sd, cfg, "ru")))
    assert "Акт сверки взаимных расчётов" in txt
    assert money(145_600_000) in txt and money(100_000_000) in txt and money(45_600_000) in txt
    assert "pp-1209" in txt and "(подпись)" in txt
