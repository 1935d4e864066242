"""Slip, invoice and statement PDFs: text extracted with pypdf carries the figures."""

from __future__ import annotations

import base64
import io
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pypdf import PdfReader

from billing.accounts import Address, add_reading, create_account, install_meter
from billing.config import BillingConfig, load_billing_config, requisites_problems
from billing.documents import (
    Lang,
    MeterRow,
    SlipData,
    due_date,
    mahalla_accounts,
    money,
    qr_target,
    render_invoice,
    render_slips,
    render_statement,
    slip_data,
    statement_data,
    volume,
)
from billing.errors import DocumentError
from billing.ledger import post_entry, post_payment
from billing.run import run_billing
from tests.billing.conftest import NOW
from tests.pdf_layout import layout_problems, png_pages

TZ = ZoneInfo("Asia/Tashkent")
NOV = date(2026, 11, 1)


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(p.extract_text() for p in reader.pages)


def flat(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def som(tiyin: int) -> str:
    """The amount as the flattened PDF text shows it (the narrow no-break space of the one
    money format is whitespace to the flattening)."""
    return flat(money(tiyin))


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
    assert som(1_234_500) in txt  # opening balance 12 345,00
    assert som(charge) in txt
    assert som(1_000_000) in txt
    assert f"Toʻlash kerak, soʻm {som(s.closing_tiyin)}" in txt
    # volumes with a decimal comma, like the web pages and the command line
    assert f"{volume(litres / 1000)} *" in txt and "taxminiy" in txt
    assert "320,000" in txt and "320.000" not in txt
    # due on the 10th of the next month (payment_due_day)
    assert "Toʻlash muddati 10.12.2026" in txt
    # the QR code and the printed link are the Payme checkout link with the amount due
    # (printed under the QR code, wrapped over lines)
    target = qr_target(s, cfg)
    assert target is not None and target[0] == "pay"
    assert re.sub(r"\s", "", target[1]) in re.sub(r"\s", "", raw)
    payload = base64.b64decode(target[1].rsplit("/", 1)[1]).decode()
    assert payload == f"m=5e730e8e0b852a417aa49ceb;ac.account={billed['hh_no']};a={s.due_tiyin}"
    assert due_date(NOV, cfg) == date(2026, 12, 10)


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
    assert som(130_000_000) in txt and som(15_600_000) in txt
    assert som(145_600_000) in txt
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
    assert som(145_600_000) in txt and som(100_000_000) in txt and som(45_600_000) in txt
    assert "pp-1209" in txt and "(подпись)" in txt


# ---------------------------------------------------------------- layout, requisites, QR
MM = 72 / 25.4
LONG_ADDRESS = (
    "Xorazm viloyati, Urganch tumani, Navbahor MFY, Gulzor ko'chasi, 7-uy, 3-xonadon, "
    "Al-Xorazmiy nomidagi bogʻ yonidagi koʻp qavatli uyning orqa tomonidagi kirish"
)
REQUISITES = {
    "utility_name": "Urganch tuman suv ta'minoti MChJ",
    "utility_inn": "301234567",
    "utility_mfo": "00444",
    "utility_bank_account": "20208000900123456001",
    "utility_bank": "Xalq banki Urganch filiali",
    "utility_address": "Urganch sh., Al-Xorazmiy ko'chasi, 25-uy",
    "utility_phone": "+998 62 224 00 00",
}


def made_slip(**over: Any) -> SlipData:
    base: dict[str, Any] = {
        "account_id": 1,
        "number": "000000018",
        "name": "Yusupova Dilnoza Rustamovna",
        "kind": "legal",
        "inn": "305123456",
        "mfo": "00444",
        "bank_account": "20208000100200300400",
        "address_uz": LONG_ADDRESS,
        "address_ru": LONG_ADDRESS,
        "mahalla_id": 1,
        "period": NOV,
        "basis": "metered",
        "residents": 4,
        "meters": (MeterRow("SL-1234567", 12345.678, 12420.001, 74.323, True),),
        "lines": (
            {
                "from": "2026-11-01",
                "to": "2026-11-15",
                "litres": 37161,
                "price_tiyin_per_m3": 165000,
                "net_tiyin": 6131565,
                "vat_tiyin": 735788,
                "vat_rate_bp": 1200,
            },
            {
                "from": "2026-11-16",
                "to": "2026-11-30",
                "litres": 37162,
                "price_tiyin_per_m3": 180000,
                "net_tiyin": 6689160,
                "vat_tiyin": 802699,
                "vat_rate_bp": 1200,
            },
        ),
        "invoice_number": "2026-0001234",
        "volume_m3": 74.323,
        "estimated": True,
        "opening_tiyin": 123_456_789,
        "charges_tiyin": 14_359_212,
        "payments_tiyin": 10_000_000,
        "closing_tiyin": 127_816_001,
        "vat_tiyin": 1_538_487,
        "pay_link": None,
    }
    base.update(over)
    return SlipData(**base)


@pytest.mark.parametrize("lang", ["uz", "ru"])
def test_slips_and_invoices_lay_out_cleanly(lang: Lang, tmp_path: Path) -> None:
    """Every word inside the page, no two words on top of each other, no word across a
    table's rule (the old slip's "Boshlangʻich koʻrsatkich" ran into the meter column and the
    invoice's periods out of their cells), no ink in the margins of the PNG pages."""
    cfg = load_billing_config(**REQUISITES, cabinet_url="https://suv.example.uz/cabinet/")
    link = "https://checkout.example.test/" + "bT01ZTczMGU4ZTBiODUyYTQxN2FhNDljZWI7YWMu" * 3
    docs = {
        "slip-cabinet": render_slips([made_slip()], cfg, lang),
        "slip-pay": render_slips([made_slip(pay_link=link)], cfg, lang),
        "slip-norm": render_slips(
            [made_slip(meters=(), basis="norm", kind="household", closing_tiyin=-5_000)],
            cfg,
            lang,
        ),
        "invoice": render_invoice(made_slip(), cfg, lang),
        "invoice-bare": render_invoice(made_slip(), load_billing_config(), lang),
    }
    for name, pdf in docs.items():
        assert layout_problems(pdf, tmp_path, margin_pt=15 * MM, name=name) == [], name
        assert png_pages(tmp_path / f"{name}.pdf", tmp_path, f"{name}-look"), name


def test_slip_carries_due_date_requisites_phone_and_a_cabinet_qr(tmp_path: Path) -> None:
    """Without Payme or Click the slip's QR code opens the customer cabinet; the slip shows
    the due date, the utility's bank details and phone."""
    cfg = load_billing_config(**REQUISITES, cabinet_url="https://suv.example.uz/cabinet/")
    s = made_slip()
    assert qr_target(s, cfg) == ("cabinet", "https://suv.example.uz/cabinet/")
    pdf = render_slips([s], cfg, "uz")
    txt = flat(text_of(pdf))
    for part in (
        "STIR: 301234567",
        "Xalq banki Urganch filiali",
        "Hisob raqami: 20208000900123456001",
        "MFO: 00444",
        "Tel. +998 62 224 00 00",
        "Toʻlash muddati 10.12.2026",
        "Shaxsiy kabinetga kirish uchun QR kodni skanerlang",
        "https://suv.example.uz/cabinet/",
        "Savollar boʻyicha: +998 62 224 00 00",
    ):
        assert part in txt, part
    # the QR code: a few hundred filled squares drawn on the page
    assert qr_squares(pdf) > 100
    # nothing to open: no QR code, and the settings check says so
    bare = load_billing_config(**REQUISITES)
    assert qr_target(s, bare) is None
    assert qr_squares(render_slips([s], bare, "uz")) < 10  # the tables' shading only
    assert [code for code, _ in requisites_problems(bare)] == ["qr"]


def qr_squares(pdf: bytes) -> int:
    from pypdf.generic import ContentStream

    reader = PdfReader(io.BytesIO(pdf))
    page = reader.pages[0]
    ops = ContentStream(page.get_contents(), reader).operations
    return sum(1 for _, op in ops if op == b"re")


def test_requisites_problems_name_each_missing_setting() -> None:
    """A blank STIR, MFO or bank account, the placeholder name, no phone or address: each is
    named with its setting (the billing run, the slips command and the billing page show
    them); a malformed one says how many digits it needs."""
    found = dict(requisites_problems(load_billing_config()))
    assert set(found) == {
        "utility_name",
        "utility_inn",
        "utility_bank_account",
        "utility_mfo",
        "utility_address",
        "utility_phone",
        "qr",
    }
    assert "SUVNET_BILLING_UTILITY_INN" in found["utility_inn"]
    bad = dict(requisites_problems(load_billing_config(**{**REQUISITES, "utility_mfo": "444"})))
    assert set(bad) == {"utility_mfo", "qr"} and "not 5 digits" in bad["utility_mfo"]
    assert (
        requisites_problems(
            load_billing_config(**REQUISITES, cabinet_url="https://suv.example.uz/cabinet/")
        )
        == []
    )
