"""The department reports as people see them: each form's PDF in each language rendered to
PNG pages (pdftoppm) and read back word by word with its position (pdftotext -bbox), so a
word that runs off the page, over a margin or over another word fails here; no English word
is left on the Uzbek and Russian forms; the form carries the utility, the period, the print
date with its zone, "page N of M" and the signature lines. The pre-trial claim letters: one
per debtor, in the debtor's language, the breakdown adding up to the debt.

``SUVNET_DOC_IMAGES=docs/img`` also copies a first page of each form (Uzbek Latin) and the
letter into that folder, for docs/reports.md."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from PIL import Image

from api.i18n import format_som
from api.reports.form import FormContext
from api.security import Role
from billing.ledger import post_entry, post_payment, reverse_entry
from tests.api.conftest import User, add_invoice_and_charge, bearer, make_account
from tests.pdf_safety import Word, active_content, pdf_text, words

FROM, TO = date(2026, 10, 1), date(2026, 10, 31)
LANGS = ("uz", "uz_Cyrl", "ru", "en")
REPORTS = ("accounting", "finance", "legal", "customer_service", "technical")
MM = 72 / 25.4
MARGIN_PT = 12 * MM  # the forms' side margins (api/reports/render.py)

ENGLISH = {
    "the",
    "and",
    "of",
    "to",
    "for",
    "by",
    "with",
    "from",
    "is",
    "are",
    "not",
    "in",
    "account",
    "accounts",
    "name",
    "district",
    "street",
    "address",
    "phone",
    "total",
    "charged",
    "paid",
    "opening",
    "closing",
    "balance",
    "debit",
    "credit",
    "debt",
    "days",
    "over",
    "page",
    "printed",
    "period",
    "time",
    "prepared",
    "checked",
    "approved",
    "notes",
    "turnover",
    "statement",
    "collected",
    "collection",
    "rate",
    "category",
    "household",
    "households",
    "legal",
    "entity",
    "budget",
    "customer",
    "request",
    "requests",
    "meter",
    "meters",
    "zone",
    "month",
    "day",
    "channel",
    "payments",
    "share",
    "status",
    "active",
    "estimated",
    "volume",
    "billed",
    "bills",
    "invoice",
    "disputed",
    "resolved",
    "open",
    "question",
    "leak",
    "water",
    "inflow",
    "losses",
    "consumption",
    "pressure",
    "hours",
    "alarm",
    "priority",
    "raised",
    "gateway",
    "devices",
    "availability",
    "nothing",
    "fault",
    "faults",
    "spike",
    "cash",
    "desk",
    "transfer",
    "claim",
    "letters",
    "director",
    "unpaid",
    "all",
    "no",
    "low",
    "high",
    "medium",
    "urgent",
    "offline",
    "stopped",
    "difference",
    "ledger",
    "check",
    "entries",
    "dated",
    "sum",
}
"""English words that must not be on an Uzbek or Russian form (the data are Uzbek names)."""
ALLOWED = {"payme", "click", "telegram", "utc", "asia/tashkent", "pdf", "zip", "bar"}


@pytest.fixture(scope="module")
def village(db_url: str) -> dict[str, str]:
    """Accounts with Uzbek names (one in Cyrillic), a legal entity with a Russian letter
    language, charges over three months, payments on three channels (one cancelled), a
    disputed bill, a stopped meter, a zone with a water balance."""
    with psycopg.connect(db_url) as conn:
        z = conn.execute(
            "INSERT INTO zones (code, name, min_service_pressure_bar, max_service_pressure_bar) "
            "VALUES ('DMA-1', 'Shimoliy', 1.5, 6) RETURNING id"
        ).fetchone()
        assert z is not None
        a1, n1 = make_account(conn, 801, name="Aliyev Sardor Baxtiyorovich", street="Navoiy")
        a2, n2 = make_account(conn, 802, name="Қодирова Лола", street="Navoiy", house="7")
        a3, n3 = make_account(conn, 803, name="To'xtayev G'ayrat", street="Bobur", house="5")
        org = conn.execute(
            "INSERT INTO accounts (number, kind, category, name, inn, house_id, phone, "
            "correspondence_language, zone_id) SELECT '000008045', 'legal', 'legal', "
            "'\"Paxtakor Agro\" MChJ', '301234567', house_id, '+998712345678', 'ru', %s "
            "FROM accounts WHERE id = %s RETURNING id",
            (z[0], a3),
        ).fetchone()
        assert org is not None
        conn.execute(
            "UPDATE accounts SET zone_id = %s, correspondence_language = 'uz_Cyrl' WHERE id = %s",
            (z[0], a2),
        )
        conn.execute("UPDATE accounts SET zone_id = %s WHERE id IN (%s, %s)", (z[0], a1, a3))
        for acc, base in ((a1, 3_000_000), (a2, 1_500_000), (a3, 2_000_000), (org[0], 90_000_000)):
            for k, month in enumerate((8, 9, 10)):
                add_invoice_and_charge(
                    conn, acc, date(2026, month, 1), base + k * 10_000, 3.0 + k, f"2026-8{acc}{k}"
                )
        pay = post_payment(
            conn,
            amount_tiyin=2_500_000,
            paid_at=datetime(2026, 10, 9, 5, tzinfo=UTC),
            source="bank",
            external_ref="b-81",
            account_id=a1,
        )
        reverse_entry(conn, pay.id, posted_at=datetime(2026, 10, 12, tzinfo=UTC), memo="xato")
        for acc, src, amount, d in (
            (a2, "payme", 1_500_000, 10),
            (a3, "cashier", 4_000_000, 11),
            (a1, "click", 3_000_000, 20),
            (org[0], "bank", 50_000_000, 25),
        ):
            post_payment(
                conn,
                amount_tiyin=amount,
                paid_at=datetime(2026, 10, d, 6, tzinfo=UTC),
                source=src,
                external_ref=f"{src}-{acc}",
                account_id=acc,
            )
        post_entry(
            conn,
            account_id=a3,
            kind="adjustment",
            amount_tiyin=-500_000,
            posted_at=datetime(2026, 10, 15, tzinfo=UTC),
            memo="qayta hisob",
        )
        m = conn.execute(
            "INSERT INTO meters (serial_no, model, zone_id) VALUES ('SN-801', 'Itron', %s) "
            "RETURNING id",
            (z[0],),
        ).fetchone()
        assert m is not None
        conn.execute(
            "INSERT INTO service_connections (account_id, meter_id, installed_at) "
            "VALUES (%s, %s, '2026-01-01')",
            (a1, m[0]),
        )
        inv = conn.execute(
            "SELECT id FROM invoices WHERE account_id = %s AND period = '2026-10-01'", (a1,)
        ).fetchone()
        assert inv is not None
        conn.execute(
            "INSERT INTO period_consumption (period, account_id, meter_id, invoice_id, "
            "start_ts, end_ts, volume_m3, flags) VALUES ('2026-10-01', %s, %s, %s, "
            "'2026-10-01', '2026-11-01', 0, 8)",
            (a1, m[0], inv[0]),
        )
        conn.execute(
            "INSERT INTO customer_requests (account_id, received_at, channel, kind, invoice_id, "
            "disputed_tiyin, subject) VALUES (%s, '2026-10-21 06:00+00', 'office', "
            "'bill_dispute', %s, 1000000, 'Hisob juda katta')",
            (a1, inv[0]),
        )
        conn.execute(
            "INSERT INTO customer_requests (account_id, received_at, channel, kind, subject, "
            "status, resolved_at, resolution) VALUES (%s, '2026-10-05 04:00+00', 'phone', "
            "'no_water', 'Suv kelmayapti', 'resolved', '2026-10-05 09:00+00', 'Tuzatildi')",
            (a2,),
        )
        for d in range(1, 32):
            conn.execute(
                "INSERT INTO zone_leak_daily (zone_id, day, inflow_m3, consumption_m3, "
                "losses_m3) VALUES (%s, %s, 100, 80, 20)",
                (z[0], date(2026, 10, d)),
            )
        conn.commit()
    return {"a1": n1, "a2": n2, "a3": n3, "org": "000008045"}


async def get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> httpx.Response:
    r = await client.get(
        path,
        headers=bearer(user),
        params={"date_from": FROM.isoformat(), "date_to": TO.isoformat(), **params},
    )
    assert r.status_code == 200, r.text[:500]
    return r


def overlaps(ws: list[Word]) -> list[tuple[Word, Word]]:
    """Pairs of words on the same page whose boxes overlap (more than a hair)."""
    out = []
    by_page: dict[int, list[Word]] = {}
    for w in ws:
        by_page.setdefault(w.page, []).append(w)
    for page in by_page.values():
        page.sort(key=lambda w: w.x_min)
        for i, a in enumerate(page):
            for b in page[i + 1 :]:
                if b.x_min >= a.x_max - 0.5:
                    break
                dy = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
                dx = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
                if dx > 0.5 and dy > 0.5:
                    out.append((a, b))
    return out


def look(pdf: bytes, tmp_path: Path, name: str, *, side_margin: float) -> tuple[str, list[Word]]:
    """Check the PDF as a reader sees it; return its text and words."""
    for tool in ("pdftotext", "pdftoppm"):
        assert shutil.which(tool), f"{tool} is missing: apt install poppler-utils"
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", str(path), str(tmp_path / name)], check=True, timeout=60
    )
    assert active_content(pdf) == [], name
    pages, ws = words(path)
    assert pages and ws, name
    for w in ws:
        width, height = pages[w.page - 1]
        assert side_margin - 1 <= w.x_min and w.x_max <= width - side_margin + 1, (name, w)
        assert w.y_min >= 5 * MM and w.y_max <= height - 5 * MM, (name, w)
        assert w.y_max - w.y_min < 20, (name, w)
    assert overlaps(ws) == [], (name, overlaps(ws)[:5])
    pngs = sorted(tmp_path.glob(f"{name}-*.png"))
    assert len(pngs) == len(pages)
    for png in pngs:  # nothing drawn in the outer half of the side margins
        with Image.open(png) as img:
            grey = img.convert("L")
            w_px, h_px = grey.size
            strip = int(w_px * side_margin / 2 / pages[0][0])
            for box in ((0, 0, strip, h_px), (w_px - strip, 0, w_px, h_px)):
                darkest, _ = cast(tuple[int, int], grey.crop(box).getextrema())  # grey: (min, max)
                assert darkest > 240, f"{png.name}: ink in a side margin"
    return pdf_text(path), ws


def english_left(text: str) -> list[str]:
    found = re.findall(r"[A-Za-z][A-Za-z'/]*", text)
    return sorted({w for w in found if w.lower() in ENGLISH and w.lower() not in ALLOWED})


def keep_image(tmp_path: Path, name: str, target: str) -> None:
    folder = os.environ.get("SUVNET_DOC_IMAGES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        src = sorted(tmp_path.glob(f"{name}-*.png"))[0]
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                "80",
                "-f",
                "1",
                "-l",
                "1",
                "-png",
                "-singlefile",
                str(tmp_path / f"{name}.pdf"),
                str(Path(folder) / target),
            ],
            check=True,
            timeout=60,
        )
        assert src.exists()


@pytest.mark.parametrize("lang", LANGS)
async def test_every_form_in_every_language_reads_cleanly(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: dict[str, str],
    tmp_path: Path,
    lang: str,
) -> None:
    admin = users[Role.ADMIN]
    for name in REPORTS:
        r = await get(client, admin, f"/api/v1/reports/{name}", format="pdf", lang=lang)
        text, ws = look(r.content, tmp_path, f"{name}-{lang}", side_margin=MARGIN_PT)
        flat = re.sub(r"\s+", " ", text)
        doc = (await get(client, admin, f"/api/v1/reports/{name}", lang=lang)).json()
        assert re.sub(r"\s+", " ", doc["title"]) in flat, (name, lang)
        assert "Suv ta'minoti MChJ" in flat  # the utility, from billing's settings
        assert "Asia/Tashkent" in flat and "02.12.2026 12:30" in flat  # 07:30 UTC, UTC+5
        assert "01.10.2026 - 31.10.2026" in flat
        pages = max(w.page for w in ws)
        page_words = {
            "uz": f"{pages} betdan 1-bet",
            "uz_Cyrl": f"{pages} бетдан 1-бет",
            "ru": f"Страница 1 из {pages}",
            "en": f"Page 1 of {pages}",
        }
        assert page_words[lang] in flat, (name, lang)
        signs = {
            "uz": ("Tuzdi", "Tekshirdi", "Tasdiqlayman"),
            "uz_Cyrl": ("Тузди", "Текширди", "Тасдиқлайман"),
            "ru": ("Составил", "Проверил", "Утверждаю"),
            "en": ("Prepared by", "Checked by", "Approved"),
        }
        for label in signs[lang]:
            assert label in flat, (name, lang, label)
        if lang != "en":
            assert english_left(flat) == [], (name, lang)
        if lang == "uz":
            keep_image(tmp_path, f"{name}-{lang}", f"report-{name}")


async def test_money_on_the_forms_is_the_ledgers(
    client: httpx.AsyncClient, users: dict[Role, User], village: dict[str, str], db_url: str
) -> None:
    """The accounting form's totals are the ledger's sums, to the tiyin; the finance form's
    collections by channel add up to the paid of the same accounts; the legal form's debts
    are the closing debits."""
    admin = users[Role.ADMIN]
    acc = (await get(client, admin, "/api/v1/reports/accounting", lang="en")).json()
    t = {tb["key"]: tb for tb in acc["tables"]}
    total = next(r for r in t["turnover"]["rows"] if r["level"] == 9)
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT sum(amount_tiyin) FILTER (WHERE value_date < %s), "
            "sum(amount_tiyin) FILTER (WHERE value_date <= %s) FROM ledger",
            (FROM, TO),
        ).fetchone()
    assert row is not None
    assert (total["opening"], total["closing"]) == (row[0], row[1])
    assert total["closing"] == total["opening"] + total["charged"] - total["paid"]
    assert sum("difference 0,00 so'm" in n for n in acc["notes"]) == 2, acc["notes"]
    fin = (await get(client, admin, "/api/v1/reports/finance", lang="en")).json()
    ft = {tb["key"]: tb for tb in fin["tables"]}
    by_channel = next(r for r in ft["by_channel"]["rows"] if r["level"] == 9)["paid"]
    assert by_channel == total["paid"]
    channels = {r["channel"]: r["paid"] for r in ft["by_channel"]["rows"] if r["level"] == 0}
    assert channels == {
        "bank": 50_000_000,  # the organisation's; a1's 25 000 was cancelled
        "payme": 1_500_000,
        "cashier": 4_000_000,
        "click": 3_000_000,
    }
    leg = (await get(client, admin, "/api/v1/reports/legal", lang="en")).json()
    debts = sum(r["debt"] for tb in leg["tables"] for r in tb["rows"] if r["level"] == 0)
    assert debts == total["closing_debit"]


async def test_spreadsheet_and_csv_forms(
    client: httpx.AsyncClient, users: dict[Role, User], village: dict[str, str]
) -> None:
    admin = users[Role.ADMIN]
    x = await get(client, admin, "/api/v1/reports/accounting", format="xlsx", lang="ru")
    wb = load_workbook(io.BytesIO(x.content))
    assert [ws.title for ws in wb.worksheets] == [
        "Обороты по лицевым счетам",
        "Обороты по улицам",
        "Обороты по МСГ",
    ]
    ws = wb.worksheets[0]
    texts = [c.value for r in ws.iter_rows() for c in r if isinstance(c.value, str)]
    assert texts[0] == "Suv ta'minoti MChJ"
    assert "Оборотная ведомость по лицевым счетам" in texts
    assert any(t.startswith("Напечатано 02.12.2026 12:30 (время Asia/Tashkent") for t in texts)
    assert {"Составил", "Проверил", "Утверждаю"} <= set(texts)
    assert ws.oddFooter.right.text == "Страница &P из &N"
    assert ws.page_setup.orientation == "landscape"
    c = await get(client, admin, "/api/v1/reports/finance", format="csv", lang="uz_Cyrl")
    body = c.content.decode("utf-8-sig")
    assert "Кунлар ва каналлар бўйича тушумлар" in body
    assert "Тузди" in body and "Тасдиқлайман" in body


async def test_claim_letters_one_per_debtor_in_their_language(
    client: httpx.AsyncClient, users: dict[Role, User], village: dict[str, str], tmp_path: Path
) -> None:
    lawyer = users[Role.LAWYER]
    legal = (await get(client, lawyer, "/api/v1/reports/legal", lang="en")).json()
    debtors = {r["number"]: r for tb in legal["tables"] for r in tb["rows"] if r["level"] == 0}
    r = await get(client, lawyer, "/api/v1/reports/legal/claims")
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = sorted(z.namelist())
        assert names == sorted(f"claim-{n}.pdf" for n in debtors)
        letters = {n: z.read(f"claim-{n}.pdf") for n in debtors}
    title = {
        "uz": "Sudgacha talabnoma",
        "uz_Cyrl": "Судгача талабнома",
        "ru": "Досудебная претензия",
    }
    expected_lang = {village["org"]: "ru", village["a2"]: "uz_Cyrl"}
    for number, pdf in letters.items():
        lang = expected_lang.get(number, "uz")  # else the utility's default language
        text, _ = look(pdf, tmp_path, f"claim-{number}", side_margin=20 * MM)
        flat = re.sub(r"\s+", " ", text)
        assert title[lang] in flat, (number, lang)
        assert english_left(flat) == [], (number, english_left(flat))
        # the total of the breakdown is the debt of the legal form
        assert som(debtors[number]["debt"]) in flat
        if number == village["org"]:
            keep_image(tmp_path, f"claim-{number}", "claim-letter")
    one = await get(client, lawyer, f"/api/v1/reports/legal/claims/{village['org']}")
    assert one.headers["content-type"] == "application/pdf"
    text = re.sub(r"\s+", " ", pdf_text_of(one.content, tmp_path))
    # the organisation owes Aug + Sep + Oct (90 000 + 90 100 + 90 200) less 500 000 paid:
    # FIFO leaves 20 100 of September's charge and October's 902 000,00... as printed
    assert "Досудебная претензия" in text and "ИНН 301234567" in text
    r = await client.get(
        f"/api/v1/reports/legal/claims/{village['a3']}",
        headers=bearer(lawyer),
        params={"date_from": "2026-07-01", "date_to": "2026-07-31", "lang": "ru"},
    )
    # said in the language asked for (the form's), not in English
    assert r.status_code == 422
    assert r.json()["detail"] == f"У лицевого счёта {village['a3']} нет долга на 31.07.2026.", (
        r.text
    )
    r = await client.get(
        "/api/v1/reports/legal/claims",
        headers=bearer(users[Role.DISPATCHER]),
        params={"date_from": FROM.isoformat(), "date_to": TO.isoformat()},
    )
    assert r.status_code == 403


def som(tiyin: int) -> str:
    """Money as the forms print it, with the spaces pdftotext gives back."""
    return format_som(tiyin).replace("\u202f", " ")


def pdf_text_of(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "one.pdf"
    path.write_bytes(pdf)
    return pdf_text(path)


def test_print_date_names_the_zone() -> None:
    from zoneinfo import ZoneInfo

    from api.reports.config import Signatures
    from api.reports.form import Requisites
    from api.reports.text import Words

    ctx = FormContext(
        Words("en"),
        Requisites("X"),
        Signatures(),
        datetime(2026, 11, 27, 23, 0, tzinfo=UTC),
        ZoneInfo("Asia/Tashkent"),
    )
    # 23:00 UTC on the 27th is 04:00 on the 28th in Tashkent
    assert ctx.printed() == "Printed 28.11.2026 04:00 (Asia/Tashkent time, UTC+05:00)"
    assert ctx.sign_lines() == [("Prepared by", ""), ("Checked by", ""), ("Approved", "")]
    assert ctx.requisites()[0] == "INN (STIR): ____________________"


def test_signature_names_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Names set for every form, one form's own name, the environment over the file; a name
    not set is a blank line (see test_print_date_names_the_zone)."""
    from api.reports.config import load_report_settings

    cfg = tmp_path / "suvnet.yaml"
    cfg.write_text(
        "reports:\n  prepared_by: Karimova D.\n  approved_by: Rahimov A.\n"
        "  forms:\n    legal: {prepared_by: Saidov O.}\n  claim_payment_days: 15\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SUVNET_CONFIG", str(cfg))
    monkeypatch.setenv("SUVNET_REPORTS_CHECKED_BY", "Tursunov B.")
    s = load_report_settings()
    assert s.signatures("finance").model_dump() == {
        "prepared_by": "Karimova D.",
        "checked_by": "Tursunov B.",
        "approved_by": "Rahimov A.",
    }
    assert s.signatures("legal").prepared_by == "Saidov O."
    assert s.claim_payment_days == 15
    monkeypatch.setenv("SUVNET_REPORTS_CLAIM_PAYMENT_DAYS", "0")
    with pytest.raises(ValueError, match="claim_payment_days"):
        load_report_settings()
