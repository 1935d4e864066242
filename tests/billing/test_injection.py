"""Hostile names, streets and references in every PDF billing prints (slips, invoices,
reconciliation statements, dunning letters, cashier receipts): each builds, prints the text
literally, has no link, script or image, and keeps every word on the page."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from billing.accounts import Address, create_account
from billing.config import BillingConfig
from billing.documents import (
    MeterRow,
    SlipData,
    StatementData,
    StatementLine,
    render_invoice,
    render_letter,
    render_slips,
    render_statement,
    slip_data,
)
from billing.dunning import DunningMessage, LetterChannel
from billing.importer import ImportReport
from billing.payments.cashier import Receipt, render_receipt
from tests.billing.conftest import NOW
from tests.pdf_safety import HOSTILE, check_pdf

MM = 72 / 25.4
LONG_NAME = "Xorazm " * 20 + "Q" * 150  # 140 characters in words, then one 150-letter word
PAY_LINK = "https://click.example.test/services/pay?service_id=1&merchant_id=2&amount=3"


def slip(name: str, street: str, *, inn: str | None = None) -> SlipData:
    return SlipData(
        account_id=1,
        number="000000018",
        name=name,
        kind="legal",
        inn=inn,
        mfo="<b>00873",
        bank_account="2020<i>8000",
        address_uz=f"Xorazm viloyati, Urganch tumani, Navbahor MFY, {street}, 7-uy",
        address_ru=f"Хорезмская область, {street}, д. 7",
        mahalla_id=1,
        period=date(2026, 11, 1),
        basis="metered",
        residents=4,
        meters=(MeterRow("<font size=80>SN</font>", 1.0, 2.0, 1.0, False),),
        lines=(
            {
                "from": "2026-11-01",
                "to": "2026-11-30",
                "litres": 1000,
                "price_tiyin_per_m3": 165000,
                "net_tiyin": 165000,
                "vat_tiyin": 0,
                "vat_rate_bp": 0,
            },
        ),
        invoice_number="2026-<b>0001",
        volume_m3=1.0,
        estimated=False,
        opening_tiyin=0,
        charges_tiyin=165000,
        payments_tiyin=0,
        closing_tiyin=165000,
        vat_tiyin=0,
        pay_link=PAY_LINK,
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_slip_and_invoice_print_hostile_text_literally(
    hostile: str, cfg: BillingConfig, tmp_path: Path
) -> None:
    s = slip(f"{hostile} MChJ", f"{hostile} ko'chasi", inn=hostile)
    for lang in ("uz", "ru"):
        check_pdf(
            render_slips([s], cfg, lang),
            tmp_path,
            [f"{hostile} MChJ", f"{hostile} ko'chasi", "<font size=80>SN</font>", PAY_LINK],
            margin_pt=15 * MM,
            name=f"slip-{lang}",
        )
        check_pdf(
            render_invoice(s, cfg, lang),
            tmp_path,
            [f"{hostile} MChJ", f"{hostile} ko'chasi", "2026-<b>0001", "<b>00873", hostile],
            margin_pt=15 * MM,
            name=f"invoice-{lang}",
        )


def test_long_names_wrap_inside_the_page(cfg: BillingConfig, tmp_path: Path) -> None:
    s = slip(LONG_NAME, LONG_NAME)
    check_pdf(render_slips([s], cfg), tmp_path, [LONG_NAME], margin_pt=15 * MM, name="slip")
    check_pdf(render_invoice(s, cfg), tmp_path, [LONG_NAME], margin_pt=15 * MM, name="invoice")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_statement_and_letter_print_hostile_text_literally(
    hostile: str, cfg: BillingConfig, tmp_path: Path
) -> None:
    sd = StatementData(
        number="000000018",
        name=hostile,
        inn=hostile,
        date_from=date(2026, 11, 1),
        date_to=date(2026, 11, 30),
        opening_tiyin=0,
        lines=(StatementLine(date(2026, 11, 5), f"Toʻlov ({hostile})", 0, 100_000),),
    )
    check_pdf(
        render_statement(sd, cfg, "ru"),
        tmp_path,
        [f"Toʻlov ({hostile})", hostile],
        margin_pt=15 * MM,
        name="statement",
    )
    letter = render_letter(
        cfg=cfg,
        lang="uz",
        title=f"Ogohlantirish {hostile}",
        number="000000018",
        name=hostile,
        address=f"{hostile} ko'chasi, 7-uy",
        debt_tiyin=1_500_000,
        days_overdue=45,
        today=date(2026, 12, 1),
    )
    check_pdf(letter, tmp_path, [hostile, f"{hostile} ko'chasi"], margin_pt=15 * MM, name="letter")


def test_dunning_letter_channel_with_a_hostile_customer(cfg: BillingConfig, tmp_path: Path) -> None:
    msg = DunningMessage(
        account_id=1,
        number="000000018",
        name=HOSTILE[2],
        kind="household",
        phone=None,
        telegram_chat_id=None,
        address=f"{HOSTILE[0]} ko'chasi, 7-uy",
        stage="warning",
        title="Ogohlantirish",
        debt_tiyin=2_500_000,
        days_overdue=61,
        text="",
        today=date(2026, 12, 1),
    )
    out = tmp_path / "letters"
    LetterChannel(out, cfg).send(msg)
    (pdf,) = out.glob("*.pdf")
    check_pdf(
        pdf.read_bytes(),
        tmp_path,
        [HOSTILE[2], f"{HOSTILE[0]} ko'chasi"],
        margin_pt=15 * MM,
        name="dunning",
    )


@pytest.mark.parametrize("name", [*HOSTILE, LONG_NAME])
def test_cashier_receipt_prints_hostile_and_long_names_on_the_paper(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUVNET_BILLING_FONT_PATH", raising=False)
    r = Receipt(
        receipt_no="K-2026-0000001",
        account_id=1,
        account_number="000000018",
        account_name=name,
        address=f"{name} ko'chasi, 7-uy",
        amount_tiyin=150_050,
        method="cash",
        cashier="kassir1",
        taken_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        ledger_id=1,
        balance_after_tiyin=-1_500,
    )
    shown = name[:150]  # a name longer than 8 lines is cut, with "…"
    text = check_pdf(
        render_receipt(r, "Suvokova <b>"),
        tmp_path,
        [shown, f"{shown}" if len(name) > 150 else f"{name} ko'chasi", "Suvokova <b>", "15,00"],
        margin_pt=5 * MM,
        name="receipt",
    )
    assert "Rahmat!" in text
    assert ("…" in text) == (name == LONG_NAME)


def test_slip_from_the_database_with_a_hostile_name_and_street(
    db_url: str, cfg: BillingConfig, tmp_path: Path
) -> None:
    street = '<img src=x onerror="alert(1)">'
    with psycopg.connect(db_url) as conn:
        acc, _ = create_account(
            conn,
            kind="household",
            name='<a href="javascript:alert(1)">Aliyev</a>',
            address=Address("Xorazm viloyati", "Urganch tumani", "Navbahor MFY", street, "7"),
            now=NOW,
            residents=3,
            opened_on=date(2025, 1, 1),
        )
        conn.commit()
        s = slip_data(conn, acc, date(2026, 11, 1), cfg)
    check_pdf(
        render_slips([s], cfg, "uz"),
        tmp_path,
        ['<a href="javascript:alert(1)">Aliyev</a>', street],
        margin_pt=15 * MM,
        name="db-slip",
    )


def test_rejected_rows_report_is_neutralised(tmp_path: Path) -> None:
    rep = ImportReport(rejected=[(2, '=HYPERLINK("http://x","click")'), (3, "-1+2"), (4, "ok")])
    out = tmp_path / "rejected.csv"
    rep.write_csv(out)
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["line", "reason"],
        ["2", '\'=HYPERLINK("http://x","click")'],
        ["3", "'-1+2"],
        ["4", "ok"],
    ]
